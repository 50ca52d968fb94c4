import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Tests run from dist/test/...; fixtures stay in the source tree. */
export const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
export const fixturesDir = `${repoRoot}test/fixtures/configs/`;
export const quickstartPath = `${repoRoot}examples/quickstart.json`;

export function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8')) as unknown;
}

export function fixture(kind: 'valid' | 'invalid', name: string): unknown {
  return readJson(`${fixturesDir}${kind}/${name}`);
}

export function fixtureNames(kind: 'valid' | 'invalid'): string[] {
  return readdirSync(`${fixturesDir}${kind}`)
    .filter((f) => f.endsWith('.json') && f !== 'expected.json')
    .sort();
}

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** A fresh, mutable copy of the quickstart document. */
export function quickstart(): Record<string, Json> {
  return readJson(quickstartPath) as Record<string, Json>;
}

/** Walks an object path (keys and indices) and returns the object there, for in-place edits. */
export function at(doc: Json, ...path: (string | number)[]): Record<string, Json> {
  let cur: Json = doc;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') throw new Error(`no object at ${path.join('/')}`);
    cur = (cur as Record<string, Json>)[p] as Json;
  }
  if (cur === null || typeof cur !== 'object' || Array.isArray(cur))
    throw new Error(`no object at ${path.join('/')}`);
  return cur as Record<string, Json>;
}
