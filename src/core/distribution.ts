/**
 * Distribution modes: which part of a flow's key chooses the backend. Modes are strategies
 * registered by name, so the ARM value `loadDistribution` selects one without a switch in
 * the engine, and an embedder can add its own.
 */
import { hashWords } from './flow-key.js';

/** Hashes the part of the key (layout in flow-key.ts) that the mode cares about. */
export type DistributionHash = (words: Uint32Array, off: number, seed: number) => number;

const registry = new Map<string, DistributionHash>();

export function registerDistributionMode(name: string, hash: DistributionHash): void {
  registry.set(name, hash);
}

export function distributionMode(name: string): DistributionHash | undefined {
  return registry.get(name);
}

export function distributionModes(): string[] {
  return [...registry.keys()];
}

// Azure's modes: Default is the 5-tuple; SourceIP the 2-tuple (source and destination
// address); SourceIPProtocol the 3-tuple (the two addresses and the protocol).
registerDistributionMode('Default', (w, off, seed) => hashWords(w, off, 10, seed));
registerDistributionMode('SourceIP', (w, off, seed) => hashWords(w, off, 8, seed));
registerDistributionMode('SourceIPProtocol', (w, off, seed) => {
  const h = hashWords(w, off, 8, seed);
  return hashWords(w, off + 9, 1, h);
});
