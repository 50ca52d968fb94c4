/**
 * `sluice lab up` and `sluice lab down`: a pool of Sluice instances behind an FRR router, in
 * network namespaces, built and removed in one command each. What `up` built is written to
 * `DIR/NAME/lab.json` as it goes (namespaces, and every process by PID and start time), so
 * `down` removes exactly that, and an `up` that fails half-way takes back what it had built.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SluiceError } from '../core/errors.js';
import { packetPlaneUnavailable } from '../dataplane/packet/tun.js';
import { findExecutable, speakerUnavailable } from '../pool/bird-speaker.js';
import { FRR_DAEMONS, FRR_DIR, frrArgs, frrConfigs } from './frr.js';
import { buildNetwork, listNamespaces, routerNextHops, run } from './network.js';
import {
  ECMP_TIMERS,
  INSTANCE_AS,
  LAB_PORTS,
  RESILIENT_TABLE,
  ROUTER_AS,
  labDocument,
  namespacePrefix,
  namespacesOf,
  planLab,
  routerSettleS,
  type InstancePlan,
  type LabOptions,
  type LabPlan,
} from './plan.js';
import { alive, pidsIn, signal, startIn, stopAll, type LabProcess } from './processes.js';

export const DEFAULT_LAB_DIR = '/run/sluice-lab';
const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** What `lab.json` holds. */
export interface LabState {
  readonly name: string;
  readonly createdAt: string;
  readonly options: LabOptions;
  readonly namespaces: string[];
  readonly processes: LabProcess[];
  /** What `up` printed (with --json). */
  summary?: LabSummary;
}

export interface LabSummary {
  readonly name: string;
  readonly frontend: string;
  readonly ports: { readonly echo: number; readonly http: number; readonly echoDrop: number };
  readonly client: { readonly namespace: string; readonly address: string };
  readonly router: {
    readonly namespace: string;
    readonly as: number;
    readonly ecmp: string;
    readonly vtysh: string;
    readonly resilientTable?: number;
  };
  readonly instances: {
    readonly name: string;
    readonly namespace: string;
    readonly pid: number;
    readonly address: string;
    readonly as: number;
    readonly api: string;
    readonly log: string;
  }[];
  readonly backends: {
    readonly name: string;
    readonly namespace: string;
    readonly address: string;
    readonly pid: number;
  }[];
  /** Instances built but not started (`--spares`): `sluice lab start NAME` starts one. */
  readonly spares: { readonly name: string; readonly namespace: string; readonly address: string }[];
  /** etcd's client URL, null when the lab runs none. */
  readonly etcd: string | null;
  /** Whether the instances take their desired state from etcd (`sluice run --state`). */
  readonly etcdState: boolean;
  readonly dir: string;
}

function statePath(dir: string): string {
  return `${dir}/lab.json`;
}

export function readLabState(baseDir: string, name: string): LabState | undefined {
  const path = statePath(`${baseDir.replace(/\/+$/, '')}/${name}`);
  if (!existsSync(path)) return undefined;
  return JSON.parse(readFileSync(path, 'utf8')) as LabState;
}

function labError(message: string): SluiceError {
  return new SluiceError('SLUICE_HOST_LAB', message);
}

/** Why a lab cannot be built here, or undefined. */
export function labUnavailable(options: Pick<LabOptions, 'etcd'>): string | undefined {
  if (process.platform !== 'linux') return 'sluice lab needs Linux (network namespaces)';
  if (process.getuid?.() !== 0) return 'sluice lab needs root (network namespaces, TUN devices)';
  for (const tool of ['ip', 'nft'])
    if (findExecutable(tool) === undefined) return `'${tool}' is missing (iproute2, nftables)`;
  for (const d of FRR_DAEMONS)
    if (!existsSync(`${FRR_DIR}/${d}`))
      return `FRR's ${d} is missing (${FRR_DIR}/${d}: install the frr package)`;
  const bird = speakerUnavailable('bird');
  if (bird !== undefined) return bird;
  const plane = packetPlaneUnavailable();
  if (plane !== undefined) return plane;
  if (options.etcd && findExecutable('etcd') === undefined)
    return 'etcd is missing (the etcd-server package), or run with --no-etcd';
  return undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(what: string, ms: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw labError(`${what}: not within ${ms / 1000} s`);
    await sleep(100);
  }
}

