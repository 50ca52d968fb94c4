import {
  MINUTE_MS,
  type ArmProtocol,
  type BackendMember,
  type BackendPool,
  type Frontend,
  type IdleDecidedBy,
  type IdleTimeout,
  type InboundNatRule,
  type InboundRuleBase,
  type LoadBalancerSnapshot,
  type LoadBalancingRule,
  type NatGateway,
  type NatMapping,
  type OutboundPath,
  type OutboundRule,
  type Probe,
  type Protocol,
  type RuntimeSnapshot,
  type MissingAddress,
  type UnservedRule,
} from '../core/snapshot.js';
import { applyAddressMap, type AddressMap } from './address-map.js';
import { SNAT_PORTS_PER_ADDRESS } from '../core/snat-alloc.js';
import { nicShowCommand, normId as normIdOf } from './ids.js';
import type {
  FrontendModel,
  InstancePublicIpModel,
  LbRuleModel,
  LoadBalancerModel,
  MemberModel,
  MissingMemberModel,
  NatGatewayModel,
  NatRuleModel,
  OutboundRuleModel,
  PoolModel,
  ProbeModel,
  ResolvedDocument,
} from './model.js';

/**
 * Validated document -> RuntimeSnapshot. The one place where ARM's names and units
 * (idleTimeoutInMinutes, intervalInSeconds) become Sluice's (milliseconds), where Azure's
 * defaults are applied, and where the idle timeout precedence (B9, B10) is decided.
 * Only ever called on a document with no errors.
 */

/** Azure's defaults for what a document leaves out. */
export const DEFAULTS = {
  idleTimeoutInMinutes: 4,
  /** The public IP outbound idle timeout: fixed, not configurable (B10). */
  publicIpOutboundIdleMinutes: 4,
  natGatewayIdleTimeoutInMinutes: 4,
  enableTcpReset: false,
  enableFloatingIP: false,
  loadDistribution: 'Default',
  disableOutboundSnat: false,
  probeIntervalInSeconds: 15,
  probeThreshold: 1,
  noHealthyBackendsBehavior: 'AllProbedDown',
  drainPeriodInSeconds: 0,
} as const;

/** Azure's default SNAT port allocation per member, by pool size. */
const DEFAULT_SNAT_PORTS: readonly (readonly [maxMembers: number, ports: number])[] = [
  [50, 1024],
  [100, 512],
  [200, 256],
  [400, 128],
  [800, 64],
];

export function defaultAllocatedOutboundPorts(poolSize: number): number {
  for (const [max, ports] of DEFAULT_SNAT_PORTS) if (poolSize <= max) return ports;
  return 32;
}

function idle(
  minutes: number,
  decidedBy: IdleDecidedBy,
  overridden: IdleTimeout['overridden'] = [],
): IdleTimeout {
  return { minutes, ms: minutes * MINUTE_MS, decidedBy, overridden };
}

function protocolsOf(p: ArmProtocol): readonly Protocol[] {
  return p === 'All' ? ['Tcp', 'Udp'] : [p];
}

/**
 * B9: a rule's idle timeout loses to a different one on the public IP of its frontend.
 * A public IP that states none has no opinion; an internal frontend has no public IP.
 */
export function inboundIdleTimeout(ruleMinutes: number | undefined, frontend: Frontend): IdleTimeout {
  const rule = ruleMinutes ?? DEFAULTS.idleTimeoutInMinutes;
  const pip = frontend.publicIp?.idleTimeoutMinutes;
  if (pip !== undefined && pip !== rule)
    return idle(pip, 'frontendPublicIP', [{ by: 'rule', minutes: rule }]);
  return idle(rule, 'rule');
}

/** B10: an outbound rule's timeout wins over the public IP's locked outbound 4 minutes. */
export function outboundRuleIdleTimeout(ruleMinutes: number | undefined): IdleTimeout {
  const rule = ruleMinutes ?? DEFAULTS.idleTimeoutInMinutes;
  const locked = DEFAULTS.publicIpOutboundIdleMinutes;
  return idle(
    rule,
    'outboundRule',
    rule === locked ? [] : [{ by: 'publicIPOutboundDefault', minutes: locked }],
  );
}

