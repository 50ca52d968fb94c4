import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventHub } from '../../../src/control/events.js';
import { advanceMsOf } from '../../../src/control/routes/clock.js';
import { Registry } from 'prom-client';
import { ApiError } from '../../../src/control/arm.js';
import type { MemberRef } from '../../../src/control/routes/health.js';
import { buildApi } from '../../../src/control/server.js';
import { ResourceStore } from '../../../src/control/store.js';
import { apiHarness, noPlaneRuntime } from '../../helpers/api.js';

/** The body of POST /sluice/v1/clock/advance, and the clock routes over fastify's inject. */

function refusal(body: unknown): ApiError {
  try {
    advanceMsOf(body);
  } catch (err) {
    assert.ok(err instanceof ApiError);
    return err;
  }
  assert.fail(`${JSON.stringify(body)} was taken`);
}

test('advance takes {"ms": N} or {"by": DURATION}', () => {
  assert.equal(advanceMsOf({ ms: 0 }), 0);
  assert.equal(advanceMsOf({ ms: 240_000 }), 240_000);
  assert.equal(advanceMsOf({ by: '4m' }), 240_000);
  assert.equal(advanceMsOf({ by: '1h30m' }), 5_400_000);
  assert.equal(advanceMsOf({ by: '90s' }), 90_000);
});

