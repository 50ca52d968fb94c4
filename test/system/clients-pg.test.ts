import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from '../helpers/net.js';
import { Agent, BACKENDS, FRONTEND, Topology, writeLbConfig, type SluiceProcess } from '../helpers/netns.js';
import { serverTest, serverTestUnavailable, startPostgres, type RealServer } from '../helpers/servers.js';

/**
 * node-postgres with kernel TCP keepalives (`keepAlive`, `keepAliveInitialDelayMillis`) through
 * the packet plane, where a keepalive probe is a packet like any other and refreshes the flow.
 * PostgreSQL runs in backend1, the client (test/helpers/client-agent.ts) in the client
 * namespace. At --time-scale 120 the 4-minute timeout lasts 2 s; the 1 s keepalive delay (the
 * kernel counts it in whole seconds) stands for 2 minutes.
 */

const SCALE = 120;
const IDLE_MS = (4 * 60_000) / SCALE;
const PORT_RESET = 5432;
const PORT_DROP = 5433;
const DB = BACKENDS[0];
const DB_PORT = 5432;
const AGENT = fileURLToPath(new URL('../helpers/client-agent.js', import.meta.url));

let topo: Topology | undefined;
let db: RealServer | undefined;
let sluice: SluiceProcess;
let client: Agent;
let dir = '';

before(async () => {
  if (serverTestUnavailable(['postgres'], { namespaces: true }) !== undefined) return;
  topo = Topology.create('pg');
  dir = mkdtempSync(join(tmpdir(), 'sluice-clients-'));
  db = await startPostgres({ host: DB, port: DB_PORT, netns: topo.ns.backend1 });
  const config = writeLbConfig(
    dir,
    [
      { name: 'reset', frontendPort: PORT_RESET, backendPort: DB_PORT, enableTcpReset: true },
      { name: 'drop', frontendPort: PORT_DROP, backendPort: DB_PORT, enableTcpReset: false },
    ],
    [DB],
  );
  sluice = topo.sluice(config, [
    '--dataplane',
    'packet',
    '--time-scale',
    String(SCALE),
    '--tun',
    'slpg0',
    '--configure-host',
  ]);
  await sluice.ready();
  client = new Agent(topo.spawn('client', process.execPath, [AGENT, 'run']));
});

after(async () => {
  await db?.stop();
  await topo?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const pgTest = (name: string, fn: () => Promise<void>): void =>
  serverTest(['postgres'], name, fn, { namespaces: true, timeoutMs: 60_000 });

let serial = 0;

/** A pool of one client in the client namespace; returns its id. */
function pool(port: number, more: Record<string, unknown> = {}): string {
  const id = `p${serial++}`;
  const config = {
    host: FRONTEND,
    port,
    user: 'postgres',
    database: 'postgres',
    max: 1,
    idleTimeoutMillis: 0,
    ...more,
  };
  client.send({ cmd: 'pg-pool', id, config, onError: true });
  return id;
}

/** Runs `select pg_backend_pid()` on pool `id`: the server's process for that connection. */
async function backendPid(id: string): Promise<number> {
  return (await pidQuery(id)).pid;
}

/** The same, with the time of the answer on the agent's clock. */
async function pidQuery(id: string): Promise<{ pid: number; t: number }> {
  const q = `q${serial++}`;
  client.send({ cmd: 'pg-query', id, q, sql: 'select pg_backend_pid() as pid' });
  const r = await client.waitFor(`query ${q}`, (l) => l.q === q, 10_000);
  assert.equal(r.ev, 'result', JSON.stringify(r));
  return { pid: (r.rows as { pid: number }[])[0]!.pid, t: r.t as number };
}

const poolErrors = (id: string): Record<string, unknown>[] =>
  client.lines.filter((l) => l.ev === 'pool-error' && l.id === id);

pgTest(
  'reset rule: with keepAlive the idle client outlives 3x the timeout; without, it is reset',
  async () => {
    const kept = pool(PORT_RESET, { keepAlive: true, keepAliveInitialDelayMillis: 1000 });
    const plain = pool(PORT_RESET);
    const keptPid = await backendPid(kept);
    const answered = await pidQuery(plain);
    const since = Date.now();
    const reset = await client.waitFor(
      'the plain client reset',
      (l) => l.ev === 'pool-error' && l.id === plain,
      IDLE_MS * 3,
    );
    assert.equal(reset.code, 'ECONNRESET', JSON.stringify(reset));
    const after = (reset.t as number) - answered.t;
    assert.ok(after >= IDLE_MS * 0.95, `reset ${after} ms after the last query: not before the timeout`);
    await sleep(Math.max(0, since + IDLE_MS * 3 - Date.now()));
    assert.deepEqual(poolErrors(kept), [], 'no error on the kept client');
    assert.equal(await backendPid(kept), keptPid, 'the same connection, 3x the timeout later');
  },
);

pgTest(
  'drop rule: with keepAlive the idle client outlives 3x the timeout; without, its next query hangs until query_timeout',
  async () => {
    const QUERY_TIMEOUT = 800;
    const kept = pool(PORT_DROP, { keepAlive: true, keepAliveInitialDelayMillis: 1000 });
    const plain = pool(PORT_DROP, { query_timeout: QUERY_TIMEOUT });
    const keptPid = await backendPid(kept);
    await backendPid(plain);
    await sleep(IDLE_MS * 3);
    assert.equal(await backendPid(kept), keptPid, 'the same connection, 3x the timeout later');
    const q = `q${serial++}`;
    client.send({ cmd: 'pg-query', id: plain, q, sql: 'select 1' });
    const r = await client.waitFor(`query ${q}`, (l) => l.q === q, 10_000);
    assert.deepEqual({ ev: r.ev, message: r.message }, { ev: 'query-error', message: 'Query read timeout' });
    assert.ok((r.ms as number) >= QUERY_TIMEOUT - 50, `failed after ${String(r.ms)} ms`);
    assert.deepEqual(poolErrors(kept), []);
    assert.deepEqual(poolErrors(plain), [], 'nothing told the plain client of the drop');
  },
);