/** B10: a NAT gateway on the member's subnet wins over outbound rules and its IPs' locked 4 minutes. */
export function natGatewayIdleTimeout(
  gatewayMinutes: number | undefined,
  rules: readonly OutboundRule[],
): IdleTimeout {
  const minutes = gatewayMinutes ?? DEFAULTS.natGatewayIdleTimeoutInMinutes;
  const overridden: { by: IdleDecidedBy; minutes: number }[] = [];
  for (const r of rules)
    if (r.idleTimeout.minutes !== minutes)
      overridden.push({ by: 'outboundRule', minutes: r.idleTimeout.minutes });
  if (minutes !== DEFAULTS.publicIpOutboundIdleMinutes) {
    overridden.push({ by: 'publicIPOutboundDefault', minutes: DEFAULTS.publicIpOutboundIdleMinutes });
  }
  return idle(minutes, 'natGateway', overridden);
}

class Compiler {
  private readonly frontends = new Map<string, Frontend>();
  private readonly pools = new Map<string, BackendPool>();
  private readonly probes = new Map<string, Probe>();
  private readonly natMembers = new Map<string, BackendMember>();

  constructor(private readonly map: AddressMap) {}

  private addr(a: string): string {
    return applyAddressMap(this.map, a);
  }

  private frontend(f: FrontendModel): Frontend {
    const cached = this.frontends.get(f.key);
    if (cached !== undefined) return cached;
    // Only reached for frontends with an address: resolve reports the others as errors.
    const configured = f.ipAddress ?? '';
    const out: Frontend = {
      id: f.key,
      name: f.name,
      address: this.addr(configured),
      configuredAddress: configured,
      internal: f.internal,
      ...(f.publicIp === undefined
        ? {}
        : {
            publicIp: {
              id: f.publicIp.key,
              name: f.publicIp.name,
              ...(f.publicIp.idleTimeoutInMinutes === undefined
                ? {}
                : { idleTimeoutMinutes: f.publicIp.idleTimeoutInMinutes }),
            },
          }),
    };
    this.frontends.set(f.key, out);
    return out;
  }

  private member(m: MemberModel, idPrefix: string): BackendMember {
    return {
      id: `${idPrefix}/${m.name.toLowerCase()}`,
      name: m.name,
      address: this.addr(m.ipAddress),
      configuredAddress: m.ipAddress,
      adminState: m.adminState,
      ...(m.subnetKey === undefined ? {} : { subnetId: m.subnetKey }),
    };
  }

  private pool(p: PoolModel): BackendPool {
    const cached = this.pools.get(p.key);
    if (cached !== undefined) return cached;
    const out: BackendPool = {
      id: p.key,
      name: p.name,
      members: p.members.map((m) => this.member(m, p.key)),
      drainPeriodMs: (p.drainPeriodInSeconds ?? DEFAULTS.drainPeriodInSeconds) * 1000,
    };
    this.pools.set(p.key, out);
    return out;
  }

  /** A rule with no backend pool (Azure allows it) gets an empty one: its connections are refused. */
  private emptyPool(ruleKey: string): BackendPool {
    return { id: `${ruleKey}#no-pool`, name: '(none)', members: [], drainPeriodMs: 0 };
  }

  private probe(p: ProbeModel): Probe {
    const cached = this.probes.get(p.key);
    if (cached !== undefined) return cached;
    const out: Probe = {
      id: p.key,
      name: p.name,
      protocol: p.protocol,
      port: p.port,
      ...(p.requestPath === undefined ? {} : { requestPath: p.requestPath }),
      intervalMs: (p.intervalInSeconds ?? DEFAULTS.probeIntervalInSeconds) * 1000,
      // Azure now ignores the older numberOfProbes and counts probeThreshold results.
      threshold: p.probeThreshold ?? DEFAULTS.probeThreshold,
      noHealthyBackendsBehavior: p.noHealthyBackendsBehavior ?? DEFAULTS.noHealthyBackendsBehavior,
    };
    this.probes.set(p.key, out);
    return out;
  }

  /** What load-balancing and inbound NAT rules compile alike. */
  private inboundBase(r: LbRuleModel | NatRuleModel, frontend: Frontend): InboundRuleBase {
    return {
      id: r.key,
      name: r.name,
      frontend,
      protocols: protocolsOf(r.protocol),
      armProtocol: r.protocol,
      idleTimeout: inboundIdleTimeout(r.idleTimeoutInMinutes, frontend),
      enableTcpReset: r.enableTcpReset ?? DEFAULTS.enableTcpReset,
      enableFloatingIP: r.enableFloatingIP ?? DEFAULTS.enableFloatingIP,
    };
  }

