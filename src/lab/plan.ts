/**
 * What `sluice lab up` builds, as data: namespaces, links, addresses, the router's and the
 * instances' settings, and the load balancer the instances serve. Pure, so the layout is
 * tested without building it. Every address is from 198.18.0.0/15 (RFC 2544's benchmarking
 * range), so nothing of the lab can be mistaken for a real network.
 *
 *   client 198.18.1.2 --- 198.18.1.1 router (FRR: BGP, BFD, ECMP with an L4 hash)
 *                          198.18.9.1 --- 198.18.9.2 etcd
 *                          198.18.1K.1 --- 198.18.1K.2 instance K (Sluice, packet plane, BIRD)
 *   instance K --- backend J (a link each; backend J is 198.19.1.J, its replies go back
 *                             through the instance that sent it the flow's last packet)
 *   frontend 198.18.100.10: echo on TCP 7 (TCP reset at idle) and 8 (silent drop), HTTP on TCP 80
 *   spare instances: built (namespaces, links, routes) but not started, for `sluice lab start`
 */

export const LAB_FRONTEND = '198.18.100.10';
/** `echoDrop` is the echo backends' port 7 behind a rule without TCP reset (silent drop at idle). */
export const LAB_PORTS = { echo: 7, http: 80, echoDrop: 8 } as const;
export const ROUTER_AS = 65000;
export const INSTANCE_AS = 65001;
export const MAX_INSTANCES = 32;
export const MAX_BACKENDS = 32;
/** The routing table (and rule priority) the resilient next-hop groups are served from. */
export const RESILIENT_TABLE = 1000;

export type EcmpMode = 'resilient' | 'hash-threshold';

export interface LabOptions {
  readonly name: string;
  readonly instances: number;
  readonly backends: number;
  /** Where the lab keeps its files (a directory per lab under it). */
  readonly baseDir: string;
  readonly ecmp: EcmpMode;
  /** BFD interval between router and instances (ms). */
  readonly bfdMs: number;
  /** Passed to every instance (`--time-scale`). */
  readonly timeScale: number;
  /** Start an etcd. */
  readonly etcd: boolean;
  /**
   * Give the instances their desired state from that etcd (`sluice run --state etcd://...`):
   * the hook for one desired state in etcd, on as soon as `sluice run` has the flag.
   */
  readonly etcdState: boolean;
  /** Instances built beside `instances` but not started: `sluice lab start` starts one. */
  readonly spares?: number;
  /** The router's resilient groups: how long a bucket must be idle to move to a new member (s). */
  readonly ecmpIdleTimerS?: number;
  /** ... and how long the group may stay unbalanced before busy buckets move too (s). */
  readonly ecmpUnbalancedTimerS?: number;
}

export const ECMP_TIMERS = { idleTimerS: 10, unbalancedTimerS: 60 } as const;

export interface InstancePlan {
  readonly name: string;
  readonly namespace: string;
  readonly index: number;
  /** Its address on the link to the router (its BGP source and router ID). */
  readonly address: string;
  /** The router's address on that link (its BGP peer and default gateway). */
  readonly gateway: string;
  /** The router's interface towards it. */
  readonly routerDev: string;
  readonly dir: string;
  /** Built, not started by `lab up`. */
  readonly spare: boolean;
}

export interface BackendPlan {
  readonly name: string;
  readonly namespace: string;
  readonly index: number;
  readonly address: string;
}

export interface LabPlan {
  readonly options: LabOptions;
  readonly dir: string;
  readonly prefix: string;
  readonly client: { readonly namespace: string; readonly address: string; readonly gateway: string };
  readonly router: { readonly namespace: string; readonly dir: string; readonly address: string };
  readonly etcd?: {
    readonly namespace: string;
    readonly address: string;
    readonly url: string;
    readonly dir: string;
  };
  readonly instances: readonly InstancePlan[];
  readonly backends: readonly BackendPlan[];
  readonly frontend: string;
}

/** A lab's name becomes part of namespace names and paths: short, plain. */
export function labNameProblem(name: string): string | undefined {
  return /^[a-z0-9][a-z0-9-]{0,11}$/.test(name)
    ? undefined
    : `a lab name is 1-12 lower-case letters, digits or '-' (starting with a letter or digit), got '${name}'`;
}

/** The namespace names of a lab start with this. */
export function namespacePrefix(name: string): string {
  return `sllab-${name}-`;
}

