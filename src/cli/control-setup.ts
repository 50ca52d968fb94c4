/**
 * How `sluice run` sets up its control plane: where the initial configuration comes from (stored state or
 * the CONFIG file), the resource store, and the HTTP API. Kept apart from run.ts so that the
 * command reads as a sequence: options, initial state, data plane, API.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { validateDocument, type ValidationResult } from '../config/index.js';
import {
  isLoopback,
  buildApi,
  parseApiAddress,
  DEFAULT_API_PORT,
  type ControlRuntime,
  type StateStoreHealth,
} from '../control/server.js';
import type { EndedFlow, EventHub } from '../control/events.js';
import type { AdvanceResponse, ClockView } from '../control/routes/clock.js';
import type { HealthView, MemberRef, ProbeMarkResult, Verdict } from '../control/routes/health.js';
import { parseAllowedHost } from '../control/host.js';
import { STATE_FILE, readState, removeStaleTemps, stateDirProblem, writeState } from '../control/state.js';
import type { EtcdState } from '../control/state-etcd.js';
import { parseStateUrl, type EtcdLocation } from '../control/state-url.js';
import { ResourceStore, resourcesOfDocument } from '../control/store.js';
import type { LiveRuntime } from '../control/overview.js';
import type { ApiShareRefusal, BudgetPlan } from '../core/budget.js';
import { SluiceError, type Diagnostic } from '../core/errors.js';
import type { FlowInfo } from '../core/events.js';
import type { RuntimeSnapshot } from '../core/snapshot.js';
import type { SluiceMetrics } from '../metrics/metrics.js';
import {
  EXIT_INVALID,
  EXIT_OK,
  EXIT_USAGE,
  formatDiagnostic,
  inputsLabel,
  loadConfig,
  reportDiagnostics,
  type LoadedConfig,
  unservedLines,
} from './options.js';
import { loadSharedState, watchSharedState } from './state-etcd-setup.js';
import { chooseToken } from './token.js';
import { isIP } from 'node:net';
import { join } from 'node:path';

export const DEFAULT_API = `127.0.0.1:${DEFAULT_API_PORT}`;
export const DEFAULT_STATE_DIR = '.sluice';
/** How long a start waits for a shared state store that does not answer. */
export const DEFAULT_STATE_WAIT_S = 60;

export interface ControlCliOptions {
  api?: string;
  apiToken?: string;
  apiTokenFile?: string;
  apiAllowHost?: string[];
  stateDir?: string;
  state?: string;
  stateWait?: string;
  map?: string[];
}

export interface ControlPlan {
  readonly api: { readonly host: string; readonly port: number } | 'off';
  /** `--api` was given: failing to serve it stops Sluice. The default only warns, so that a
   * second `sluice run` on one machine still runs its load balancer. */
  readonly apiExplicit: boolean;
  readonly token: string | undefined;
  /** Names and addresses a request's Host may give besides the API's own address and localhost. */
  readonly allowedHosts: readonly string[];
  readonly stateDir: string;
  /** `--state etcd://...`: the desired state is shared with other instances there, not kept in stateDir. */
  readonly etcd?: EtcdLocation;
  /** Real milliseconds a start waits for the shared state store (`--state-wait`). */
  readonly stateWaitMs: number;
  readonly map: readonly string[];
}

