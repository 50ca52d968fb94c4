/**
 * How `sluice run --state etcd://...` starts from, and follows, the desired state a pool of
 * instances shares: wait for etcd (bounded), decide between CONFIG and what etcd holds, then
 * apply every generation another instance stores through the store's own path.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { ValidationResult } from '../config/index.js';
import type { EtcdState, StoredRead } from '../control/state-etcd.js';
import type { StateContents } from '../control/state.js';
import { StaleState, resourcesOfDocument, type ResourceStore } from '../control/store.js';
import { SluiceError } from '../core/errors.js';
import type { ControlPlan, ControlledApp, StateSource } from './control-setup.js';
import {
  EXIT_INVALID,
  EXIT_OK,
  formatDiagnostic,
  inputsLabel,
  reportDiagnostics,
  type LoadedConfig,
} from './options.js';

export interface SharedStart {
  readonly exit: number;
  readonly result: ValidationResult;
  readonly source: StateSource;
  /** The `--map` arguments in force. */
  readonly map: readonly string[];
  /** The etcd revision to watch from: nothing written after the read is missed. */
  readonly watchFrom: number;
}

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 2000;

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/**
 * The digest of a CONFIG and its `--map`: the same document given again (another instance of
 * the pool, or this one restarted) is recognised in the state it seeded.
 */
export function seedOf(document: unknown, map: readonly string[]): string {
  return `sha256:${createHash('sha256').update(JSON.stringify({ document, map })).digest('hex')}`;
}

/**
 * Reads etcd, retrying with backoff while it does not answer, for `waitMs` at most (one try
 * when 0). Each failed try is one line on stderr saying why and when the next one comes.
 */
