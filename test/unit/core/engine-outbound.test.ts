import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/core/clock.js';
import { FlowEngine, type PacketVerdict } from '../../../src/core/engine.js';
import type { FlowEvent } from '../../../src/core/events.js';
import { FlowKey, PROTO_TCP, PROTO_UDP } from '../../../src/core/flow-key.js';
import type {
  NatGateway,
  OutboundPath,
  OutboundRule,
  Protocol,
  RuntimeSnapshot,
} from '../../../src/core/snapshot.js';
import { TCP_ACK, TCP_RST, TCP_SYN, type TcpSegment } from '../../../src/core/tcp-state.js';
import { frontend, idle, lbRule, pool } from './snapshot-helpers.js';
import { TcpConversation, advance, copyVerdict, type VerdictCopy } from './tcp-driver.js';

const MIN = 60_000;
const SNAT = '198.51.100.7';
const GW_IP = '198.51.100.77';
const REMOTE = '203.0.113.5';

/** A member's connection to a remote peer, replies coming back to its SNAT address and port. */
class Outbound extends TcpConversation {
  snatAddress = '';
  snatPort = 0;

  override fromClient(seg: Partial<TcpSegment> & { flags: number }): VerdictCopy {
    const full: TcpSegment = { seq: this.clientNext, ack: this.clientRcv, len: 0, window: 502, ...seg };
    const v = this.engine.tcp(this.origKey(), full);
    if (v.created) {
      this.flowId = v.flowId;
      this.snatAddress = v.snatAddress;
      this.snatPort = v.snatPort;
    }
    return copyVerdict(v);
  }

  override replyKey(): FlowKey {
    return new FlowKey().set(PROTO_TCP, this.frontend, this.frontendPort, this.snatAddress, this.snatPort);
  }
}

interface Spec {
  ports?: number;
  reset?: boolean;
  idleMinutes?: number;
  protocols?: Protocol[];
  members?: string[];
  /** Members (by index) whose subnet has a NAT gateway with this timeout. */
  gateway?: { minutes: number; members: number[] };
}

function outboundSnapshot(spec: Spec = {}): RuntimeSnapshot {
  const p = pool('be', spec.members ?? ['10.1.0.1', '10.1.0.2']);
  const protocols = spec.protocols ?? ['Tcp'];
  const rule: OutboundRule = {
    kind: 'outboundRule',
    id: '/outbound/out',
    name: 'out',
    frontends: [frontend(SNAT, 'snat')],
    pool: p,
    protocols,
    armProtocol: protocols.length === 2 ? 'All' : protocols[0]!,
    allocatedOutboundPorts: spec.ports ?? 8,
    allocatedOutboundPortsDefaulted: false,
    idleTimeout: { ...idle(spec.idleMinutes ?? 4), decidedBy: 'outboundRule' },
    enableTcpReset: spec.reset ?? false,
  };
  const gw: NatGateway | undefined =
    spec.gateway === undefined
      ? undefined
      : {
          id: '/natgw/gw',
          name: 'gw',
          idleTimeout: { ...idle(spec.gateway.minutes), decidedBy: 'natGateway' },
          subnetIds: ['/subnet/a'],
          publicIpAddresses: [GW_IP],
        };
  const paths: OutboundPath[] = p.members.map((member, i) =>
    gw !== undefined && spec.gateway!.members.includes(i)
      ? {
          member,
          via: { kind: 'natGateway', natGateway: gw },
          idleTimeout: gw.idleTimeout,
          enableTcpReset: false,
        }
      : {
          member,
          via: { kind: 'outboundRule', rule },
          idleTimeout: rule.idleTimeout,
          enableTcpReset: rule.enableTcpReset,
        },
  );
  return {
    loadBalancers: [
      {
        id: '/lb/test',
        name: 'test',
        sku: 'Standard',
        frontends: [],
        pools: [p],
        probes: [],
        loadBalancingRules: [lbRule({ pool: p })],
        inboundNatRules: [],
        outboundRules: [rule],
        outboundPaths: paths,
      },
    ],
    natGateways: gw === undefined ? [] : [gw],
  };
}