/** Checks the control plane's options; a string is a usage error to print. */
export function planControl(
  opts: ControlCliOptions,
  env: NodeJS.ProcessEnv = process.env,
): ControlPlan | string {
  const api = parseApiAddress(opts.api ?? DEFAULT_API);
  if (api !== 'off' && 'error' in api) return api.error;
  const chosen = chooseToken({
    token: opts.apiToken,
    tokenFlag: '--api-token',
    file: opts.apiTokenFile,
    fileFlag: '--api-token-file',
    env,
  });
  if ('error' in chosen) return chosen.error;
  const token = chosen.token;
  if (api !== 'off' && !isLoopback(api.host) && token === undefined)
    return (
      `--api ${api.host}:${api.port} is not a loopback address: give --api-token-file (or --api-token), ` +
      'or set SLUICE_API_TOKEN_FILE (or SLUICE_API_TOKEN) [SLUICE_API_TOKEN_REQUIRED]'
    );
  const allowedHosts = [...(opts.apiAllowHost ?? [])];
  for (const h of allowedHosts) {
    const parsed = parseAllowedHost(h);
    if (typeof parsed === 'string') return parsed;
  }
  // The name `--api` was given by is one a client will use (the address it resolved to is served anyway).
  if (api !== 'off' && isIP(api.host) === 0 && typeof parseAllowedHost(api.host) !== 'string')
    allowedHosts.push(api.host);
  if (opts.state !== undefined && opts.stateDir !== undefined)
    return `--state ${opts.state} and --state-dir ${opts.stateDir}: give one (the desired state is kept in one place)`;
  const etcd = opts.state === undefined ? undefined : parseStateUrl(opts.state);
  if (typeof etcd === 'string') return etcd;
  const waitText = opts.stateWait ?? String(DEFAULT_STATE_WAIT_S);
  const wait = Number(waitText);
  if (!/^\d+(\.\d+)?$/.test(waitText) || !(wait <= 86_400))
    return `--state-wait expects seconds from 0 to 86400, got '${waitText}'`;
  if (opts.stateWait !== undefined && etcd === undefined)
    return '--state-wait is for a shared state store: give --state etcd://HOST:PORT/PREFIX';
  return {
    api,
    apiExplicit: opts.api !== undefined,
    token,
    allowedHosts,
    stateDir: opts.stateDir ?? DEFAULT_STATE_DIR,
    ...(etcd !== undefined ? { etcd } : {}),
    stateWaitMs: wait * 1000,
    map: opts.map ?? [],
  };
}

/**
 * A snapshot made ready for the data plane: what it serves of it (all of it, or with `partial`
 * what it can, with a warning per item left out), or the problems that refuse it.
 */
export interface PreparedSnapshot {
  readonly snapshot: RuntimeSnapshot;
  readonly warnings: readonly string[];
  readonly problems: readonly string[];
}

/** Prepares by refusing whatever `unsupported` names (`--strict`, and planes with no `partial`). */
export function refuseUnsupported(
  unsupported: (snapshot: RuntimeSnapshot) => readonly string[],
): (snapshot: RuntimeSnapshot) => PreparedSnapshot {
  return (snapshot) => ({ snapshot, warnings: [], problems: unsupported(snapshot) });
}

/** What `sluice run` needs of the running load balancer to serve the API. */
export interface ControlledApp {
  readonly engine: { flows(): readonly FlowInfo[] };
  readonly plane: { listening(): string[] };
  readonly events: EventHub;
  readonly metrics: SluiceMetrics;
  readonly timeScale: number;
  /** What the live page shows beyond flows and events. */
  readonly live: LiveRuntime;
  /** The API's shares of descriptors: connections, and event streams among them. */
  readonly budget: Pick<BudgetPlan, 'apiConnections' | 'eventStreams'>;
  apply(snapshot: RuntimeSnapshot, generation: number): Promise<void>;
  /** Logs a warning about what a configuration change serves. */
  warn(message: string): void;
  labelsOf(ruleId: string): { lb: string; rule: string };
  /** Counts (and logs) an API connection or event stream refused for want of room. */
  apiRefused(reason: ApiShareRefusal): void;
  clockView(): ClockView;
  advanceClock(ms: number): Promise<AdvanceResponse>;
  expireFlow(flowId: number): Promise<EndedFlow | undefined>;
  healthView(): HealthView[];
  markProbe(ref: MemberRef, verdict: Verdict | undefined): ProbeMarkResult;
}

/** Where the state a start serves came from. */
export type StateSource = 'config' | 'stored' | 'empty';

export interface InitialState {
  readonly exit: number;
  readonly result: ValidationResult;
  readonly store: ResourceStore;
  readonly source: StateSource;
  /** The `--map` arguments in force (given, or stored with the state). */
  readonly map: readonly string[];
  /** Binds the store to the running load balancer once it has started (and follows a shared store). */
  bind(app: ControlledApp, logger: Logger): void;
  /** Where the state is kept and whether it answers (/healthz). */
  health(): StateStoreHealth;
  /** Lets go of the state store (a shared store's connection); the store takes no more changes. */
  close(): Promise<void>;
}

/**
 * The configuration to start with. CONFIG files given on the command line are the desired
 * state: they replace what `--state-dir` holds (written there at once, so a restart without them
 * serves the same), and one that cannot be read stops the start (exit 2) whatever is stored: an
 * explicit CONFIG is never silently set aside. Without CONFIG the stored state is served (what
 * the API last made of the load balancer); with neither, an empty load balancer the API can
 * fill, unless the API is off. With `--state etcd://...` the state is the one the pool shares
 * (state-etcd-setup.ts says how a CONFIG is written there).
 */
