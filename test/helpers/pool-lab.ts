/**
 * The pool's system tests: a lab of their own (`sluice lab up --name ptNNNN --dir TMP`, names
 * no other test uses), a client inside its client namespace, and what the router and the
 * instances say. `Lab.down` removes every process the lab started (by PID) and its namespaces,
 * whatever happened, and checks that they are gone.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { labUnavailable } from '../../src/lab/lab.js';
import { alive, startTimeOf } from '../../src/lab/processes.js';
import { cliPath, repoRoot } from './cli.js';
import { systemUnavailable } from './netns.js';

export interface LabJson {
  name: string;
  frontend: string;
  ports: { echo: number; http: number; echoDrop: number };
  client: { namespace: string; address: string };
  router: { namespace: string; ecmp: string; resilientTable?: number };
  instances: { name: string; namespace: string; pid: number; address: string; log: string }[];
  backends: { name: string; namespace: string; address: string; pid: number }[];
  spares: { name: string; namespace: string; address: string }[];
  etcd: string | null;
  etcdState: boolean;
  dir: string;
}

let why: string | undefined | null = null;

/** Why the pool's system tests cannot run here, or undefined. */
export function poolUnavailable(): string | undefined {
  if (why !== null) return why;
  why = systemUnavailable() ?? labUnavailable({ etcd: true });
  return why;
}

/** `test`, skipped with the reason where a lab cannot be built, failed instead in CI. */
export function poolTest(name: string, fn: (t: TestContext) => Promise<void>, timeoutMs = 120_000): void {
  const reason = poolUnavailable();
  if (reason === undefined) test(name, { timeout: timeoutMs }, fn);
  else if (process.env.CI === 'true')
    test(name, () => {
      throw new Error(
        `CI=true, yet the pool's system tests cannot run: ${reason} (scripts/test.sh installs what they need)`,
      );
    });
  else test(name, { skip: reason }, () => {});
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs a command in a namespace; returns stdout. */
export function nsExec(ns: string, cmd: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 15_000,
  });
}

let serial = 0;

export class Lab {
  readonly dir: string;
  readonly name: string;
  json: LabJson | undefined;
  /** Every PID the lab reported, with its start time, to check `down` ended it. */
  private readonly pids: { pid: number; start: number }[] = [];

  constructor() {
    this.name = `pt${process.pid % 100000}${serial++}`;
    this.dir = mkdtempSync(join(tmpdir(), 'sluice-pool-'));
    // FRR's daemons run as user frr and must reach their files under it.
    chmodSync(this.dir, 0o755);
  }

  /** `sluice lab up --json ARGS`; the parsed output. */
  up(args: readonly string[]): LabJson {
    const out = execFileSync(
      process.execPath,
      [cliPath, 'lab', 'up', '--json', '--name', this.name, '--dir', this.dir, ...args],
      { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 },
    );
    this.json = JSON.parse(out) as LabJson;
    for (const p of [...this.json.instances, ...this.json.backends]) {
      const start = startTimeOf(p.pid);
      if (start !== undefined) this.pids.push({ pid: p.pid, start });
    }
    return this.json;
  }

  /**
   * `sluice lab start|stop|restart NAME --json`: what it printed. The lab's JSON is read again
   * from lab.json (new PIDs), and every new PID is kept for `down`'s check.
   */
  change(what: 'start' | 'stop' | 'restart', instance: string, kill = false): LabChange {
    const out = execFileSync(
      process.execPath,
      [
        cliPath,
        'lab',
        what,
        instance,
        '--json',
        '--name',
        this.name,
        '--dir',
        this.dir,
        ...(kill ? ['--kill'] : []),
      ],
      { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 },
    );
    const state = JSON.parse(readFileSync(join(this.dir, this.name, 'lab.json'), 'utf8')) as {
      summary: LabJson;
    };
    this.json = { ...this.json!, instances: state.summary.instances, spares: state.summary.spares };
    for (const p of this.json.instances) {
      const start = startTimeOf(p.pid);
      if (start !== undefined && !this.pids.some((q) => q.pid === p.pid))
        this.pids.push({ pid: p.pid, start });
    }
    return JSON.parse(out) as LabChange;
  }

  /** The namespace of instance `name` (running, stopped or spare). */
  namespaceOf(name: string): string {
    return `sllab-${this.name}-${name}`;
  }

