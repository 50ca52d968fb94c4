/**
 * Hand-built configuration snapshots for the flow engine's tests, so they do not depend on
 * the ARM compiler.
 */
import type {
  AdminState,
  BackendMember,
  BackendPool,
  DistributionMode,
  Frontend,
  IdleTimeout,
  InboundNatRule,
  LoadBalancingRule,
  Probe,
  Protocol,
  RuntimeSnapshot,
} from '../../../src/core/snapshot.js';
import { MINUTE_MS } from '../../../src/core/snapshot.js';

export function idle(minutes: number): IdleTimeout {
  return { minutes, ms: minutes * MINUTE_MS, decidedBy: 'rule', overridden: [] };
}

export function frontend(address: string, name = 'fe'): Frontend {
  return { id: `/fe/${name}`, name, address, configuredAddress: address, internal: false };
}

export function pool(name: string, addresses: readonly string[], admin: AdminState[] = []): BackendPool {
  const members: BackendMember[] = addresses.map((address, i) => ({
    id: `/pool/${name}/m${i}`,
    name: `m${i}`,
    address,
    configuredAddress: address,
    adminState: admin[i] ?? 'None',
  }));
  return { id: `/pool/${name}`, name, members, drainPeriodMs: 0 };
}

export function probe(name: string, behavior: Probe['noHealthyBackendsBehavior'] = 'AllProbedDown'): Probe {
  return {
    id: `/probe/${name}`,
    name,
    protocol: 'Tcp',
    port: 80,
    intervalMs: 5000,
    threshold: 1,
    noHealthyBackendsBehavior: behavior,
  };
}

export interface LbRuleSpec {
  name?: string;
  address?: string;
  protocols?: Protocol[];
  frontendPort?: number;
  backendPort?: number;
  idleMinutes?: number;
  reset?: boolean;
  pool?: BackendPool;
  probe?: Probe;
  distribution?: DistributionMode;
  haPorts?: boolean;
  floatingIP?: boolean;
}

export function lbRule(spec: LbRuleSpec = {}): LoadBalancingRule {
  const name = spec.name ?? 'web';
  const protocols = spec.protocols ?? ['Tcp'];
  return {
    kind: 'loadBalancingRule',
    id: `/rule/${name}`,
    name,
    frontend: frontend(spec.address ?? '10.0.0.1'),
    protocols,
    armProtocol: protocols.length === 2 ? 'All' : protocols[0]!,
    idleTimeout: idle(spec.idleMinutes ?? 4),
    enableTcpReset: spec.reset ?? false,
    enableFloatingIP: spec.floatingIP ?? false,
    frontendPort: spec.haPorts ? 0 : (spec.frontendPort ?? 80),
    backendPort: spec.haPorts ? 0 : (spec.backendPort ?? 8080),
    haPorts: spec.haPorts ?? false,
    pool: spec.pool ?? pool('be', ['10.1.0.1', '10.1.0.2', '10.1.0.3']),
    ...(spec.probe !== undefined ? { probe: spec.probe } : {}),
    distribution: spec.distribution ?? 'Default',
    disableOutboundSnat: false,
  };
}

export function natRule(spec: {
  name?: string;
  address?: string;
  pool: BackendPool;
  portStart: number;
  backendPort: number;
  idleMinutes?: number;
  reset?: boolean;
}): InboundNatRule {
  const name = spec.name ?? 'ssh';
  return {
    kind: 'inboundNatRule',
    id: `/nat/${name}`,
    name,
    frontend: frontend(spec.address ?? '10.0.0.1'),
    protocols: ['Tcp'],
    armProtocol: 'Tcp',
    idleTimeout: idle(spec.idleMinutes ?? 4),
    enableTcpReset: spec.reset ?? false,
    enableFloatingIP: false,
    mappings: spec.pool.members.map((member, i) => ({
      frontendPort: spec.portStart + i,
      member,
      backendPort: spec.backendPort,
    })),
    frontendPortStart: spec.portStart,
    frontendPortEnd: spec.portStart + spec.pool.members.length - 1,
    pool: spec.pool,
  };
}

export function snapshot(
  lbRules: readonly LoadBalancingRule[],
  natRules: readonly InboundNatRule[] = [],
): RuntimeSnapshot {
  return {
    loadBalancers: [
      {
        id: '/lb/test',
        name: 'test',
        sku: 'Standard',
        frontends: [],
        pools: [],
        probes: [],
        loadBalancingRules: lbRules,
        inboundNatRules: natRules,
        outboundRules: [],
        outboundPaths: [],
      },
    ],
    natGateways: [],
  };
}
