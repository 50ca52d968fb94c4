/**
 * A proxied TCP flow holds two file descriptors. When the process runs out, the event loop's
 * accept quietly closes new connections and nobody is told; so the proxy plane keeps its own
 * ceiling below the limit and refuses (and counts) what would not fit.
 */
import { readFileSync } from 'node:fs';

/** Descriptors left for listeners, the API, probes, logs and Node itself. */
export const DESCRIPTOR_RESERVE = 64;

/** The soft open-files limit of this process, when the platform tells it (Linux). */
export function openFilesLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!m || m[1] === 'unlimited') return undefined;
    return Number(m[1]);
  } catch {
    return undefined;
  }
}

/** How many TCP flows fit in `limit` descriptors, or undefined when there is no known limit. */
export function tcpFlowCeiling(limit = openFilesLimit()): number | undefined {
  if (limit === undefined) return undefined;
  return Math.max(1, Math.floor((limit - DESCRIPTOR_RESERVE) / 2));
}