export function planLab(options: LabOptions): LabPlan {
  const prefix = namespacePrefix(options.name);
  const dir = `${options.baseDir.replace(/\/+$/, '')}/${options.name}`;
  const instances: InstancePlan[] = [];
  for (let k = 1; k <= options.instances + (options.spares ?? 0); k++) {
    instances.push({
      name: `i${k}`,
      namespace: `${prefix}i${k}`,
      index: k,
      address: `198.18.${10 + k}.2`,
      gateway: `198.18.${10 + k}.1`,
      routerDev: `i${k}`,
      dir: `${dir}/i${k}`,
      spare: k > options.instances,
    });
  }
  const backends: BackendPlan[] = [];
  for (let j = 1; j <= options.backends; j++)
    backends.push({ name: `backend${j}`, namespace: `${prefix}b${j}`, index: j, address: `198.19.1.${j}` });
  return {
    options,
    dir,
    prefix,
    client: { namespace: `${prefix}client`, address: '198.18.1.2', gateway: '198.18.1.1' },
    router: { namespace: `${prefix}router`, dir: `${dir}/router`, address: '198.18.1.1' },
    ...(options.etcd
      ? {
          etcd: {
            namespace: `${prefix}etcd`,
            address: '198.18.9.2',
            url: 'http://198.18.9.2:2379',
            dir: `${dir}/etcd`,
          },
        }
      : {}),
    instances,
    backends,
    frontend: LAB_FRONTEND,
  };
}

/** Every namespace of a plan. */
export function namespacesOf(plan: LabPlan): string[] {
  return [
    plan.client.namespace,
    plan.router.namespace,
    ...(plan.etcd ? [plan.etcd.namespace] : []),
    ...plan.instances.map((i) => i.namespace),
    ...plan.backends.map((b) => b.namespace),
  ];
}

const LBS =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/sluice-lab/providers/Microsoft.Network/loadBalancers';

/**
 * How long after a change of the pool the router may still move flows: with an idle timer, a
 * busy bucket moves to a new member only when the unbalanced timer forces it.
 */
export function routerSettleS(options: LabOptions): number {
  if (options.ecmp !== 'resilient') return 0;
  const idle = options.ecmpIdleTimerS ?? ECMP_TIMERS.idleTimerS;
  return idle > 0 ? (options.ecmpUnbalancedTimerS ?? ECMP_TIMERS.unbalancedTimerS) : 0;
}

/**
 * The load balancer every instance serves: the frontend with an echo rule and an HTTP rule
 * over every backend, TCP reset on idle, an echo rule that drops silently at idle, an HTTP
 * probe every 5 s.
 */
export function labDocument(plan: LabPlan): Record<string, unknown> {
  const base = `${LBS}/lab`;
  const ref = (kind: string, child: string) => ({ id: `${base}/${kind}/${child}` });
  const rule = (name: string, port: number, backendPort = port, enableTcpReset = true) => ({
    name,
    properties: {
      frontendIPConfiguration: ref('frontendIPConfigurations', 'frontend'),
      backendAddressPool: ref('backendAddressPools', 'backends'),
      probe: ref('probes', 'http'),
      protocol: 'Tcp',
      frontendPort: port,
      backendPort,
      idleTimeoutInMinutes: 4,
      enableTcpReset,
      loadDistribution: 'Default',
    },
  });
  return {
    name: 'lab',
    id: base,
    type: 'Microsoft.Network/loadBalancers',
    sku: { name: 'Standard' },
    properties: {
      frontendIPConfigurations: [{ name: 'frontend', properties: { privateIPAddress: plan.frontend } }],
      backendAddressPools: [
        {
          name: 'backends',
          properties: {
            loadBalancerBackendAddresses: plan.backends.map((b) => ({
              name: b.name,
              properties: { ipAddress: b.address },
            })),
          },
        },
      ],
      probes: [
        {
          name: 'http',
          properties: {
            protocol: 'Http',
            port: LAB_PORTS.http,
            requestPath: '/',
            intervalInSeconds: 5,
            probeThreshold: 1,
          },
        },
      ],
      loadBalancingRules: [
        rule('echo', LAB_PORTS.echo),
        rule('http', LAB_PORTS.http),
        rule('echo-drop', LAB_PORTS.echoDrop, LAB_PORTS.echo, false),
      ],
    },
  };
}
