import type { ProbeOutcome } from './types.js';

/**
 * A probe attempt can end several ways at once (answer, error, abort, close); only the first
 * counts. Returns the settling function, or undefined after settling an already aborted attempt.
 */
export function settleOnce(
  resolve: (outcome: ProbeOutcome) => void,
  signal: AbortSignal,
): ((outcome: ProbeOutcome) => void) | undefined {
  let settled = false;
  const settle = (outcome: ProbeOutcome): void => {
    if (!settled) {
      settled = true;
      resolve(outcome);
    }
  };
  if (signal.aborted) {
    settle({ ok: false, fastDown: false, reason: 'aborted' });
    return undefined;
  }
  return settle;
}
