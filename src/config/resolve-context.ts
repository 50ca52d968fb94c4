import { diagnostic, type Diagnostic, type ErrorCode } from '../core/errors.js';
import type { ArmProtocol } from '../core/snapshot.js';
import type { PortClaim } from './conflicts.js';
import { IdIndex, parentLoadBalancerKey } from './ids.js';
import { refId, type Rec } from './json.js';
import type {
  FrontendModel,
  LoadBalancerModel,
  MemberModel,
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