function setup(spec: Spec = {}, options: { snatHoldMs?: number; random?: () => number } = {}) {
  const clock = new ManualClock(1_000_000);
  const events: FlowEvent[] = [];
  const engine = new FlowEngine({
    clock,
    tickMs: 1,
    snapshot: outboundSnapshot(spec),
    events: (e) => events.push(e),
    snatHoldMs: options.snatHoldMs ?? 30_000,
    random: options.random ?? (() => 0.5),
  });
  return { clock, engine, events };
}

function connect(engine: FlowEngine, member = '10.1.0.1', port = 40000, remotePort = 443): Outbound {
  const c = new Outbound(engine, member, port, REMOTE, remotePort);
  c.handshake();
  return c;
}

test('outbound: a member SYN to a remote peer gets a SNAT port from its range; replies to that port find the flow', () => {
  const { engine } = setup();
  const c = new Outbound(engine, '10.1.0.1', 40000, REMOTE, 443);
  const syn = c.fromClient({ flags: TCP_SYN, wscale: 7 });
  assert.equal(syn.action, 'forward');
  assert.equal(syn.created, true);
  assert.equal(syn.direction, 'toBackend');
  assert.equal(syn.member, '10.1.0.1');
  assert.equal(syn.backendPort, 40000, "backendPort carries the member's own source port");
  assert.equal(c.snatAddress, SNAT);
  // Member 1's 8 ports are 1024-1031; random 0.5 starts the search half-way in.
  assert.equal(c.snatPort, 1028);
  c.clientNext++;
  c.backendRcv = c.clientNext;
  const synAck = c.fromBackend({ flags: TCP_SYN | TCP_ACK, wscale: 7 });
  assert.equal(synAck.action, 'forward');
  assert.equal(synAck.direction, 'toClient');
  assert.equal(synAck.flowId, syn.flowId);
  const info = engine.flow(syn.flowId)!;
  assert.equal(info.outbound, 'outboundRule');
  assert.deepEqual(info.client, { address: '10.1.0.1', port: 40000 });
  assert.deepEqual(info.frontend, { address: SNAT, port: 1028 });
  assert.deepEqual(info.backend, { address: REMOTE, port: 443 });
  assert.equal(info.ruleName, 'out');
  assert.equal(info.timeoutMs, 4 * MIN);
  // A packet to the SNAT address on a port nobody holds is no flow's.
  const stray = engine.tcp(new FlowKey().set(PROTO_TCP, REMOTE, 443, SNAT, 1029), {
    flags: TCP_ACK,
    seq: 1,
    ack: 1,
    len: 0,
    window: 1,
    wscale: -1,
  });
  assert.equal(stray.action, 'drop');
});

test('outbound: members of a pool get disjoint ranges on the frontend address', () => {
  const { engine } = setup({ ports: 16, members: ['10.1.0.1', '10.1.0.2', '10.1.0.3'] });
  const seen = new Map<string, number[]>();
  for (const m of ['10.1.0.1', '10.1.0.2', '10.1.0.3']) {
    for (let i = 0; i < 16; i++) {
      const c = new Outbound(engine, m, 41000 + i, REMOTE, 443);
      assert.equal(c.fromClient({ flags: TCP_SYN }).created, true);
      seen.set(m, [...(seen.get(m) ?? []), c.snatPort]);
    }
  }
  const ranges = [...seen.values()].map((ports) => ports.sort((a, b) => a - b));
  assert.deepEqual(
    ranges[0],
    Array.from({ length: 16 }, (_, i) => 1024 + i),
  );
  assert.deepEqual(
    ranges[1],
    Array.from({ length: 16 }, (_, i) => 1040 + i),
  );
  assert.deepEqual(
    ranges[2],
    Array.from({ length: 16 }, (_, i) => 1056 + i),
  );
  const usage = engine.snatUsage();
  assert.deepEqual(usage, [
    { lb: 'test', via: 'outboundRule', name: 'out', address: SNAT, allocated: 48, used: 48 },
  ]);
});

