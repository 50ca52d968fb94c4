import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateDocument } from '../../../src/config/index.js';
import { ApiError, type ResourceRef } from '../../../src/control/arm.js';
import type { StateContents, StoredResource } from '../../../src/control/state.js';
import { ResourceStore, StaleState, resourcesOfDocument } from '../../../src/control/store.js';
import { SluiceError } from '../../../src/core/errors.js';
import type { RuntimeSnapshot } from '../../../src/core/snapshot.js';
import { lbDocument } from '../../helpers/arm.js';

/**
 * The store over a shared state store: a write made over a state another instance replaced is
 * made again over the new one (preconditions included), never written over it; a store that
 * does not answer refuses the change before anything is applied; generations stored elsewhere
 * are adopted, and one that cannot be served leaves the served one in place.
 */

const LB_REF: ResourceRef = {
  subscription: '00000000-0000-0000-0000-000000000000',
  resourceGroup: 'test',
  segment: 'loadBalancers',
  name: 'test-lb',
};
const PIP_REF: ResourceRef = { ...LB_REF, segment: 'publicIPAddresses', name: 'pip' };

function lb(port: number, idle = 4): Record<string, unknown> {
  return lbDocument({
    frontend: '127.0.87.10',
    backends: ['127.0.87.2'],
    rules: [{ name: 'web', frontendPort: port, backendPort: 80, idleTimeoutInMinutes: idle }],
  });
}

function stateOf(generation: number, doc: Record<string, unknown>, etag?: string): StateContents {
  const resources = resourcesOfDocument(doc).map((r): StoredResource => (etag ? { ...r, etag } : r));
  return { generation, resources };
}

interface Harness {
  readonly store: ResourceStore;
  readonly applied: { generation: number; ports: number[] }[];
  readonly written: { state: StateContents; basis: number }[];
}

function harness(
  persist: (state: StateContents, basis: number, call: number) => Promise<number>,
  options: { writable?: () => SluiceError | undefined; failApply?: (g: number) => boolean } = {},
): Harness {
  const applied: Harness['applied'] = [];
  const written: Harness['written'] = [];
  let calls = 0;
  const store = new ResourceStore({
    compile: (doc) => validateDocument(doc, { outsideReferences: 'error' }),
    apply: async (snapshot: RuntimeSnapshot, generation) => {
      if (options.failApply?.(generation) === true)
        throw new SluiceError('SLUICE_PLANE_LISTEN', 'port in use');
      applied.push({
        generation,
        ports: snapshot.loadBalancers.flatMap((l) => l.loadBalancingRules.map((r) => r.frontendPort)),
      });
    },
    persist: async (state, basis) => {
      written.push({ state, basis });
      return persist(state, basis, ++calls);
    },
    ...(options.writable ? { writable: options.writable } : {}),
  });
  assert.ok(store.load(stateOf(3, lb(1000), 'W/"mine"'), 10).valid);
  return { store, applied, written };
}

const PIP = { properties: { publicIPAllocationMethod: 'Static', ipAddress: '198.18.87.1' } };

test('a PUT whose If-Match etag another instance replaced meanwhile gets 412, and the store holds the other state', async () => {
  const other = stateOf(4, lb(2000), 'W/"theirs"');
  const h = harness(async (_s, _b, call) => {
    if (call === 1) throw new StaleState(other, 11);
    throw new Error('no second write expected');
  });
  await assert.rejects(
    h.store.put(LB_REF, lb(3000), { ifMatch: 'W/"mine"' }),
    (e: unknown) =>
      e instanceof ApiError && e.httpStatus === 412 && e.code === 'SLUICE_API_PRECONDITION_FAILED',
  );
  assert.equal(h.written.length, 1);
  assert.equal(h.written[0]!.basis, 10, 'written over the revision it was made over');
  assert.equal(h.store.get(LB_REF)?.etag, 'W/"theirs"');
  assert.equal(h.store.revision, 11);
  assert.equal(h.store.generation, 4);
  // Applied (3000), taken back (1000), then the other instance's (2000).
  assert.deepEqual(
    h.applied.map((a) => a.ports[0]),
    [3000, 1000, 2000],
  );
});