export async function loadInitialState(
  files: string | readonly string[] | undefined,
  plan: ControlPlan,
  prepare: (snapshot: RuntimeSnapshot) => PreparedSnapshot,
): Promise<InitialState> {
  let app: ControlledApp | undefined;
  // The etcd client (gRPC) is loaded only when asked for: every other command starts without it.
  const shared: EtcdState | undefined =
    plan.etcd === undefined ? undefined : new (await import('../control/state-etcd.js')).EtcdState(plan.etcd);
  const store = new ResourceStore({
    // The store holds every resource it serves: a public IP it does not hold is an error there.
    // `--map` given wins over the mappings stored with the state (in a shared store, for this
    // instance alone: they are written there only with a CONFIG).
    compile: (doc, stored) =>
      validateDocument(doc, { map: plan.map.length > 0 ? plan.map : stored, outsideReferences: 'error' }),
    apply: async (snapshot, generation) => {
      const prepared = prepare(snapshot);
      if (prepared.problems.length > 0)
        throw new SluiceError('SLUICE_PLANE_UNSUPPORTED', prepared.problems.join('; '));
      if (app === undefined)
        throw new SluiceError('SLUICE_API_INTERNAL', 'the load balancer is not running yet');
      for (const w of prepared.warnings) app.warn(w);
      await app.apply(prepared.snapshot, generation);
    },
    persist:
      shared === undefined
        ? (state) => writeState(plan.stateDir, state)
        : (state, basis) => shared.write(state, basis),
    ...(shared === undefined ? {} : { writable: () => shared.writable() }),
    rejected: () => app?.metrics.configApplied('invalid'),
  });
  const inputs = files === undefined ? [] : typeof files === 'string' ? [files] : files;
  let source: StateSource = 'empty';
  let map: readonly string[] = plan.map;
  let watchFrom = 0;
  const done = (exit: number, result: ValidationResult): InitialState => ({
    exit,
    result,
    store,
    source,
    map,
    bind: (a, logger) => {
      app = a;
      app.metrics.stateStore(shared === undefined || shared.status.up);
      app.metrics.stateGeneration(store.storedGeneration);
      if (shared !== undefined) watchSharedState(shared, store, a, logger, watchFrom);
    },
    health: () => {
      if (shared === undefined)
        return { kind: 'file', location: plan.stateDir, up: true, generation: store.storedGeneration };
      const s = shared.status;
      return {
        kind: 'etcd',
        location: shared.location.url,
        up: s.up,
        since: new Date(s.since).toISOString(),
        ...(s.reason !== undefined && !s.up ? { reason: s.reason } : {}),
        generation: store.storedGeneration,
      };
    },
    close: async () => {
      await shared?.close();
    },
  });
  const fail = async (d: Diagnostic[]): Promise<InitialState> => {
    await shared?.close();
    return done(EXIT_INVALID, { valid: false, errors: d, warnings: [] });
  };
  const end = async (exit: number, result: ValidationResult): Promise<InitialState> => {
    if (exit !== EXIT_OK) await shared?.close();
    return done(exit, result);
  };

  // The files first: one that cannot be read or is invalid ends the start, whatever is stored.
  let config: LoadedConfig | undefined;
  if (inputs.length > 0) {
    config = await loadConfig(inputs, plan.map);
    reportDiagnostics(config.result);
    if (config.exit !== EXIT_OK) return end(config.exit, config.result);
    const unserved = config.result.snapshot === undefined ? [] : unservedLines(config.result.snapshot);
    if (unserved.length > 0) {
      for (const line of unserved) process.stderr.write(`sluice: ${line}\n`);
      return end(EXIT_INVALID, config.result);
    }
  }
  if (shared !== undefined) {
    const start = await loadSharedState(shared, store, plan, config, inputs);
    source = start.source;
    map = start.map;
    watchFrom = start.watchFrom;
    return end(start.exit, start.result);
  }
  const statePath = join(plan.stateDir, STATE_FILE);
  const dirProblem = await stateDirProblem(plan.stateDir);
  if (dirProblem !== undefined)
    process.stderr.write(`sluice: warning: ${dirProblem} [SLUICE_STATE_DIR_WRITABLE]\n`);
  let stored;
  try {
    await removeStaleTemps(plan.stateDir);
    stored = await readState(plan.stateDir);
  } catch (err) {
    if (!(err instanceof SluiceError)) throw err;
    process.stderr.write(`sluice: ${err.message} [${err.code}]\n`);
    return fail([]);
  }
  if (config !== undefined) {
    source = 'config';
    const generation = stored === undefined ? 0 : stored.generation + 1;
    const resources = resourcesOfDocument(config.json);
    const contents = { generation, resources, ...(map.length > 0 ? { map } : {}) };
    const seeded = store.load(contents);
    if (!seeded.valid) {
      reportDiagnostics(seeded);
      return done(EXIT_INVALID, seeded);
    }
    if (stored !== undefined) {
      // Written now, before anything is served: the stored state no longer says what runs.
      try {
        await writeState(plan.stateDir, contents);
      } catch (err) {
        if (!(err instanceof SluiceError)) throw err;
        process.stderr.write(`sluice: ${err.message} [${err.code}]\n`);
        return fail([]);
      }
      process.stderr.write(
        `sluice: ${inputsLabel(inputs)} replaces the state stored in ${statePath} (generation ${generation}); run without CONFIG to serve the stored state\n`,
      );
    }
    return done(EXIT_OK, seeded);
  }
  if (stored !== undefined) {
    source = 'stored';
    if (plan.map.length === 0 && stored.map !== undefined) {
      map = stored.map;
      process.stderr.write(
        `sluice: serving the stored state with its mappings: --map ${map.join(' --map ')}\n`,
      );
    }
    // `--map` given replaces the stored mappings: the next write stores them.
    const result = store.load(plan.map.length > 0 ? { ...stored, map: plan.map } : stored);
    if (!result.valid) {
      process.stderr.write(
        `sluice: the resources stored in ${statePath} are not a valid configuration; nothing of it was applied [SLUICE_STATE_INVALID]\n`,
      );
      for (const e of result.errors) process.stderr.write(`${statePath}: ${formatDiagnostic(e)}\n`);
      return fail([...result.errors]);
    }
    reportDiagnostics({ ...result, errors: [] });
    return done(EXIT_OK, result);
  }
  if (plan.api === 'off') {
    process.stderr.write('sluice run: give a CONFIG file, a --state-dir with stored state, or an API\n');
    return done(EXIT_USAGE, { valid: false, errors: [], warnings: [] });
  }
  return done(EXIT_OK, store.load({ generation: 0, resources: [], ...(map.length > 0 ? { map } : {}) }));
}

