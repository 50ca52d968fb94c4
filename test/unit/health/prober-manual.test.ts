import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/core/clock.js';
import { Prober } from '../../../src/health/prober.js';
import { ProbeRegistry } from '../../../src/health/probe-registry.js';
import type { HealthTransition, ProbeOutcome, ProbeRunner } from '../../../src/health/types.js';
import { flush, member, pool, probe, rule, snapshot } from './fixtures.js';

/**
 * The prober when a test drives time: verdicts set by hand stand in for the probe's until
 * cleared, and with a separate clock for answers, a clock moved far in one go does not turn
 * the attempts it skipped over into failures.
 */

const A = '10.0.0.1';
const B = '10.0.0.2';

/** A runner whose answers the test releases by hand; every attempt is recorded. */
class HeldAnswers {
  readonly started: { address: string; at: number; answer: (o: ProbeOutcome) => void }[] = [];
  constructor(private readonly clock: ManualClock) {}
  readonly runner: ProbeRunner = (target, signal) =>
    new Promise<ProbeOutcome>((resolve) => {
      this.started.push({ address: target.address, at: this.clock.now(), answer: resolve });
      signal.addEventListener('abort', () => resolve({ ok: false, fastDown: false, reason: 'aborted' }));
    });
}

function registryOf(runner: ProbeRunner): ProbeRegistry {
  return new ProbeRegistry().register('Tcp', runner);
}

const ok: ProbeRunner = () => Promise.resolve({ ok: true, latencyMs: 1 });
const failing: ProbeRunner = () =>
  Promise.resolve({ ok: false, fastDown: false, reason: 'connection refused' });

test('a verdict set by hand stands in for every probe of the member until cleared; probing goes on', async () => {
  const clock = new ManualClock();
  const events: HealthTransition[] = [];
  let calls = 0;
  const runner: ProbeRunner = (t, s) => {
    calls++;
    return ok(t, s);
  };
  const prober = new Prober({ clock, registry: registryOf(runner), sink: (e) => events.push(e) });
  const a = member('pool', 'a', A);
  const b = member('pool', 'b', B);
  const p = pool('pool', [a, b]);
  const web = rule('web', p, probe('p1', { intervalMs: 5_000 }), 80);
  const api = rule('api', p, probe('p2', { intervalMs: 5_000 }), 81);
  prober.update(snapshot([web, api]));
  await flush();
  assert.equal(prober.health(web, a).state, 'up');
  events.length = 0;

  assert.equal(prober.override(a.id, 'down'), true);
  for (const r of [web, api]) {
    const h = prober.health(r, a);
    assert.equal(h.state, 'down');
    assert.equal(h.probeState, 'down');
    assert.equal(h.override, 'down');
    assert.equal(h.reason, 'probe marked down by hand');
  }
  assert.equal(prober.health(web, b).state, 'up', 'the other member is untouched');
  assert.deepEqual(prober.ruleHealth(web).healthy, [b]);
  assert.deepEqual(
    events.map((e) => [e.probeName, e.memberName, e.from, e.to, e.probeState]),
    [
      ['p1', 'a', 'up', 'down', 'down'],
      ['p2', 'a', 'up', 'down', 'down'],
    ],
  );

  // The probes go on and succeed; the member stays down.
  const before = calls;
  clock.advance(10_000);
  await flush();
  assert.ok(calls > before, 'probing went on');
  assert.equal(prober.health(web, a).state, 'down');
  assert.equal(events.length, 2, 'no transition from the probes meanwhile');

  assert.equal(prober.override(a.id, undefined), true);
  assert.equal(prober.health(web, a).state, 'up', "back to the probe's own verdict at once");
  assert.equal(prober.health(web, a).override, undefined);
  assert.deepEqual(
    events.slice(2).map((e) => [e.memberName, e.to]),
    [
      ['a', 'up'],
      ['a', 'up'],
    ],
  );
  prober.stop();
});