test('outbound: the idle reset of an outbound rule resets the member and the remote with the sequence numbers each accepts', () => {
  const { engine, clock, events } = setup({ reset: true });
  const c = connect(engine);
  c.clientSends(100);
  c.backendSends(300);
  clock.advance(4 * MIN - 1);
  assert.deepEqual(advance(engine), []);
  clock.advance(1);
  const actions: { outbound: string | null; snat: string; toMember: number; toRemote: number }[] = [];
  engine.advance((a) =>
    actions.push({
      outbound: a.outbound?.via.kind ?? null,
      snat: `${a.snatAddress}:${a.snatPort}`,
      toMember: a.toClient.seq,
      toRemote: a.toBackend.seq,
    }),
  );
  assert.deepEqual(actions, [
    {
      outbound: 'outboundRule',
      snat: `${SNAT}:${c.snatPort}`,
      // The member's RCV.NXT is the remote's next sequence number, and the other way round.
      toMember: c.backendNext,
      toRemote: c.clientNext,
    },
  ]);
  assert.equal(engine.stats().expiredReset, 1);
  assert.equal(events.filter((e) => e.type === 'expired' && e.action === 'reset').length, 1);
  // B6: a later segment of the remote, to the SNAT port, is answered with a RST.
  const late = c.fromBackend({ flags: TCP_ACK, len: 5 });
  assert.equal(late.action, 'reset');
  assert.equal(late.rstFlags & TCP_RST, TCP_RST);
});

test('outbound: with reset off an idle outbound flow is dropped silently and later packets are discarded', () => {
  const { engine, clock } = setup({ reset: false });
  const c = connect(engine);
  c.clientSends(10);
  clock.advance(4 * MIN);
  const actions = advance(engine);
  assert.equal(actions.length, 1);
  assert.equal(actions[0]!.action, 'drop');
  assert.equal(c.fromBackend({ flags: TCP_ACK, len: 5 }).action, 'drop');
  assert.equal(c.fromClient({ flags: TCP_ACK, len: 5 }).action, 'drop');
  assert.equal(engine.stats().tombstoneDrops, 2);
});

test("B10: a member behind a NAT gateway leaves from the gateway's address with its timeout, dropped silently, later packets answered with a RST", () => {
  const { engine, clock } = setup({ reset: true, idleMinutes: 4, gateway: { minutes: 10, members: [1] } });
  const viaRule = connect(engine, '10.1.0.1');
  const viaGw = connect(engine, '10.1.0.2');
  assert.equal(viaRule.snatAddress, SNAT);
  assert.equal(viaGw.snatAddress, GW_IP);
  assert.equal(engine.flow(viaGw.flowId)!.outbound, 'natGateway');
  assert.equal(engine.flow(viaGw.flowId)!.timeoutMs, 10 * MIN);
  clock.advance(4 * MIN);
  assert.deepEqual(
    advance(engine).map((a) => [a.flowId, a.action]),
    [[viaRule.flowId, 'reset']],
  );
  clock.advance(6 * MIN - 1);
  assert.deepEqual(advance(engine), []);
  clock.advance(1);
  assert.deepEqual(
    advance(engine).map((a) => [a.flowId, a.action]),
    [[viaGw.flowId, 'drop']],
    'a NAT gateway never resets at idle, even on an established flow',
  );
  const late = viaGw.fromBackend({ flags: TCP_ACK, len: 5 });
  assert.equal(late.action, 'reset', 'the sender of a later packet gets a RST');
});

