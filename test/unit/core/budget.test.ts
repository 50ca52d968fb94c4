import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DESCRIPTOR_RESERVE,
  KeyedShare,
  Share,
  UdpFlowBudget,
  descriptorsNeeded,
  planBudget,
  type BudgetContext,
  type BudgetPlan,
  type ShareRequest,
} from '../../../src/core/budget.js';

/** The shares of the open-files limit: how they are derived, validated, taken and given back. */

const proxy = (openFiles: number | undefined, api = true): BudgetContext => ({
  openFiles,
  api,
  flowsHoldDescriptors: true,
});

function plan(context: BudgetContext, request: ShareRequest = {}): BudgetPlan {
  const r = planBudget(context, request);
  assert.ok(r.ok, r.ok ? '' : r.problem);
  return r.plan;
}

function problem(context: BudgetContext, request: ShareRequest): string {
  const r = planBudget(context, request);
  assert.ok(!r.ok, `expected a problem, got ${JSON.stringify(r)}`);
  return r.problem;
}

test('defaults at the usual soft limit of 1,024 and at the hard limit of 20,000', () => {
  assert.deepEqual(plan(proxy(1024)), {
    openFiles: 1024,
    reserve: 64,
    tcpFlows: 406,
    udpFlows: 116,
    udpFlowsPerClient: 14,
    apiConnections: 32,
    eventStreams: 8,
  });
  assert.deepEqual(plan(proxy(20_000)), {
    openFiles: 20_000,
    reserve: 64,
    tcpFlows: 8610,
    udpFlows: 2460,
    udpFlowsPerClient: 307,
    apiConnections: 256,
    eventStreams: 64,
  });
});

test('derived shares always fit in the limit and leave the reserve, from tiny limits to large ones', () => {
  for (const limit of [80, 100, 128, 256, 500, 1024, 4096, 20_000, 65_536, 1_048_576]) {
    for (const api of [true, false]) {
      const p = plan(proxy(limit, api));
      assert.ok(descriptorsNeeded(p) <= limit, `${limit}: ${JSON.stringify(p)}`);
      assert.ok(p.tcpFlows! >= 1, `${limit}: some TCP flows`);
      assert.ok(p.udpFlowsPerClient! <= p.udpFlows!, `${limit}: a client cannot take the whole UDP share`);
      if (api) {
        assert.ok(p.apiConnections >= 4 && p.apiConnections <= 256, `${limit}: API connections`);
        assert.ok(p.eventStreams >= 1 && p.eventStreams < p.apiConnections, `${limit}: event streams`);
      } else {
        assert.equal(p.apiConnections, 0);
        assert.equal(p.eventStreams, 0);
      }
      // What the shares leave unused is less than one more TCP flow (plus rounding of UDP).
      assert.ok(limit - descriptorsNeeded(p) < 3, `${limit}: descriptors left over`);
    }
  }
});

test('a share given by its flag is taken as it is and the others are derived from what is left', () => {
  const noUdp = plan(proxy(1024, false), { udpFlows: 0 });
  assert.equal(noUdp.tcpFlows, (1024 - DESCRIPTOR_RESERVE) / 2, 'no UDP share: everything to TCP');
  assert.equal(noUdp.udpFlowsPerClient, 0);
  const tcp = plan(proxy(1024), { tcpFlows: 300 });
  assert.equal(tcp.tcpFlows, 300);
  assert.equal(tcp.udpFlows, 116, 'UDP keeps its default while it fits');
  const big = plan(proxy(1024), { tcpFlows: 450 });
  assert.equal(big.udpFlows, 1024 - 64 - 32 - 900, 'UDP gets only what the TCP flows leave');
  const udp = plan(proxy(1024), { udpFlows: 500 });
  assert.equal(udp.tcpFlows, Math.floor((1024 - 64 - 32 - 500) / 2));
  assert.equal(udp.udpFlowsPerClient, 62);
  const api = plan(proxy(1024), { apiConnections: 100 });
  assert.equal(api.eventStreams, 25);
  assert.equal(api.tcpFlows, Math.floor((1024 - 64 - 100 - 107) / 2));
  const streams = plan(proxy(1024), { eventStreams: 31 });
  assert.equal(streams.eventStreams, 31);
  assert.equal(plan(proxy(1024), { apiConnections: 1 }).eventStreams, 0, 'one connection: no stream');
});

test('shares that do not fit say so, naming the flags to lower', () => {
  const labels = {
    tcpFlows: '--max-tcp-flows',
    udpFlows: '--max-udp-flows',
    udpFlowsPerClient: '--max-udp-flows-per-client',
    apiConnections: '--max-api-connections',
    eventStreams: '--max-event-streams',
  };
  const r = planBudget(proxy(1024), { tcpFlows: 500, udpFlows: 100 }, labels);
  assert.ok(!r.ok);
  assert.match(r.problem, /need 1196 descriptors but the open-files limit is 1024/);
  assert.match(r.problem, /TCP flows 2 x 500 \(--max-tcp-flows\)/);
  assert.match(r.problem, /lower --max-tcp-flows, --max-udp-flows$/);
  assert.match(problem(proxy(1024), { apiConnections: 2000 }), /no room for TCP flows/);
  assert.match(problem(proxy(68), {}), /open-files limit 68 leaves no room for TCP flows/);
});