/** The JSON lines of a log file (pino's), skipping what is not JSON. */
function jsonLines(path: string): Record<string, unknown>[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}

class Build {
  readonly state: LabState;
  constructor(readonly plan: LabPlan) {
    this.state = {
      name: plan.options.name,
      createdAt: new Date().toISOString(),
      options: plan.options,
      namespaces: [],
      processes: [],
    };
  }

  save(): void {
    writeFileSync(statePath(this.plan.dir), `${JSON.stringify(this.state, null, 2)}\n`);
  }

  started(p: LabProcess): LabProcess {
    this.state.processes.push(p);
    this.save();
    return p;
  }
}

/** Builds the lab; on failure takes back everything it built and throws SLUICE_HOST_LAB. */
export async function labUp(options: LabOptions): Promise<LabSummary> {
  const why = labUnavailable(options);
  if (why !== undefined) throw labError(why);
  const plan = planLab(options);
  const existing = readLabState(options.baseDir, options.name);
  if (existing !== undefined) {
    if (existing.processes.some(alive) || existing.namespaces.some((n) => listNamespaces().includes(n)))
      throw labError(
        `a lab named '${options.name}' is up: sluice lab down${options.name === 'lab' ? '' : ` --name ${options.name}`} first`,
      );
    await labDown(options.baseDir, options.name);
  }
  const clash = listNamespaces().find((n) => n.startsWith(plan.prefix));
  if (clash !== undefined)
    throw labError(
      `namespace ${clash} exists already: sluice lab down${options.name === 'lab' ? '' : ` --name ${options.name}`} removes it`,
    );
  mkdirSync(plan.dir, { recursive: true, mode: 0o755 });
  const closed = unsearchable(plan.dir);
  if (closed !== undefined)
    throw labError(
      `${closed} cannot be entered by other users, and FRR's daemons run as user frr: choose a --dir they can reach`,
    );
  const build = new Build(plan);
  build.save();
  try {
    return await buildLab(plan, build);
  } catch (err) {
    await labDown(options.baseDir, options.name);
    if (err instanceof SluiceError) throw err;
    throw labError(`building the lab failed, everything was taken back: ${(err as Error).message}`);
  }
}