  private lbRule(r: LbRuleModel): LoadBalancingRule {
    const frontend = this.frontend(r.frontend);
    return {
      kind: 'loadBalancingRule',
      ...this.inboundBase(r, frontend),
      frontendPort: r.frontendPort,
      backendPort: r.backendPort ?? r.frontendPort,
      haPorts: r.frontendPort === 0,
      pool: r.pool === undefined ? this.emptyPool(r.key) : this.pool(r.pool),
      ...(r.probe === undefined ? {} : { probe: this.probe(r.probe) }),
      distribution: r.loadDistribution ?? DEFAULTS.loadDistribution,
      disableOutboundSnat: r.disableOutboundSnat ?? DEFAULTS.disableOutboundSnat,
    };
  }

  private natRule(r: NatRuleModel): InboundNatRule {
    const frontend = this.frontend(r.frontend);
    let mappings: NatMapping[];
    let pool: BackendPool | undefined;
    if (r.pool !== undefined) {
      pool = this.pool(r.pool);
      // The i-th member in pool order gets the i-th port of the range.
      const size = r.frontendPortRangeEnd - r.frontendPortRangeStart + 1;
      mappings = pool.members.slice(0, size).map((member, i) => ({
        frontendPort: r.frontendPortRangeStart + i,
        member,
        backendPort: r.backendPort,
      }));
    } else if (r.target !== undefined) {
      let member = this.natMembers.get(r.target.key);
      if (member === undefined) {
        member = this.member(r.target, r.target.key.slice(0, r.target.key.lastIndexOf('/ipconfigurations/')));
        this.natMembers.set(r.target.key, member);
      }
      mappings = [{ frontendPort: r.frontendPortRangeStart, member, backendPort: r.backendPort }];
    } else mappings = [];
    return {
      kind: 'inboundNatRule',
      ...this.inboundBase(r, frontend),
      mappings,
      frontendPortStart: r.frontendPortRangeStart,
      frontendPortEnd: r.frontendPortRangeEnd,
      ...(pool === undefined ? {} : { pool }),
    };
  }

  private outboundRule(r: OutboundRuleModel): OutboundRule {
    const pool = this.pool(r.pool);
    const ports = r.allocatedOutboundPorts ?? 0;
    // 0 is how ARM spells "use the default allocation".
    const defaulted = ports === 0;
    return {
      kind: 'outboundRule',
      id: r.key,
      name: r.name,
      frontends: r.frontends.map((f) => this.frontend(f)),
      pool,
      protocols: protocolsOf(r.protocol),
      armProtocol: r.protocol,
      allocatedOutboundPorts: defaulted ? defaultAllocatedOutboundPorts(pool.members.length) : ports,
      allocatedOutboundPortsDefaulted: defaulted,
      idleTimeout: outboundRuleIdleTimeout(r.idleTimeoutInMinutes),
      enableTcpReset: r.enableTcpReset ?? DEFAULTS.enableTcpReset,
    };
  }

  natGateway(g: NatGatewayModel): NatGateway {
    return {
      id: g.key,
      name: g.name,
      idleTimeout: natGatewayIdleTimeout(g.idleTimeoutInMinutes, []),
      subnetIds: g.subnetKeys,
      publicIpAddresses: g.publicIps.flatMap((p) =>
        p.ipAddress === undefined ? [] : [this.addr(p.ipAddress)],
      ),
    };
  }

