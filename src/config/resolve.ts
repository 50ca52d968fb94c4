import { isIP } from 'node:net';
import { diagnostic, type Diagnostic, type ErrorCode } from '../core/errors.js';
import type { AdminState, ArmProtocol, DistributionMode, ProbeProtocol, Sku } from '../core/snapshot.js';
import { BOUNDS, outOfBound, type BoundedProperty } from './bounds.js';
import { frontendConflicts, portConflicts, type PortClaim } from './conflicts.js';
import { LB_CHILD_KINDS } from './load.js';
import { join } from './pointer.js';
import { resourceKind } from './schema.js';

/**
 * The semantic pass. It reads the normalized document defensively (the structural pass may
 * have found errors, and every error is reported in one go), resolves ARM id references,
 * and checks what JSON Schema cannot: ranges that depend on the SKU, ports, probe settings
 * (bounds.ts), and who claims which frontend (conflicts.ts). Its output keeps ARM's names and
 * units; compile.ts turns it into the runtime snapshot.
 */

/**
 * Idle timeout ranges in minutes (B2). Outbound rules: 4-120, as Azure's outbound rules page and
 * its API accept; its TCP reset and idle timeout page says 4-100 for all three kinds of rule, an
 * inconsistency between Azure's own pages (docs/behaviour.md, B2).
 */
export const IDLE_RANGES = {
  standardInbound: { min: 4, max: 100, label: 'Standard SKU allows 4-100' },
  standardOutbound: { min: 4, max: 120, label: 'outbound rules allow 4-120' },
  basic: { min: 4, max: 30, label: 'Basic SKU allows 4-30' },
  publicIp: { min: 4, max: 30, label: 'public IP addresses allow 4-30' },
  natGateway: { min: 4, max: 120, label: 'NAT gateways allow 4-120' },
} as const;
type IdleRange = (typeof IDLE_RANGES)[keyof typeof IDLE_RANGES];

export const MAX_SNAT_PORTS_PER_FRONTEND = 64_000;

export interface PublicIpModel {
  readonly key: string;
  readonly id: string;
  readonly name: string;
  readonly path: string;
  readonly ipAddress?: string;
  readonly idleTimeoutInMinutes?: number;
}

export interface FrontendModel {
  readonly key: string;
  readonly id: string;
  readonly name: string;
  readonly path: string;
  readonly internal: boolean;
  /** The configured address: the private one, or the public IP resource's. */
  readonly ipAddress?: string;
  readonly publicIp?: PublicIpModel;
  /** Internal frontends: the subnet their private address is in, when stated. */
  readonly subnetKey?: string;
}

export interface MemberModel {
  readonly key: string;
  readonly name: string;
  readonly path: string;
  readonly ipAddress: string;
  readonly adminState: AdminState;
  readonly subnetKey?: string;
}

export interface PoolModel {
  readonly key: string;
  readonly id: string;
  readonly name: string;
  readonly path: string;
  /** Filled in document order: IP-based members, then NIC ip configurations. */
  readonly members: MemberModel[];
  readonly drainPeriodInSeconds?: number;
}

export interface ProbeModel {
  readonly key: string;
  readonly id: string;
  readonly name: string;
  readonly path: string;
  readonly protocol: ProbeProtocol;
  readonly port: number;
  readonly requestPath?: string;
  readonly intervalInSeconds?: number;
  readonly probeThreshold?: number;
  readonly noHealthyBackendsBehavior?: 'AllProbedDown' | 'AllProbedUp';
}

interface InboundRuleModel {
  readonly key: string;
  readonly id: string;
  readonly name: string;
  readonly path: string;
  readonly frontend: FrontendModel;
  readonly protocol: ArmProtocol;
  readonly idleTimeoutInMinutes?: number;
  readonly enableTcpReset?: boolean;
  readonly enableFloatingIP?: boolean;
}

export interface LbRuleModel extends InboundRuleModel {
  readonly frontendPort: number;
  readonly backendPort?: number;
  readonly pool?: PoolModel;
  readonly probe?: ProbeModel;
  readonly loadDistribution?: DistributionMode;
  readonly disableOutboundSnat?: boolean;
}

export interface NatRuleModel extends InboundRuleModel {
  /** Single-port rules have start === end. */
  readonly frontendPortRangeStart: number;
  readonly frontendPortRangeEnd: number;
  readonly backendPort: number;
  readonly pool?: PoolModel;
  /** Single-port rules: the NIC ip configuration the rule forwards to. */
  target?: MemberModel;
}

export interface OutboundRuleModel {
  readonly key: string;
  readonly id: string;
  readonly name: string;
  readonly path: string;
  readonly frontends: readonly FrontendModel[];
  readonly pool: PoolModel;
  readonly protocol: ArmProtocol;
  readonly allocatedOutboundPorts?: number;
  readonly idleTimeoutInMinutes?: number;
  readonly enableTcpReset?: boolean;
}

export interface NatGatewayModel {
  readonly key: string;
  readonly id: string;
  readonly name: string;
  readonly path: string;
  readonly idleTimeoutInMinutes?: number;
  readonly subnetKeys: readonly string[];
  readonly publicIps: readonly PublicIpModel[];
}

export interface LoadBalancerModel {
  readonly key: string;
  readonly id: string;
  readonly name: string;
  readonly path: string;
  readonly sku: Sku;
  readonly frontends: FrontendModel[];
  readonly pools: PoolModel[];
  readonly probes: ProbeModel[];
  readonly rules: LbRuleModel[];
  readonly natRules: NatRuleModel[];
  readonly outboundRules: OutboundRuleModel[];
}

export interface ResolvedDocument {
  readonly loadBalancers: readonly LoadBalancerModel[];
  readonly publicIps: readonly PublicIpModel[];
  readonly natGateways: readonly NatGatewayModel[];
}

export interface ResolveOptions {
  /** The address Sluice will serve for a configured one (after `--map`): conflicts are about those. */
  readonly addressOf?: (configured: string) => string;
}

type Rec = Record<string, unknown>;

