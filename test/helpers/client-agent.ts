/**
 * A Node process that runs real clients (pg, grpc-js) and a gRPC server where the test's own
 * process cannot: inside a network namespace, or as a child whose crash the test watches. It
 * takes JSON commands on stdin and reports JSON events on stdout, like the namespaces' python
 * agent (test/helpers/netns.ts), with `t` in milliseconds of its own monotonic clock.
 *
 * It installs no handler for uncaught errors: a client error nobody listens to crashes it, as
 * it would crash an application. It acts only when started as `client-agent.js run`: the test
 * runner, which runs every file under dist/test, starts it without.
 */
import { createInterface } from 'node:readline';
import pg from 'pg';
import type * as grpc from '@grpc/grpc-js';
import { callEcho, echoClient, startEchoServer } from './grpc-echo.js';

function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ ...event, t: Math.round(performance.now()) })}\n`);
}

function failure(err: unknown): Record<string, unknown> {
  const e = err as NodeJS.ErrnoException;
  return { message: e.message, ...(e.code === undefined ? {} : { code: e.code }) };
}

const pools = new Map<string, pg.Pool>();
const channels = new Map<string, grpc.Client>();

type Command = Record<string, unknown> & { cmd: string; id: string };

async function run(c: Command): Promise<void> {
  switch (c.cmd) {
    case 'pg-pool': {
      const pool = new pg.Pool(c.config as pg.PoolConfig);
      if (c.onError === true)
        pool.on('error', (err) => emit({ ev: 'pool-error', id: c.id, ...failure(err) }));
      pools.set(c.id, pool);
      emit({ ev: 'pool', id: c.id });
      return;
    }
    case 'pg-query': {
      const start = performance.now();
      try {
        const r = await pools.get(c.id)!.query(c.sql as string);
        emit({ ev: 'result', id: c.id, q: c.q, rows: r.rows, ms: Math.round(performance.now() - start) });
      } catch (err) {
        emit({
          ev: 'query-error',
          id: c.id,
          q: c.q,
          ...failure(err),
          ms: Math.round(performance.now() - start),
        });
      }
      return;
    }
    case 'grpc-serve': {
      const server = await startEchoServer(c.host as string, c.port as number);
      emit({ ev: 'listening', id: c.id, port: server.port });
      return;
    }
    case 'grpc-channel':
      channels.set(c.id, echoClient(c.target as string, (c.options ?? {}) as grpc.ChannelOptions));
      emit({ ev: 'channel', id: c.id });
      return;
    case 'grpc-call': {
      const outcome = await callEcho(channels.get(c.id)!, String(c.q), c.deadlineMs as number);
      emit({ ev: 'call', id: c.id, q: c.q, ...outcome });
      return;
    }
    case 'exit':
      process.exit(0);
  }
  emit({ ev: 'unknown-command', id: c.id, cmd: c.cmd });
}

if (process.argv[2] === 'run') {
  createInterface({ input: process.stdin })
    .on('line', (line) => {
      void run(JSON.parse(line) as Command);
    })
    // The test is gone: so is this process.
    .on('close', () => process.exit(0));
  // Whatever the test does, this process does not outlive a minute.
  setTimeout(() => process.exit(3), 60_000).unref();
}