  /**
   * A VM's instance-level public IP as the one rule it is: every port of the public IP, TCP and
   * UDP, to the same port of the private address (HA ports with one member and no probe), with
   * the public IP's idle timeout (4 minutes unless it says otherwise) and silent drop at idle.
   */
  instancePublicIp(
    i: InstancePublicIpModel,
    gateways: readonly { model: NatGatewayModel; compiled: NatGateway }[],
  ): LoadBalancerSnapshot {
    const minutes = i.publicIp?.idleTimeoutInMinutes ?? DEFAULTS.idleTimeoutInMinutes;
    const name = i.publicIp?.name ?? i.missingPublicIpId?.split('/').pop() ?? i.name;
    const pool: BackendPool = {
      id: `${i.key}#pool`,
      name: i.name,
      members: [this.member(i.member, i.key.slice(0, i.key.lastIndexOf('/ipconfigurations/')))],
      drainPeriodMs: 0,
    };
    const base = {
      id: `${i.key}#public-ip`,
      name,
      sku: 'Standard' as const,
      pools: [pool],
      probes: [],
      inboundNatRules: [],
      outboundRules: [],
      outboundPaths: [],
      instancePublicIp: { publicIp: name, ipConfiguration: i.name },
    };
    if (i.ipAddress === undefined)
      return {
        ...base,
        frontends: [],
        loadBalancingRules: [],
        unserved: [
          {
            kind: 'instancePublicIp',
            name: i.name,
            missing: [
              {
                kind: 'frontend',
                name,
                resourceId: i.missingPublicIpId ?? '',
                fetch: `az network public-ip show --ids ${i.missingPublicIpId ?? ''}`,
              },
            ],
            idleTimeoutInMinutes: minutes,
            enableTcpReset: false,
          },
        ],
      };
    const frontend: Frontend = {
      id: i.publicIp?.key ?? normIdOf(i.missingPublicIpId ?? `${i.key}#public-ip`),
      name,
      address: this.addr(i.ipAddress),
      configuredAddress: i.ipAddress,
      internal: false,
      publicIp: {
        id: i.publicIp?.key ?? normIdOf(i.missingPublicIpId ?? ''),
        name,
        ...(i.publicIp?.idleTimeoutInMinutes === undefined
          ? {}
          : { idleTimeoutMinutes: i.publicIp.idleTimeoutInMinutes }),
      },
    };
    const rule: LoadBalancingRule = {
      kind: 'loadBalancingRule',
      id: `${i.key}#inbound`,
      name: 'inbound',
      frontend,
      protocols: ['Tcp', 'Udp'],
      armProtocol: 'All',
      idleTimeout: idle(minutes, 'instancePublicIP'),
      // Public IPs have no TCP reset: an idle flow is dropped silently.
      enableTcpReset: false,
      enableFloatingIP: false,
      frontendPort: 0,
      backendPort: 0,
      haPorts: true,
      pool,
      distribution: DEFAULTS.loadDistribution,
      disableOutboundSnat: true,
    };
    // Outbound, the VM's own connections leave from its public IP, every port of it the VM's
    // alone, with the public IP's locked outbound 4 minutes; a NAT gateway on its subnet wins (B10).
    const outbound: OutboundRule = {
      kind: 'outboundRule',
      id: `${i.key}#outbound`,
      name: 'outbound',
      frontends: [frontend],
      pool,
      protocols: ['Tcp', 'Udp'],
      armProtocol: 'All',
      allocatedOutboundPorts: SNAT_PORTS_PER_ADDRESS,
      allocatedOutboundPortsDefaulted: false,
      idleTimeout: idle(DEFAULTS.publicIpOutboundIdleMinutes, 'publicIPOutboundDefault'),
      enableTcpReset: false,
    };
    return {
      ...base,
      frontends: [frontend],
      loadBalancingRules: [rule],
      outboundRules: [outbound],
      outboundPaths: outboundPaths([pool], [outbound], gateways),
    };
  }