test('an unconditional PUT over a replaced state is made again over it: both changes are kept', async () => {
  const other = stateOf(4, lb(2000), 'W/"theirs"');
  const h = harness(async (_s, _b, call) => {
    if (call === 1) throw new StaleState(other, 11);
    return 12;
  });
  const { created } = await h.store.put(PIP_REF, PIP);
  assert.equal(created, true);
  assert.equal(h.written.length, 2);
  assert.equal(h.written[1]!.basis, 11);
  const second = h.written[1]!.state;
  assert.equal(second.generation, 5, 'the generation after the one that won');
  assert.deepEqual(
    second.resources.map((r) => r.etag).filter((e) => e === 'W/"theirs"'),
    ['W/"theirs"'],
  );
  assert.equal(second.resources.length, 2);
  assert.equal(h.store.revision, 12);
  assert.equal(h.store.generation, 5);
  assert.equal(h.store.storedGeneration, 5);
});

test('a write that keeps losing gives up with 409 SLUICE_STATE_CONTENDED, nothing changed', async () => {
  let rev = 10;
  const h = harness(async () => {
    rev++;
    throw new StaleState(stateOf(rev, lb(1000 + rev), `W/"${rev}"`), rev);
  });
  await assert.rejects(
    h.store.put(PIP_REF, PIP),
    (e: unknown) => e instanceof ApiError && e.httpStatus === 409 && e.code === 'SLUICE_STATE_CONTENDED',
  );
  assert.equal(h.written.length, 9);
  assert.equal(h.store.get(PIP_REF), undefined);
});

test('a store that is known to be down refuses a change with 503 before anything is applied', async () => {
  const h = harness(async () => 99, {
    writable: () => new SluiceError('SLUICE_STATE_STORE_UNAVAILABLE', 'etcd is unreachable'),
  });
  await assert.rejects(
    h.store.put(LB_REF, lb(3000)),
    (e: unknown) =>
      e instanceof ApiError && e.httpStatus === 503 && e.code === 'SLUICE_STATE_STORE_UNAVAILABLE',
  );
  assert.deepEqual(h.applied, []);
  assert.deepEqual(h.written, []);
});

test('a write etcd does not answer is 503 and the running state goes back', async () => {
  const h = harness(async () => {
    throw new SluiceError('SLUICE_STATE_STORE_UNAVAILABLE', 'no answer');
  });
  await assert.rejects(h.store.delete(LB_REF), (e: unknown) => e instanceof ApiError && e.httpStatus === 503);
  assert.deepEqual(
    h.applied.map((a) => a.ports.length),
    [0, 1],
    'applied without the load balancer, then back',
  );
  assert.equal(h.store.get(LB_REF)?.etag, 'W/"mine"');
});

test('generations stored elsewhere: known ones are skipped, valid ones served, others stored but not served', async () => {
  const h = harness(async () => 0, { failApply: (g) => g === 6 });
  assert.deepEqual(await h.store.adopt(stateOf(3, lb(1000)), 10), { result: 'known' });
  assert.deepEqual(await h.store.adopt(stateOf(4, lb(2000), 'W/"four"'), 12), { result: 'applied' });
  assert.equal(h.store.generation, 4);
  assert.equal(h.store.get(LB_REF)?.etag, 'W/"four"');

  const invalid = await h.store.adopt(stateOf(5, lb(2000, 300), 'W/"five"'), 13);
  assert.equal(invalid.result, 'invalid');
  assert.equal(h.store.generation, 4, 'still serving 4');
  assert.equal(h.store.storedGeneration, 5);
  assert.equal(h.store.get(LB_REF)?.etag, 'W/"five"', 'the API shows what is stored');

  const failed = await h.store.adopt(stateOf(6, lb(2500), 'W/"six"'), 14);
  assert.equal(failed.result, 'failed');
  assert.equal(h.store.generation, 4);
  assert.equal(h.store.storedGeneration, 6);

  assert.deepEqual(await h.store.adopt(stateOf(7, lb(3000), 'W/"seven"'), 15), { result: 'applied' });
  assert.equal(h.store.generation, 7);
  assert.deepEqual(
    h.applied.map((a) => a.generation),
    [4, 7],
  );
  // A deleted key: nothing new is served, and the next write creates the key again.
  assert.deepEqual(await h.store.adopt(undefined, 16), { result: 'known' });
  assert.equal(h.store.revision, 0);
  assert.equal(h.store.generation, 7);
});
