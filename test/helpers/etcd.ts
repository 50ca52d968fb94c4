/**
 * A real etcd (Debian's etcd-server) for tests: one member on a loopback address of
 * 127.0.87.0/24, on ports it picks, with its own data directory; stopped by its PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { freePort, waitUntil } from './net.js';

export const ETCD_HOST = '127.0.87.1';

/** Why etcd cannot run here, or undefined. */
export function etcdUnavailable(): string | undefined {
  const r = spawnSync('etcd', ['--version'], { stdio: 'ignore' });
  return r.error !== undefined || r.status !== 0 ? 'etcd is not installed (Debian etcd-server)' : undefined;
}

/**
 * `test`, skipped with a one-line reason where etcd is missing, except in CI (CI=true), where
 * that is a failure: scripts/test.sh installs it.
 */
export function etcdTest(name: string, timeoutMs: number, fn: (t: TestContext) => Promise<void>): void {
  const reason = etcdUnavailable();
  if (reason === undefined) test(name, { timeout: timeoutMs }, fn);
  else if (process.env.CI === 'true')
    test(name, () => {
      throw new Error(`CI=true, yet ${reason} (scripts/test.sh installs it)`);
    });
  else test(name, { skip: reason }, () => {});
}

export interface EtcdPorts {
  readonly client: number;
  readonly peer: number;
}

export interface RunningEtcd {
  readonly ports: EtcdPorts;
  readonly dataDir: string;
  readonly child: ChildProcess;
  /** `etcd://127.0.87.1:PORT/PREFIX`. */
  url(prefix: string): string;
  /** Ends it by its PID (SIGKILL: as a crash would) and waits for it to be gone. */
  kill(): Promise<void>;
}

export async function pickEtcdPorts(): Promise<EtcdPorts> {
  const client = await freePort(ETCD_HOST);
  let peer = await freePort(ETCD_HOST);
  for (let i = 0; i < 5 && peer === client; i++) peer = await freePort(ETCD_HOST);
  return { client, peer };
}

/**
 * Starts etcd with `dataDir` (kept: a restart on the same directory and ports finds its data)
 * and resolves once it answers /health, within 15 s.
 */
export async function startEtcd(dataDir: string, ports: EtcdPorts): Promise<RunningEtcd> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const client = `http://${ETCD_HOST}:${ports.client}`;
  const peer = `http://${ETCD_HOST}:${ports.peer}`;
  const log = openSync(join(dataDir, '..', `etcd-${ports.client}.log`), 'a');
  const child = spawn(
    'etcd',
    [
      '--name',
      'sluice-test',
      '--data-dir',
      join(dataDir, 'member-data'),
      '--listen-client-urls',
      client,
      '--advertise-client-urls',
      client,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      `sluice-test=${peer}`,
      '--heartbeat-interval',
      '25',
      '--election-timeout',
      '250',
    ],
    { stdio: ['ignore', log, log] },
  );
  closeSync(log);
  const exited = once(child, 'exit');
  const running: RunningEtcd = {
    ports,
    dataDir,
    child,
    url: (prefix) => `etcd://${ETCD_HOST}:${ports.client}/${prefix}`,
    async kill() {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined)
        process.kill(child.pid, 'SIGKILL');
      await exited;
    },
  };
  try {
    await waitUntil(
      15_000,
      'etcd to answer /health',
      async () => {
        if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}`);
        try {
          const res = await fetch(`${client}/health`, { signal: AbortSignal.timeout(1000) });
          return res.ok && ((await res.json()) as { health?: string }).health === 'true';
        } catch {
          return false;
        }
      },
      50,
    );
  } catch (err) {
    await running.kill();
    throw err;
  }
  return running;
}