test('a bad advance body is a 400 SLUICE_CLOCK_INVALID_DURATION naming the property and what it takes', () => {
  const cases: [unknown, string | undefined, RegExp][] = [
    [{ ms: -1 }, '/ms', /ms must be a whole number of milliseconds from 0 to 2147483647, got -1/],
    [{ ms: 1.5 }, '/ms', /ms must be a whole number.*got 1\.5/],
    [{ ms: '240000' }, '/ms', /ms must be a whole number.*got "240000"/],
    [{ ms: 2 ** 31 }, '/ms', /from 0 to 2147483647/],
    [{ ms: null }, '/ms', /ms must be a whole number/],
    [{ by: 4 }, '/by', /by must be a string such as 250ms, 90s, 4m/],
    [
      { by: '4 minutes' },
      '/by',
      /by: '4 minutes' is not a duration; give 250ms, 90s, 4m, 1\.5s or 1h30m \(units h, m, s, ms/,
    ],
    [{ by: '240000' }, '/by', /by: '240000' has no unit/],
    [{ ms: 1, by: '1s' }, '/by', /either ms or by, not both/],
    [{}, undefined, /give ms \(whole milliseconds.*or by \(a duration/],
    [{ seconds: 4 }, '/seconds', /unknown property 'seconds': give ms .* or by/],
  ];
  for (const [body, target, message] of cases) {
    const e = refusal(body);
    assert.equal(e.code, 'SLUICE_CLOCK_INVALID_DURATION', JSON.stringify(body));
    assert.equal(e.httpStatus, 400);
    assert.equal(e.target, target, JSON.stringify(body));
    assert.match(e.message, message, JSON.stringify(body));
  }
  for (const body of [undefined, null, [], 'x', 4]) {
    const e = refusal(body);
    assert.equal(e.code, 'SLUICE_API_BAD_REQUEST', JSON.stringify(body));
  }
});

test('GET /sluice/v1/clock reads the clock; on the system clock an advance is a 409 SLUICE_CLOCK_NOT_MANUAL', async () => {
  const h = await apiHarness();
  try {
    const clock = await h.api.inject({ method: 'GET', url: '/sluice/v1/clock' });
    assert.equal(clock.statusCode, 200);
    const view = clock.json() as Record<string, unknown>;
    assert.equal(view['mode'], 'system');
    assert.equal(view['timeScale'], 1);
    assert.match(String(view['time']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const advance = await h.api.inject({
      method: 'POST',
      url: '/sluice/v1/clock/advance',
      payload: { by: '4m' },
    });
    assert.equal(advance.statusCode, 409);
    assert.equal(advance.json().error.code, 'SLUICE_CLOCK_NOT_MANUAL');
    assert.match(advance.json().error.message, /--clock manual/);
    // A bad body is refused as such on either clock.
    const bad = await h.api.inject({
      method: 'POST',
      url: '/sluice/v1/clock/advance',
      payload: { by: 'soon' },
    });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'SLUICE_CLOCK_INVALID_DURATION');
  } finally {
    await h.api.close();
  }
});

test('expire: a flow id that is no live flow is a 404 SLUICE_API_FLOW_NOT_FOUND, one that is no id a 400, GET a 405', async () => {
  const h = await apiHarness();
  try {
    const gone = await h.api.inject({ method: 'POST', url: '/sluice/v1/flows/42/expire' });
    assert.equal(gone.statusCode, 404);
    assert.equal(gone.json().error.code, 'SLUICE_API_FLOW_NOT_FOUND');
    assert.match(gone.json().error.message, /id 42/);
    for (const id of ['abc', '-1', '1.5', '9999999999999999']) {
      const bad = await h.api.inject({ method: 'POST', url: `/sluice/v1/flows/${id}/expire` });
      assert.equal(bad.statusCode, 400, id);
      assert.equal(bad.json().error.code, 'SLUICE_API_BAD_REQUEST', id);
    }
    const get = await h.api.inject({ method: 'GET', url: '/sluice/v1/flows/42/expire' });
    assert.equal(get.statusCode, 405);
    assert.equal(get.headers['allow'], 'POST');
  } finally {
    await h.api.close();
  }
});

test('health: a bad verdict is a 400 naming probe and its values; an unknown member a 404', async () => {
  const h = await apiHarness();
  try {
    const list = await h.api.inject({ method: 'GET', url: '/sluice/v1/health' });
    assert.deepEqual(list.json(), { members: [] });
    for (const payload of [{ probe: 'sideways' }, {}, { probe: 'down', extra: 1 }, { state: 'down' }]) {
      const bad = await h.api.inject({ method: 'PUT', url: '/sluice/v1/health/lb/pool/m1', payload });
      assert.equal(bad.statusCode, 400, JSON.stringify(payload));
      assert.equal(bad.json().error.code, 'SLUICE_API_BAD_REQUEST');
      assert.match(bad.json().error.message, /probe|unknown property/);
    }
    const sideways = await h.api.inject({
      method: 'PUT',
      url: '/sluice/v1/health/lb/pool/m1',
      payload: { probe: 'sideways' },
    });
    assert.match(sideways.json().error.message, /probe must be "up" or "down", got "sideways"/);
    const unknown = await h.api.inject({
      method: 'PUT',
      url: '/sluice/v1/health/lb/pool/m1',
      payload: { probe: 'down' },
    });
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json().error.code, 'SLUICE_API_MEMBER_NOT_FOUND');
  } finally {
    await h.api.close();
  }
});

test('events carry the wall-clock time beside whole load-balancer milliseconds', () => {
  const hub = new EventHub(() => Date.UTC(2024, 4, 1, 12, 0, 0, 250));
  const got: unknown[] = [];
  hub.subscribe((e) => got.push(e));
  hub.publish({
    type: 'config.applied',
    at: 240412.08305999998,
    generation: 3,
    loadBalancers: [],
    listeners: [],
  });
  assert.deepEqual(got, [
    {
      type: 'config.applied',
      at: 240412,
      generation: 3,
      loadBalancers: [],
      listeners: [],
      time: '2024-05-01T12:00:00.250Z',
    },
  ]);
});

test('health: a member no rule probes is a 409 SLUICE_HEALTH_NOT_PROBED; a member is named by its name or address', async () => {
  const hub = new EventHub();
  const asked: unknown[] = [];
  const runtime = {
    ...noPlaneRuntime(hub),
    markProbe: (ref: MemberRef, verdict: 'up' | 'down' | undefined) => {
      asked.push({ ...ref, verdict });
      return {
        ok: false as const,
        problem: 'not-probed' as const,
        message: `member '${ref.member}' is probed by no rule's probe`,
      };
    },
  };
  const api = await buildApi({
    store: new ResourceStore({
      compile: () => ({ valid: true, errors: [], warnings: [] }),
      apply: async () => {},
    }),
    registry: new Registry(),
    runtime,
  });
  try {
    const r = await api.inject({
      method: 'PUT',
      url: '/sluice/v1/health/web-lb/pool/nic-1%2Fipconfig1',
      payload: { probe: 'down' },
    });
    assert.equal(r.statusCode, 409);
    assert.equal(r.json().error.code, 'SLUICE_HEALTH_NOT_PROBED');
    const cleared = await api.inject({ method: 'DELETE', url: '/sluice/v1/health/web-lb/pool/10.0.0.4' });
    assert.equal(cleared.statusCode, 409);
    assert.deepEqual(asked, [
      { lb: 'web-lb', pool: 'pool', member: 'nic-1/ipconfig1', verdict: 'down' },
      { lb: 'web-lb', pool: 'pool', member: '10.0.0.4', verdict: undefined },
    ]);
  } finally {
    await api.close();
  }
});
