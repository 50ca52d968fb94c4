/**
 * Ready-made documents for the common scenarios of `sluice/testing`: one load balancer on
 * loopback in front of the test's own backend (a database, a cache, an HTTP server), with a reset
 * rule or a silent-drop rule. Each picks a free port for its frontend.
 */
import { createServer } from 'node:net';
import { isIP } from 'node:net';

/** A backend: `'host:port'` or `{ host, port }`. */
export type Backend = string | { readonly host: string; readonly port: number };

export interface InFrontOptions {
  /** `true`: a TCP reset to both ends at idle; `false` (Azure's default): a silent drop. */
  readonly enableTcpReset?: boolean;
  /** 4 by default (4-100 on Standard). */
  readonly idleTimeoutInMinutes?: number;
  readonly protocol?: 'Tcp' | 'Udp' | 'All';
  /** The frontend's address (127.0.0.1) and port (a free one). */
  readonly frontendAddress?: string;
  readonly frontendPort?: number;
  /** A Tcp probe on the backend's port every `intervalInSeconds` (none by default). */
  readonly probe?: boolean | { readonly intervalInSeconds?: number };
  /** How long a drained member's flows go on (0). */
  readonly drainPeriodInSeconds?: number;
  /** The rule's name ('rule'). */
  readonly name?: string;
}

function parseBackend(b: Backend): { host: string; port: number } {
  if (typeof b !== 'string') return b;
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(b);
  if (m === null || isIP(m[1]!) === 0)
    throw new RangeError(
      `backend ${JSON.stringify(b)} is not ADDRESS:PORT (an IP address, e.g. 127.0.0.1:5432)`,
    );
  return { host: m[1]!, port: Number(m[2]) };
}

/** A port nobody listens on at `address` now. */
async function freePort(address: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, address, resolve);
  });
  const a = server.address();
  await new Promise((r) => server.close(r));
  if (a === null || typeof a === 'string') throw new Error(`no free port on ${address}`);
  return a.port;
}

/** One load balancer with one rule in front of `backend`. */
export async function inFront(
  backend: Backend,
  options: InFrontOptions = {},
): Promise<Record<string, unknown>> {
  const { host, port } = parseBackend(backend);
  const address = options.frontendAddress ?? '127.0.0.1';
  const frontendPort = options.frontendPort ?? (await freePort(address));
  const id =
    '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/test/providers/Microsoft.Network/loadBalancers/test-lb';
  const probe =
    options.probe === undefined || options.probe === false
      ? undefined
      : options.probe === true
        ? {}
        : options.probe;
  return {
    id,
    name: 'test-lb',
    type: 'Microsoft.Network/loadBalancers',
    sku: { name: 'Standard' },
    properties: {
      frontendIPConfigurations: [{ name: 'frontend', properties: { privateIPAddress: address } }],
      backendAddressPools: [
        {
          name: 'pool',
          properties: {
            ...(options.drainPeriodInSeconds !== undefined
              ? { drainPeriodInSeconds: options.drainPeriodInSeconds }
              : {}),
            loadBalancerBackendAddresses: [{ name: 'backend', properties: { ipAddress: host } }],
          },
        },
      ],
      probes:
        probe === undefined
          ? []
          : [
              {
                name: 'probe',
                properties: {
                  protocol: 'Tcp',
                  port,
                  intervalInSeconds: probe.intervalInSeconds ?? 5,
                  probeThreshold: 1,
                },
              },
            ],
      loadBalancingRules: [
        {
          name: options.name ?? 'rule',
          properties: {
            frontendIPConfiguration: { id: `${id}/frontendIPConfigurations/frontend` },
            backendAddressPool: { id: `${id}/backendAddressPools/pool` },
            ...(probe === undefined ? {} : { probe: { id: `${id}/probes/probe` } }),
            protocol: options.protocol ?? 'Tcp',
            frontendPort,
            backendPort: port,
            idleTimeoutInMinutes: options.idleTimeoutInMinutes ?? 4,
            enableTcpReset: options.enableTcpReset ?? false,
          },
        },
      ],
    },
  };
}

/** A reset rule in front of `backend`: at the idle timeout both ends get a RST (ECONNRESET). */
export function idleReset(
  backend: Backend,
  options: Omit<InFrontOptions, 'enableTcpReset'> = {},
): Promise<Record<string, unknown>> {
  return inFront(backend, { ...options, enableTcpReset: true });
}

/** A silent-drop rule (Azure's default) in front of `backend`: at the idle timeout the flow is forgotten, nobody is told. */
export function idleDrop(
  backend: Backend,
  options: Omit<InFrontOptions, 'enableTcpReset'> = {},
): Promise<Record<string, unknown>> {
  return inFront(backend, { ...options, enableTcpReset: false });
}
