import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { PAST_TIMEOUT_MS, sluiceInFront, type InFront } from '../helpers/in-front.js';
import { freePort, sleep, waitUntil, within } from '../helpers/net.js';
import { Agent } from '../helpers/netns.js';
import { serverTest, serversUnavailable, startPostgres, type RealServer } from '../helpers/servers.js';

/**
 * node-postgres (`pg`) against a real PostgreSQL through the proxy plane, on a manual clock: the
 * 4-minute idle timeout passes in one call, and the client's own timeouts are real and small.
 */

const FRONTEND = '127.0.90.10';
const DB = '127.0.90.11';
const AGENT = fileURLToPath(new URL('../helpers/client-agent.js', import.meta.url));

let server: RealServer | undefined;
let lb: InFront;

before(async () => {
  if (serversUnavailable(['postgres']) !== undefined) return;
  server = await startPostgres({ host: DB, port: await freePort(DB) });
  lb = await sluiceInFront(FRONTEND, server);
});

after(async () => {
  await lb?.stop();
  await server?.stop();
});

function poolConfig(port: number, more: pg.PoolConfig = {}): pg.PoolConfig {
  return {
    host: FRONTEND,
    port,
    user: 'postgres',
    database: 'postgres',
    max: 1,
    idleTimeoutMillis: 0,
    ...more,
  };
}

