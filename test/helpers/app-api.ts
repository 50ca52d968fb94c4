/**
 * The API over a SluiceApp running in the test's own process, wired as `sluice run` wires it
 * (control-setup.ts), so a test can hold the app's ManualClock and still use the API and the
 * live page over real loopback sockets.
 */
import type { FastifyInstance } from 'fastify';
import type { SluiceApp } from '../../src/app.js';
import { validateDocument } from '../../src/config/index.js';
import { buildApi, type ControlRuntime } from '../../src/control/server.js';
import { ResourceStore } from '../../src/control/store.js';

export function appRuntime(app: SluiceApp): ControlRuntime {
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

export async function serveAppApi(
  app: SluiceApp,
  host: string,
  token?: string,
): Promise<{ api: FastifyInstance; base: string }> {
  const store = new ResourceStore({
    compile: (doc) => validateDocument(doc, { outsideReferences: 'error' }),
    apply: (snapshot, generation) => app.apply(snapshot, generation),
  });
  const api = await buildApi({
    store,
    registry: app.metrics.registry,
    runtime: appRuntime(app),
    ...(token !== undefined ? { token } : {}),
  });
  await api.listen({ host, port: 0 });
  const port = (api.server.address() as { port: number }).port;
  return { api, base: `http://${host}:${port}` };
}
