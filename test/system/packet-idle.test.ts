import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Agent, SluiceProcess } from '../helpers/netns.js';
import {
  CLIENT,
  FRONTEND,
  Topology,
  systemTest,
  systemUnavailable,
  writeLbConfig,
} from '../helpers/netns.js';
import { sleep } from '../helpers/net.js';

/**
 * The packet data plane against real kernel TCP stacks: client, Sluice and two backends each in
 * its own network namespace. 4 minutes at --time-scale 120 is 2 real seconds.
 */

const SCALE = 120;
const IDLE_S = (4 * 60) / SCALE;
const UDP_TIMEOUT_S = 600 / SCALE;
const PORT_RESET = 80;
const PORT_DROP = 81;
const PORT_UDP = 5353;
const BACKEND_PORT = 8080;

let topo: Topology;
let sluice: SluiceProcess;
let client: Agent;
let backends: Agent[] = [];
let dir = '';
let config = '';
let serial = 0;

before(async () => {
  if (systemUnavailable() !== undefined) return;
  topo = Topology.create();
  dir = mkdtempSync(join(tmpdir(), 'sluice-system-'));
  backends = [topo.agent('backend1'), topo.agent('backend2')];
  for (const b of backends) {
    b.send({ cmd: 'serve', port: BACKEND_PORT });
    b.send({ cmd: 'udp-serve', port: PORT_UDP });
    await b.waitFor('backend listening', (l) => l.ev === 'listening' && l.proto === 'udp', 5000);
  }
  client = topo.agent('client');
  // A blackholed connection then gives up after about 3 s of retransmissions.
  topo.sysctl('client', 'net.ipv4.tcp_retries2', '3');
  config = writeLbConfig(dir, [
    { name: 'with-reset', frontendPort: PORT_RESET, backendPort: BACKEND_PORT, enableTcpReset: true },
    { name: 'silent-drop', frontendPort: PORT_DROP, backendPort: BACKEND_PORT, enableTcpReset: false },
    { name: 'udp', protocol: 'Udp', frontendPort: PORT_UDP, backendPort: PORT_UDP },
  ]);
  sluice = await startSluice(SCALE);
});

async function startSluice(scale: number): Promise<SluiceProcess> {
  const s = topo.sluice(config, [
    '--dataplane',
    'packet',
    '--time-scale',
    String(scale),
    '--udp-flow-timeout',
    '600',
    '--tun',
    'sltun0',
    '--configure-host',
  ]);
  await s.ready();
  return s;
}