async function backendPid(pool: pg.Pool): Promise<number> {
  return (await pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
}

/** The flow a query just opened: the one of `rule` that was not there in `before`. */
function newFlow(
  rule: string,
  before: ReadonlySet<number>,
): { id: number; clientPort: number; lastSeenAt: number } {
  const f = lb.app.engine.flows().find((x) => x.ruleName === rule && !before.has(x.id));
  assert.ok(f, `a new flow on ${rule}`);
  return { id: f.id, clientPort: f.client.port, lastSeenAt: f.lastSeenAt };
}

const flowIds = (): Set<number> => new Set(lb.app.engine.flows().map((f) => f.id));

/** Ends a pool without waiting on a connection a silent drop left hanging. */
async function endPool(pool: pg.Pool): Promise<void> {
  await within(2000, 'pool.end()', pool.end()).catch(() => {});
}

serverTest(
  ['postgres'],
  'reset: the pool drops the reset client (its error event) and the next query runs on a new connection',
  async () => {
    const pool = new pg.Pool(poolConfig(lb.ports.reset));
    const errors: Error[] = [];
    pool.on('error', (err) => errors.push(err));
    try {
      const first = await backendPid(pool);
      assert.equal(pool.idleCount, 1, 'the client is idle in the pool');
      lb.idle();
      await waitUntil(2000, 'the pool error event', () => errors.length > 0);
      assert.equal((errors[0] as NodeJS.ErrnoException).code, 'ECONNRESET', errors[0]!.message);
      assert.equal(pool.totalCount, 0, 'the pool let go of the reset client');
      const second = await backendPid(pool);
      assert.notEqual(second, first, 'the next query ran on a new connection');
      // The server's side was reset too: its session for the first connection ended.
      await waitUntil(3000, 'the first session gone from pg_stat_activity', async () => {
        const r = await pool.query<{ n: number }>(
          'select count(*)::int as n from pg_stat_activity where pid = $1',
          [first],
        );
        return r.rows[0]!.n === 0;
      });
      assert.equal(errors.length, 1);
    } finally {
      await endPool(pool);
    }
  },
);

serverTest(
  ['postgres'],
  "reset: without pool.on('error') the reset of an idle client is an uncaught error that ends the process",
  async () => {
    const child = spawn(process.execPath, [AGENT, 'run'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const agent = new Agent(child);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      agent.send({ cmd: 'pg-pool', id: 'p', config: poolConfig(lb.ports.reset), onError: false });
      agent.send({ cmd: 'pg-query', id: 'p', q: 1, sql: 'select 1 as one' });
      const first = await agent.waitFor(
        'the first query',
        (l) => l.ev === 'result' || l.ev === 'query-error',
        5000,
      );
      assert.equal(first.ev, 'result', JSON.stringify(first));
      lb.idle();
      const code = await within(5000, 'the process to exit', exited);
      const stderr = agent.stderr.join('\n');
      assert.equal(code, 1, `exit code 1 (uncaught error); stderr: ${stderr}`);
      assert.match(stderr, /Error: read ECONNRESET/);
      assert.match(stderr, /Emitted 'error' event on BoundPool instance/);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  },
);

serverTest(
  ['postgres'],
  'drop: a query on the dropped connection hangs until query_timeout (statement_timeout never fires), then the pool reconnects',
  async () => {
    const QUERY_TIMEOUT = 800;
    // statement_timeout is the server's: the server never sees the query, so it cannot help.
    const pool = new pg.Pool(
      poolConfig(lb.ports.drop, { query_timeout: QUERY_TIMEOUT, statement_timeout: 300 }),
    );
    const errors: Error[] = [];
    pool.on('error', (err) => errors.push(err));
    try {
      const first = await backendPid(pool);
      const drops = lb.app.plane.stats.idleDrops;
      lb.idle();
      assert.equal(lb.app.plane.stats.idleDrops, drops + 1, 'the flow was dropped silently');
      await sleep(100);
      assert.equal(errors.length, 0, 'nothing told the pool: its idle client looks healthy');
      const start = performance.now();
      await assert.rejects(pool.query('select 1'), (err: Error) => {
        assert.equal(err.message, 'Query read timeout');
        return true;
      });
      const waited = performance.now() - start;
      assert.ok(
        waited >= QUERY_TIMEOUT - 50 && waited < QUERY_TIMEOUT + 1000,
        `failed after ${waited.toFixed(0)} ms`,
      );
      const second = await backendPid(pool);
      assert.notEqual(second, first, 'the pool discarded the timed-out client: a new connection');
      assert.equal(errors.length, 0);
    } finally {
      await endPool(pool);
    }
  },
);

/** Keepalive probes this host's kernel has sent (TcpExt TCPKeepAlive in /proc/net/netstat). */
function keepaliveProbesSent(): number {
  const lines = readFileSync('/proc/net/netstat', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('TcpExt:'));
  const keys = lines[0]!.split(/\s+/);
  return Number(lines[1]!.split(/\s+/)[keys.indexOf('TCPKeepAlive')]);
}

serverTest(
  ['postgres'],
  'keepAlive: kernel TCP keepalive probes carry no data, so on the proxy plane they do not refresh the idle timer',
  async () => {
    const pool = new pg.Pool(
      poolConfig(lb.ports.reset, { keepAlive: true, keepAliveInitialDelayMillis: 1000 }),
    );
    const errors: Error[] = [];
    pool.on('error', (err) => errors.push(err));
    try {
      const before = flowIds();
      await backendPid(pool);
      const flow = newFlow('reset', before);
      const probes = keepaliveProbesSent();
      lb.advance(60_000);
      // The client's socket has its keepalive timer armed; the kernel sends probes, Sluice's kernel
      // answers them, and no byte reaches Sluice.
      const ss = execFileSync('ss', ['-tnoH', 'state', 'established', `( sport = :${flow.clientPort} )`], {
        encoding: 'utf8',
      });
      assert.match(ss, /timer:\(keepalive,/, `keepalive armed on the client's socket: ${ss}`);
      await waitUntil(5000, 'two keepalive probes sent', () => keepaliveProbesSent() >= probes + 2, 100);
      assert.equal(
        lb.flowOf(flow.clientPort)?.lastSeenAt,
        flow.lastSeenAt,
        'the probes did not move the flow',
      );
      lb.advance(3 * 60_000 + PAST_TIMEOUT_MS);
      await waitUntil(2000, 'the pool error event', () => errors.length > 0);
      assert.equal((errors[0] as NodeJS.ErrnoException).code, 'ECONNRESET');
    } finally {
      await endPool(pool);
    }
  },
);
