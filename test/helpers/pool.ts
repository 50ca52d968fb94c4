/**
 * Several `sluice run --state etcd://...` instances on one machine, sharing one etcd: each
 * serves the document's frontend at an address of its own (`--map`, this instance's alone), as
 * instances on separate hosts would all serve the same one.
 */
import {
  ApiClientError,
  SluiceClient,
  type ArmResource,
  type ResourceAddress,
} from '../../src/client/index.js';
import { lbDocument, type TestRule } from './arm.js';
import { tcpClient, waitUntil, within } from './net.js';
import { startSluice, type RunningSluice } from './process.js';

export const FRONTEND = '127.0.87.10';
export const BACKEND = '127.0.87.2';

export const LB: ResourceAddress = {
  subscription: '00000000-0000-0000-0000-000000000000',
  resourceGroup: 'test',
  type: 'loadBalancers',
  name: 'test-lb',
};

export function poolDocument(rules: readonly TestRule[]): Record<string, unknown> {
  return lbDocument({ frontend: FRONTEND, backends: [BACKEND], rules });
}

export interface Instance {
  readonly name: string;
  /** Where this instance serves the frontend. */
  readonly address: string;
  readonly run: RunningSluice;
  readonly api: SluiceClient;
}

export interface HealthWithStore {
  readonly generation: number;
  readonly listeners: number;
  readonly stateStore: { kind: string; location: string; up: boolean; generation: number; reason?: string };
}

/** Starts an instance; resolves once it logged `ready` (within `readyMs`). */
export async function startInstance(
  name: string,
  address: string,
  args: readonly string[],
  readyMs = 10_000,
): Promise<Instance> {
  const run = startSluice(['run', ...args, '--map', `${FRONTEND}=${address}`, '--api', '127.0.87.1:0']);
  try {
    const ready = await run.waitFor((l) => l.msg === 'ready', readyMs);
    return { name, address, run, api: new SluiceClient({ base: String(ready.api) }) };
  } catch (err) {
    await run.stop('SIGKILL');
    throw new Error(`${name}: ${(err as Error).message}; stderr: ${run.stderr.join(' | ')}`);
  }
}

export async function health(i: Instance): Promise<HealthWithStore> {
  return (await i.api.health()) as unknown as HealthWithStore;
}

/** The etag of the load balancer as `i` serves it, or undefined when it has none. */
export async function etagOn(i: Instance): Promise<string | undefined> {
  try {
    return (await i.api.get(LB)).etag;
  } catch (err) {
    if (err instanceof ApiClientError && err.status === 404) return undefined;
    throw err;
  }
}

/** Waits until every instance shows the load balancer with `etag`; resolves with the time taken. */
export async function converged(instances: readonly Instance[], etag: string, ms: number): Promise<number> {
  const start = Date.now();
  await waitUntil(
    ms,
    `every instance to serve etag ${etag}`,
    async () => (await Promise.all(instances.map(etagOn))).every((e) => e === etag),
    10,
  );
  return Date.now() - start;
}

/** The greeting of the backend through `address:port` (a new connection, closed after). */
export async function greetingThrough(address: string, port: number, ms = 2000): Promise<string> {
  const c = tcpClient(address, port);
  try {
    return await within(ms, `a connection through ${address}:${port}`, c.greeting);
  } finally {
    c.socket.destroy();
  }
}

/** The load balancer `i` serves, with its rules replaced. */
export async function withRules(i: Instance, rules: readonly TestRule[]): Promise<ArmResource> {
  const current = await i.api.get(LB);
  const next = poolDocument(rules) as { properties: unknown };
  return { ...current, properties: next.properties as ArmResource['properties'] };
}

/** Stops every instance given (by PID, SIGTERM then SIGKILL after 5 s). */
export async function stopAll(instances: readonly (Instance | undefined)[]): Promise<void> {
  await Promise.all(
    instances.map(async (i) => {
      if (i === undefined) return;
      const killer = setTimeout(() => i.run.child.kill('SIGKILL'), 5000);
      await i.run.stop();
      clearTimeout(killer);
    }),
  );
}
