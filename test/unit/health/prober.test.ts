import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/core/clock.js';
import { SluiceError } from '../../../src/core/errors.js';
import { Prober, PROBE_TIMEOUT_CAP_MS } from '../../../src/health/prober.js';
import { ProbeRegistry } from '../../../src/health/probe-registry.js';
import type { HealthTransition, ProbeOutcome, ProbeRunner, ProbeTarget } from '../../../src/health/types.js';
import { flush, member, pool, probe, rule, snapshot } from './fixtures.js';

type Behaviour = 'ok' | 'fail' | 'fast' | 'hang' | 'throw';

/** Backends whose probe answers the test decides, by address; every call is recorded. */
class FakeBackends {
  readonly behaviour = new Map<string, Behaviour>();
  readonly calls: { target: ProbeTarget; signal: AbortSignal; at: number }[] = [];
  constructor(private readonly clock: ManualClock) {}

  readonly runner: ProbeRunner = (target, signal) => {
    this.calls.push({ target, signal, at: this.clock.now() });
    const b = this.behaviour.get(target.address) ?? 'ok';
    switch (b) {
      case 'ok':
        return Promise.resolve<ProbeOutcome>({ ok: true, latencyMs: 1.5 });
      case 'fail':
        return Promise.resolve<ProbeOutcome>({ ok: false, fastDown: false, reason: 'connection refused' });
      case 'fast':
        return Promise.resolve<ProbeOutcome>({ ok: false, fastDown: true, reason: 'HTTP 503', latencyMs: 2 });
      case 'throw':
        throw new Error('runner blew up');
      case 'hang':
        return new Promise<ProbeOutcome>((resolve) =>
          signal.addEventListener('abort', () => resolve({ ok: false, fastDown: false, reason: 'aborted' })),
        );
    }
  };

  callsTo(address: string): number {
    return this.calls.filter((c) => c.target.address === address).length;
  }
}

function setup(): {
  clock: ManualClock;
  backends: FakeBackends;
  prober: Prober;
  events: HealthTransition[];
  /** Moves time forward in steps, letting outcomes arrive between steps as real I/O would. */
  advance: (ms: number, stepMs?: number) => Promise<void>;
} {
  const clock = new ManualClock();
  const backends = new FakeBackends(clock);
  const registry = new ProbeRegistry()
    .register('Tcp', backends.runner)
    .register('Http', backends.runner)
    .register('Https', backends.runner);
  const events: HealthTransition[] = [];
  const prober = new Prober({ clock, registry, sink: (e) => events.push(e) });
  const advance = async (ms: number, stepMs = 1_000): Promise<void> => {
    await flush();
    for (let done = 0; done < ms; done += stepMs) {
      clock.advance(Math.min(stepMs, ms - done));
      await flush();
    }
  };
  return { clock, backends, prober, events, advance };
}

const A = '10.0.0.1';
const B = '10.0.0.2';

test('the first attempt runs at once and its success puts the member in rotation', async () => {
  const { prober, backends, events } = setup();
  const m = member('pool', 'a', A);
  const r = rule('web', pool('pool', [m]), probe('p', { threshold: 3 }));
  prober.update(snapshot([r]));
  assert.equal(backends.callsTo(A), 1);
  assert.equal(prober.health(r, m).state, 'unknown', 'no verdict before the answer');
  assert.deepEqual(prober.ruleHealth(r).healthy, []);
  await flush();
  const h = prober.health(r, m);
  assert.equal(h.state, 'up');
  assert.equal(h.probeState, 'up');
  assert.equal(h.lastLatencyMs, 1.5);
  assert.deepEqual(prober.ruleHealth(r).healthy, [m]);
  assert.equal(events.length, 1);
  assert.equal(events[0]?.from, 'unknown');
  assert.equal(events[0]?.to, 'up');
  assert.equal(events[0]?.probeName, 'p');
  assert.equal(events[0]?.memberName, 'a');
  assert.equal(events[0]?.latencyMs, 1.5);
  prober.stop();
});