async function buildLab(plan: LabPlan, build: Build): Promise<LabSummary> {
  const o = plan.options;
  buildNetwork(plan, (ns) => {
    build.state.namespaces.push(ns);
    build.save();
  });
  const config = `${plan.dir}/lb.json`;
  writeFileSync(config, `${JSON.stringify(labDocument(plan), null, 2)}\n`);

  // The router: zebra first (the others connect to it), then bfdd and bgpd, as user frr.
  const r = plan.router;
  mkdirSync(r.dir, { recursive: true });
  const frr = frrConfigs(plan);
  const frrIds = frrUser();
  for (const d of FRR_DAEMONS) writeFileSync(`${r.dir}/${d}.conf`, frr[d]);
  for (const path of [r.dir, ...FRR_DAEMONS.map((d) => `${r.dir}/${d}.conf`)])
    chownSync(path, frrIds.uid, frrIds.gid);
  for (const d of FRR_DAEMONS) {
    build.started(
      startIn(`router:${d}`, r.namespace, `${FRR_DIR}/${d}`, frrArgs(plan, d), `${r.dir}/${d}.log`),
    );
    if (d === 'zebra')
      await waitFor(`the router's zebra listening (see ${r.dir}/zebra.log)`, 10_000, () =>
        existsSync(`${r.dir}/zserv.api`),
      );
  }
  if (o.ecmp === 'resilient')
    build.started(
      startIn(
        'router:ecmp-sync',
        r.namespace,
        process.execPath,
        [
          CLI,
          'lab',
          'ecmp-sync',
          '--table',
          String(RESILIENT_TABLE),
          '--idle-timer',
          String(o.ecmpIdleTimerS ?? ECMP_TIMERS.idleTimerS),
          '--unbalanced-timer',
          String(o.ecmpUnbalancedTimerS ?? ECMP_TIMERS.unbalancedTimerS),
        ],
        `${r.dir}/ecmp-sync.log`,
      ),
    );

  let etcdState = false;
  if (plan.etcd) {
    const e = plan.etcd;
    mkdirSync(e.dir, { recursive: true, mode: 0o700 });
    build.started(
      startIn(
        'etcd',
        e.namespace,
        'etcd',
        [
          '--name',
          'lab',
          '--data-dir',
          `${e.dir}/data`,
          '--listen-client-urls',
          e.url,
          '--advertise-client-urls',
          e.url,
          '--listen-peer-urls',
          'http://127.0.0.1:2380',
          '--initial-advertise-peer-urls',
          'http://127.0.0.1:2380',
          '--initial-cluster',
          'lab=http://127.0.0.1:2380',
        ],
        `${e.dir}/etcd.log`,
      ),
    );
    // The hook for one desired state in etcd: the caller says whether `sluice run` has --state.
    etcdState = o.etcdState;
  }

  const backends = plan.backends.map((b) =>
    build.started(
      startIn(
        `backend:${b.name}`,
        b.namespace,
        process.execPath,
        [
          CLI,
          'lab',
          'backend',
          '--name',
          b.name,
          '--echo-port',
          String(LAB_PORTS.echo),
          '--http-port',
          String(LAB_PORTS.http),
        ],
        `${plan.dir}/${b.name}.log`,
      ),
    ),
  );

  // With etcd, the first instance writes the document there and the others serve what it holds
  // (instances given the same CONFIG at the same moment would race to write it).
  const startOne = (i: InstancePlan, first: boolean): LabProcess =>
    build.started(startInstance(plan, i, first, etcdState));
  const started = plan.instances.filter((i) => !i.spare);
  const [firstPlan, ...restPlans] = started;
  const first = startOne(firstPlan!, true);
  if (etcdState) await instanceReady(firstPlan!, first);
  const instances = [first, ...restPlans.map((i) => startOne(i, false))];
  for (const [k, p] of instances.entries()) await instanceReady(started[k]!, p);
  // Ready when the router spreads the frontend over every instance.
  const table = o.ecmp === 'resilient' ? RESILIENT_TABLE : undefined;
  await waitFor(`the router's ${started.length}-way route to ${plan.frontend}`, 60_000, () => {
    for (const p of build.state.processes) if (!alive(p)) throw labError(`${p.role} exited: ${tail(p.log)}`);
    return routerNextHops(r.namespace, plan.frontend, table).length === started.length;
  });

  const summary: LabSummary = {
    name: o.name,
    frontend: plan.frontend,
    ports: { echo: LAB_PORTS.echo, http: LAB_PORTS.http, echoDrop: LAB_PORTS.echoDrop },
    client: { namespace: plan.client.namespace, address: plan.client.address },
    router: {
      namespace: r.namespace,
      as: ROUTER_AS,
      ecmp: o.ecmp,
      vtysh: `vtysh --vty_socket ${r.dir}`,
      ...(table !== undefined ? { resilientTable: table } : {}),
    },
    instances: started.map((i, k) => instanceSummary(i, instances[k]!.pid)),
    backends: plan.backends.map((b, k) => ({
      name: b.name,
      namespace: b.namespace,
      address: b.address,
      pid: backends[k]!.pid,
    })),
    spares: plan.instances
      .filter((i) => i.spare)
      .map((i) => ({ name: i.name, namespace: i.namespace, address: i.address })),
    etcd: plan.etcd?.url ?? null,
    etcdState,
    dir: plan.dir,
  };
  build.state.summary = summary;
  build.save();
  return summary;
}

function instanceSummary(i: InstancePlan, pid: number): LabSummary['instances'][number] {
  return {
    name: i.name,
    namespace: i.namespace,
    pid,
    address: i.address,
    as: INSTANCE_AS,
    api: 'http://127.0.0.1:9180',
    log: `${i.dir}/sluice.log`,
  };
}