test('bad values: not whole numbers, streams that leave no API connection, a client over the UDP share', () => {
  assert.match(problem(proxy(1024), { tcpFlows: -1 }), /tcpFlows expects a whole number >= 0, got -1/);
  assert.match(problem(proxy(1024), { udpFlows: 1.5 }), /whole number/);
  assert.match(problem(proxy(1024), { udpFlows: Number.NaN }), /whole number/);
  assert.match(problem(proxy(1024), { eventStreams: 32 }), /leaves no API connection for other requests/);
  assert.match(problem(proxy(1024), { apiConnections: 8, eventStreams: 8 }), /at most .* = 7/);
  assert.match(problem(proxy(1024), { apiConnections: 0 }), /at least 1 while the API is served/);
  assert.match(
    problem(proxy(1024), { udpFlows: 10, udpFlowsPerClient: 11 }),
    /more than the whole UDP share/,
  );
  assert.match(problem(proxy(1024), { udpFlowsPerClient: 0 }), /would refuse every UDP flow/);
  const packet = { openFiles: 1024, api: true, flowsHoldDescriptors: false };
  assert.match(problem(packet, { udpFlows: 10 }), /only the proxy data plane/);
});

test('the packet plane and an unknown limit: flow shares unbounded where nothing bounds them', () => {
  const packet = plan({ openFiles: 1024, api: true, flowsHoldDescriptors: false });
  assert.equal(packet.tcpFlows, undefined);
  assert.equal(packet.udpFlows, undefined);
  assert.equal(packet.apiConnections, 32);
  const unknown = plan(proxy(undefined));
  assert.equal(unknown.tcpFlows, undefined, 'no known limit: TCP is not bounded');
  assert.equal(unknown.udpFlows, 4096, 'but a UDP flood still is');
  assert.equal(unknown.udpFlowsPerClient, 512);
  assert.equal(unknown.apiConnections, 256);
  assert.equal(unknown.eventStreams, 64);
  assert.equal(plan(proxy(undefined), { tcpFlows: 10 }).tcpFlows, 10);
});

test('Share: takes up to its capacity, refuses and counts beyond, takes again once given back', () => {
  const s = new Share(2);
  assert.equal(s.take(), true);
  assert.equal(s.take(), true);
  assert.equal(s.full, true);
  assert.equal(s.take(), false);
  assert.equal(s.take(), false);
  assert.equal(s.refused, 2);
  assert.equal(s.used, 2);
  s.give();
  assert.equal(s.take(), true);
  s.give();
  s.give();
  s.give();
  assert.equal(s.used, 0, 'giving back more than was taken never goes below 0');
  const none = new Share(0);
  assert.equal(none.take(), false);
  const unbounded = new Share(undefined);
  for (let i = 0; i < 10_000; i++) assert.equal(unbounded.take(), true);
  assert.equal(unbounded.full, false);
});

test('KeyedShare: each key up to its own ceiling; a key given back to 0 is forgotten', () => {
  const s = new KeyedShare(2);
  assert.equal(s.take('a'), true);
  assert.equal(s.take('a'), true);
  assert.equal(s.take('a'), false);
  assert.equal(s.take('b'), true, 'another key is not affected');
  assert.equal(s.refused, 1);
  assert.equal(s.usedBy('a'), 2);
  s.give('a');
  s.give('a');
  assert.equal(s.usedBy('a'), 0);
  assert.equal(s.holders, 1, 'only b holds one');
  s.give('zzz');
  assert.equal(s.holders, 1);
});

test('UdpFlowBudget: a client over its part is refused as such; the whole share full refuses the rest', () => {
  const b = new UdpFlowBudget({ udpFlows: 5, udpFlowsPerClient: 2 });
  assert.equal(b.take('10.0.0.1'), undefined);
  assert.equal(b.take('10.0.0.1'), undefined);
  assert.equal(b.take('10.0.0.1'), 'udp-per-client');
  assert.equal(b.take('10.0.0.2'), undefined, 'another client still gets through');
  assert.equal(b.take('10.0.0.2'), undefined);
  assert.equal(b.take('10.0.0.3'), undefined);
  assert.equal(b.flows.used, 5);
  assert.equal(b.take('10.0.0.4'), 'udp-flows');
  assert.equal(b.perClient.usedBy('10.0.0.4'), 0, 'a refused flow holds nothing of its client part');
  assert.equal(b.take('10.0.0.1'), 'udp-per-client', 'a client at its ceiling is told so first');
  b.give('10.0.0.2');
  assert.equal(b.take('10.0.0.4'), undefined, 'room again once a flow ends');
  assert.deepEqual([b.flows.refused, b.perClient.refused], [1, 2]);
});
