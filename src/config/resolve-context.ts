import { diagnostic, type Diagnostic, type ErrorCode } from '../core/errors.js';
import type { ArmProtocol } from '../core/snapshot.js';
import type { PortClaim } from './conflicts.js';
import { IdIndex, nicConfigMapName, nicShowCommand, normId, parentLoadBalancerKey } from './ids.js';
import { refId, type Rec } from './json.js';
import type {
  FrontendModel,
  LoadBalancerModel,
  MemberModel,
  MissingMemberModel,
  NatRuleModel,
  PoolModel,
  ProbeModel,
  PublicIpModel,
  ResolveOptions,
} from './model.js';
import { join } from './pointer.js';

/**
 * What one resolution of a document shares between its readers: the diagnostics in the order
 * they are found, the index of every resource a reference may name, and the ports each rule
 * claims (conflicts.ts judges them once every rule is read).
 */

/** A NIC ip configuration, and the pools and NAT rules it names (joined once the load balancers are read). */
export interface NicIpConfig {
  readonly member: MemberModel;
  readonly path: string;
  readonly poolRefs: readonly { id: string; path: string }[];
  readonly natRuleRefs: readonly { id: string; path: string }[];
  /** An instance-level public IP on the ip configuration (a VM reached without a load balancer). */
  readonly publicIpRef?: { id: string; path: string };
}

export class ResolveContext {
  readonly diagnostics: Diagnostic[] = [];
  readonly publicIps = new IdIndex<PublicIpModel>();
  readonly nicIpConfigs = new IdIndex<NicIpConfig>();
  readonly frontends = new IdIndex<FrontendModel>();
  readonly pools = new IdIndex<PoolModel>();
  readonly probes = new IdIndex<ProbeModel>();
  readonly natRules = new IdIndex<NatRuleModel>();
  readonly loadBalancers = new IdIndex<LoadBalancerModel>();
  readonly claims: PortClaim[] = [];
  /** Load balancers that state no `id`: their children answer to loose references. */
  readonly idless = new Set<string>();
  private readonly addressOf: (a: string) => string;
  readonly outsideReferences: 'warning' | 'error';
  /** The address `--map NAME=ADDR` gives a name; the names used are recorded. */
  private readonly nameAddress: (name: string) => string | undefined;
  readonly mappedNames = new Set<string>();
  /** The NIC ip configurations each pool names by id (`backendIPConfigurations`), joined once NICs are read. */
  readonly poolNicRefs = new Map<PoolModel, { id: string; path: string }[]>();
  /** One member (or one missing member) per NIC ip configuration outside the document. */
  private readonly outside = new Map<string, MemberModel | MissingMemberModel>();

  constructor(options: ResolveOptions) {
    this.addressOf = options.addressOf ?? ((a) => a);
    this.outsideReferences = options.outsideReferences ?? 'warning';
    this.nameAddress = options.nameAddress ?? (() => undefined);
  }

  report(code: ErrorCode, path: string, message: string): void {
    this.diagnostics.push(diagnostic(code, path, message));
  }

  /** The resource `holder[prop]` refers to; a reference to nothing in the document is reported. */
  resolveRef<T>(
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

  /** A NIC may belong to a load balancer left out of the document; only a missing child of one present is an error. */
  reportForeignRef(id: string, path: string, owner: string, what: string): void {
    const lbKey = parentLoadBalancerKey(id);
    if (lbKey !== undefined && this.loadBalancers.get(lbKey) !== undefined) {
      this.report(
        'SLUICE_CONFIG_REFERENCE_NOT_FOUND',
        path,
        `${owner} refers to ${what} ${JSON.stringify(id)}, which is not in the document`,
      );
    }
  }

  /** The address `--map` gives the first of `names` it names, recording that it was used. */
  mappedAddress(...names: string[]): string | undefined {
    for (const n of names) {
      const a = this.nameAddress(n);
      if (a !== undefined) {
        this.mappedNames.add(n.toLowerCase());
        return a;
      }
    }
    return undefined;
  }

  /**
   * A NIC ip configuration the load balancer names by id that the document does not hold: a
   * member at the address `--map nic/ipconfig=ADDR` gives it, or a missing member (whose
   * rules are not served). Either way a warning says so and prints the `az` command that
   * fetches the NIC. In the API's store an unmapped one is no member at all (undefined), as in ARM.
   */
  outsideNicMember(id: string, path: string, owner: string): MemberModel | MissingMemberModel | undefined {
    const key = normId(id);
    const mapName = nicConfigMapName(id) ?? id.split('/').pop() ?? id;
    const fetch = `\`${nicShowCommand([id])} > nic.json\` and give nic.json beside the load balancer`;
    let found = this.outside.get(key);
    if (found === undefined) {
      const mapped = this.mappedAddress(mapName);
      found =
        mapped === undefined
          ? { id, mapName, path }
          : { key, name: mapName, path, ipAddress: mapped, adminState: 'None' };
      this.outside.set(key, found);
    }
    if ('ipAddress' in found)
      this.report(
        'SLUICE_CONFIG_REFERENCE_OUTSIDE',
        path,
        `${owner} names NIC ip configuration ${JSON.stringify(id)}, which is not in the document: served at ${found.ipAddress} as --map gives it; to use its own address, get it with ${fetch}`,
      );
    else if (this.outsideReferences === 'error') {
      // ARM sets pool membership from the NIC's side (the load balancer's lists are read-only):
      // a stored load balancer that names a NIC the store lacks just has no such member.
      this.report(
        'SLUICE_CONFIG_UNRESOLVED_BACKEND',
        path,
        `${owner} names NIC ip configuration ${JSON.stringify(id)}, which is not stored: it gets no traffic until its networkInterfaces resource is PUT (membership is set from the NIC's side, as in ARM)`,
      );
      return undefined;
    } else
      this.report(
        'SLUICE_CONFIG_REFERENCE_OUTSIDE',
        path,
        `${owner} names NIC ip configuration ${JSON.stringify(id)}, which is not in the document: its address is unknown, so the rules that forward to it are not served; add --map ${mapName}=ADDR to serve it at a local ADDR, or get it with ${fetch}`,
      );
    return found;
  }

  /** Records that a rule serves ports `lo`-`hi` of `protocol` (both, for All) on a frontend. */
  claim(
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
}