/** The command line of instance `i`: `first` writes the document to etcd (or, without etcd, each has it). */
function instanceArgs(plan: LabPlan, i: InstancePlan, first: boolean, etcdState: boolean): string[] {
  const o = plan.options;
  const stateUrl = etcdState && plan.etcd ? `etcd://${plan.etcd.address}:2379/sluice-lab` : undefined;
  const settle = routerSettleS(o);
  return [
    CLI,
    'run',
    ...(stateUrl === undefined || first ? [`${plan.dir}/lb.json`] : []),
    '--dataplane',
    'packet',
    '--configure-host',
    ...(stateUrl !== undefined ? ['--state', stateUrl] : ['--state-dir', `${i.dir}/state`]),
    '--api',
    '127.0.0.1:9180',
    '--bgp',
    i.gateway,
    '--bgp-as',
    String(INSTANCE_AS),
    '--bgp-peer-as',
    String(ROUTER_AS),
    '--bgp-bfd',
    String(o.bfdMs),
    '--bgp-dir',
    `${i.dir}/bgp`,
    ...(settle > 0 ? ['--pool-settle', String(settle)] : []),
    ...(o.timeScale !== 1 ? ['--time-scale', String(o.timeScale)] : []),
  ];
}

function startInstance(plan: LabPlan, i: InstancePlan, first: boolean, etcdState: boolean): LabProcess {
  mkdirSync(i.dir, { recursive: true, mode: 0o700 });
  return startIn(
    `instance:${i.name}`,
    i.namespace,
    process.execPath,
    instanceArgs(plan, i, first, etcdState),
    `${i.dir}/sluice.log`,
  );
}

/** Resolves once instance `i` (process `p`) logged `ready` since `from` (a line count of its log). */
async function instanceReady(i: InstancePlan, p: LabProcess, from = 0): Promise<void> {
  const log = `${i.dir}/sluice.log`;
  await waitFor(`instance ${i.name} ready (see ${log})`, 30_000, () => {
    if (!alive(p)) throw labError(`instance ${i.name} exited: ${tail(log)}`);
    return jsonLines(log)
      .slice(from)
      .some((l) => l.msg === 'ready');
  });
}

/** What `lab start`, `lab stop` and `lab restart` did. */
export interface LabInstanceChange {
  readonly name: string;
  readonly pid?: number;
  /** How long the stop took (ms): a graceful stop withdraws and serves on until traffic has moved. */
  readonly stoppedMs?: number;
  /** How long the start took until the router spread the frontend over the instance too (ms). */
  readonly startedMs?: number;
}

function labInstance(
  baseDir: string,
  name: string,
  instance: string,
): { state: LabState; plan: LabPlan; i: InstancePlan } {
  const state = readLabState(baseDir, name);
  if (state === undefined) throw labError(`no lab named '${name}' is up`);
  const plan = planLab(state.options);
  const i = plan.instances.find((x) => x.name === instance);
  if (i === undefined)
    throw labError(
      `the lab has no instance '${instance}' (it has ${plan.instances.map((x) => x.name).join(', ')})`,
    );
  return { state, plan, i };
}

function running(state: LabState, instance: string): LabProcess | undefined {
  return state.processes.find((p) => p.role === `instance:${instance}` && alive(p));
}

function saveState(plan: LabPlan, state: LabState): void {
  writeFileSync(statePath(plan.dir), `${JSON.stringify(state, null, 2)}\n`);
}

/**
 * Starts instance `instance` of a lab that is up (a spare, or one stopped before), with the
 * command line `lab up` gives it, and waits until the router spreads the frontend over it too.
 */