test('outbound: when a member has no free port the new flow is refused and counted; live ports are never shared', () => {
  const { engine, events } = setup({ ports: 8 });
  const ports = new Set<number>();
  for (let i = 0; i < 8; i++) ports.add(connect(engine, '10.1.0.1', 42000 + i).snatPort);
  assert.equal(ports.size, 8);
  const ninth = new Outbound(engine, '10.1.0.1', 42008, REMOTE, 443).fromClient({ flags: TCP_SYN });
  assert.equal(ninth.action, 'drop');
  assert.equal(ninth.reason, 'snat-ports');
  assert.equal(engine.stats().refused['snat-ports'], 1);
  const refused = events.find((e) => e.type === 'refused');
  assert.ok(refused && refused.type === 'refused');
  assert.equal(refused.reason, 'snat-ports');
  assert.equal(refused.ruleId, '/outbound/out');
  // The other member's range is its own.
  assert.equal(connect(engine, '10.1.0.2', 42000).snatAddress, SNAT);
  assert.deepEqual(
    engine.snatUsage().map((u) => [u.allocated, u.used]),
    [[16, 9]],
  );
});

test('outbound: a freed port rests for the hold time before another flow gets it', () => {
  const { engine, clock } = setup({ ports: 8 }, { snatHoldMs: 30_000 });
  const conns = Array.from({ length: 8 }, (_, i) => connect(engine, '10.1.0.1', 43000 + i));
  const gone = conns[3]!;
  gone.clientRst();
  // The RST leaves the flow lingering 10 s, then it ends and its port starts resting.
  clock.advance(10_000);
  advance(engine);
  assert.equal(engine.flow(gone.flowId), undefined);
  const tryOne = (port: number): VerdictCopy =>
    new Outbound(engine, '10.1.0.1', port, REMOTE, 443).fromClient({ flags: TCP_SYN });
  clock.advance(29_999);
  assert.equal(tryOne(43100).reason, 'snat-ports');
  clock.advance(1);
  const c = new Outbound(engine, '10.1.0.1', 43101, REMOTE, 443);
  assert.equal(c.fromClient({ flags: TCP_SYN }).created, true);
  assert.equal(c.snatPort, gone.snatPort);
});

test('outbound: a port held only by the tombstone of an expired flow goes to a new flow once nothing else is free', () => {
  const { engine, clock } = setup({ ports: 8, reset: true }, { snatHoldMs: 1000 });
  const conns = Array.from({ length: 8 }, (_, i) => connect(engine, '10.1.0.1', 44000 + i));
  clock.advance(4 * MIN);
  assert.equal(advance(engine).length, 8);
  assert.equal(engine.tombstoneCount, 8);
  assert.deepEqual(
    engine.snatUsage().map((u) => u.used),
    [0],
  );
  clock.advance(1000);
  const c = new Outbound(engine, '10.1.0.1', 44100, REMOTE, 443);
  assert.equal(c.fromClient({ flags: TCP_SYN }).created, true);
  assert.ok(conns.some((o) => o.snatPort === c.snatPort));
  assert.equal(engine.tombstoneCount, 7);
});

test('outbound: UDP datagrams of a member make an outbound flow with a SNAT port, replies find it', () => {
  const { engine } = setup({ protocols: ['Tcp', 'Udp'] });
  const v: PacketVerdict = engine.udp(new FlowKey().set(PROTO_UDP, '10.1.0.2', 5353, REMOTE, 53), 40);
  assert.equal(v.action, 'forward');
  assert.equal(v.created, true);
  const port = v.snatPort;
  assert.ok(port >= 1032 && port < 1040);
  const reply = engine.udp(new FlowKey().set(PROTO_UDP, REMOTE, 53, SNAT, port), 80);
  assert.equal(reply.action, 'forward');
  assert.equal(reply.direction, 'toClient');
  assert.equal(reply.member?.address, '10.1.0.2');
  assert.equal(reply.backendPort, 5353);
});

