import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ManualClock } from '../../../src/core/clock.js';
import { FlowEngine } from '../../../src/core/engine.js';
import type { InboundRule } from '../../../src/core/snapshot.js';
import { Announcer, decide, type Speaker } from '../../../src/pool/announcer.js';
import { bgpSettingsOf, type BgpSettings } from '../../../src/pool/bgp-settings.js';
import { addressNumber } from '../../../src/pool/bird-config.js';
import type { BirdReply } from '../../../src/pool/bird-control.js';
import type { PoolEvent } from '../../../src/pool/pool-events.js';
import { lbRule, natRule, pool, probe, snapshot } from '../core/snapshot-helpers.js';

const WEB = lbRule({ name: 'web', address: '10.0.0.1', probe: probe('p') });
const API = lbRule({ name: 'api', address: '10.0.0.2', frontendPort: 443 });
const SNAP = snapshot([WEB, API]);

test('decide: a frontend is announced while one of its rules can serve, else withheld with the reason', () => {
  const only = (names: string[]) => (r: InboundRule) => names.includes(r.name);
  let d = decide(SNAP, only(['web', 'api']), undefined, false);
  assert.deepEqual(d.watch, ['10.0.0.1', '10.0.0.2']);
  assert.deepEqual(d.announce, ['10.0.0.1', '10.0.0.2']);
  d = decide(SNAP, only(['api']), undefined, false);
  assert.deepEqual(d.announce, ['10.0.0.2']);
  assert.equal(d.withheld.get('10.0.0.1'), 'no-healthy-backend');
  d = decide(SNAP, only(['web', 'api']), 'the TUN device sluice0 went down', false);
  assert.deepEqual(d.announce, []);
  assert.equal(d.withheld.get('10.0.0.2'), 'data-plane');
  d = decide(SNAP, only(['web', 'api']), undefined, true);
  assert.equal(d.withheld.get('10.0.0.1'), 'stopping');
});

test("engine.canServe: a probed pool with no member up cannot; a NAT rule's member Down cannot", () => {
  const clock = new ManualClock(0);
  const nat = natRule({
    name: 'ssh',
    address: '10.0.0.3',
    pool: pool('vm', ['10.1.0.9'], ['Down']),
    portStart: 50000,
    backendPort: 22,
  });
  const engine = new FlowEngine({
    clock,
    tickMs: 1,
    indexReplies: false,
    snapshot: snapshot([WEB, API], [nat]),
    initialHealth: 'down',
  });
  assert.equal(engine.canServe(WEB), false, 'no probe answered yet');
  assert.equal(engine.canServe(API), true, 'no probe: every member eligible');
  engine.setHealth(WEB.pool.members[1]!.id, true, WEB.probe!.id);
  assert.equal(engine.canServe(WEB), true);
  assert.equal(engine.canServe(nat), false);
});

test('--bgp flags: defaults, and usage errors before anything starts', () => {
  const s = bgpSettingsOf({ bgp: ['198.18.11.1'] }, '.sluice');
  assert.deepEqual(s, {
    peers: [{ address: '198.18.11.1', port: 179 }],
    localAs: 65001,
    peerAs: 65000,
    bfdMs: 0,
    holdSeconds: 3,
    withdrawWaitMs: 1000,
    dir: '.sluice/bgp',
    daemon: 'bird',
    pool: { adopt: true, port: 9182, graceMs: 1000, askMs: 250, settleMs: 0 },
  });
  assert.equal(bgpSettingsOf({}, '.sluice'), undefined);
  assert.match(String(bgpSettingsOf({ poolGrace: '10' }, '.sluice')), /--pool-grace needs --bgp ROUTER/);
  const pool = (o: Record<string, string>) =>
    (bgpSettingsOf({ bgp: ['1.2.3.4'], ...o }, 's') as BgpSettings).pool;
  assert.deepEqual(pool({ poolAdopt: 'off', poolPort: '7000', poolSettle: '60', poolAskWait: '90' }), {
    adopt: false,
    port: 7000,
    graceMs: 1000,
    askMs: 90,
    settleMs: 60_000,
  });
  assert.match(
    String(bgpSettingsOf({ bgp: ['1.2.3.4'], poolAdopt: 'yes' }, 's')),
    /--pool-adopt expects on or off/,
  );
  assert.match(String(bgpSettingsOf({ bgp: ['1.2.3.4'], poolPort: '0' }, 's')), /--pool-port expects/);
  assert.match(String(bgpSettingsOf({ bgp: ['1.2.3.4'], poolSettle: '-1' }, 's')), /--pool-settle expects/);
  assert.match(String(bgpSettingsOf({ bgpAs: '65001' }, '.sluice')), /--bgp-as needs --bgp ROUTER/);
  assert.match(String(bgpSettingsOf({ bgp: ['198.18.11.1:99999'] }, 's')), /--bgp expects/);
  assert.match(String(bgpSettingsOf({ bgp: ['a.b.c.d'] }, 's')), /--bgp expects/);
  assert.match(String(bgpSettingsOf({ bgp: ['1.2.3.4', '1.2.3.4:180'] }, 's')), /twice/);
  assert.match(String(bgpSettingsOf({ bgp: ['1.2.3.4'], bgpAs: '23456' }, 's')), /AS number/);
  assert.match(String(bgpSettingsOf({ bgp: ['1.2.3.4'], bgpHoldTime: '2' }, 's')), /from 3/);
  assert.match(String(bgpSettingsOf({ bgp: ['1.2.3.4'], bgpBfd: '5' }, 's')), /at least 10 ms/);
  assert.equal(
    (bgpSettingsOf({ bgp: ['1.2.3.4:1179'], bgpWithdrawWait: '0.5' }, 's') as { withdrawWaitMs: number })
      .withdrawWaitMs,
    500,
  );
});

