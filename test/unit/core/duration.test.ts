import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_DURATION_MS, formatDuration, isDurationMs, parseDuration } from '../../../src/core/duration.js';

/** Durations as the clock's API and CLI take them, and as tables and logs show them. */

test('parseDuration reads ms, s, m and h, alone or together, decimals included', () => {
  const cases: [string, number][] = [
    ['0ms', 0],
    ['1ms', 1],
    ['250ms', 250],
    ['90s', 90_000],
    ['1.5s', 1_500],
    ['0.001s', 1],
    ['4m', 240_000],
    ['3m59.999s', 239_999],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['1h30m15s', 5_415_000],
    ['2h0m0s1ms', 7_200_001],
    ['0.5m', 30_000],
    ['596h31m23s647ms', MAX_DURATION_MS],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

test('parseDuration refuses what is not one duration, saying why', () => {
  const cases: [string, RegExp][] = [
    ['', /empty/],
    ['240000', /no unit.*240000ms/],
    ['4.5', /no unit/],
    ['4 m', /not a duration/],
    ['4M', /not a duration/],
    ['4min', /not a duration/],
    ['-4m', /not a duration/],
    ['+4m', /not a duration/],
    ['4m4m', /each unit once, largest first/],
    ['30s1m', /each unit once, largest first/],
    ['1ms1s', /each unit once, largest first/],
    ['1.5ms', /whole number of milliseconds/],
    ['0.0001s', /whole number of milliseconds/],
    ['1e3ms', /not a duration/],
    ['4m ', /not a duration/],
    ['m', /not a duration/],
    ['596h31m23s648ms', /longer than 2147483647 ms/],
    ['100000h', /longer than/],
  ];
  for (const [text, why] of cases) {
    const r = parseDuration(text);
    assert.equal(typeof r, 'object', `${JSON.stringify(text)} should be refused, got ${String(r)}`);
    assert.match((r as { error: string }).error, why, text);
  }
});

test('isDurationMs takes whole milliseconds from 0 to the timer limit, and nothing else', () => {
  for (const v of [0, 1, 240_000, MAX_DURATION_MS]) assert.equal(isDurationMs(v), true, String(v));
  for (const v of [-1, 1.5, MAX_DURATION_MS + 1, Number.NaN, Infinity, '4m', null, undefined, '240000'])
    assert.equal(isDurationMs(v), false, String(v));
});

test('formatDuration rounds for a person and reads back with parseDuration', () => {
  const cases: [number, string][] = [
    [0, '0ms'],
    [-5, '0ms'],
    [0.4, '0ms'],
    [999.4, '999ms'],
    [1000, '1.0s'],
    [4212.7, '4.2s'],
    [59_999, '59.9s'],
    [60_000, '1m00s'],
    [240_412.08305999998, '4m00s'],
    [3_599_999, '59m59s'],
    [3_600_000, '1h00m'],
    [5_415_000, '1h30m'],
  ];
  for (const [ms, text] of cases) assert.equal(formatDuration(ms), text, String(ms));
  for (const ms of [0, 850, 4200, 185_000, 3_720_000]) {
    const back = parseDuration(formatDuration(ms));
    assert.equal(back, ms, `${ms} -> ${formatDuration(ms)}`);
  }
});