export async function labStart(baseDir: string, name: string, instance: string): Promise<LabInstanceChange> {
  const { state, plan, i } = labInstance(baseDir, name, instance);
  if (running(state, instance) !== undefined) throw labError(`instance ${instance} runs already`);
  const t0 = Date.now();
  const lines = jsonLines(`${i.dir}/sluice.log`).length;
  const p = startInstance(plan, i, false, state.summary?.etcdState ?? false);
  state.processes.push(p);
  if (state.summary !== undefined) {
    const others = state.summary.instances.filter((x) => x.name !== instance);
    state.summary = {
      ...state.summary,
      instances: [...others, instanceSummary(i, p.pid)].sort((a, b) =>
        a.name.localeCompare(b.name, 'en', { numeric: true }),
      ),
      spares: state.summary.spares.filter((x) => x.name !== instance),
    };
  }
  saveState(plan, state);
  await instanceReady(i, p, lines);
  const table = plan.options.ecmp === 'resilient' ? RESILIENT_TABLE : undefined;
  await waitFor(`the router's route to ${plan.frontend} via ${i.name}`, 30_000, () => {
    if (!alive(p)) throw labError(`instance ${i.name} exited: ${tail(p.log)}`);
    return routerNextHops(plan.router.namespace, plan.frontend, table).includes(i.address);
  });
  return { name: instance, pid: p.pid, startedMs: Date.now() - t0 };
}

/**
 * Stops instance `instance`: gracefully (SIGTERM: it withdraws, serves on until the traffic has
 * moved, and exits), or with `kill` at once (SIGKILL, as a crash).
 */
export async function labStop(
  baseDir: string,
  name: string,
  instance: string,
  kill = false,
): Promise<LabInstanceChange> {
  const { state, plan } = labInstance(baseDir, name, instance);
  const p = running(state, instance);
  if (p === undefined) throw labError(`instance ${instance} does not run`);
  const t0 = Date.now();
  if (kill) signal(p, 'SIGKILL');
  await stopAll([p], kill ? 0 : 20_000);
  if (state.summary !== undefined)
    state.summary = {
      ...state.summary,
      instances: state.summary.instances.filter((x) => x.name !== instance),
    };
  saveState(plan, state);
  return { name: instance, pid: p.pid, stoppedMs: Date.now() - t0 };
}

/** The first directory on the way to `dir` that other users cannot enter, if any. */
function unsearchable(dir: string): string | undefined {
  let path = '';
  for (const part of dir.split('/').filter((p) => p !== '')) {
    path += `/${part}`;
    if ((statSync(path).mode & 0o001) === 0) return path;
  }
  return undefined;
}

function tail(path: string): string {
  if (!existsSync(path)) return '(no log)';
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  return lines.slice(-3).join(' | ');
}

function frrUser(): { uid: number; gid: number } {
  const id = (flag: string): number => Number(execFileSync('id', [flag, 'frr'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw labError("the user 'frr' does not exist (install the frr package)");
  }
}

/**
 * Removes a lab: its instances first (a graceful stop: each withdraws its routes), then every
 * other process it recorded, any process still inside its namespaces (by PID), the namespaces
 * and its directory. Returns what it removed.
 */
export async function labDown(
  baseDir: string,
  name: string,
): Promise<{ processes: number; namespaces: number; found: boolean }> {
  const state = readLabState(baseDir, name);
  const prefix = namespacePrefix(name);
  const namespaces = new Set([
    ...(state?.namespaces ?? []),
    ...(state !== undefined ? namespacesOf(planLab(state.options)) : []),
    ...listNamespaces().filter((n) => n.startsWith(prefix)),
  ]);
  const recorded = state?.processes ?? [];
  const live = recorded.filter(alive);
  await stopAll(
    live.filter((p) => p.role.startsWith('instance:')),
    10_000,
  );
  await stopAll(
    live.filter((p) => !p.role.startsWith('instance:')),
    5_000,
  );
  // What the recorded processes started themselves (BIRD under each Sluice), by PID.
  const present = listNamespaces();
  const strays = [...namespaces]
    .filter((n) => present.includes(n))
    .flatMap((n) => pidsIn(n).map((pid) => ({ pid, ns: n })));
  for (const s of strays) {
    try {
      process.kill(s.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  if (strays.length > 0) await sleep(200);
  let removed = 0;
  for (const n of namespaces) {
    if (!present.includes(n)) continue;
    try {
      run('ip', ['netns', 'del', n]);
      removed++;
    } catch {
      /* raced */
    }
  }
  const dir = `${baseDir.replace(/\/+$/, '')}/${name}`;
  if (state !== undefined || existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  return {
    processes: live.length + strays.length,
    namespaces: removed,
    found: state !== undefined || removed > 0,
  };
}