test('probes every intervalMs of the clock, targeting member address and probe port and path', async () => {
  const { prober, backends, advance } = setup();
  const m = member('pool', 'a', A);
  const r = rule(
    'web',
    pool('pool', [m]),
    probe('p', { protocol: 'Http', port: 8080, requestPath: 'health', intervalMs: 5_000 }),
  );
  prober.update(snapshot([r]));
  await advance(20_000);
  assert.deepEqual(
    backends.calls.map((c) => c.at),
    [0, 5_000, 10_000, 15_000, 20_000],
  );
  assert.deepEqual(backends.calls[0]?.target, {
    protocol: 'Http',
    address: A,
    port: 8080,
    requestPath: '/health',
  });
  prober.stop();
});

test('an up member goes down after exactly threshold consecutive failures', async () => {
  const { prober, backends, events, advance } = setup();
  const m = member('pool', 'a', A);
  const r = rule('web', pool('pool', [m]), probe('p', { threshold: 3, intervalMs: 5_000 }));
  prober.update(snapshot([r]));
  await flush();
  backends.behaviour.set(A, 'fail');
  await advance(10_000); // failures at 5 s and 10 s
  assert.equal(prober.health(r, m).state, 'up');
  assert.equal(prober.health(r, m).consecutiveFailures, 2);
  await advance(5_000); // third failure at 15 s
  const h = prober.health(r, m);
  assert.equal(h.state, 'down');
  assert.equal(h.since, 15_000);
  assert.equal(h.reason, 'connection refused');
  const down = events.at(-1);
  assert.equal(down?.from, 'up');
  assert.equal(down?.to, 'down');
  assert.equal(down?.at, 15_000);
  assert.equal(down?.reason, 'connection refused');
  prober.stop();
});

test('a success between failures restarts the count', async () => {
  const { prober, backends, advance } = setup();
  const m = member('pool', 'a', A);
  const r = rule('web', pool('pool', [m]), probe('p', { threshold: 2 }));
  prober.update(snapshot([r]));
  await flush();
  backends.behaviour.set(A, 'fail');
  await advance(5_000);
  backends.behaviour.set(A, 'ok');
  await advance(5_000);
  backends.behaviour.set(A, 'fail');
  await advance(5_000);
  assert.equal(prober.health(r, m).state, 'up');
  await advance(5_000);
  assert.equal(prober.health(r, m).state, 'down');
  prober.stop();
});

test('a down member comes back after threshold consecutive successes', async () => {
  const { prober, backends, events, advance } = setup();
  const m = member('pool', 'a', A);
  const r = rule('web', pool('pool', [m]), probe('p', { threshold: 3 }));
  backends.behaviour.set(A, 'fail');
  prober.update(snapshot([r]));
  await flush();
  assert.equal(prober.health(r, m).state, 'down', 'a first failure confirms the member out');
  backends.behaviour.set(A, 'ok');
  await advance(10_000);
  assert.equal(prober.health(r, m).state, 'down');
  await advance(5_000);
  assert.equal(prober.health(r, m).state, 'up');
  assert.deepEqual(
    events.map((e) => [e.from, e.to, e.at]),
    [
      ['unknown', 'down', 0],
      ['down', 'up', 15_000],
    ],
  );
  prober.stop();
});

test('a fast-down failure (HTTP status other than 200) takes the member out at once', async () => {
  const { prober, backends, advance } = setup();
  const m = member('pool', 'a', A);
  const r = rule('web', pool('pool', [m]), probe('p', { protocol: 'Http', requestPath: '/', threshold: 5 }));
  prober.update(snapshot([r]));
  await flush();
  backends.behaviour.set(A, 'fast');
  await advance(5_000);
  const h = prober.health(r, m);
  assert.equal(h.state, 'down');
  assert.equal(h.reason, 'HTTP 503');
  prober.stop();
});

test('an unanswered attempt fails after the interval when the interval is under 30 s', async () => {
  const { prober, backends, advance } = setup();
  const m = member('pool', 'a', A);
  const r = rule('web', pool('pool', [m]), probe('p', { intervalMs: 5_000, threshold: 2 }));
  backends.behaviour.set(A, 'hang');
  prober.update(snapshot([r]));
  await advance(4_999, 4_999);
  assert.equal(prober.health(r, m).state, 'unknown');
  assert.equal(backends.calls[0]?.signal.aborted, false);
  await advance(1, 1);
  assert.equal(prober.health(r, m).state, 'down');
  assert.equal(prober.health(r, m).reason, 'no answer within 5 s');
  assert.equal(backends.calls[0]?.signal.aborted, true, 'the timed-out attempt is told to let go');
  assert.equal(backends.calls.length, 2, 'the next attempt started on time');
  prober.stop();
});

