import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SluiceApp } from '../../../src/app.js';
import { ManualClock } from '../../../src/core/clock.js';
import { TCP_ACK, TCP_RST, TCP_SYN } from '../../../src/core/tcp-state.js';
import { PacketPlane } from '../../../src/dataplane/packet/packet-plane.js';
import type { DataPlaneModule } from '../../../src/dataplane/plane.js';
import { compileLb } from '../../helpers/arm.js';
import { FakeTun, tcpPacket } from './packets.js';

/**
 * The packet plane under a manual clock, through the app as `sluice run --clock manual
 * --dataplane packet` wires it (a fake TUN device stands in for the kernel's): a move of the
 * clock writes the RSTs before it resolves, expiring one flow writes its two, and a flow in its
 * handshake ends without one (B5), with its state.
 */

const FE = '198.18.100.10';
const CLIENT = '198.18.1.2';
const B1 = '198.18.2.2';

function fakePacketModule(tun: FakeTun): DataPlaneModule<PacketPlane> {
  return {
    name: 'packet',
    summary: 'packets on a fake TUN device',
    flowsHoldDescriptors: false,
    indexReplies: true,
    unsupported: () => [],
    unavailable: () => undefined,
    create: (context) =>
      new PacketPlane({
        engine: context.engine,
        clock: context.clock,
        tun: 'fake0',
        device: tun,
        host: null,
      }),
    readyFields: () => ({}),
  };
}

function handshake(tun: FakeTun, sport: number): void {
  tun.inject(tcpPacket({ src: CLIENT, dst: FE, sport, dport: 80, seq: 100, flags: TCP_SYN }));
  const [syn] = tun.take();
  assert.ok(syn);
  tun.inject(
    tcpPacket({
      src: B1,
      dst: CLIENT,
      sport: 8080,
      dport: sport,
      seq: 5000,
      ack: 101,
      flags: TCP_SYN | TCP_ACK,
    }),
  );
  tun.inject(tcpPacket({ src: CLIENT, dst: FE, sport, dport: 80, seq: 101, ack: 5001, flags: TCP_ACK }));
  tun.take();
}

test('packet plane on a manual clock: advance and expire write the RSTs before they resolve; a half-open flow gets none (B5)', async () => {
  const tun = new FakeTun();
  const clock = new ManualClock(0);
  const app = await SluiceApp.start(
    compileLb({
      frontend: FE,
      backends: [B1],
      rules: [{ name: 'web', frontendPort: 80, backendPort: 8080, enableTcpReset: true }],
    }),
    { clock, plane: fakePacketModule(tun), logLevel: 'silent' },
  );
  try {
    assert.equal(app.clockMode, 'manual');
    handshake(tun, 40000);
    handshake(tun, 40001);
    // A SYN the backend never answers: the flow stays in its handshake.
    tun.inject(tcpPacket({ src: CLIENT, dst: FE, sport: 40002, dport: 80, seq: 900, flags: TCP_SYN }));
    tun.take();
    const ids = new Map(app.engine.flows().map((f) => [f.client.port, f.id]));

    const one = await app.expireFlow(ids.get(40000)!);
    assert.equal(one?.flow, ids.get(40000));
    assert.equal(one?.action, 'reset');
    assert.equal(one?.cause, 'request');
    const rsts = tun.take();
    assert.equal(rsts.length, 2, 'one RST each way, written before expireFlow resolved');
    assert.ok(rsts.every((r) => (r.flags & TCP_RST) !== 0));
    assert.equal(await app.expireFlow(ids.get(40000)!), undefined, 'an expired flow is no live flow');

    const none = await app.advanceClock(239_999);
    assert.deepEqual(none.ended, []);
    assert.equal(tun.take().length, 0);
    const due = await app.advanceClock(1);
    assert.equal(due.now, 240_000);
    const byPort = new Map(due.ended.map((e) => [Number(e.client.split(':')[1]), e]));
    assert.equal(byPort.get(40001)?.action, 'reset');
    assert.equal(byPort.get(40001)?.state, 'ESTABLISHED');
    assert.equal(byPort.get(40002)?.action, 'drop');
    assert.equal(byPort.get(40002)?.state, 'SYN_SENT');
    assert.equal(byPort.get(40002)?.noReset, 'not-established');
    const written = tun.take();
    assert.equal(written.length, 2, 'the RSTs of the established flow only');
    assert.ok(written.every((r) => r.dport === 40001 || r.sport === 40001));
  } finally {
    await app.stop();
  }
});