test('outbound: a TCP-only outbound rule leaves UDP alone; inbound rules still win on their frontend', () => {
  const { engine } = setup({ protocols: ['Tcp'] });
  assert.equal(engine.udp(new FlowKey().set(PROTO_UDP, '10.1.0.2', 5353, REMOTE, 53), 40).reason, 'no-rule');
  const inbound = new TcpConversation(engine, '192.0.2.10', 40000, '10.0.0.1', 80);
  const syn = inbound.fromClient({ flags: TCP_SYN });
  assert.equal(syn.created, true);
  assert.equal(engine.flow(syn.flowId)!.outbound, undefined);
  // Non-SYN from a member with no flow: nothing is created.
  const midStream = new Outbound(engine, '10.1.0.1', 45000, REMOTE, 443).fromClient({
    flags: TCP_ACK,
    len: 3,
  });
  assert.equal(midStream.reason, 'no-flow');
});

test("B6: on a reset path a member's non-SYN of no flow gets a RST, however late; its backend port's replies do not", () => {
  const { engine, clock } = setup({ reset: true });
  const c = connect(engine);
  c.clientSends(10);
  clock.advance(4 * MIN);
  assert.equal(advance(engine)[0]!.action, 'reset');
  clock.advance(120 * MIN);
  advance(engine);
  assert.equal(engine.tombstoneCount, 0);
  const late = c.fromClient({ flags: TCP_ACK, len: 5 });
  assert.deepEqual([late.action, late.reason, late.rstSeq], ['reset', 'no-flow', c.clientRcv]);
  // From the port its load-balancing rule forwards to, the member is a backend replying to a
  // client: which rule (and whether it resets) the packet does not say, so it is dropped (B3).
  const reply = new Outbound(engine, '10.1.0.1', 8080, '192.0.2.10', 40000).fromClient({
    flags: TCP_ACK,
    len: 5,
  });
  assert.deepEqual([reply.action, reply.reason], ['drop', 'no-flow']);
});

test('B6: on an outbound path without reset a non-SYN of no flow is dropped silently', () => {
  const { engine } = setup({ reset: false });
  const late = new Outbound(engine, '10.1.0.1', 45000, REMOTE, 443).fromClient({ flags: TCP_ACK, len: 3 });
  assert.deepEqual([late.action, late.reason], ['drop', 'no-flow']);
});

test('B6: behind a NAT gateway a non-SYN of no flow gets a RST', () => {
  const { engine } = setup({ reset: false, gateway: { minutes: 10, members: [1] } });
  const late = new Outbound(engine, '10.1.0.2', 45000, REMOTE, 443).fromClient({ flags: TCP_ACK, len: 3 });
  assert.equal(late.action, 'reset');
});

test('outbound: reconfiguration keeps the ports of live flows; flows of a removed path are listed for ending', () => {
  const { engine } = setup({ ports: 8 });
  const c = connect(engine, '10.1.0.1');
  assert.equal(c.snatPort, 1028);
  engine.setSnapshot(outboundSnapshot({ ports: 4 }));
  assert.deepEqual(engine.flowsOfRemovedRules(), [], 'same member, same rule: the path stays');
  // 10.1.0.2 now owns 1028-1031, but the live flow of 10.1.0.1 keeps 1028.
  const ports = new Set<number>();
  for (let i = 0; i < 4; i++) {
    const o = new Outbound(engine, '10.1.0.2', 46000 + i, REMOTE, 443);
    if (o.fromClient({ flags: TCP_SYN }).created) ports.add(o.snatPort);
  }
  assert.deepEqual([...ports].sort(), [1029, 1030, 1031]);
  engine.setSnapshot(outboundSnapshot({ ports: 4, members: ['10.1.0.5', '10.1.0.2'] }));
  assert.deepEqual(engine.flowsOfRemovedRules(), [c.flowId]);
  assert.deepEqual(
    engine.flowsOfMember('/pool/be/m0'),
    [],
    "outbound flows are not a member's inbound flows",
  );
});