async function firstRead(shared: EtcdState, waitMs: number): Promise<StoredRead | SluiceError> {
  const started = Date.now();
  for (let delay = FIRST_RETRY_MS; ; delay = Math.min(delay * 2, MAX_RETRY_MS)) {
    try {
      return await shared.read();
    } catch (err) {
      if (!(err instanceof SluiceError)) throw err;
      if (err.code !== 'SLUICE_STATE_STORE_UNAVAILABLE') return err;
      const waited = Date.now() - started;
      if (waited + delay > waitMs)
        return new SluiceError(
          err.code,
          `${err.message}; gave up after ${seconds(waited)} (--state-wait ${waitMs / 1000}); nothing is served`,
        );
      process.stderr.write(
        `sluice: waiting for the shared state store before serving anything: ${err.message}; next try in ${seconds(delay)} (waited ${seconds(waited)} of --state-wait ${waitMs / 1000}) [${err.code}]\n`,
      );
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/**
 * The state a start serves, from etcd. CONFIG given: written to etcd as the next generation,
 * unless etcd already holds the state this same CONFIG (and `--map`) seeded, changes made
 * through the API since included: that state is served and nothing is written, so that an
 * instance restarting with the pool's CONFIG never undoes those changes. The write is a
 * compare-and-swap over what was read: when another instance wrote in between, nothing is
 * written and the start stops. Without CONFIG: what etcd holds, or an empty load balancer that
 * the first write of any instance fills.
 */
export async function loadSharedState(
  shared: EtcdState,
  store: ResourceStore,
  plan: ControlPlan,
  config: LoadedConfig | undefined,
  inputs: readonly string[],
): Promise<SharedStart> {
  const url = shared.location.url;
  const invalid = (): SharedStart => ({
    exit: EXIT_INVALID,
    result: { valid: false, errors: [], warnings: [] },
    source: 'empty',
    map: plan.map,
    watchFrom: 0,
  });
  const read = await firstRead(shared, plan.stateWaitMs);
  if (read instanceof SluiceError) {
    process.stderr.write(`sluice: ${read.message} [${read.code}]\n`);
    return invalid();
  }
  const watchFrom = read.clusterRevision + 1;
  const stored = read.contents;
  if (config !== undefined) {
    const seed = seedOf(config.json, plan.map);
    if (stored !== undefined && stored.seed === seed) {
      const result = store.load(stored, read.revision);
      if (result.valid) {
        process.stderr.write(
          `sluice: ${inputsLabel(inputs)} is already the state in ${url} (generation ${stored.generation}, with the changes made through the API since); serving that, nothing written\n`,
        );
        reportDiagnostics({ ...result, errors: [] });
        return { exit: EXIT_OK, result, source: 'stored', map: plan.map, watchFrom };
      }
    }
    const contents: StateContents = {
      generation: stored === undefined ? 0 : stored.generation + 1,
      resources: resourcesOfDocument(config.json),
      ...(plan.map.length > 0 ? { map: plan.map } : {}),
      seed,
    };
    const seeded = store.load(contents);
    if (!seeded.valid) {
      reportDiagnostics(seeded);
      return { ...invalid(), result: seeded };
    }
    let revision: number;
    try {
      revision = await shared.write(contents, read.revision);
    } catch (err) {
      if (err instanceof StaleState) {
        process.stderr.write(
          `sluice: another instance wrote generation ${err.latest?.generation ?? '(deleted)'} to ${url} while this start was writing ${inputsLabel(inputs)}; nothing was written. Start again to replace it, or without CONFIG to serve it [SLUICE_STATE_CONTENDED]\n`,
        );
        return invalid();
      }
      if (!(err instanceof SluiceError)) throw err;
      process.stderr.write(`sluice: ${err.message} [${err.code}]\n`);
      return invalid();
    }
    const result = store.load(contents, revision);
    process.stderr.write(
      stored === undefined
        ? `sluice: ${inputsLabel(inputs)} written to ${url} as generation ${contents.generation}\n`
        : `sluice: ${inputsLabel(inputs)} replaces the state in ${url} (generation ${stored.generation}) as generation ${contents.generation}; run without CONFIG to serve the stored state\n`,
    );
    return { exit: EXIT_OK, result, source: 'config', map: plan.map, watchFrom: revision + 1 };
  }
  if (stored === undefined) {
    const result = store.load({ generation: 0, resources: [] });
    process.stderr.write(
      `sluice: ${url} holds no state yet: serving nothing until an instance writes one (a PUT through any instance's API)\n`,
    );
    return { exit: EXIT_OK, result, source: 'empty', map: plan.map, watchFrom };
  }
  const map = plan.map.length > 0 ? plan.map : (stored.map ?? []);
  if (plan.map.length === 0 && map.length > 0)
    process.stderr.write(
      `sluice: serving the stored state with its mappings: --map ${map.join(' --map ')}\n`,
    );
  else if (plan.map.length > 0)
    process.stderr.write(
      `sluice: serving the state in ${url} with this instance's own --map (the shared mappings stay as they are)\n`,
    );
  const result = store.load(stored, read.revision);
  if (!result.valid) {
    process.stderr.write(
      `sluice: the resources stored in ${url} (generation ${stored.generation}) are not a valid configuration here; nothing of it was applied [SLUICE_STATE_INVALID]\n`,
    );
    for (const e of result.errors) process.stderr.write(`${url}: ${formatDiagnostic(e)}\n`);
    return { ...invalid(), result };
  }
  reportDiagnostics({ ...result, errors: [] });
  return { exit: EXIT_OK, result, source: 'stored', map, watchFrom };
}

/**
 * Follows etcd once the load balancer runs: every generation stored there goes through
 * `store.adopt` (validated, applied like a change made here); one this instance cannot serve is
 * logged and counted, and the last one served goes on. Losing etcd and finding it again is
 * logged and shown in the metrics.
 */
export function watchSharedState(
  shared: EtcdState,
  store: ResourceStore,
  app: ControlledApp,
  logger: Logger,
  fromRevision: number,
): void {
  const url = shared.location.url;
  shared.onStatus((s) => {
    app.metrics.stateStore(s.up);
    if (s.up) logger.info({ state: url }, 'shared state store reachable again; changes are taken');
    else
      logger.warn(
        { state: url, code: 'SLUICE_STATE_STORE_UNAVAILABLE', reason: s.reason },
        `shared state store unreachable (${s.reason ?? 'down'}): serving generation ${store.generation} until it is back; changes through the API are refused with 503`,
      );
  });
  const notServed = (generation: number | undefined, reason: 'invalid' | 'failed', message: string): void => {
    app.metrics.stateNotServed(reason);
    logger.warn(
      {
        state: url,
        code: 'SLUICE_STATE_NOT_SERVED',
        reason,
        ...(generation !== undefined ? { generation } : {}),
      },
      `${generation === undefined ? 'the state' : `generation ${generation}`} stored in ${url} is not served here: ${message}; serving generation ${store.generation} [SLUICE_STATE_NOT_SERVED]`,
    );
  };
  const watching = shared.watch(fromRevision, (change) => {
    if ('error' in change) {
      notServed(undefined, 'invalid', `${change.error.message} [${change.error.code}]`);
      return;
    }
    void store.adopt(change.contents, change.revision).then((outcome) => {
      app.metrics.stateGeneration(store.storedGeneration);
      if (outcome.result === 'invalid' || outcome.result === 'failed') {
        notServed(change.contents?.generation, outcome.result, outcome.message);
        for (const e of outcome.errors.slice(0, 10)) logger.warn({ state: url }, formatDiagnostic(e));
      }
    });
  });
  watching.catch((err: unknown) => {
    logger.error({ state: url, err }, 'cannot watch the shared state store');
  });
}
