/**
 * The pure part of health: how consecutive results move one (probe, member) pair between
 * unknown, up and down. No clock, no I/O, so every rule below is tested on its own.
 *
 * - `threshold` consecutive successes bring a down member up, and `threshold` consecutive
 *   failures take an up member down (Azure's probeThreshold / numberOfProbes).
 * - A member that has no result yet takes the first one as it is: the first success puts it
 *   in rotation, the first failure confirms it out. Waiting for `threshold` results first
 *   would keep a fresh load balancer without backends for threshold x interval, and there is
 *   no earlier verdict to protect from flapping.
 * - A fast-down failure (Http/Https status other than 200, or a TCP reset) takes the member
 *   out at once, as Azure documents for its HTTP(S) probes.
 */
import type { ProbeState } from './types.js';

export interface Counters {
  readonly state: ProbeState;
  readonly successes: number;
  readonly failures: number;
}

export type Verdict = 'success' | 'failure' | 'fastFailure';

export const INITIAL_COUNTERS: Counters = { state: 'unknown', successes: 0, failures: 0 };

export function nextCounters(c: Counters, verdict: Verdict, threshold: number): Counters {
  const need = Math.max(1, Math.floor(threshold));
  if (verdict === 'success') {
    const successes = c.successes + 1;
    const state = c.state === 'up' || c.state === 'unknown' || successes >= need ? 'up' : 'down';
    return { state, successes, failures: 0 };
  }
  const failures = c.failures + 1;
  const state =
    verdict === 'fastFailure' || c.state === 'down' || c.state === 'unknown' || failures >= need
      ? 'down'
      : 'up';
  return { state, successes: 0, failures };
}