test('an unanswered attempt fails after 30 s when the interval is longer', async () => {
  const { prober, backends, advance } = setup();
  const m = member('pool', 'a', A);
  const r = rule('web', pool('pool', [m]), probe('p', { intervalMs: 120_000 }));
  backends.behaviour.set(A, 'hang');
  prober.update(snapshot([r]));
  await advance(PROBE_TIMEOUT_CAP_MS - 1, 1_000);
  assert.equal(prober.health(r, m).state, 'unknown');
  await advance(1, 1);
  assert.equal(prober.health(r, m).state, 'down');
  assert.equal(prober.health(r, m).reason, 'no answer within 30 s');
  assert.equal(backends.calls.length, 1, 'the next attempt waits for the interval, not the timeout');
  prober.stop();
});

test('timeouts count toward the threshold like other failures', async () => {
  const { prober, backends, advance } = setup();
  const m = member('pool', 'a', A);
  const r = rule('web', pool('pool', [m]), probe('p', { intervalMs: 5_000, threshold: 2 }));
  prober.update(snapshot([r]));
  await flush();
  backends.behaviour.set(A, 'hang');
  await advance(10_000); // attempt at 5 s times out at 10 s
  assert.equal(prober.health(r, m).state, 'up');
  await advance(5_000); // attempt at 10 s times out at 15 s
  assert.equal(prober.health(r, m).state, 'down');
  prober.stop();
});

test('a runner that throws counts as a failure instead of stopping the probe', async () => {
  const { prober, backends, advance } = setup();
  const m = member('pool', 'a', A);
  const r = rule('web', pool('pool', [m]), probe('p', { threshold: 1 }));
  backends.behaviour.set(A, 'throw');
  prober.update(snapshot([r]));
  await flush();
  assert.equal(prober.health(r, m).state, 'down');
  assert.equal(prober.health(r, m).reason, 'runner blew up');
  backends.behaviour.set(A, 'ok');
  await advance(5_000);
  assert.equal(prober.health(r, m).state, 'up');
  prober.stop();
});

test('adminState Down: not probed, out of rotation, not counted as probed down', async () => {
  const { prober, backends, advance } = setup();
  const up = member('pool', 'a', A);
  const off = member('pool', 'b', B, 'Down');
  const r = rule('web', pool('pool', [up, off]), probe('p'));
  prober.update(snapshot([r]));
  await advance(20_000);
  assert.equal(backends.callsTo(B), 0);
  const h = prober.health(r, off);
  assert.equal(h.state, 'down');
  assert.equal(h.source, 'adminDown');
  assert.equal(h.probeState, 'notProbed');
  const rh = prober.ruleHealth(r);
  assert.deepEqual(rh.healthy, [up]);
  assert.deepEqual(rh.probedDown, []);
  prober.stop();
});

test('adminState Up: in rotation whatever the probe says, still probed and reported', async () => {
  const { prober, backends, events, advance } = setup();
  const m = member('pool', 'a', A, 'Up');
  const r = rule('web', pool('pool', [m]), probe('p', { threshold: 1 }));
  backends.behaviour.set(A, 'fail');
  prober.update(snapshot([r]));
  await advance(10_000);
  assert.equal(backends.callsTo(A), 3);
  const h = prober.health(r, m);
  assert.equal(h.state, 'up');
  assert.equal(h.source, 'adminUp');
  assert.equal(h.probeState, 'down');
  assert.deepEqual(prober.ruleHealth(r).healthy, [m]);
  assert.equal(events.length, 1);
  assert.deepEqual([events[0]?.from, events[0]?.to, events[0]?.probeState], ['up', 'up', 'down']);
  prober.stop();
});

test('members probed down are listed for noHealthyBackendsBehavior AllProbedUp', async () => {
  const { prober, backends } = setup();
  const a = member('pool', 'a', A);
  const b = member('pool', 'b', B);
  const r = rule('web', pool('pool', [a, b]), probe('p', { noHealthyBackendsBehavior: 'AllProbedUp' }));
  backends.behaviour.set(A, 'fail');
  backends.behaviour.set(B, 'fail');
  prober.update(snapshot([r]));
  await flush();
  const rh = prober.ruleHealth(r);
  assert.deepEqual(rh.healthy, []);
  assert.deepEqual(rh.probedDown, [a, b]);
  prober.stop();
});