  /** The sum of every series of metric `name` instance `ns` reports (matching `labels`, a substring). */
  metric(ns: string, name: string, labels = ''): number {
    const text = nsExec(ns, 'curl', '-s', '-m', '5', 'http://127.0.0.1:9180/metrics');
    let n = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith(name) || !(line[name.length] === '{' || line[name.length] === ' ')) continue;
      if (labels !== '' && !line.includes(labels)) continue;
      n += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return n;
  }

  /** The lab's own record of every process it started (lab.json). */
  processes(): { role: string; pid: number; start: number }[] {
    const path = join(this.dir, this.name, 'lab.json');
    if (!existsSync(path)) return [];
    return (
      JSON.parse(readFileSync(path, 'utf8')) as { processes: { role: string; pid: number; start: number }[] }
    ).processes;
  }

  /** `sluice lab down`, then a check that nothing of the lab is left; idempotent. */
  down(): { processes: number; namespaces: number } {
    const recorded = [...this.pids, ...this.processes()];
    const out = execFileSync(
      process.execPath,
      [cliPath, 'lab', 'down', '--json', '--name', this.name, '--dir', this.dir],
      { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 },
    );
    // Whatever `down` missed is ended here, by PID (and start time), before the test fails.
    const left = recorded.filter(alive);
    for (const p of left) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    const namespaces = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter((n) => n.startsWith(`sllab-${this.name}-`));
    for (const n of namespaces) {
      try {
        execFileSync('ip', ['netns', 'del', n]);
      } catch {
        /* raced */
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    if (left.length > 0) throw new Error(`lab down left processes ${left.map((p) => p.pid).join(', ')}`);
    if (namespaces.length > 0) throw new Error(`lab down left namespaces ${namespaces.join(', ')}`);
    return JSON.parse(out) as { processes: number; namespaces: number };
  }

  /** The JSON lines of instance `name`'s log. */
  instanceLog(name: string): Record<string, unknown>[] {
    return readFileSync(join(this.dir, this.name, name, 'sluice.log'), 'utf8')
      .split('\n')
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  }

  /** The client ports of the live flows instance `ns` carries on frontend port `port`. */
  flowPorts(ns: string, port: number): number[] {
    const body = nsExec(ns, 'curl', '-s', '-m', '5', 'http://127.0.0.1:9180/sluice/v1/flows?limit=1000');
    const flows = (JSON.parse(body) as { flows: { client: string; frontend: string }[] }).flows;
    const portOf = (endpoint: string): number => Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
    return flows.filter((f) => portOf(f.frontend) === port).map((f) => portOf(f.client));
  }

  /** Flows created by instance `ns` (sluice_flow_created_total, every rule). */
  flowsCreated(ns: string): number {
    const text = nsExec(ns, 'curl', '-s', '-m', '5', 'http://127.0.0.1:9180/metrics');
    let n = 0;
    for (const line of text.split('\n'))
      if (line.startsWith('sluice_flow_created_total{')) n += Number(line.split(' ')[1]);
    return n;
  }
}

/** A pool-client.ts inside a namespace, driven by JSON commands. */
export class PoolClient {
  private readonly child: ChildProcess;
  private readonly lines: Record<string, unknown>[] = [];
  private readonly waiters = new Set<() => void>();
  readonly stderr: string[] = [];

  constructor(ns: string) {
    this.child = spawn(
      'ip',
      ['netns', 'exec', ns, process.execPath, join(repoRoot, 'dist/test/helpers/pool-client.js'), 'run'],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      this.lines.push(JSON.parse(l) as Record<string, unknown>);
      for (const w of this.waiters) w();
    });
    createInterface({ input: this.child.stderr! }).on('line', (l) => this.stderr.push(l));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Sends a command and waits (at most `ms`) for the answer `ev`. */
  command(cmd: Record<string, unknown>, ev: string, ms = 30_000): Promise<Record<string, unknown>> {
    const seen = this.lines.length;
    this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = this.lines.slice(seen).find((l) => l.ev === ev);
        if (hit === undefined) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(hit);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no ${ev} within ${ms} ms; stderr: ${this.stderr.join(' | ')}`));
      }, ms);
      this.waiters.add(check);
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin!.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(t);
  }
}

/** What `sluice lab start|stop|restart --json` prints. */
export interface LabChange {
  name: string;
  pid?: number;
  stoppedMs?: number;
  startedMs?: number;
}

export interface ConnResult {
  id: number;
  port: number;
  ok: boolean;
  error?: string;
  rounds?: number;
  brokenAtMs?: number;
  maxRttMs?: number;
  afterMs?: number;
}