/** A BGP daemon that records its configurations and answers as BIRD would. */
class FakeSpeaker implements Speaker {
  configs: string[] = [];
  calls: string[] = [];
  paths: { prefix: string; instance: string }[] = [];
  sessionUp = true;
  async start(config: string): Promise<void> {
    this.calls.push('start');
    this.configs.push(config);
  }
  async configure(config: string): Promise<void> {
    this.calls.push('configure');
    this.configs.push(config);
  }
  async query(command: string): Promise<BirdReply> {
    if (command === 'show protocols')
      return {
        code: 0,
        lines: [
          `router1    BGP        ---        up     2026-12-01 10:00:00.000  ${this.sessionUp ? 'Established' : 'Active'}`,
        ],
      };
    return {
      code: 0,
      lines: this.paths.flatMap((p) => [
        `${p.prefix}/32     unicast [router1 2026-12-01 10:00:00.000] (100) [AS65001i]`,
        `\tBGP.large_community: (65001, 1, ${addressNumber(p.instance)})`,
      ]),
    };
  }
  async stop(): Promise<void> {
    this.calls.push('stop');
  }
  abort(): void {
    this.calls.push('abort');
  }
  get announced(): string[] {
    return [...this.configs.at(-1)!.matchAll(/route (\S+)\/32 via/g)].map((m) => m[1]!);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

test('the announcer follows health and the data plane, reports the pool, and withdraws before it stops', async () => {
  const clock = new ManualClock(1000);
  const engine = new FlowEngine({
    clock,
    tickMs: 1,
    indexReplies: false,
    snapshot: SNAP,
    initialHealth: 'down',
  });
  let failure: string | undefined;
  const fake = new FakeSpeaker();
  const events: PoolEvent[] = [];
  const a = new Announcer({
    settings: { ...(bgpSettingsOf({ bgp: ['198.18.11.1'] }, 's') as BgpSettings), withdrawWaitMs: 0 },
    source: {
      snapshot: () => SNAP,
      canServe: (r) => engine.canServe(r),
      failure: () => failure,
      now: () => clock.now(),
    },
    speaker: () => fake,
    log: pino({ level: 'silent' }),
    tun: 'sluice0',
    sourceTowards: () => '198.18.11.2',
    intervalMs: 5,
  });
  a.subscribe((e) => events.push(e));
  await a.start();
  assert.equal(a.instance, '198.18.11.2');
  assert.deepEqual(fake.announced, ['10.0.0.2'], 'web waits for its probe');
  engine.setHealth(WEB.pool.members[0]!.id, true, WEB.probe!.id);
  fake.paths = [
    { prefix: '10.0.0.1', instance: '198.18.11.2' },
    { prefix: '10.0.0.1', instance: '198.18.12.2' },
  ];
  await sleep(60);
  assert.deepEqual(fake.announced, ['10.0.0.1', '10.0.0.2']);
  assert.ok(events.some((e) => e.type === 'announced' && e.frontends.join() === '10.0.0.1'));
  assert.ok(events.some((e) => e.type === 'session' && e.up));
  assert.deepEqual(a.view().get('10.0.0.1'), ['198.18.11.2', '198.18.12.2']);
  const firstChange = a.lastChange('10.0.0.1');
  assert.equal(typeof firstChange, 'number');
  assert.ok(a.sessionsUp());

  // Another instance goes: the pool event says who left.
  clock.advance(500);
  fake.paths = [{ prefix: '10.0.0.1', instance: '198.18.11.2' }];
  await sleep(40);
  const left = events.find((e) => e.type === 'pool' && e.left.includes('198.18.12.2'));
  assert.ok(left !== undefined && left.type === 'pool' && left.at === 1500);
  assert.equal(a.lastChange('10.0.0.1'), 1500);

  failure = 'the TUN device sluice0 went down (its routes with it): restart Sluice';
  await sleep(40);
  assert.deepEqual(fake.announced, []);
  const w = events.find((e) => e.type === 'withdrawn' && e.reason === 'data-plane');
  assert.ok(w !== undefined && w.type === 'withdrawn' && w.detail?.includes('sluice0'));

  failure = undefined;
  await sleep(40);
  assert.deepEqual(fake.announced, ['10.0.0.1', '10.0.0.2']);
  fake.paths = [];
  await a.stop();
  assert.deepEqual(fake.announced, [], 'everything withdrawn');
  assert.deepEqual(fake.calls.slice(-2), ['configure', 'stop'], 'withdrawn, then the daemon stopped');
  assert.ok(events.some((e) => e.type === 'withdrawn' && e.reason === 'stopping'));
});