after(async () => {
  await topo?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Conn {
  id: string;
  localPort: number;
  backend: Agent;
  backendId: string;
  /** Monotonic seconds of the last data seen by the client. */
  lastData: number;
  /** Sluice's log lines before this connection: a reused client port must not match older ones. */
  sluiceFrom: number;
}

/** Connects through the frontend and exchanges one echo, so the flow is established. */
async function open(port: number, keepalive?: [number, number, number]): Promise<Conn> {
  const id = `c${serial++}`;
  // Only lines after the connect: the client's port may be one an earlier connection used.
  const backendFrom = backends.map((b) => b.lines.length);
  const sluiceFrom = sluice.lines.length;
  client.send({ cmd: 'connect', id, host: FRONTEND, port, ...(keepalive ? { keepalive } : {}) });
  const connected = await client.event(id, 'connected', 5000);
  const localPort = connected.localPort as number;
  // DNAT keeps the client's address and port: that is how the backend side is found.
  const accepted = await Promise.any(
    backends.map((b, i) =>
      b
        .waitFor(
          'accept',
          (l) =>
            l.ev === 'accept' &&
            l.peer === CLIENT &&
            l.peerPort === localPort &&
            b.lines.indexOf(l) >= backendFrom[i]!,
          5000,
        )
        .then((l) => ({ b, l })),
    ),
  );
  client.send({ cmd: 'send', id, text: 'ping' });
  const echo = await client.waitFor('echo', (l) => l.id === id && l.ev === 'data' && l.text === 'ping', 5000);
  return {
    id,
    localPort,
    backend: accepted.b,
    backendId: accepted.l.id as string,
    lastData: echo.t as number,
    sluiceFrom,
  };
}

function expiredLine(c: Conn, msg: string): (l: Record<string, unknown>) => boolean {
  return (l) =>
    l.client === `${CLIENT}:${c.localPort}` &&
    String(l.msg).includes(msg) &&
    sluice.lines.indexOf(l) >= c.sluiceFrom;
}

systemTest('reset on: at the idle timeout both endpoints fail with ECONNRESET', async () => {
  const c = await open(PORT_RESET);
  const clientErr = await client.event(c.id, 'error', IDLE_S * 3000);
  const backendErr = await c.backend.event(c.backendId, 'error', 2000);
  assert.equal(clientErr.code, 'ECONNRESET');
  assert.equal(backendErr.code, 'ECONNRESET');
  const after = (clientErr.t as number) - c.lastData;
  assert.ok(
    after >= IDLE_S * 0.95,
    `reset ${after.toFixed(3)} s after the last packet: not before ${IDLE_S} s`,
  );
  assert.ok(
    after <= IDLE_S + 0.5,
    `reset ${after.toFixed(3)} s after the last packet: at most ${IDLE_S} + 0.5 s`,
  );
  await sluice.waitFor('the reset logged', expiredLine(c, 'TCP reset'), 2000);
});

systemTest(
  'reset off: the flow is a blackhole, the client times out, the backend never hears of it',
  async () => {
    const c = await open(PORT_DROP);
    await sluice.waitFor('the drop logged', expiredLine(c, 'dropped silently'), IDLE_S * 3000);
    assert.equal(client.events(c.id).filter((e) => e.ev === 'error').length, 0, 'no RST reached the client');
    client.send({ cmd: 'send', id: c.id, text: 'late' });
    const err = await client.event(c.id, 'error', 20_000);
    assert.equal(err.code, 'ETIMEDOUT', 'the client gave up retransmitting: nothing ever answered');
    const seen = c.backend.events(c.backendId).map((e) => `${e.ev}:${e.text ?? e.code ?? ''}`);
    assert.deepEqual(seen, ['accept:', 'data:ping'], 'the backend saw only the first exchange');
  },
);

systemTest(
  'TCP keepalive probes keep a flow alive past 3x the timeout; without them it is reset',
  async () => {
    const kept = await open(PORT_RESET, [1, 1, 5]);
    const plain = await open(PORT_RESET);
    const plainErr = await client.event(plain.id, 'error', IDLE_S * 3000);
    assert.equal(plainErr.code, 'ECONNRESET');
    await sleep(IDLE_S * 3000 + 500);
    assert.equal(
      client.events(kept.id).filter((e) => e.ev === 'error').length,
      0,
      'the kept flow had no error',
    );
    client.send({ cmd: 'send', id: kept.id, text: 'still here' });
    await client.waitFor(
      'echo after 3x the timeout',
      (l) => l.id === kept.id && l.text === 'still here',
      3000,
    );
    assert.equal(kept.backend.events(kept.backendId).filter((e) => e.ev === 'error').length, 0);
  },
);

/** RSTs the backends' kernels sent: a segment that reached a backend of no socket adds one. */
function backendRsts(): number {
  return topo.tcpCounter('backend1', 'OutRsts') + topo.tcpCounter('backend2', 'OutRsts');
}

/** Drops every RST arriving at the client while `fn` runs: the idle RST is lost. */
async function losingRsts<T>(fn: () => Promise<T>): Promise<T> {
  topo.exec('client', 'nft', 'add', 'table', 'ip', 'sltest');
  topo.exec(
    'client',
    'nft',
    'add chain ip sltest in { type filter hook input priority 0 ; policy accept ; }',
  );
  topo.exec('client', 'nft', 'add rule ip sltest in tcp flags & rst == rst counter drop');
  try {
    const out = await fn();
    const ruleset = topo.exec('client', 'nft', 'list', 'table', 'ip', 'sltest');
    assert.match(ruleset, /counter packets [1-9]/, 'the RST to the client was dropped by the nft rule');
    return out;
  } finally {
    topo.exec('client', 'nft', 'delete', 'table', 'ip', 'sltest');
  }
}

systemTest(
  'B6: when the idle RST is lost, the next segment of the flow is answered with a RST the client accepts',
  async () => {
    const c = await losingRsts(async () => {
      const c = await open(PORT_RESET);
      // The backend's RST arrives: the idle timeout has passed.
      const backendErr = await c.backend.event(c.backendId, 'error', IDLE_S * 3000);
      assert.equal(backendErr.code, 'ECONNRESET');
      await sleep(200);
      assert.equal(client.events(c.id).filter((e) => e.ev === 'error').length, 0);
      return c;
    });
    const rstsBefore = backendRsts();
    client.send({ cmd: 'send', id: c.id, text: 'anyone?' });
    const err = await client.event(c.id, 'error', 3000);
    assert.equal(err.code, 'ECONNRESET');
    // Sluice answered: the segment never reached a backend, whose stack would have reset it too.
    assert.equal(backendRsts(), rstsBefore);
  },
);

systemTest(
  'B6 without a time limit: writes 20 and 120 minutes after a lost idle RST, long after the flow is forgotten, get ECONNRESET',
  async () => {
    // 600x: the 4-minute timeout is 0.4 s, the 15-minute tombstone 1.5 s, 120 minutes 12 s.
    const scale = 600;
    const minute = 60_000 / scale;
    await sluice.stop();
    sluice = await startSluice(scale);
    try {
      const [early, late] = await losingRsts(async () => {
        const conns = [await open(PORT_RESET), await open(PORT_RESET)];
        for (const c of conns) {
          const err = await c.backend.event(c.backendId, 'error', 4 * minute * 5);
          assert.equal(err.code, 'ECONNRESET', 'the backend got its idle RST');
        }
        await sleep(200);
        for (const c of conns) assert.equal(client.events(c.id).filter((e) => e.ev === 'error').length, 0);
        return conns;
      });
      const expiredAt = Date.now();
      const rstsBefore = backendRsts();
      for (const [c, minutes] of [
        [early!, 20],
        [late!, 120],
      ] as const) {
        await sleep(Math.max(0, expiredAt + minutes * minute - Date.now()));
        client.send({ cmd: 'send', id: c.id, text: `after ${minutes} minutes` });
        const err = await client.event(c.id, 'error', 3000);
        assert.equal(err.code, 'ECONNRESET', `the write ${minutes} minutes after expiry was reset`);
      }
      // Sluice answered: the segments never reached a backend, whose stack would have reset them too.
      assert.equal(backendRsts(), rstsBefore);
    } finally {
      await sluice.stop();
      sluice = await startSluice(SCALE);
    }
  },
);

systemTest('B5: a half-closed flow is dropped at idle without a RST', async () => {
  const c = await open(PORT_RESET);
  client.send({ cmd: 'shutdown', id: c.id });
  await c.backend.event(c.backendId, 'end', 2000);
  await sluice.waitFor('the drop logged', expiredLine(c, 'dropped silently'), IDLE_S * 3000);
  await sleep(500);
  assert.equal(client.events(c.id).filter((e) => e.ev === 'error').length, 0, 'no RST to the client');
  assert.equal(
    c.backend.events(c.backendId).filter((e) => e.ev === 'error').length,
    0,
    'no RST to the backend',
  );
});

systemTest('UDP: a flow lives past the TCP idle timeout, on its own timeout', async () => {
  const id = `u${serial++}`;
  client.send({ cmd: 'udp-open', id });
  const opened = await client.event(id, 'udp-open', 3000);
  const localPort = opened.localPort as number;
  client.send({ cmd: 'udp-send', id, host: FRONTEND, port: PORT_UDP, text: 'hello' });
  const reply = await client.waitFor(
    'UDP echo',
    (l) => l.id === id && l.ev === 'udp' && l.text === 'hello',
    3000,
  );
  assert.equal(reply.peer, FRONTEND, 'the reply comes from the frontend');
  assert.equal(reply.peerPort, PORT_UDP);
  const got = await Promise.any(
    backends.map((b) =>
      b
        .waitFor('datagram', (l) => l.ev === 'udp' && l.peer === CLIENT && l.peerPort === localPort, 3000)
        .then((l) => ({ b, l })),
    ),
  );
  await sleep(IDLE_S * 1000 + 1000);
  // The backend speaks first now: only a live flow takes its datagram back to the client.
  got.b.send({ cmd: 'udp-reply', id: got.l.id, host: CLIENT, port: localPort, text: 'later' });
  const later = await client.waitFor(
    'datagram after the TCP timeout',
    (l) => l.id === id && l.text === 'later',
    3000,
  );
  assert.equal(later.peer, FRONTEND);
  await sleep(UDP_TIMEOUT_S * 1000 + 1000);
  got.b.send({ cmd: 'udp-reply', id: got.l.id, host: CLIENT, port: localPort, text: 'too late' });
  await sleep(500);
  assert.equal(client.events(id).filter((l) => l.text === 'too late').length, 0, 'the UDP flow timed out');
});
