import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { Redis, type RedisOptions } from 'ioredis';
import { sluiceInFront, type InFront } from '../helpers/in-front.js';
import { freePort, waitUntil } from '../helpers/net.js';
import { serverTest, serversUnavailable, startRedis, type RealServer } from '../helpers/servers.js';

/**
 * ioredis against a real Redis through the proxy plane, on a manual clock: the 4-minute idle
 * timeout passes in one call, and the client's own timeouts are real and small.
 */

const FRONTEND = '127.0.90.20';
const REDIS = '127.0.90.21';

let server: RealServer | undefined;
let lb: InFront;

before(async () => {
  if (serversUnavailable(['redis']) !== undefined) return;
  server = await startRedis({ host: REDIS, port: await freePort(REDIS) });
  lb = await sluiceInFront(FRONTEND, server);
});

after(async () => {
  await lb?.stop();
  await server?.stop();
});

interface Watched {
  readonly redis: Redis;
  /** Connection events in order: `error:<message>`, `close`, `reconnecting`, `ready`... */
  readonly events: string[];
}

async function connect(port: number, options: RedisOptions = {}): Promise<Watched> {
  // A quick reconnect: ioredis's default backoff starts at 50 ms anyway, this keeps it there.
  const redis = new Redis({ host: FRONTEND, port, retryStrategy: () => 20, lazyConnect: true, ...options });
  const events: string[] = [];
  redis.on('error', (err: Error) => events.push(`error:${err.message}`));
  for (const e of ['close', 'reconnecting', 'ready'] as const) redis.on(e, () => events.push(e));
  await redis.connect();
  return { redis, events };
}

/** The server's id for the connection a command runs on: a new one after a reconnect. */
async function clientId(redis: Redis): Promise<number> {
  return (await redis.client('ID')) as number;
}

async function outcome(p: Promise<unknown>): Promise<{ ok: boolean; value: unknown; ms: number }> {
  const start = performance.now();
  try {
    const value = await p;
    return { ok: true, value, ms: performance.now() - start };
  } catch (err) {
    return { ok: false, value: (err as Error).message, ms: performance.now() - start };
  }
}

serverTest(
  ['redis'],
  'reset: ioredis reconnects at once and retries the command sent into the reset',
  async () => {
    const { redis, events } = await connect(lb.ports.reset);
    try {
      await redis.set('k', 'reset');
      const first = await clientId(redis);
      lb.idle();
      // Sent in the same turn as the reset: ioredis writes it into the reset socket, then resends
      // it on the new connection (autoResendUnfulfilledCommands).
      const got = await outcome(redis.get('k'));
      assert.deepEqual(
        { ok: got.ok, value: got.value },
        { ok: true, value: 'reset' },
        `events: ${events.join(', ')}`,
      );
      assert.notEqual(await clientId(redis), first, 'a new connection');
      assert.match(events[1] ?? '', /^error:(write|read) ECONNRESET$/, events.join(', '));
      assert.deepEqual(events.slice(2, 5), ['close', 'reconnecting', 'ready']);
    } finally {
      redis.disconnect();
    }
  },
);

serverTest(
  ['redis'],
  'drop: every command times out (commandTimeout) and ioredis stays on the dropped connection',
  async () => {
    const COMMAND_TIMEOUT = 500;
    const { redis, events } = await connect(lb.ports.drop, { commandTimeout: COMMAND_TIMEOUT });
    try {
      await redis.set('k', 'drop');
      lb.idle();
      for (const attempt of [1, 2]) {
        const got = await outcome(redis.get('k'));
        assert.deepEqual(
          { ok: got.ok, value: got.value },
          { ok: false, value: 'Command timed out' },
          `attempt ${attempt}`,
        );
        assert.ok(
          got.ms >= COMMAND_TIMEOUT - 50 && got.ms < COMMAND_TIMEOUT + 1000,
          `attempt ${attempt} failed after ${got.ms.toFixed(0)} ms`,
        );
      }
      assert.deepEqual(events, ['ready'], 'no error, no reconnect: the client never learnt of the drop');
    } finally {
      redis.disconnect();
    }
  },
);

serverTest(
  ['redis'],
  'drop, with socketTimeout: the silent socket is destroyed and the command retried on a new connection',
  async () => {
    const SOCKET_TIMEOUT = 300;
    const { redis, events } = await connect(lb.ports.drop, {
      socketTimeout: SOCKET_TIMEOUT,
      commandTimeout: 2000,
    });
    try {
      await redis.set('k', 'survived');
      const first = await clientId(redis);
      lb.idle();
      const got = await outcome(redis.get('k'));
      assert.deepEqual(
        { ok: got.ok, value: got.value },
        { ok: true, value: 'survived' },
        `events: ${events.join(', ')}`,
      );
      assert.ok(
        got.ms >= SOCKET_TIMEOUT - 50,
        `answered after ${got.ms.toFixed(0)} ms, once the socket timed out`,
      );
      assert.notEqual(await clientId(redis), first, 'a new connection');
      assert.match(events[1] ?? '', /^error:Socket timeout/);
    } finally {
      redis.disconnect();
    }
  },
);

serverTest(
  ['redis'],
  'application keepalive: a PING more often than the timeout keeps the connection past 6 minutes of idle',
  async () => {
    const { redis, events } = await connect(lb.ports.reset);
    // 100 ms of real time stands for at most a minute of the balancer's: the clock is moved a
    // minute at a time, and only once a PING went through since the last move.
    const pinger = setInterval(() => void redis.ping().catch(() => {}), 100);
    try {
      await redis.set('k', 'kept');
      const first = await clientId(redis);
      const port = redis.stream.localPort!;
      const flow = lb.flowOf(port)!.id;
      for (let minute = 1; minute <= 6; minute++) {
        lb.advance(60_000);
        const f = await lb.activeNow(port, `a PING after minute ${minute}`);
        assert.equal(f.id, flow, 'the same flow');
      }
      assert.equal(await redis.get('k'), 'kept');
      assert.equal(await clientId(redis), first, 'the same connection');
      assert.deepEqual(events, ['ready']);
      // Without the PINGs the same connection is reset at the timeout.
      clearInterval(pinger);
      lb.idle();
      await waitUntil(
        2000,
        'the reset',
        () => events.includes('error:read ECONNRESET') || events.includes('close'),
      );
    } finally {
      clearInterval(pinger);
      redis.disconnect();
    }
  },
);