function isRecord(v: unknown): v is Rec {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
const rec = (v: unknown): Rec => (isRecord(v) ? v : {});
const str = (o: Rec, k: string): string | undefined => (typeof o[k] === 'string' ? o[k] : undefined);
const int = (o: Rec, k: string): number | undefined =>
  typeof o[k] === 'number' && Number.isInteger(o[k]) ? o[k] : undefined;
const bool = (o: Rec, k: string): boolean | undefined => (typeof o[k] === 'boolean' ? o[k] : undefined);
const arr = (o: Rec, k: string): unknown[] => (Array.isArray(o[k]) ? o[k] : []);
const refId = (o: Rec, k: string): string | undefined => str(rec(o[k]), 'id');
function oneOf<T extends string>(v: string | undefined, allowed: readonly T[]): T | undefined {
  return allowed.find((a) => a === v);
}

const PROVIDERS = '/providers/';
const SYNTHETIC_SCOPE = '/subscriptions/unknown/resourcegroups/unknown';

function normId(id: string): string {
  return id.trim().replace(/\/+$/, '').toLowerCase();
}

/** The part of an ARM id from `/providers/` on, which names a resource inside its scope. */
function tailOf(key: string): string {
  const i = key.indexOf(PROVIDERS);
  return i < 0 ? key : key.slice(i);
}

/**
 * ARM ids, compared case-insensitively as ARM does. A resource that states no `id` (a
 * hand-written document) answers to any id with its provider path, whatever the
 * subscription and resource group say.
 */
class IdIndex<T> {
  private readonly exact = new Map<string, T>();
  private readonly loose = new Map<string, T>();

  add(key: string, item: T, ownIdKnown: boolean, alias?: string): void {
    if (!this.exact.has(key)) this.exact.set(key, item);
    if (alias !== undefined && !this.exact.has(alias)) this.exact.set(alias, item);
    if (!ownIdKnown && !this.loose.has(tailOf(key))) this.loose.set(tailOf(key), item);
  }

  get(ref: string): T | undefined {
    const key = normId(ref);
    return this.exact.get(key) ?? this.loose.get(tailOf(key));
  }
}

const CHILD_KINDS = LB_CHILD_KINDS;

const CHILD_LABEL: Record<(typeof CHILD_KINDS)[number], string> = {
  frontendIPConfigurations: 'frontendIPConfigurations',
  backendAddressPools: 'backendAddressPools',
  probes: 'probes',
  loadBalancingRules: 'loadBalancingRules',
  inboundNatRules: 'inboundNatRules',
  outboundRules: 'outboundRules',
};

interface NicIpConfig {
  readonly member: MemberModel;
  readonly path: string;
  readonly poolRefs: readonly { id: string; path: string }[];
  readonly natRuleRefs: readonly { id: string; path: string }[];
}

class Resolver {
  readonly diagnostics: Diagnostic[] = [];
  private readonly publicIps = new IdIndex<PublicIpModel>();
  private readonly nicIpConfigs = new IdIndex<NicIpConfig>();
  private readonly frontends = new IdIndex<FrontendModel>();
  private readonly pools = new IdIndex<PoolModel>();
  private readonly probes = new IdIndex<ProbeModel>();
  private readonly natRules = new IdIndex<NatRuleModel>();
  private readonly lbKeys = new IdIndex<LoadBalancerModel>();
  private readonly claims: PortClaim[] = [];
  /** Load balancers that state no `id`: their children answer to loose references. */
  private readonly idless = new Set<string>();
  private readonly addressOf: (a: string) => string;

  constructor(options: ResolveOptions) {
    this.addressOf = options.addressOf ?? ((a) => a);
  }

  private report(code: ErrorCode, path: string, message: string): void {
    this.diagnostics.push(diagnostic(code, path, message));
  }

  private checkIp(value: string | undefined, path: string, what: string): string | undefined {
    if (value === undefined) return undefined;
    if (isIP(value) === 0) {
      this.report(
        'SLUICE_CONFIG_INVALID_VALUE',
        path,
        `${what} ${JSON.stringify(value)} is not an IP address`,
      );
      return undefined;
    }
    return value;
  }

  private checkIdle(value: number | undefined, path: string, owner: string, range: IdleRange): void {
    if (value === undefined) return;
    if (value < range.min || value > range.max) {
      this.report(
        'SLUICE_CONFIG_IDLE_TIMEOUT_RANGE',
        path,
        `${owner} idleTimeoutInMinutes ${value} is out of range: ${range.label}`,
      );
    }
  }

  private checkBound(prop: BoundedProperty, value: number | undefined, pp: string, owner: string): void {
    const problem = outOfBound(prop, value, owner);
    if (problem !== undefined) this.report(BOUNDS[prop].code, join(pp, prop), problem);
  }

  private checkPort(
    value: number | undefined,
    path: string,
    owner: string,
    prop: string,
    lo: number,
    hi: number,
  ): boolean {
    if (value === undefined) return false;
    if (value < lo || value > hi) {
      this.report(
        'SLUICE_CONFIG_PORT_RANGE',
        path,
        `${owner} ${prop} ${value} is out of range: allowed ${lo}-${hi}`,
      );
      return false;
    }
    return true;
  }

  private checkNames(items: unknown[], path: string, kind: string): void {
    const seen = new Map<string, number>();
    items.forEach((item, i) => {
      const name = str(rec(item), 'name');
      if (name === undefined) return;
      const lower = name.toLowerCase();
      const first = seen.get(lower);
      if (first !== undefined) {
        this.report(
          'SLUICE_CONFIG_DUPLICATE_NAME',
          join(path, i, 'name'),
          `${kind} '${name}' is defined twice (also at index ${first})`,
        );
      } else seen.set(lower, i);
    });
  }

  private resolveRef<T>(
    index: IdIndex<T>,
    holder: Rec,
    prop: string,
    path: string,
    owner: string,
    what: string,
  ): T | undefined {
    const id = refId(holder, prop);
    if (id === undefined) return undefined;
    const hit = index.get(id);
    if (hit === undefined) {
      this.report(
        'SLUICE_CONFIG_REFERENCE_NOT_FOUND',
        join(path, prop, 'id'),
        `${owner} ${prop} refers to ${what} ${JSON.stringify(id)}, which is not in the document`,
      );
    }
    return hit;
  }

  run(resources: readonly unknown[]): ResolvedDocument {
    const kinds = resources.map((r) => resourceKind(r));
    const at = (i: number): string => join('/resources', i);

    const publicIps: PublicIpModel[] = [];
    resources.forEach((r, i) => {
      if (kinds[i] === 'publicIPAddress') publicIps.push(this.publicIp(rec(r), at(i)));
    });
    const nics: NicIpConfig[] = [];
    resources.forEach((r, i) => {
      if (kinds[i] === 'networkInterface') nics.push(...this.networkInterface(rec(r), at(i)));
    });

    const lbs: { model: LoadBalancerModel; raw: Rec; path: string }[] = [];
    resources.forEach((r, i) => {
      if (kinds[i] === 'loadBalancer')
        lbs.push({ model: this.loadBalancerShell(rec(r), at(i)), raw: rec(r), path: at(i) });
    });
    // NIC ip configurations join their pools before any rule counts a pool's members.
    for (const nic of nics) {
      for (const ref of nic.poolRefs) {
        const pool = this.pools.get(ref.id);
        if (pool !== undefined) pool.members.push(nic.member);
        else this.reportForeignRef(ref.id, ref.path, `ip configuration '${nic.member.name}'`, 'backend pool');
      }
    }
    for (const lb of lbs) this.loadBalancerRules(lb.model, lb.raw, lb.path);
    for (const nic of nics) {
      for (const ref of nic.natRuleRefs) {
        const rule = this.natRules.get(ref.id);
        if (rule !== undefined) rule.target ??= nic.member;
        else
          this.reportForeignRef(
            ref.id,
            ref.path,
            `ip configuration '${nic.member.name}'`,
            'inbound NAT rule',
          );
      }
    }
    const natGateways: NatGatewayModel[] = [];
    resources.forEach((r, i) => {
      if (kinds[i] === 'natGateway') natGateways.push(this.natGateway(rec(r), at(i)));
    });
    const shared = frontendConflicts(
      lbs.flatMap(({ model }) =>
        model.frontends.map((fe) => ({
          ...fe,
          lb: model,
          publicIp: fe.publicIp === undefined ? undefined : { key: fe.publicIp.key, name: fe.publicIp.name },
        })),
      ),
    );
    this.diagnostics.push(...shared.diagnostics, ...portConflicts(this.claims, shared.pairs));
    return { loadBalancers: lbs.map((l) => l.model), publicIps, natGateways };
  }

  /** A NIC may belong to a load balancer left out of the document; only a missing child of one present is an error. */
  private reportForeignRef(id: string, path: string, owner: string, what: string): void {
    const key = normId(id);
    const m = /^(.*\/providers\/microsoft\.network\/loadbalancers\/[^/]+)\//.exec(key);
    if (m?.[1] !== undefined && this.lbKeys.get(m[1]) !== undefined) {
      this.report(
        'SLUICE_CONFIG_REFERENCE_NOT_FOUND',
        path,
        `${owner} refers to ${what} ${JSON.stringify(id)}, which is not in the document`,
      );
    }
  }

  private resourceKey(res: Rec, provider: string): { key: string; id: string; known: boolean } {
    const own = str(res, 'id');
    if (own !== undefined && own.trim() !== '') return { key: normId(own), id: own, known: true };
    const name = str(res, 'name') ?? '';
    const id = `${SYNTHETIC_SCOPE}${PROVIDERS}microsoft.network/${provider}/${name}`;
    return { key: normId(id), id, known: false };
  }

  private publicIp(res: Rec, path: string): PublicIpModel {
    const { key, id, known } = this.resourceKey(res, 'publicipaddresses');
    const name = str(res, 'name') ?? '';
    const props = rec(res['properties']);
    const ppath = join(path, 'properties');
    const owner = `publicIPAddresses '${name}'`;
    const idle = int(props, 'idleTimeoutInMinutes');
    this.checkIdle(idle, join(ppath, 'idleTimeoutInMinutes'), owner, IDLE_RANGES.publicIp);
    const ipAddress = this.checkIp(str(props, 'ipAddress'), join(ppath, 'ipAddress'), `${owner} ipAddress`);
    const model: PublicIpModel = { key, id, name, path, ipAddress, idleTimeoutInMinutes: idle };
    this.publicIps.add(key, model, known);
    return model;
  }

  private networkInterface(res: Rec, path: string): NicIpConfig[] {
    const { key: nicKey, known } = this.resourceKey(res, 'networkinterfaces');
    const nicName = str(res, 'name') ?? '';
    const ppath = join(path, 'properties');
    const configs = arr(rec(res['properties']), 'ipConfigurations');
    this.checkNames(
      configs,
      join(ppath, 'ipConfigurations'),
      `networkInterfaces '${nicName}' ipConfigurations`,
    );
    const out: NicIpConfig[] = [];
    configs.forEach((c, i) => {
      const cfg = rec(c);
      const cpath = join(ppath, 'ipConfigurations', i);
      const name = str(cfg, 'name');
      if (name === undefined) return;
      const props = rec(cfg['properties']);
      const pp = join(cpath, 'properties');
      const label = `${nicName}/${name}`;
      const derived = normId(`${nicKey}/ipConfigurations/${name}`);
      const own = str(cfg, 'id');
      const address = this.checkIp(
        str(props, 'privateIPAddress'),
        join(pp, 'privateIPAddress'),
        `ip configuration '${label}' privateIPAddress`,
      );
      if (address === undefined) {
        if (str(props, 'privateIPAddress') === undefined) {
          this.report(
            'SLUICE_CONFIG_REQUIRED',
            join(pp, 'privateIPAddress'),
            `ip configuration '${label}' needs its privateIPAddress to be used as a backend`,
          );
        }
        return;
      }
      const subnet = refId(props, 'subnet');
      const member: MemberModel = {
        key: derived,
        name: label,
        path: cpath,
        ipAddress: address,
        adminState: 'None',
        subnetKey: subnet === undefined ? undefined : normId(subnet),
      };
      const refsOf = (prop: string): { id: string; path: string }[] =>
        arr(props, prop).flatMap((r, j) => {
          const id = str(rec(r), 'id');
          return id === undefined ? [] : [{ id, path: join(pp, prop, j, 'id') }];
        });
      const entry: NicIpConfig = {
        member,
        path: cpath,
        poolRefs: refsOf('loadBalancerBackendAddressPools'),
        natRuleRefs: refsOf('loadBalancerInboundNatRules'),
      };
      this.nicIpConfigs.add(derived, entry, known, own === undefined ? undefined : normId(own));
      out.push(entry);
    });
    return out;
  }

  /** Frontends, pools and probes: what rules refer to. Rules come once every NIC has joined its pools. */
  private loadBalancerShell(res: Rec, path: string): LoadBalancerModel {
    const { key, id, known } = this.resourceKey(res, 'loadbalancers');
    const name = str(res, 'name') ?? '';
    const props = rec(res['properties']);
    const ppath = join(path, 'properties');
    const skuName = str(rec(res['sku']), 'name');
    // Azure's API still defaults to Basic, but every export states its SKU; a hand-written
    // document without one means the load balancer Sluice models: Standard.
    const sku: Sku = skuName === 'Basic' ? 'Basic' : 'Standard';
    if (str(rec(res['sku']), 'tier') === 'Global') {
      this.report(
        'SLUICE_CONFIG_UNSUPPORTED',
        join(path, 'sku', 'tier'),
        `loadBalancers '${name}': the Global tier (cross-region load balancer) is not modelled; it is treated as Regional`,
      );
    }
    if (arr(props, 'inboundNatPools').length > 0) {
      this.report(
        'SLUICE_CONFIG_UNSUPPORTED',
        join(ppath, 'inboundNatPools'),
        `loadBalancers '${name}': inboundNatPools (virtual machine scale sets) are not supported; use inboundNatRules with frontendPortRangeStart/End`,
      );
    }
    for (const kind of CHILD_KINDS) this.checkNames(arr(props, kind), join(ppath, kind), CHILD_LABEL[kind]);

    const model: LoadBalancerModel = {
      key,
      id,
      name,
      path,
      sku,
      frontends: [],
      pools: [],
      probes: [],
      rules: [],
      natRules: [],
      outboundRules: [],
    };
    this.lbKeys.add(key, model, known);
    if (!known) this.idless.add(key);
    const childKey = (kind: string, childName: string): string => normId(`${key}/${kind}/${childName}`);
    const register = <T>(index: IdIndex<T>, kind: string, child: Rec, item: T): void => {
      const own = str(child, 'id');
      index.add(
        childKey(kind, str(child, 'name') ?? ''),
        item,
        known,
        own === undefined ? undefined : normId(own),
      );
    };

    arr(props, 'frontendIPConfigurations').forEach((c, i) => {
      const fe = this.frontend(rec(c), join(ppath, 'frontendIPConfigurations', i), childKey);
      if (fe !== undefined) {
        model.frontends.push(fe);
        register(this.frontends, 'frontendIPConfigurations', rec(c), fe);
      }
    });
    arr(props, 'backendAddressPools').forEach((c, i) => {
      const pool = this.pool(rec(c), join(ppath, 'backendAddressPools', i), childKey);
      if (pool !== undefined) {
        model.pools.push(pool);
        register(this.pools, 'backendAddressPools', rec(c), pool);
      }
    });
    arr(props, 'probes').forEach((c, i) => {
      const probe = this.probe(rec(c), join(ppath, 'probes', i), childKey);
      if (probe !== undefined) {
        model.probes.push(probe);
        register(this.probes, 'probes', rec(c), probe);
      }
    });
    return model;
  }

  private frontend(
    c: Rec,
    path: string,
    childKey: (k: string, n: string) => string,
  ): FrontendModel | undefined {
    const name = str(c, 'name');
    if (name === undefined) return undefined;
    const owner = `frontendIPConfigurations '${name}'`;
    const props = rec(c['properties']);
    const pp = join(path, 'properties');
    for (const prop of ['publicIPPrefix', 'gatewayLoadBalancer']) {
      if (props[prop] !== undefined) {
        this.report(
          'SLUICE_CONFIG_UNSUPPORTED',
          join(pp, prop),
          `${owner} ${prop} is not supported; it is ignored`,
        );
      }
    }
    const privateRaw = str(props, 'privateIPAddress');
    const hasPublic = refId(props, 'publicIPAddress') !== undefined;
    const base = { key: childKey('frontendIPConfigurations', name), id: str(c, 'id') ?? '', name, path };
    if (privateRaw !== undefined && hasPublic) {
      this.report(
        'SLUICE_CONFIG_INVALID_VALUE',
        join(pp, 'publicIPAddress'),
        `${owner} has both a privateIPAddress and a publicIPAddress; a frontend is either internal or public`,
      );
    }
    if (hasPublic && privateRaw === undefined) {
      const pip = this.resolveRef(this.publicIps, props, 'publicIPAddress', pp, owner, 'public IP address');
      if (pip === undefined) return { ...base, internal: false };
      if (pip.ipAddress === undefined) {
        this.report(
          'SLUICE_CONFIG_REQUIRED',
          join(pip.path, 'properties', 'ipAddress'),
          `publicIPAddresses '${pip.name}' has no ipAddress, so frontend '${name}' has no address to serve`,
        );
      }
      return { ...base, internal: false, ipAddress: pip.ipAddress, publicIp: pip };
    }
    if (privateRaw === undefined) {
      this.report(
        'SLUICE_CONFIG_REQUIRED',
        join(pp, 'privateIPAddress'),
        `${owner} needs a privateIPAddress (internal frontend) or a publicIPAddress reference (public frontend)`,
      );
      return { ...base, internal: true };
    }
    const ipAddress = this.checkIp(privateRaw, join(pp, 'privateIPAddress'), `${owner} privateIPAddress`);
    const subnet = refId(props, 'subnet');
    return {
      ...base,
      internal: true,
      ipAddress,
      subnetKey: subnet === undefined ? undefined : normId(subnet),
    };
  }

  private pool(c: Rec, path: string, childKey: (k: string, n: string) => string): PoolModel | undefined {
    const name = str(c, 'name');
    if (name === undefined) return undefined;
    const owner = `backendAddressPools '${name}'`;
    const props = rec(c['properties']);
    const pp = join(path, 'properties');
    const drain = int(props, 'drainPeriodInSeconds');
    this.checkBound('drainPeriodInSeconds', drain, pp, owner);
    if (arr(props, 'tunnelInterfaces').length > 0) {
      this.report(
        'SLUICE_CONFIG_UNSUPPORTED',
        join(pp, 'tunnelInterfaces'),
        `${owner} tunnelInterfaces (gateway load balancer) are not supported; they are ignored`,
      );
    }
    const key = childKey('backendAddressPools', name);
    const members: MemberModel[] = [];
    const addresses = arr(props, 'loadBalancerBackendAddresses');
    this.checkNames(
      addresses,
      join(pp, 'loadBalancerBackendAddresses'),
      `${owner} loadBalancerBackendAddresses`,
    );
    addresses.forEach((a, i) => {
      const addr = rec(a);
      const apath = join(pp, 'loadBalancerBackendAddresses', i);
      const memberName = str(addr, 'name');
      if (memberName === undefined) return;
      const ap = rec(addr['properties']);
      const raw = str(ap, 'ipAddress');
      if (raw === undefined) {
        // Cross-region pools name a regional frontend instead of an address.
        if (refId(ap, 'loadBalancerFrontendIPConfiguration') !== undefined) {
          this.report(
            'SLUICE_CONFIG_UNSUPPORTED',
            join(apath, 'properties', 'loadBalancerFrontendIPConfiguration'),
            `${owner} member '${memberName}' points at a regional frontend (cross-region load balancer); it is ignored`,
          );
        } else if (refId(ap, 'networkInterfaceIPConfiguration') === undefined) {
          this.report(
            'SLUICE_CONFIG_REQUIRED',
            join(apath, 'properties', 'ipAddress'),
            `${owner} member '${memberName}' needs an ipAddress`,
          );
        }
        return;
      }
      const ipAddress = this.checkIp(
        raw,
        join(apath, 'properties', 'ipAddress'),
        `${owner} member '${memberName}' ipAddress`,
      );
      if (ipAddress === undefined) return;
      const subnet = refId(ap, 'subnet');
      members.push({
        key: `${key}/loadbalancerbackendaddresses/${memberName.toLowerCase()}`,
        name: memberName,
        path: apath,
        ipAddress,
        adminState: oneOf(str(ap, 'adminState'), ['None', 'Up', 'Down'] as const) ?? 'None',
        subnetKey: subnet === undefined ? undefined : normId(subnet),
      });
    });
    return { key, id: str(c, 'id') ?? '', name, path, members, drainPeriodInSeconds: drain };
  }

  private probe(c: Rec, path: string, childKey: (k: string, n: string) => string): ProbeModel | undefined {
    const name = str(c, 'name');
    if (name === undefined) return undefined;
    const owner = `probes '${name}'`;
    const props = rec(c['properties']);
    const pp = join(path, 'properties');
    const protocol = oneOf(str(props, 'protocol'), ['Tcp', 'Http', 'Https'] as const);
    const port = int(props, 'port');
    const requestPath = str(props, 'requestPath');
    const interval = int(props, 'intervalInSeconds');
    if (protocol === 'Tcp' && requestPath !== undefined) {
      this.report(
        'SLUICE_CONFIG_PROBE_PATH',
        join(pp, 'requestPath'),
        `${owner} is a Tcp probe: requestPath is only allowed for Http and Https probes`,
      );
    }
    if ((protocol === 'Http' || protocol === 'Https') && requestPath === undefined) {
      this.report(
        'SLUICE_CONFIG_PROBE_PATH',
        join(pp, 'requestPath'),
        `${owner} is an ${protocol} probe and needs a requestPath (for example "/")`,
      );
    }
    if (requestPath !== undefined && protocol !== 'Tcp' && !requestPath.startsWith('/')) {
      this.report(
        'SLUICE_CONFIG_INVALID_VALUE',
        join(pp, 'requestPath'),
        `${owner} requestPath ${JSON.stringify(requestPath)} must start with "/"`,
      );
    }
    this.checkBound('intervalInSeconds', interval, pp, owner);
    this.checkBound('probeThreshold', int(props, 'probeThreshold'), pp, owner);
    this.checkBound('numberOfProbes', int(props, 'numberOfProbes'), pp, owner);
    const portOk = this.checkPort(port, join(pp, 'port'), owner, 'port', 1, 65535);
    if (protocol === undefined || port === undefined || !portOk) return undefined;
    return {
      key: childKey('probes', name),
      id: str(c, 'id') ?? '',
      name,
      path,
      protocol,
      port,
      requestPath: protocol === 'Tcp' ? undefined : requestPath,
      intervalInSeconds: interval,
      probeThreshold: int(props, 'probeThreshold'),
      noHealthyBackendsBehavior: oneOf(str(props, 'noHealthyBackendsBehavior'), [
        'AllProbedDown',
        'AllProbedUp',
      ] as const),
    };
  }

  private inboundRange(sku: Sku): IdleRange {
    return sku === 'Basic' ? IDLE_RANGES.basic : IDLE_RANGES.standardInbound;
  }

  private checkReset(sku: Sku, props: Rec, pp: string, owner: string): void {
    if (sku === 'Basic' && bool(props, 'enableTcpReset') === true) {
      this.report(
        'SLUICE_CONFIG_TCP_RESET_BASIC',
        join(pp, 'enableTcpReset'),
        `${owner} enableTcpReset is true, but the Basic SKU does not offer TCP reset on idle; use the Standard SKU or remove it`,
      );
    }
  }

  private claim(
    lb: LoadBalancerModel,
    frontend: FrontendModel,
    protocol: ArmProtocol,
    lo: number,
    hi: number,
    owner: string,
    path: string,
  ): void {
    const address =
      frontend.ipAddress === undefined ? `frontend:${frontend.key}` : this.addressOf(frontend.ipAddress);
    const protocols: ('Tcp' | 'Udp')[] = protocol === 'All' ? ['Tcp', 'Udp'] : [protocol];
    for (const p of protocols)
      this.claims.push({ address, protocol: p, lo, hi, lb, frontend: frontend.key, owner, path });
  }

  private loadBalancerRules(lb: LoadBalancerModel, res: Rec, path: string): void {
    const props = rec(res['properties']);
    const ppath = join(path, 'properties');
    const childKey = (kind: string, childName: string): string => normId(`${lb.key}/${kind}/${childName}`);
    arr(props, 'loadBalancingRules').forEach((c, i) => {
      const rule = this.lbRule(lb, rec(c), join(ppath, 'loadBalancingRules', i), childKey);
      if (rule !== undefined) lb.rules.push(rule);
    });
    arr(props, 'inboundNatRules').forEach((c, i) => {
      const child = rec(c);
      const rule = this.natRule(lb, child, join(ppath, 'inboundNatRules', i), childKey);
      if (rule !== undefined) {
        lb.natRules.push(rule);
        const own = str(child, 'id');
        this.natRules.add(
          rule.key,
          rule,
          !this.idless.has(lb.key),
          own === undefined ? undefined : normId(own),
        );
      }
    });
    arr(props, 'outboundRules').forEach((c, i) => {
      const rule = this.outboundRule(lb, rec(c), join(ppath, 'outboundRules', i), childKey);
      if (rule !== undefined) lb.outboundRules.push(rule);
    });
  }

  private lbRule(
    lb: LoadBalancerModel,
    c: Rec,
    path: string,
    childKey: (k: string, n: string) => string,
  ): LbRuleModel | undefined {
    const name = str(c, 'name');
    if (name === undefined) return undefined;
    const owner = `loadBalancingRules '${name}'`;
    const props = rec(c['properties']);
    const pp = join(path, 'properties');
    const protocol = oneOf(str(props, 'protocol'), ['Tcp', 'Udp', 'All'] as const);
    const frontend = this.resolveRef(this.frontends, props, 'frontendIPConfiguration', pp, owner, 'frontend');
    const poolProp = refId(props, 'backendAddressPool') !== undefined ? 'backendAddressPool' : undefined;
    let pool =
      poolProp === undefined
        ? undefined
        : this.resolveRef(this.pools, props, poolProp, pp, owner, 'backend pool');
    if (poolProp === undefined) {
      const first = arr(props, 'backendAddressPools')[0];
      if (first !== undefined)
        pool = this.resolveRef(
          this.pools,
          { 0: first },
          '0',
          join(pp, 'backendAddressPools'),
          owner,
          'backend pool',
        );
      else
        this.report(
          'SLUICE_CONFIG_UNRESOLVED_BACKEND',
          pp,
          `${owner} has no backendAddressPool: connections to it are refused`,
        );
    }
    const probe = this.resolveRef(this.probes, props, 'probe', pp, owner, 'probe');
    const idle = int(props, 'idleTimeoutInMinutes');
    this.checkIdle(idle, join(pp, 'idleTimeoutInMinutes'), owner, this.inboundRange(lb.sku));
    this.checkReset(lb.sku, props, pp, owner);

    const frontendPort = int(props, 'frontendPort');
    const backendPortRaw = int(props, 'backendPort');
    const fpOk = this.checkPort(frontendPort, join(pp, 'frontendPort'), owner, 'frontendPort', 0, 65534);
    const bpOk =
      backendPortRaw === undefined ||
      this.checkPort(backendPortRaw, join(pp, 'backendPort'), owner, 'backendPort', 0, 65535);
    const backendPort = backendPortRaw ?? frontendPort;
    const haPorts = frontendPort === 0;
    if (fpOk && bpOk) {
      if (haPorts) {
        const problems: string[] = [];
        if (protocol !== undefined && protocol !== 'All') problems.push(`protocol is ${protocol}`);
        if (frontend !== undefined && !frontend.internal) problems.push('the frontend is public');
        if (backendPort !== 0) problems.push(`backendPort is ${String(backendPort)}`);
        if (problems.length > 0) {
          this.report(
            'SLUICE_CONFIG_HA_PORTS',
            join(pp, 'frontendPort'),
            `${owner} frontendPort 0 (HA ports) needs protocol All, backendPort 0 and an internal frontend, but ${problems.join(' and ')}`,
          );
        }
        if (lb.sku === 'Basic') {
          this.report(
            'SLUICE_CONFIG_SKU_FEATURE',
            join(pp, 'frontendPort'),
            `${owner} uses HA ports (frontendPort 0), which the Basic SKU does not offer`,
          );
        }
        if (bool(props, 'enableTcpReset') === true && lb.sku === 'Standard') {
          this.report(
            'SLUICE_CONFIG_HA_PORTS_TCP_RESET',
            join(pp, 'enableTcpReset'),
            `${owner} enables TCP reset on an HA-ports rule: Azure does not send it when a network virtual appliance is in the path; use an outbound rule with enableTcpReset on the appliance's traffic instead`,
          );
        }
      } else if (protocol === 'All') {
        this.report(
          'SLUICE_CONFIG_HA_PORTS',
          join(pp, 'protocol'),
          `${owner} protocol All is only for HA ports rules (frontendPort 0 and backendPort 0), but frontendPort is ${String(frontendPort)}`,
        );
      } else if (backendPort === 0) {
        this.report(
          'SLUICE_CONFIG_PORT_RANGE',
          join(pp, 'backendPort'),
          `${owner} backendPort 0 is only allowed for HA ports rules: allowed 1-65535`,
        );
      }
    }
    if (
      frontend === undefined ||
      protocol === undefined ||
      frontendPort === undefined ||
      backendPort === undefined ||
      !fpOk ||
      !bpOk
    )
      return undefined;
    if (haPorts) this.claim(lb, frontend, protocol, 0, 65535, owner, join(pp, 'frontendPort'));
    else this.claim(lb, frontend, protocol, frontendPort, frontendPort, owner, join(pp, 'frontendPort'));
    return {
      key: childKey('loadBalancingRules', name),
      id: str(c, 'id') ?? '',
      name,
      path,
      frontend,
      protocol,
      frontendPort,
      backendPort,
      pool,
      probe,
      idleTimeoutInMinutes: idle,
      enableTcpReset: bool(props, 'enableTcpReset'),
      enableFloatingIP: bool(props, 'enableFloatingIP'),
      loadDistribution: oneOf(str(props, 'loadDistribution'), [
        'Default',
        'SourceIP',
        'SourceIPProtocol',
      ] as const),
      disableOutboundSnat: bool(props, 'disableOutboundSnat'),
    };
  }

  private natRule(
    lb: LoadBalancerModel,
    c: Rec,
    path: string,
    childKey: (k: string, n: string) => string,
  ): NatRuleModel | undefined {
    const name = str(c, 'name');
    if (name === undefined) return undefined;
    const owner = `inboundNatRules '${name}'`;
    const props = rec(c['properties']);
    const pp = join(path, 'properties');
    const protocol = oneOf(str(props, 'protocol'), ['Tcp', 'Udp', 'All'] as const);
    const frontend = this.resolveRef(this.frontends, props, 'frontendIPConfiguration', pp, owner, 'frontend');
    const idle = int(props, 'idleTimeoutInMinutes');
    this.checkIdle(idle, join(pp, 'idleTimeoutInMinutes'), owner, this.inboundRange(lb.sku));
    this.checkReset(lb.sku, props, pp, owner);
    const backendPort = int(props, 'backendPort');
    const bpOk = this.checkPort(backendPort, join(pp, 'backendPort'), owner, 'backendPort', 1, 65535);

    // Azure prints frontendPort 0 on port-range rules and leaves the range unset (or 0) on single-port ones.
    const nonZero = (k: string): number | undefined => {
      const v = int(props, k);
      return v === 0 ? undefined : v;
    };
    const start = nonZero('frontendPortRangeStart');
    const end = nonZero('frontendPortRangeEnd');
    const single = nonZero('frontendPort');
    const poolRef = refId(props, 'backendAddressPool');
    let lo: number | undefined;
    let hi: number | undefined;
    let pool: PoolModel | undefined;
    if (start !== undefined || end !== undefined) {
      if (single !== undefined) {
        this.report(
          'SLUICE_CONFIG_INVALID_VALUE',
          join(pp, 'frontendPort'),
          `${owner} sets both frontendPort and frontendPortRangeStart/End; use one or the other`,
        );
      }
      if (start === undefined)
        this.report(
          'SLUICE_CONFIG_REQUIRED',
          join(pp, 'frontendPortRangeStart'),
          `${owner} sets frontendPortRangeEnd but not frontendPortRangeStart`,
        );
      if (end === undefined)
        this.report(
          'SLUICE_CONFIG_REQUIRED',
          join(pp, 'frontendPortRangeEnd'),
          `${owner} sets frontendPortRangeStart but not frontendPortRangeEnd`,
        );
      if (poolRef === undefined)
        this.report(
          'SLUICE_CONFIG_REQUIRED',
          join(pp, 'backendAddressPool'),
          `${owner} has a frontend port range and needs a backendAddressPool to spread it over`,
        );
      else pool = this.resolveRef(this.pools, props, 'backendAddressPool', pp, owner, 'backend pool');
      const sOk = this.checkPort(
        start,
        join(pp, 'frontendPortRangeStart'),
        owner,
        'frontendPortRangeStart',
        1,
        65534,
      );
      const eOk = this.checkPort(
        end,
        join(pp, 'frontendPortRangeEnd'),
        owner,
        'frontendPortRangeEnd',
        1,
        65534,
      );
      if (sOk && eOk && start !== undefined && end !== undefined) {
        if (end < start) {
          this.report(
            'SLUICE_CONFIG_PORT_RANGE',
            join(pp, 'frontendPortRangeEnd'),
            `${owner} frontendPortRangeEnd ${end} is below frontendPortRangeStart ${start}`,
          );
        } else {
          lo = start;
          hi = end;
          const size = end - start + 1;
          if (pool !== undefined && pool.members.length > size) {
            this.report(
              'SLUICE_CONFIG_PORT_RANGE',
              join(pp, 'frontendPortRangeEnd'),
              `${owner} frontend port range ${start}-${end} holds ${size} port(s) but backendAddressPools '${pool.name}' has ${pool.members.length} members: each member needs its own port`,
            );
          }
        }
      }
    } else {
      if (single === undefined) {
        if (int(props, 'frontendPort') === 0)
          this.report(
            'SLUICE_CONFIG_PORT_RANGE',
            join(pp, 'frontendPort'),
            `${owner} frontendPort 0 is out of range: allowed 1-65534`,
          );
        else
          this.report(
            'SLUICE_CONFIG_REQUIRED',
            join(pp, 'frontendPort'),
            `${owner} needs a frontendPort, or frontendPortRangeStart/End with a backendAddressPool`,
          );
      } else if (this.checkPort(single, join(pp, 'frontendPort'), owner, 'frontendPort', 1, 65534)) {
        lo = single;
        hi = single;
      }
      if (poolRef !== undefined) {
        this.report(
          'SLUICE_CONFIG_INVALID_VALUE',
          join(pp, 'backendAddressPool'),
          `${owner} has a single frontendPort: a backendAddressPool needs frontendPortRangeStart/End; a single-port rule is bound to one NIC ip configuration`,
        );
      }
    }
    if (
      frontend === undefined ||
      protocol === undefined ||
      backendPort === undefined ||
      !bpOk ||
      lo === undefined ||
      hi === undefined
    )
      return undefined;
    this.claim(
      lb,
      frontend,
      protocol,
      lo,
      hi,
      owner,
      join(pp, single === undefined ? 'frontendPortRangeStart' : 'frontendPort'),
    );
    const rule: NatRuleModel = {
      key: childKey('inboundNatRules', name),
      id: str(c, 'id') ?? '',
      name,
      path,
      frontend,
      protocol,
      frontendPortRangeStart: lo,
      frontendPortRangeEnd: hi,
      backendPort,
      pool,
      idleTimeoutInMinutes: idle,
      enableTcpReset: bool(props, 'enableTcpReset'),
      enableFloatingIP: bool(props, 'enableFloatingIP'),
    };
    // The NIC side names the rule too; the rule's own back-reference is a fallback.
    const backRef = refId(props, 'backendIPConfiguration');
    if (single !== undefined && backRef !== undefined) {
      const nic = this.nicIpConfigs.get(backRef);
      if (nic !== undefined) rule.target = nic.member;
      else
        this.report(
          'SLUICE_CONFIG_UNRESOLVED_BACKEND',
          join(pp, 'backendIPConfiguration', 'id'),
          `${owner} forwards to NIC ip configuration ${JSON.stringify(backRef)}, which is not in the document; add its networkInterfaces resource or the rule forwards nowhere`,
        );
    }
    return rule;
  }

  private outboundRule(
    lb: LoadBalancerModel,
    c: Rec,
    path: string,
    childKey: (k: string, n: string) => string,
  ): OutboundRuleModel | undefined {
    const name = str(c, 'name');
    if (name === undefined) return undefined;
    const owner = `outboundRules '${name}'`;
    const props = rec(c['properties']);
    const pp = join(path, 'properties');
    if (lb.sku === 'Basic') {
      this.report('SLUICE_CONFIG_SKU_FEATURE', path, `${owner}: outbound rules need the Standard SKU`);
      this.checkReset(lb.sku, props, pp, owner);
    }
    const idle = int(props, 'idleTimeoutInMinutes');
    this.checkIdle(
      idle,
      join(pp, 'idleTimeoutInMinutes'),
      owner,
      lb.sku === 'Basic' ? IDLE_RANGES.basic : IDLE_RANGES.standardOutbound,
    );
    const frontends: FrontendModel[] = [];
    arr(props, 'frontendIPConfigurations').forEach((r, i) => {
      const fe = this.resolveRef(
        this.frontends,
        { [i]: r },
        String(i),
        join(pp, 'frontendIPConfigurations'),
        owner,
        'frontend',
      );
      if (fe === undefined) return;
      if (fe.internal) {
        this.report(
          'SLUICE_CONFIG_INVALID_VALUE',
          join(pp, 'frontendIPConfigurations', i, 'id'),
          `${owner} uses frontend '${fe.name}', which is internal: outbound rules need a public frontend`,
        );
      }
      frontends.push(fe);
    });
    const pool = this.resolveRef(this.pools, props, 'backendAddressPool', pp, owner, 'backend pool');
    const protocol = oneOf(str(props, 'protocol'), ['Tcp', 'Udp', 'All'] as const);
    const ports = int(props, 'allocatedOutboundPorts');
    if (ports !== undefined && ports > 0) {
      if (ports % 8 !== 0) {
        this.report(
          'SLUICE_CONFIG_OUTBOUND_PORTS',
          join(pp, 'allocatedOutboundPorts'),
          `${owner} allocatedOutboundPorts ${ports} is not a multiple of 8`,
        );
      } else if (ports > MAX_SNAT_PORTS_PER_FRONTEND) {
        this.report(
          'SLUICE_CONFIG_OUTBOUND_PORTS',
          join(pp, 'allocatedOutboundPorts'),
          `${owner} allocatedOutboundPorts ${ports} is out of range: allowed 0-${MAX_SNAT_PORTS_PER_FRONTEND} in multiples of 8 (the ports one frontend IP offers a member)`,
        );
      } else if (pool !== undefined && frontends.length > 0) {
        const needed = ports * pool.members.length;
        const available = MAX_SNAT_PORTS_PER_FRONTEND * frontends.length;
        if (needed > available) {
          this.report(
            'SLUICE_CONFIG_OUTBOUND_PORTS',
            join(pp, 'allocatedOutboundPorts'),
            `${owner} allocatedOutboundPorts ${ports} x ${pool.members.length} members = ${needed} ports, more than the ${available} that ${frontends.length} frontend IP(s) offer (64000 each)`,
          );
        }
      }
    }
    if (pool === undefined || protocol === undefined || frontends.length === 0) return undefined;
    return {
      key: childKey('outboundRules', name),
      id: str(c, 'id') ?? '',
      name,
      path,
      frontends,
      pool,
      protocol,
      allocatedOutboundPorts: ports,
      idleTimeoutInMinutes: idle,
      enableTcpReset: bool(props, 'enableTcpReset'),
    };
  }

  private natGateway(res: Rec, path: string): NatGatewayModel {
    const { key, id } = this.resourceKey(res, 'natgateways');
    const name = str(res, 'name') ?? '';
    const owner = `natGateways '${name}'`;
    const props = rec(res['properties']);
    const pp = join(path, 'properties');
    const idle = int(props, 'idleTimeoutInMinutes');
    this.checkIdle(idle, join(pp, 'idleTimeoutInMinutes'), owner, IDLE_RANGES.natGateway);
    const publicIps: PublicIpModel[] = [];
    arr(props, 'publicIpAddresses').forEach((r, i) => {
      const pip = this.resolveRef(
        this.publicIps,
        { [i]: r },
        String(i),
        join(pp, 'publicIpAddresses'),
        owner,
        'public IP address',
      );
      if (pip !== undefined) publicIps.push(pip);
    });
    const subnetKeys = arr(props, 'subnets').flatMap((r) => {
      const sid = str(rec(r), 'id');
      return sid === undefined ? [] : [normId(sid)];
    });
    return { key, id, name, path, idleTimeoutInMinutes: idle, subnetKeys, publicIps };
  }
}

/** Resolves references and checks the document's meaning; never throws on a malformed document. */
export function resolveDocument(
  document: { readonly resources: readonly unknown[] },
  options: ResolveOptions = {},
): { readonly model: ResolvedDocument; readonly diagnostics: readonly Diagnostic[] } {
  const resolver = new Resolver(options);
  const model = resolver.run(document.resources);
  return { model, diagnostics: resolver.diagnostics };
}
