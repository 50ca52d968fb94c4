/** Sluice's metrics registered with sources that hold nothing (no flows, probes or SNAT). */
import type { Registry } from 'prom-client';
import { SluiceMetrics } from '../../src/metrics/metrics.js';

export function idleMetrics(registry: Registry): SluiceMetrics {
  return new SluiceMetrics(registry, {
    flows: () => [],
    health: () => [],
    frontends: () => [],
    snat: () => [],
    packetDrops: () => ({}),
    labelsOf: (id) => ({ lb: 'lb', rule: id }),
    lbOfPool: () => 'lb',
    pool: () => undefined,
  });
}