test('a verdict set by hand: up over a failing probe, adminState still wins, unknown members refused', async () => {
  const clock = new ManualClock();
  const prober = new Prober({ clock, registry: registryOf(failing) });
  const a = member('pool', 'a', A);
  const down = member('pool', 'd', B, 'Down');
  const r = rule('web', pool('pool', [a, down]), probe('p', { intervalMs: 5_000, threshold: 1 }));
  prober.update(snapshot([r]));
  await flush();
  assert.equal(prober.health(r, a).state, 'down');
  prober.override(a.id, 'up');
  assert.equal(prober.health(r, a).state, 'up');
  clock.advance(5_000);
  await flush();
  assert.equal(prober.health(r, a).state, 'up', 'a failing answer changes nothing while marked up');
  prober.override(down.id, 'up');
  assert.equal(prober.health(r, down).state, 'down', 'adminState Down wins over a verdict set by hand');
  assert.equal(prober.override('no-such-member', 'down'), false);
  const unprobed = member('other', 'u', A);
  prober.update(snapshot([r, rule('plain', pool('other', [unprobed]), undefined, 82)]));
  assert.equal(prober.override(unprobed.id, 'down'), false, 'a member no probe probes has no verdict to set');
  prober.stop();
});

test('a verdict set by hand ends when its member leaves the configuration', async () => {
  const clock = new ManualClock();
  const prober = new Prober({ clock, registry: registryOf(ok) });
  const a = member('pool', 'a', A);
  const r = rule('web', pool('pool', [a]), probe('p'));
  prober.update(snapshot([r]));
  await flush();
  prober.override(a.id, 'down');
  prober.update(snapshot([rule('web', pool('pool', []), probe('p'))]));
  prober.update(snapshot([r]));
  await flush();
  assert.equal(prober.health(r, a).state, 'up');
  assert.equal(prober.health(r, a).override, undefined);
  prober.stop();
});

test('answers waited for on their own clock: a clock moved far in one go starts one attempt and counts no failure', async () => {
  const clock = new ManualClock();
  const answers = new ManualClock();
  const held = new HeldAnswers(clock);
  const events: HealthTransition[] = [];
  const prober = new Prober({
    clock,
    answerClock: answers,
    registry: registryOf(held.runner),
    sink: (e) => events.push(e),
  });
  const a = member('pool', 'a', A);
  const r = rule('web', pool('pool', [a]), probe('p', { intervalMs: 5_000, threshold: 2 }));
  prober.update(snapshot([r]));
  held.started[0]!.answer({ ok: true, latencyMs: 1 });
  await flush();
  assert.equal(prober.health(r, a).state, 'up');

  // Four minutes in one go: 48 intervals. One attempt starts at the first; it has not answered
  // yet (its answer comes in real time), so no other starts and none is judged.
  clock.advance(240_000);
  await flush();
  assert.deepEqual(
    held.started.map((s) => s.at),
    [0, 5_000],
  );
  assert.equal(prober.health(r, a).state, 'up');
  assert.equal(prober.health(r, a).consecutiveFailures, 0);
  held.started[1]!.answer({ ok: false, fastDown: false, reason: 'connection refused' });
  await flush();
  assert.equal(prober.health(r, a).consecutiveFailures, 1);
  // The next interval starts the next attempt; its answer does not come, and it times out on
  // the answers' clock (min(interval, 30 s)), not on the load balancer's.
  clock.advance(5_000);
  assert.equal(held.started.length, 3);
  answers.advance(4_999);
  await flush();
  assert.equal(prober.health(r, a).state, 'up');
  answers.advance(1);
  await flush();
  assert.equal(prober.health(r, a).state, 'down');
  assert.equal(prober.health(r, a).reason, 'no answer within 5 s');
  assert.equal(events.at(-1)?.to, 'down');
  prober.stop();
  assert.equal(answers.pending(), 0);
});
