/**
 * What the host allows this process. Read once at start by the composition root, which splits
 * it into shares (core/budget.ts): when the process runs out of descriptors, the event loop's
 * accept quietly closes new connections and probes fail, so every share stays below the limit.
 */
import { readFileSync } from 'node:fs';

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
