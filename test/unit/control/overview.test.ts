import { test } from 'node:test';
import assert from 'node:assert/strict';
import { overviewOf, staticLive } from '../../../src/control/overview.js';
import type { TombstoneInfo } from '../../../src/core/engine.js';
import type { FlowInfo } from '../../../src/core/events.js';
import { compileLb } from '../../helpers/arm.js';

/** What GET /sluice/v1/overview makes of a runtime: rules as explain says, members, tombstones. */

const snapshot = compileLb({
  frontend: '127.0.85.50',
  backends: ['127.0.85.51', '127.0.85.52'],
  probes: [{ name: 'probe', port: 80 }],
  rules: [
    {
      name: 'reset',
      frontendPort: 80,
      backendPort: 80,
      enableTcpReset: true,
      idleTimeoutInMinutes: 10,
      probe: 'probe',
    },
    { name: 'dns', protocol: 'Udp', frontendPort: 53, backendPort: 53 },
  ],
});
const lb = snapshot.loadBalancers[0]!;
const [m1, m2] = lb.pools[0]!.members;

function flow(id: number, ruleId: string, memberId: string): FlowInfo {
  const e = { address: '127.0.85.100', port: 1000 + id };
  return {
    id,
    protocol: 'Tcp',
    state: 'ESTABLISHED',
    client: e,
    frontend: e,
    backend: e,
    memberId,
    ruleId,
    ruleName: '',
    ruleRemoved: false,
    createdAt: 0,
    lastSeenAt: 0,
    ageMs: 0,
    idleMs: 0,
    msLeft: 1,
    timeoutMs: 1,
    bytesToBackend: 0,
    bytesToClient: 0,
    packetsToBackend: 0,
    packetsToClient: 0,
  };
}

test('overview: rules with their timeout and action, members with probes, flows and drains, live tombstones only', () => {
  const tomb = (id: number, msLeft: number): TombstoneInfo => ({
    ...flow(id, lb.loadBalancingRules[0]!.id, m1!.id),
    state: 'TOMBSTONE',
    lastSeenAt: 5000,
    msLeft,
    timeoutMs: 900_000,
    lateReset: true,
  });
  const base = staticLive(
    () => snapshot,
    () => 4,
  );
  const o = overviewOf(
    {
      ...base,
      health: () => [
        {
          probeName: 'probe',
          poolId: lb.pools[0]!.id,
          memberId: m1!.id,
          memberName: m1!.name,
          address: m1!.address,
          adminState: 'None',
          state: 'up',
          source: 'probe',
          probeState: 'up',
          since: 10,
          reason: 'probe succeeded',
          consecutiveSuccesses: 1,
          consecutiveFailures: 0,
        },
        {
          probeName: 'probe',
          poolId: lb.pools[0]!.id,
          memberId: m2!.id,
          memberName: m2!.name,
          address: m2!.address,
          adminState: 'None',
          state: 'down',
          source: 'probe',
          probeState: 'down',
          since: 20,
          reason: 'connection refused',
          consecutiveSuccesses: 0,
          consecutiveFailures: 1,
        },
      ],
      draining: () => [
        {
          lb: lb.name,
          pool: 'pool',
          memberId: 'gone',
          name: 'member3',
          address: '127.0.85.53',
          endsAt: 70_000,
        },
      ],
      tombstones: () => [tomb(7, 1000), tomb(8, 0)],
      tombstoneCount: () => 2,
      clock: () => ({ mode: 'manual', now: 40_000 }),
    },
    [
      flow(1, lb.loadBalancingRules[0]!.id, m1!.id),
      flow(2, lb.loadBalancingRules[0]!.id, m2!.id),
      flow(3, lb.loadBalancingRules[0]!.id, 'gone'),
    ],
    () => ({ lb: lb.name, rule: 'reset' }),
    1,
  );
  assert.deepEqual(o.clock, { mode: 'manual', now: 40_000, timeScale: 1 });
  assert.equal(o.generation, 4);
  assert.equal(o.flows.active, 3);
  const [reset, dns] = o.loadBalancers[0]!.rules;
  assert.deepEqual(
    [reset!.name, reset!.idleTimeoutMinutes, reset!.timeoutMs, reset!.decidedBy, reset!.onIdle, reset!.flows],
    ['reset', 10, 600_000, 'rule', 'reset', 3],
  );
  assert.match(reset!.why, /10 minutes, set by the rule/);
  assert.deepEqual([dns!.name, dns!.onIdle, dns!.timeoutMs], ['dns', 'none', 240_000]);
  const members = o.loadBalancers[0]!.pools[0]!.members;
  assert.deepEqual(
    members.map((m) => [m.name, m.state, m.probes.map((p) => p.state).join(), m.flows, m.draining?.msLeft]),
    [
      ['member1', 'up', 'up', 1, undefined],
      ['member2', 'down', 'down', 1, undefined],
      ['member3', 'down', '', 1, 30_000],
    ],
  );
  assert.deepEqual(
    o.tombstones.shown.map((t) => [t.id, t.lateReset, t.msLeft, t.expiredAt]),
    [[7, true, 1000, 5000]],
    'a tombstone past its lifetime is not shown',
  );
});
