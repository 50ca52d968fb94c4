import type { AdminState, ArmProtocol, DistributionMode, ProbeProtocol, Sku } from '../core/snapshot.js';

/**
 * The ARM model: what the semantic pass (resolve.ts) makes of a document. It keeps ARM's names
 * and units (`idleTimeoutInMinutes`, `intervalInSeconds`) and holds references resolved: a rule
 * holds its frontend, pool and probe, not their ids. Every `key` is the resource's ARM id as
 * ids.ts normalizes it (a child's derived from its parent's), every `path` the JSON pointer
 * of the resource in the normalized document, which diagnostics name. compile.ts turns it into the runtime snapshot (milliseconds, Azure's
 * defaults, idle timeout precedence).
 */

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
  /** The id of a public IP the frontend uses that is not in the document (no address then). */
  readonly missingPublicIpId?: string;
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

/**
 * A NIC ip configuration a load balancer names by id that is not in the document (`az network
 * lb show` prints NIC-based pools as ids only) and that `--map` gives no address: the rules that
 * need it are not served.
 */
export interface MissingMemberModel {
  /** The ARM id, as the document writes it. */
  readonly id: string;
  /** The name `--map NAME=ADDR` takes for it (`nic/ipconfig`). */
  readonly mapName: string;
  readonly path: string;
}

export interface PoolModel {
  readonly key: string;
  readonly id: string;
  readonly name: string;
  readonly path: string;
  /** Filled in document order: IP-based members, then NIC ip configurations. */
  readonly members: MemberModel[];
  /** NIC ip configurations the pool names that the document lacks and `--map` does not give. */
  readonly missingMembers: MissingMemberModel[];
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
  /** Single-port rules: the NIC ip configuration it forwards to, when the document lacks it. */
  missingTarget?: MissingMemberModel;
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

/**
 * An instance-level public IP: a NIC ip configuration with a public IP of its own, reached with
 * no load balancer. Inbound it is 1:1 NAT to the private address (every port, TCP and UDP) with
 * the public IP's idle timeout and no TCP reset (public IPs have none).
 */
export interface InstancePublicIpModel {
  /** The ip configuration's key. */
  readonly key: string;
  /** `nic/ipconfig`. */
  readonly name: string;
  readonly path: string;
  readonly member: MemberModel;
  /** The public IP, when in the document. */
  readonly publicIp?: PublicIpModel;
  /** The public IP's id when it is not in the document. */
  readonly missingPublicIpId?: string;
  /** The address served: the public IP's, or the one `--map` gives. */
  readonly ipAddress?: string;
}

export interface ResolvedDocument {
  /** The names `--map NAME=ADDR` gave an address to that the document used. */
  readonly mappedNames: readonly string[];
  readonly loadBalancers: readonly LoadBalancerModel[];
  readonly publicIps: readonly PublicIpModel[];
  readonly natGateways: readonly NatGatewayModel[];
  readonly instancePublicIps: readonly InstancePublicIpModel[];
}

export interface ResolveOptions {
  /** The address Sluice will serve for a configured one (after `--map`): conflicts are about those. */
  readonly addressOf?: (configured: string) => string;
  /**
   * A public IP the document refers to but does not hold: a warning for a document a user gives
   * (a load balancer exported alone), an error for the API's stored state, which holds every
   * resource it serves (as ARM refuses a public IP still in use).
   */
  readonly outsideReferences?: 'warning' | 'error';
  /** The address `--map NAME=ADDR` gives a name (a frontend's, a public IP's, a NIC ip
   * configuration's `nic/ipconfig`, a backend address's), if any. */
  readonly nameAddress?: (name: string) => string | undefined;
}
