/** Small snapshots for the prober's tests: one frontend, pools, probes and the rules that tie them. */
import type {
  AdminState,
  BackendMember,
  BackendPool,
  Frontend,
  LoadBalancerSnapshot,
  LoadBalancingRule,
  Probe,
  ProbeProtocol,
  RuntimeSnapshot,
} from '../../../src/core/snapshot.js';

const LB = '/subscriptions/s/resourcegroups/g/providers/microsoft.network/loadbalancers/lb';

export function member(
  pool: string,
  name: string,
  address: string,
  adminState: AdminState = 'None',
): BackendMember {
  return {
    id: `${LB}/backendaddresspools/${pool}/${name}`,
    name,
    address,
    configuredAddress: address,
    adminState,
  };
}

export function pool(name: string, members: readonly BackendMember[]): BackendPool {
  return { id: `${LB}/backendaddresspools/${name}`, name, members, drainPeriodMs: 0 };
}

export function probe(
  name: string,
  opts: Partial<
    Pick<Probe, 'port' | 'intervalMs' | 'threshold' | 'requestPath' | 'noHealthyBackendsBehavior'>
  > & {
    protocol?: ProbeProtocol;
  } = {},
): Probe {
  const protocol = opts.protocol ?? 'Tcp';
  return {
    id: `${LB}/probes/${name}`,
    name,
    protocol,
    port: opts.port ?? 80,
    ...(opts.requestPath !== undefined ? { requestPath: opts.requestPath } : {}),
    intervalMs: opts.intervalMs ?? 5_000,
    threshold: opts.threshold ?? 2,
    noHealthyBackendsBehavior: opts.noHealthyBackendsBehavior ?? 'AllProbedDown',
  };
}

const frontend: Frontend = {
  id: `${LB}/frontendipconfigurations/fe`,
  name: 'fe',
  address: '127.0.0.1',
  configuredAddress: '10.0.0.4',
  internal: true,
};

export function rule(
  name: string,
  p: BackendPool,
  pr: Probe | undefined,
  frontendPort = 80,
): LoadBalancingRule {
  return {
    kind: 'loadBalancingRule',
    id: `${LB}/loadbalancingrules/${name}`,
    name,
    frontend,
    protocols: ['Tcp'],
    armProtocol: 'Tcp',
    idleTimeout: { minutes: 4, ms: 240_000, decidedBy: 'rule', overridden: [] },
    enableTcpReset: false,
    enableFloatingIP: false,
    frontendPort,
    backendPort: 80,
    haPorts: false,
    pool: p,
    ...(pr !== undefined ? { probe: pr } : {}),
    distribution: 'Default',
    disableOutboundSnat: false,
  };
}

export function snapshot(rules: readonly LoadBalancingRule[]): RuntimeSnapshot {
  const pools = [...new Map(rules.map((r) => [r.pool.id, r.pool])).values()];
  const probes = [
    ...new Map(rules.flatMap((r) => (r.probe ? [[r.probe.id, r.probe] as const] : []))).values(),
  ];
  const lb: LoadBalancerSnapshot = {
    id: LB,
    name: 'lb',
    sku: 'Standard',
    frontends: [frontend],
    pools,
    probes,
    loadBalancingRules: rules,
    inboundNatRules: [],
    outboundRules: [],
    outboundPaths: [],
  };
  return { loadBalancers: [lb], natGateways: [] };
}

/** Lets settled runner promises deliver their outcomes. */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
