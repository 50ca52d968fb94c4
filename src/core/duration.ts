/**
 * Durations as people write them (`250ms`, `90s`, `4m`, `1h30m`) and as people read them, for
 * the clock's API and CLI (`POST /sluice/v1/clock/advance {"by": "4m"}`, `sluice clock advance
 * 4m`) and for tables and logs. Milliseconds, the unit of every timer in Sluice.
 */

/** The longest move of the clock, or any timer: a signed 32-bit millisecond count (about 24.8 days). */
export const MAX_DURATION_MS = 2 ** 31 - 1;

const UNIT_MS = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 } as const;
type Unit = keyof typeof UNIT_MS;

/** The units, largest first, as messages list them. */
export const DURATION_UNITS: readonly Unit[] = ['h', 'm', 's', 'ms'];

/** What a message says a duration looks like. */
export const DURATION_FORMS = '250ms, 90s, 4m, 1.5s or 1h30m (units h, m, s, ms, largest first)';

const PART = /(\d+(?:\.\d+)?)(ms|h|m|s)/y;

/**
 * Parses `1h30m`, `90s`, `1.5s`, `250ms`: one or more NUMBER UNIT parts, each unit at most once
 * and larger units first, no spaces, no sign. The total must be a whole number of milliseconds
 * from 0 to MAX_DURATION_MS. A number alone is refused: `240000` could be milliseconds or
 * seconds, and the clock must not guess. Returns the milliseconds, or why the text is not one.
 */
export function parseDuration(text: string): number | { readonly error: string } {
  if (text === '') return { error: 'an empty string is not a duration' };
  if (/^\d+(\.\d+)?$/.test(text)) return { error: `'${text}' has no unit (give ${text}ms, or another unit)` };
  let at = 0;
  let total = 0;
  let lastRank = -1;
  while (at < text.length) {
    PART.lastIndex = at;
    const m = PART.exec(text);
    if (m === null) return { error: `'${text}' is not a duration` };
    const unit = m[2] as Unit;
    const rank = DURATION_UNITS.indexOf(unit);
    if (rank <= lastRank) return { error: `'${text}' is not a duration (each unit once, largest first)` };
    lastRank = rank;
    total += Number(m[1]) * UNIT_MS[unit];
    at = PART.lastIndex;
  }
  // Decimal parts add up in binary fractions: 0.1s + ... must still come out whole.
  const rounded = Math.round(total);
  if (Math.abs(total - rounded) > 1e-6) return { error: `'${text}' is not a whole number of milliseconds` };
  if (rounded > MAX_DURATION_MS)
    return { error: `'${text}' is longer than ${MAX_DURATION_MS} ms (about 24.8 days)` };
  return rounded;
}

/** Whole milliseconds from 0 to MAX_DURATION_MS. */
export function isDurationMs(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_DURATION_MS;
}

/**
 * A duration for people: `850ms`, `4.2s`, `4m00s`, `1h30m`. Rounded to what a person reads:
 * milliseconds below a second, tenths below a minute, seconds below an hour, minutes beyond.
 */
export function formatDuration(ms: number): string {
  const v = Math.max(0, ms);
  if (v < 1000) return `${Math.round(v)}ms`;
  if (v < 60_000) {
    const tenths = Math.floor(v / 100) / 10;
    return `${tenths.toFixed(1)}s`;
  }
  const s = Math.floor(v / 1000);
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
