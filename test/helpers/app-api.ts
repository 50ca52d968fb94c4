/**
 * The API over a SluiceApp running in the test's own process, wired as `sluice run` wires it
 * (control-setup.ts), so a test can hold the app's ManualClock and still use the API and the
 * live page over real loopback sockets.
 */
import type { FastifyInstance } from 'fastify';
import type { SluiceApp } from '../../src/app.js';
import { validateDocument } from '../../src/config/index.js';
import { controlRuntimeOf } from '../../src/cli/control-setup.js';
import { buildApi } from '../../src/control/server.js';
import { ResourceStore } from '../../src/control/store.js';

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
    runtime: controlRuntimeOf(app),
    ...(token !== undefined ? { token } : {}),
  });
  await api.listen({ host, port: 0 });
  const port = (api.server.address() as { port: number }).port;
  return { api, base: `http://${host}:${port}` };
}