test('a rule without a probe admits every member not administratively down', () => {
  const { prober, backends } = setup();
  const a = member('pool', 'a', A);
  const b = member('pool', 'b', B, 'Down');
  const r = rule('web', pool('pool', [a, b]), undefined);
  prober.update(snapshot([r]));
  assert.equal(backends.calls.length, 0);
  const rh = prober.ruleHealth(r);
  assert.deepEqual(rh.healthy, [a]);
  assert.equal(rh.members[0]?.source, 'noProbe');
  assert.equal(rh.members[1]?.source, 'adminDown');
  prober.stop();
});

test('two rules sharing a probe and a pool probe each member once per interval', async () => {
  const { prober, backends, advance } = setup();
  const p = pool('pool', [member('pool', 'a', A)]);
  const pr = probe('p');
  prober.update(snapshot([rule('web', p, pr, 80), rule('web2', p, pr, 443)]));
  await advance(10_000);
  assert.equal(backends.callsTo(A), 3);
  assert.equal(prober.list().length, 1);
  prober.stop();
});

test('update() keeps the verdict and the cadence of unchanged pairs', async () => {
  const { prober, backends, events, advance } = setup();
  const pr = probe('p', { threshold: 2 });
  prober.update(snapshot([rule('web', pool('pool', [member('pool', 'a', A)]), pr)]));
  await flush();
  backends.behaviour.set(A, 'fail');
  await advance(7_000); // one failure at 5 s
  const before = events.length;
  // A new snapshot built from scratch, equal in value: what a PUT of the same document gives.
  const m2 = member('pool', 'a', A);
  const r2 = rule('web', pool('pool', [m2]), probe('p', { threshold: 2 }));
  prober.update(snapshot([r2]));
  assert.equal(backends.calls.length, 2, 'no extra attempt on update');
  assert.equal(prober.health(r2, m2).state, 'up');
  assert.equal(prober.health(r2, m2).consecutiveFailures, 1);
  await advance(3_000); // second failure at 10 s, on the old cadence
  assert.equal(backends.calls.at(-1)?.at, 10_000);
  assert.equal(prober.health(r2, m2).state, 'down');
  assert.equal(events.length, before + 1);
  prober.stop();
});

test('update() keeps the verdict when only interval or threshold change, and uses the new interval', async () => {
  const { prober, backends, events, advance } = setup();
  prober.update(
    snapshot([rule('web', pool('pool', [member('pool', 'a', A)]), probe('p', { intervalMs: 5_000 }))]),
  );
  await advance(2_000);
  const m = member('pool', 'a', A);
  const r = rule('web', pool('pool', [m]), probe('p', { intervalMs: 15_000, threshold: 4 }));
  prober.update(snapshot([r]));
  assert.equal(prober.health(r, m).state, 'up');
  await advance(20_000);
  assert.deepEqual(
    backends.calls.map((c) => c.at),
    [0, 17_000],
  );
  assert.equal(events.length, 1, 'only the initial up');
  prober.stop();
});

test('update() starts over for a changed target and stops removed pairs', async () => {
  const { prober, backends, clock, advance } = setup();
  const p1 = pool('pool', [member('pool', 'a', A), member('pool', 'b', B)]);
  prober.update(snapshot([rule('web', p1, probe('p', { port: 80 }))]));
  await flush();
  const a = member('pool', 'a', A);
  const r = rule('web', pool('pool', [a]), probe('p', { port: 8080 }));
  prober.update(snapshot([r]));
  assert.equal(prober.health(r, a).state, 'unknown', 'a verdict on port 80 says nothing about 8080');
  assert.equal(backends.calls.at(-1)?.target.port, 8080, 'the new target is probed at once');
  await flush();
  assert.equal(prober.health(r, a).state, 'up');
  const callsToB = backends.callsTo(B);
  await advance(20_000);
  assert.equal(backends.callsTo(B), callsToB, 'a removed member is no longer probed');
  assert.equal(prober.list().length, 1);
  prober.update(snapshot([]));
  assert.equal(clock.pending(), 0, 'no timer left once nothing is probed');
  prober.stop();
});

