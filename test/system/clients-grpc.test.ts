import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from '../helpers/net.js';
import {
  Agent,
  BACKENDS,
  CLIENT,
  FRONTEND,
  Topology,
  systemTest,
  systemUnavailable,
  writeLbConfig,
  type SluiceProcess,
} from '../helpers/netns.js';

/**
 * @grpc/grpc-js through the packet plane: the server in backend1, the channels in the client
 * namespace (both test/helpers/client-agent.ts), the client's real address kept by DNAT, so
 * the server's peer for a call names the client's connection. At --time-scale 120 the 4-minute
 * timeout lasts 2 s; a 500 ms keepalive_time_ms stands for a PING a minute.
 */

const SCALE = 120;
const IDLE_MS = (4 * 60_000) / SCALE;
const PORT_DROP = 50051;
const SERVER_PORT = 50051;
const AGENT = fileURLToPath(new URL('../helpers/client-agent.js', import.meta.url));

let topo: Topology | undefined;
let sluice: SluiceProcess;
let client: Agent;
let dir = '';

before(async () => {
  if (systemUnavailable() !== undefined) return;
  topo = Topology.create('grpc');
  dir = mkdtempSync(join(tmpdir(), 'sluice-clients-'));
  const server = new Agent(topo.spawn('backend1', process.execPath, [AGENT, 'run']));
  server.send({ cmd: 'grpc-serve', id: 'server', host: BACKENDS[0], port: SERVER_PORT });
  await server.waitFor('the gRPC server', (l) => l.ev === 'listening', 10_000);
  const config = writeLbConfig(
    dir,
    [{ name: 'drop', frontendPort: PORT_DROP, backendPort: SERVER_PORT, enableTcpReset: false }],
    [BACKENDS[0]],
  );
  sluice = topo.sluice(config, [
    '--dataplane',
    'packet',
    '--time-scale',
    String(SCALE),
    '--tun',
    'slgrpc0',
    '--configure-host',
  ]);
  await sluice.ready();
  client = new Agent(topo.spawn('client', process.execPath, [AGENT, 'run']));
});

after(async () => {
  await topo?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let serial = 0;

function channel(options: Record<string, number>): string {
  const id = `ch${serial++}`;
  client.send({ cmd: 'grpc-channel', id, target: `${FRONTEND}:${PORT_DROP}`, options });
  return id;
}

async function call(id: string, deadlineMs: number): Promise<Record<string, unknown>> {
  const q = `q${serial++}`;
  client.send({ cmd: 'grpc-call', id, q, deadlineMs });
  return client.waitFor(`call ${q}`, (l) => l.ev === 'call' && l.q === q, deadlineMs + 5000);
}

systemTest(
  'drop rule: with keepalive_time_ms below the timeout a quiet channel keeps its connection for 3x the timeout; without, the next call fails at its deadline',
  async () => {
    const DEADLINE = 1000;
    const kept = channel({
      'grpc.keepalive_time_ms': 500,
      'grpc.keepalive_timeout_ms': 1000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    const plain = channel({});
    const keptFirst = await call(kept, 5000);
    const plainFirst = await call(plain, 5000);
    assert.equal(keptFirst.ok, true, JSON.stringify(keptFirst));
    assert.equal(plainFirst.ok, true, JSON.stringify(plainFirst));
    assert.match(String(keptFirst.peer), new RegExp(`^${CLIENT}:`), 'the server sees the client itself');
    const plainPort = Number(String(plainFirst.peer).split(':').pop());
    await sluice.waitFor(
      'the plain channel dropped',
      (l) => l.client === `${CLIENT}:${plainPort}` && String(l.msg).includes('dropped silently'),
      IDLE_MS * 3,
    );
    await sleep(IDLE_MS * 2);
    const keptLater = await call(kept, DEADLINE);
    assert.equal(keptLater.ok, true, JSON.stringify(keptLater));
    assert.equal(keptLater.peer, keptFirst.peer, 'the same connection');
    const plainLater = await call(plain, DEADLINE);
    assert.equal(plainLater.codeName, 'DEADLINE_EXCEEDED', JSON.stringify(plainLater));
    assert.ok((plainLater.ms as number) >= DEADLINE - 50, `failed after ${String(plainLater.ms)} ms`);
  },
);
