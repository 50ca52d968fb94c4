/**
 * Reading JSON of unknown shape. The semantic pass reads a document the structural pass may
 * have found faults in (every error is reported in one go), so a reader never trusts a type:
 * a value of the wrong type reads as absent.
 */

export type Rec = Record<string, unknown>;

/** A JSON object: not null, not an array. */
export function isRecord(v: unknown): v is Rec {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export const rec = (v: unknown): Rec => (isRecord(v) ? v : {});
export const str = (o: Rec, k: string): string | undefined => (typeof o[k] === 'string' ? o[k] : undefined);
export const int = (o: Rec, k: string): number | undefined =>
  typeof o[k] === 'number' && Number.isInteger(o[k]) ? o[k] : undefined;
export const bool = (o: Rec, k: string): boolean | undefined =>
  typeof o[k] === 'boolean' ? o[k] : undefined;
export const arr = (o: Rec, k: string): unknown[] => (Array.isArray(o[k]) ? o[k] : []);
/** The `id` of an ARM reference `{ "id": ... }` held in `o[k]`. */
export const refId = (o: Rec, k: string): string | undefined => str(rec(o[k]), 'id');

export function oneOf<T extends string>(v: string | undefined, allowed: readonly T[]): T | undefined {
  return allowed.find((a) => a === v);
}