test('update() applies adminState changes: Down stops probing, back to None probes again', async () => {
  const { prober, backends, events, advance } = setup();
  const pr = probe('p', { threshold: 2 });
  const m = member('pool', 'a', A);
  const r = rule('web', pool('pool', [m]), pr);
  prober.update(snapshot([r]));
  await flush();

  const mDown = member('pool', 'a', A, 'Down');
  const rDown = rule('web', pool('pool', [mDown]), pr);
  prober.update(snapshot([rDown]));
  assert.equal(prober.health(rDown, mDown).state, 'down');
  assert.deepEqual(
    [events.at(-1)?.from, events.at(-1)?.to, events.at(-1)?.reason],
    ['up', 'down', 'adminState Down'],
  );
  const calls = backends.calls.length;
  await advance(20_000);
  assert.equal(backends.calls.length, calls, 'not probed while adminState is Down');

  prober.update(snapshot([r]));
  assert.equal(backends.calls.length, calls + 1, 'probing resumes at once');
  assert.equal(prober.health(r, m).state, 'unknown', 'no stale verdict from before the Down');
  await flush();
  assert.equal(prober.health(r, m).state, 'up');
  prober.stop();
});

test('update() from adminState Up to None exposes the probe verdict kept meanwhile', async () => {
  const { prober, backends, events } = setup();
  const pr = probe('p', { threshold: 2 });
  const mUp = member('pool', 'a', A, 'Up');
  backends.behaviour.set(A, 'fail');
  prober.update(snapshot([rule('web', pool('pool', [mUp]), pr)]));
  await flush();
  const m = member('pool', 'a', A);
  const r = rule('web', pool('pool', [m]), pr);
  prober.update(snapshot([r]));
  assert.equal(prober.health(r, m).state, 'down');
  assert.deepEqual(
    [events.at(-1)?.from, events.at(-1)?.to, events.at(-1)?.reason],
    ['up', 'down', 'adminState None'],
  );
  prober.stop();
});

test('update() with an unregistered probe type throws and changes nothing', async () => {
  const clock = new ManualClock();
  const calls: string[] = [];
  const registry = new ProbeRegistry().register('Tcp', (t) => {
    calls.push(t.address);
    return Promise.resolve({ ok: true, latencyMs: 1 });
  });
  const prober = new Prober({ clock, registry });
  const r1 = rule('web', pool('pool', [member('pool', 'a', A)]), probe('p'));
  prober.update(snapshot([r1]));
  const r2 = rule(
    'api',
    pool('pool2', [member('pool2', 'b', B)]),
    probe('h', { protocol: 'Https', requestPath: '/' }),
  );
  assert.throws(
    () => prober.update(snapshot([r2])),
    (err: unknown) =>
      err instanceof SluiceError && err.code === 'SLUICE_HEALTH_PROBE_TYPE' && /Https/.test(err.message),
  );
  assert.deepEqual(calls, [A]);
  assert.equal(prober.list().length, 1, 'the running pair is still there');
  prober.stop();
});

test('stop() cancels every timer and in-flight attempt, and late answers change nothing', async () => {
  const { prober, backends, clock, events, advance } = setup();
  backends.behaviour.set(B, 'hang');
  const r = rule('web', pool('pool', [member('pool', 'a', A), member('pool', 'b', B)]), probe('p'));
  prober.update(snapshot([r]));
  prober.stop();
  assert.equal(clock.pending(), 0);
  const hanging = backends.calls.find((c) => c.target.address === B);
  assert.equal(hanging?.signal.aborted, true);
  await advance(60_000);
  assert.equal(backends.calls.length, 2, 'nothing probed after stop');
  assert.equal(events.length, 0, 'the answer that arrived after stop was dropped');
  assert.deepEqual(prober.list(), []);
  prober.stop(); // idempotent
  assert.throws(() => prober.update(snapshot([r])));
});

test('generation moves with effective state changes only', async () => {
  const { prober, backends, advance } = setup();
  const r = rule('web', pool('pool', [member('pool', 'a', A)]), probe('p', { threshold: 2 }));
  prober.update(snapshot([r]));
  const g0 = prober.generation;
  await flush();
  const g1 = prober.generation;
  assert.ok(g1 > g0, 'unknown -> up moves it');
  backends.behaviour.set(A, 'fail');
  await advance(5_000);
  assert.equal(prober.generation, g1, 'one failure below threshold does not');
  await advance(5_000);
  assert.ok(prober.generation > g1, 'up -> down moves it');
  prober.stop();
});
