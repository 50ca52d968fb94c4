/**
 * The API as `sluice run` builds it, listening on a real loopback socket, with a real
 * ResourceStore that validates every change and writes the state file, but no data plane.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { validateDocument } from '../../src/config/index.js';
import { EventHub } from '../../src/control/events.js';
import { buildApi, type ApiOptions } from '../../src/control/server.js';
import { STATE_FILE, writeState } from '../../src/control/state.js';
import { ResourceStore } from '../../src/control/store.js';
import { noPlaneRuntime } from './api.js';

export interface ServedApi {
  readonly api: FastifyInstance;
  readonly store: ResourceStore;
  readonly host: string;
  readonly port: number;
  readonly stateDir: string;
  readonly statePath: string;
  /** Headers every request of the test needs (the token, when there is one). */
  readonly auth: Record<string, string>;
  close(): Promise<void>;
}

export async function serveApi(
  host: string,
  options: Partial<Pick<ApiOptions, 'token' | 'allowedHosts' | 'interfaceAddresses'>> & {
    /** The clock the API shows: `manual` takes POST /sluice/v1/clock/advance. */
    readonly clock?: 'system' | 'manual';
  } = {},
): Promise<ServedApi> {
  const { clock, ...apiOptions } = options;
  const stateDir = join(mkdtempSync(join(tmpdir(), 'sluice-api-')), 'state');
  const hub = new EventHub();
  const store = new ResourceStore({
    compile: (doc) => validateDocument(doc, { outsideReferences: 'error' }),
    apply: async () => {},
    persist: (s) => writeState(stateDir, s),
  });
  const api = await buildApi({
    store,
    registry: new Registry(),
    runtime: noPlaneRuntime(hub, clock !== undefined ? { clock } : {}),
    ...apiOptions,
  });
  await api.listen({ host, port: 0 });
  const port = (api.server.address() as { port: number }).port;
  return {
    api,
    store,
    host,
    port,
    stateDir,
    statePath: join(stateDir, STATE_FILE),
    auth: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
    close: () => api.close(),
  };
}