  loadBalancer(
    lb: LoadBalancerModel,
    gateways: readonly { model: NatGatewayModel; compiled: NatGateway }[],
  ): LoadBalancerSnapshot {
    const frontends = lb.frontends.filter((f) => f.ipAddress !== undefined).map((f) => this.frontend(f));
    const pools = lb.pools.map((p) => this.pool(p));
    const probes = lb.probes.map((p) => this.probe(p));
    // A rule whose frontend or backend has no address (its public IP or NIC is not in the
    // document, and --map gives none) is not served; it is listed so that explain and run can say so.
    const unserved: UnservedRule[] = [];
    const served = <R extends { readonly name: string }>(
      kind: UnservedRule['kind'],
      rules: readonly R[],
      needs: (r: R) => { frontends: readonly FrontendModel[]; members: readonly MissingMemberModel[] },
      settings: (r: R) => { idle?: number; reset?: boolean },
    ): R[] =>
      rules.filter((r) => {
        const { frontends, members } = needs(r);
        const missing: MissingAddress[] = [];
        for (const f of frontends)
          if (f.ipAddress === undefined && f.missingPublicIpId !== undefined)
            missing.push({
              kind: 'frontend',
              name: f.name,
              resourceId: f.missingPublicIpId,
              fetch: `az network public-ip show --ids ${f.missingPublicIpId}`,
            });
        for (const m of members)
          missing.push({ kind: 'member', name: m.mapName, resourceId: m.id, fetch: nicShowCommand([m.id]) });
        if (missing.length === 0) return true;
        const { idle, reset } = settings(r);
        unserved.push({
          kind,
          name: r.name,
          missing,
          idleTimeoutInMinutes: idle ?? DEFAULTS.idleTimeoutInMinutes,
          enableTcpReset: reset ?? DEFAULTS.enableTcpReset,
        });
        return false;
      });
    const inboundSettings = (r: LbRuleModel | NatRuleModel | OutboundRuleModel) => ({
      ...(r.idleTimeoutInMinutes !== undefined ? { idle: r.idleTimeoutInMinutes } : {}),
      ...(r.enableTcpReset !== undefined ? { reset: r.enableTcpReset } : {}),
    });
    const loadBalancingRules = served(
      'loadBalancingRule',
      lb.rules,
      (r) => ({ frontends: [r.frontend], members: r.pool?.missingMembers ?? [] }),
      inboundSettings,
    ).map((r) => this.lbRule(r));
    const inboundNatRules = served(
      'inboundNatRule',
      lb.natRules,
      (r) => ({
        frontends: [r.frontend],
        members: [
          ...(r.pool?.missingMembers ?? []),
          ...(r.missingTarget === undefined ? [] : [r.missingTarget]),
        ],
      }),
      inboundSettings,
    ).map((r) => this.natRule(r));
    const outboundRules = served(
      'outboundRule',
      lb.outboundRules,
      (r) => ({ frontends: r.frontends, members: r.pool.missingMembers }),
      inboundSettings,
    ).map((r) => this.outboundRule(r));
    return {
      id: lb.key,
      name: lb.name,
      sku: lb.sku,
      frontends,
      pools,
      probes,
      loadBalancingRules,
      inboundNatRules,
      outboundRules,
      outboundPaths: outboundPaths(pools, outboundRules, gateways),
      ...(unserved.length > 0 ? { unserved } : {}),
    };
  }
}

/**
 * B10: one path per member and outbound rule; a member whose subnet has a NAT gateway has
 * one path through the gateway instead, whatever outbound rules cover it.
 */
function outboundPaths(
  pools: readonly BackendPool[],
  rules: readonly OutboundRule[],
  gateways: readonly { model: NatGatewayModel; compiled: NatGateway }[],
): OutboundPath[] {
  const paths: OutboundPath[] = [];
  const viaGateway = new Set<string>();
  for (const pool of pools) {
    const covering = rules.filter((r) => r.pool === pool);
    for (const member of pool.members) {
      const gw =
        member.subnetId === undefined
          ? undefined
          : gateways.find((g) => g.compiled.subnetIds.includes(member.subnetId!));
      if (gw !== undefined) {
        // A member listed in two pools still leaves through its subnet's gateway once.
        if (viaGateway.has(member.configuredAddress)) continue;
        viaGateway.add(member.configuredAddress);
        paths.push({
          member,
          via: { kind: 'natGateway', natGateway: gw.compiled },
          idleTimeout: natGatewayIdleTimeout(gw.model.idleTimeoutInMinutes, covering),
          // A NAT gateway has no TCP reset setting: idle flows through it are dropped silently.
          enableTcpReset: false,
        });
        continue;
      }
      for (const rule of covering) {
        paths.push({
          member,
          via: { kind: 'outboundRule', rule },
          idleTimeout: rule.idleTimeout,
          enableTcpReset: rule.enableTcpReset,
        });
      }
    }
  }
  return paths;
}

/** Freezes a snapshot and everything it reaches: hot paths share it without copying. */
export function deepFreeze<T>(value: T, seen = new Set<unknown>()): T {
  if (typeof value !== 'object' || value === null || seen.has(value)) return value;
  seen.add(value);
  for (const v of Object.values(value)) deepFreeze(v, seen);
  return Object.freeze(value);
}

export function compileSnapshot(model: ResolvedDocument, map: AddressMap = new Map()): RuntimeSnapshot {
  const compiler = new Compiler(map);
  const gateways = model.natGateways.map((g) => ({ model: g, compiled: compiler.natGateway(g) }));
  const snapshot: RuntimeSnapshot = {
    loadBalancers: [
      ...model.loadBalancers.map((lb) => compiler.loadBalancer(lb, gateways)),
      ...model.instancePublicIps.map((i) => compiler.instancePublicIp(i, gateways)),
    ],
    natGateways: gateways.map((g) => g.compiled),
  };
  return deepFreeze(snapshot);
}
