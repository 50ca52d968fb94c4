/**
 * The API over an in-memory store, through fastify's inject (no sockets): what every applied
 * snapshot and persisted state was, so a test can tell that a refused change changed nothing.
 */
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { validateDocument } from '../../src/config/index.js';
import { EventHub } from '../../src/control/events.js';
import type { ClockView } from '../../src/control/routes/clock.js';
import { buildApi, type ControlRuntime } from '../../src/control/server.js';
import { ResourceStore } from '../../src/control/store.js';
import type { StateContents } from '../../src/control/state.js';
import type { Diagnostic } from '../../src/core/errors.js';
import type { RuntimeSnapshot } from '../../src/core/snapshot.js';
import { idleMetrics } from './metrics.js';

export const TEST_SUBSCRIPTION = '00000000-0000-0000-0000-000000000000';
export const API_VERSION = '?api-version=2024-05-01';

/** The path of a resource in resource group `test`. */
export function resourceUrl(type: string, name: string): string {
  return `/subscriptions/${TEST_SUBSCRIPTION}/resourceGroups/test/providers/Microsoft.Network/${type}/${name}`;
}

/**
 * What the API shows of a load balancer that has no data plane: no flow, nothing served, nothing
 * probed; its clock is the system clock, or with `clock: 'manual'` one that moves only when told
 * (and then ends nothing, having no flow).
 */
export function noPlaneRuntime(hub: EventHub, options: { clock?: 'system' | 'manual' } = {}): ControlRuntime {
  let now = 0;
  const mode = options.clock ?? 'system';
  const clock = (): ClockView => ({ mode, now, timeScale: 1, time: new Date().toISOString() });
  return {
    flows: () => [],
    labelsOf: (id) => ({ lb: '', rule: id }),
    subscribe: (l) => hub.subscribe(l),
    listening: () => [],
    timeScale: 1,
    clock,
    advance: async (ms) => {
      if (mode !== 'manual') throw new Error('the system clock moves by itself');
      now += ms;
      return { ...clock(), advancedMs: ms, ended: [] };
    },
    expireFlow: () => Promise.resolve(undefined),
    health: () => [],
    markProbe: (ref) => ({ ok: false, problem: 'not-found', message: `no load balancer '${ref.lb}'` }),
  };
}

export interface ApiHarness {
  readonly api: FastifyInstance;
  readonly store: ResourceStore;
  readonly applied: RuntimeSnapshot[];
  readonly persisted: StateContents[];
  readonly rejected: (readonly Diagnostic[])[];
  readonly hub: EventHub;
  /** Set `next`: the next apply fails as a listener whose port is taken would. */
  readonly failApply: { next: boolean };
}

/** `token`: the API requires that bearer token. */
export async function apiHarness(options: { token?: string } = {}): Promise<ApiHarness> {
  const applied: RuntimeSnapshot[] = [];
  const persisted: StateContents[] = [];
  const rejected: (readonly Diagnostic[])[] = [];
  const failApply = { next: false };
  const hub = new EventHub();
  const store = new ResourceStore({
    compile: (doc) => validateDocument(doc, { outsideReferences: 'error' }),
    apply: async (s) => {
      if (failApply.next) {
        failApply.next = false;
        throw new Error('cannot listen on Tcp 127.0.7.1:8080: address already in use');
      }
      applied.push(s);
    },
    persist: async (s) => {
      persisted.push(s);
    },
    rejected: (errors) => {
      rejected.push(errors);
    },
  });
  const registry = new Registry();
  idleMetrics(registry);
  const api = await buildApi({
    store,
    registry,
    ...(options.token !== undefined ? { token: options.token } : {}),
    runtime: noPlaneRuntime(hub),
  });
  return { api, store, applied, persisted, rejected, hub, failApply };
}