/** What the API reads and drives of the running load balancer. */
export function controlRuntimeOf(app: ControlledApp): ControlRuntime {
  return {
    live: app.live,
    flows: () => app.engine.flows(),
    labelsOf: (id) => app.labelsOf(id),
    subscribe: (l) => app.events.subscribe(l),
    listening: () => app.plane.listening(),
    timeScale: app.timeScale,
    clock: () => app.clockView(),
    advance: (ms) => app.advanceClock(ms),
    expireFlow: (id) => app.expireFlow(id),
    health: () => app.healthView(),
    markProbe: (ref, verdict) => app.markProbe(ref, verdict),
  };
}

export interface RunningApi {
  /** Where the API listens, `host:port`. */
  readonly address: string;
  close(): Promise<void>;
}

/** Starts the API for `app`; a string is an error to print (the port is taken...). */
export async function startApi(
  plan: ControlPlan,
  initial: InitialState,
  app: ControlledApp,
  logger: Logger,
): Promise<RunningApi | undefined | string> {
  initial.bind(app, logger);
  if (plan.api === 'off') return undefined;
  let server: FastifyInstance;
  try {
    server = await buildApi({
      store: initial.store,
      stateStore: () => initial.health(),
      registry: app.metrics.registry,
      token: plan.token,
      allowedHosts: plan.allowedHosts,
      logger,
      maxConnections: app.budget.apiConnections,
      maxEventStreams: app.budget.eventStreams,
      refused: (reason) => app.apiRefused(reason),
      runtime: controlRuntimeOf(app),
    });
    await server.listen({ host: plan.api.host, port: plan.api.port });
  } catch (err) {
    const why = `cannot serve the API on ${plan.api.host}:${plan.api.port}: ${(err as Error).message} [SLUICE_API_LISTEN]`;
    if (plan.apiExplicit) return why;
    logger.warn({ code: 'SLUICE_API_LISTEN' }, `${why}; running without an API (give --api ADDR:PORT)`);
    return undefined;
  }
  const a = server.server.address();
  const address =
    typeof a === 'object' && a !== null
      ? `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`
      : String(a);
  return { address, close: () => server.close() };
}
