/**
 * Real servers for the client tests: PostgreSQL and Redis from Debian's packages (scripts/test.sh
 * installs them), each started by the test on an address of its own, on loopback or inside a
 * network namespace, and stopped by its PID when the test ends, whatever happened.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { systemUnavailable } from './netns.js';

export type ServerKind = 'postgres' | 'redis';

/** The PostgreSQL binaries' directory (`/usr/lib/postgresql/<version>/bin`), the newest version. */
function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

function redisServerPath(): string | undefined {
  for (const p of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) if (existsSync(p)) return p;
  return undefined;
}

function userIds(name: string): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}

/** Why servers of these kinds cannot be started here, or undefined when they can. */
export function serversUnavailable(kinds: readonly ServerKind[]): string | undefined {
  if (process.platform !== 'linux') return 'the real servers are started on Linux only';
  // PostgreSQL refuses to run as root and must be started as its own user: only root can.
  if (process.getuid?.() !== 0) return 'not root: the real servers are started as their own users';
  if (kinds.includes('postgres')) {
    if (postgresBinDir() === undefined) return 'PostgreSQL is not installed (scripts/test.sh installs it)';
    if (userIds('postgres') === undefined)
      return 'there is no postgres user (the postgresql package makes it)';
  }
  if (kinds.includes('redis') && redisServerPath() === undefined)
    return 'redis-server is not installed (scripts/test.sh installs it)';
  return undefined;
}

export interface ServerTestOptions {
  /** The test also needs network namespaces (the packet plane's system tests). */
  readonly namespaces?: boolean;
  readonly timeoutMs?: number;
}

/** Why a test of `kinds` (with `options`) cannot run here, or undefined when it can. */
export function serverTestUnavailable(
  kinds: readonly ServerKind[],
  options: ServerTestOptions = {},
): string | undefined {
  return (options.namespaces === true ? systemUnavailable() : undefined) ?? serversUnavailable(kinds);
}

/**
 * `test`, skipped with a one-line reason where the servers cannot be started, except in CI
 * (CI=true), where that is a failure: CI must prove what real clients do.
 */
export function serverTest(
  kinds: readonly ServerKind[],
  name: string,
  fn: (t: TestContext) => Promise<void>,
  options: ServerTestOptions = {},
): void {
  const reason = serverTestUnavailable(kinds, options);
  const timeoutMs = options.timeoutMs ?? 30_000;
  if (reason === undefined) test(name, { timeout: timeoutMs }, fn);
  else if (process.env.CI === 'true')
    test(name, () => {
      throw new Error(`CI=true, yet the real servers cannot be started: ${reason}`);
    });
  else test(name, { skip: reason }, () => {});
}

export interface RealServer {
  readonly kind: ServerKind;
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  /** The server's output so far, for failure messages. */
  readonly output: string[];
  /** Stops the server by its PID (a gentle signal, then SIGKILL) and removes its files. */
  stop(): Promise<void>;
}

export interface ServerOptions {
  readonly host: string;
  readonly port: number;
  /** A network namespace to run it in (by `ip netns exec`); the host's own by default. */
  readonly netns?: string;
}

/** Runs `argv` (in `netns`, when given) so that the child's PID is the server's own. */
function spawnServer(argv: readonly string[], netns: string | undefined): ChildProcess {
  const [file, ...args] = netns === undefined ? argv : ['ip', 'netns', 'exec', netns, ...argv];
  return spawn(file!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

const started = new Set<ChildProcess>();
// A test process that dies without its after-hooks still takes its servers with it.
process.once('exit', () => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

async function runServer(
  kind: ServerKind,
  argv: readonly string[],
  options: ServerOptions,
  ready: RegExp,
  stopSignal: NodeJS.Signals,
  cleanup: () => void,
): Promise<RealServer> {
  const child = spawnServer(argv, options.netns);
  started.add(child);
  const output: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => started.delete(child));
  const isReady = new Promise<void>((resolve, reject) => {
    const onLine = (l: string): void => {
      output.push(l);
      if (ready.test(l)) resolve();
    };
    createInterface({ input: child.stdout! }).on('line', onLine);
    createInterface({ input: child.stderr! }).on('line', onLine);
    void exited.then(() => reject(new Error(`${kind} exited before it was ready: ${output.join(' | ')}`)));
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(stopSignal);
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    cleanup();
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      isReady,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${kind} not ready in 15 s: ${output.join(' | ')}`)),
          15_000,
        );
      }),
    ]);
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return { kind, host: options.host, port: options.port, pid: child.pid!, output, stop };
}

/**
 * PostgreSQL on `host:port`: a new cluster in a temporary directory owned by the postgres user,
 * trust authentication for the loopback range and the namespaces' 198.18.0.0/15, durability off
 * (nothing here needs to survive a crash). Connect as user `postgres` to database `postgres`.
 */
export async function startPostgres(options: ServerOptions): Promise<RealServer> {
  const bin = postgresBinDir();
  const ids = userIds('postgres');
  if (bin === undefined || ids === undefined) throw new Error(serversUnavailable(['postgres']));
  const dir = mkdtempSync(join(tmpdir(), 'sluice-pg-'));
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    chownSync(dir, ids.uid, ids.gid);
    const data = join(dir, 'data');
    // initdb, like postgres, refuses root; runuser is enough for a command that runs to its end.
    execFileSync(
      'runuser',
      ['-u', 'postgres', '--', join(bin, 'initdb'), '-D', data, '-U', 'postgres', '-A', 'trust', '-N'],
      { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 },
    );
    writeFileSync(
      join(data, 'pg_hba.conf'),
      'local all all trust\nhost all all 127.0.0.0/8 trust\nhost all all 198.18.0.0/15 trust\n',
    );
    chownSync(join(data, 'pg_hba.conf'), ids.uid, ids.gid);
  } catch (err) {
    cleanup();
    throw err;
  }
  // setpriv execs the server itself (runuser would stay as its parent): the PID stopped is the
  // postmaster's. SIGINT is PostgreSQL's fast shutdown, which does not wait for clients.
  const argv = [
    'setpriv',
    `--reuid=${ids.uid}`,
    `--regid=${ids.gid}`,
    '--init-groups',
    '--',
    join(bin, 'postgres'),
    '-D',
    join(dir, 'data'),
    '-k',
    dir,
    '-c',
    `listen_addresses=${options.host}`,
    '-c',
    `port=${options.port}`,
    '-c',
    'fsync=off',
    '-c',
    'synchronous_commit=off',
    '-c',
    'full_page_writes=off',
    '-c',
    'max_connections=20',
    '-c',
    'shared_buffers=16MB',
  ];
  return runServer('postgres', argv, options, /ready to accept connections/, 'SIGINT', cleanup);
}

/** Redis on `host:port`, nothing persisted. */
export async function startRedis(options: ServerOptions): Promise<RealServer> {
  const path = redisServerPath();
  if (path === undefined) throw new Error(serversUnavailable(['redis']));
  const argv = [
    path,
    '--port',
    String(options.port),
    '--bind',
    options.host,
    '--save',
    '',
    '--appendonly',
    'no',
    // Clients in a namespace connect from 198.18.x.x, which protected mode would refuse.
    '--protected-mode',
    'no',
    '--daemonize',
    'no',
  ];
  return runServer('redis', argv, options, /Ready to accept connections/, 'SIGTERM', () => {});
}
