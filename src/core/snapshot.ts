/**
 * The compiled, immutable form of a load balancer's configuration: what the data planes,
 * the prober and `explain` read. `config/compile.ts` builds it from a validated ARM document;
 * nothing in `core` knows about ARM JSON. Durations are milliseconds in Azure's own units:
 * `--time-scale` acts on the clock, never on these values.
 */

export type Sku = 'Basic' | 'Standard';
/** A transport protocol a flow can have. ARM's `All` compiles to both. */
export type Protocol = 'Tcp' | 'Udp';
export type ArmProtocol = 'Tcp' | 'Udp' | 'All';
export type DistributionMode = 'Default' | 'SourceIP' | 'SourceIPProtocol';
export type AdminState = 'None' | 'Up' | 'Down';
export type ProbeProtocol = 'Tcp' | 'Http' | 'Https';
export type RuleKind = 'loadBalancingRule' | 'inboundNatRule' | 'outboundRule';

/** Which setting decided a path's idle timeout (B9, B10). */
export type IdleDecidedBy =
  | 'rule'
  | 'frontendPublicIP'
  | 'instancePublicIP'
  | 'outboundRule'
  | 'publicIPOutboundDefault'
  | 'natGateway';

export interface IdleTimeout {
  readonly minutes: number;
  readonly ms: number;
  readonly decidedBy: IdleDecidedBy;
  /** The settings that were present but lost by precedence, with their values. */
  readonly overridden: readonly { readonly by: IdleDecidedBy; readonly minutes: number }[];
}

export interface Frontend {
  /** ARM id, lower-cased: the key other parts of the snapshot use. */
  readonly id: string;
  readonly name: string;
  /** The address Sluice serves, after `--map`. */
  readonly address: string;
  /** The address as the document states it, before `--map`. */
  readonly configuredAddress: string;
  /** Internal (private address in a subnet) or public (through a public IP resource). */
  readonly internal: boolean;
  readonly publicIp?: { readonly id: string; readonly name: string; readonly idleTimeoutMinutes?: number };
}

export interface BackendMember {
  /** Stable key: the pool's id and the member's name. */
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly configuredAddress: string;
  readonly adminState: AdminState;
  /** Lower-cased ARM id of the member's subnet, when known (NAT gateway precedence). */
  readonly subnetId?: string;
}

export interface BackendPool {
  readonly id: string;
  readonly name: string;
  /** In document order: inbound NAT port ranges assign ports in this order. */
  readonly members: readonly BackendMember[];
  readonly drainPeriodMs: number;
}

export interface Probe {
  readonly id: string;
  readonly name: string;
  readonly protocol: ProbeProtocol;
  readonly port: number;
  readonly requestPath?: string;
  readonly intervalMs: number;
  /** Consecutive results needed to change a member's state. */
  readonly threshold: number;
  /** `AllProbedUp`: when every member is down, send traffic to all of them anyway. */
  readonly noHealthyBackendsBehavior: 'AllProbedDown' | 'AllProbedUp';
}

export interface InboundRuleBase {
  readonly id: string;
  readonly name: string;
  readonly frontend: Frontend;
  readonly protocols: readonly Protocol[];
  readonly armProtocol: ArmProtocol;
  readonly idleTimeout: IdleTimeout;
  readonly enableTcpReset: boolean;
  readonly enableFloatingIP: boolean;
}

export interface LoadBalancingRule extends InboundRuleBase {
  readonly kind: 'loadBalancingRule';
  /** 0 with `haPorts`: every port. */
  readonly frontendPort: number;
  readonly backendPort: number;
  readonly haPorts: boolean;
  readonly pool: BackendPool;
  readonly probe?: Probe;
  readonly distribution: DistributionMode;
  readonly disableOutboundSnat: boolean;
}

/** One frontend port of an inbound NAT rule and the member it leads to. */
export interface NatMapping {
  readonly frontendPort: number;
  readonly member: BackendMember;
  readonly backendPort: number;
}

export interface InboundNatRule extends InboundRuleBase {
  readonly kind: 'inboundNatRule';
  /** Single-port rules have one mapping; port-range rules one per pool member, in pool order. */
  readonly mappings: readonly NatMapping[];
  readonly frontendPortStart: number;
  readonly frontendPortEnd: number;
  readonly pool?: BackendPool;
}

export type InboundRule = LoadBalancingRule | InboundNatRule;

export interface OutboundRule {
  readonly kind: 'outboundRule';
  readonly id: string;
  readonly name: string;
  readonly frontends: readonly Frontend[];
  readonly pool: BackendPool;
  readonly protocols: readonly Protocol[];
  readonly armProtocol: ArmProtocol;
  /** SNAT ports per member; Azure's default allocation by pool size when not set. */
  readonly allocatedOutboundPorts: number;
  readonly allocatedOutboundPortsDefaulted: boolean;
  readonly idleTimeout: IdleTimeout;
  readonly enableTcpReset: boolean;
}

export interface NatGateway {
  readonly id: string;
  readonly name: string;
  readonly idleTimeout: IdleTimeout;
  /** Lower-cased subnet ids the gateway serves. */
  readonly subnetIds: readonly string[];
  readonly publicIpAddresses: readonly string[];
}

/** A member's outbound path: through the NAT gateway of its subnet (B10) or an outbound rule. */
export interface OutboundPath {
  readonly member: BackendMember;
  readonly via:
    | { readonly kind: 'natGateway'; readonly natGateway: NatGateway }
    | { readonly kind: 'outboundRule'; readonly rule: OutboundRule };
  readonly idleTimeout: IdleTimeout;
  readonly enableTcpReset: boolean;
}

export interface LoadBalancerSnapshot {
  readonly id: string;
  readonly name: string;
  readonly sku: Sku;
  readonly frontends: readonly Frontend[];
  readonly pools: readonly BackendPool[];
  readonly probes: readonly Probe[];
  readonly loadBalancingRules: readonly LoadBalancingRule[];
  readonly inboundNatRules: readonly InboundNatRule[];
  readonly outboundRules: readonly OutboundRule[];
  readonly outboundPaths: readonly OutboundPath[];
  /**
   * Set when this is no load balancer but a VM's instance-level public IP: one HA-ports rule
   * (every port, TCP and UDP, port kept) from the public IP to the NIC ip configuration, with
   * the public IP's idle timeout and no TCP reset.
   */
  readonly instancePublicIp?: { readonly publicIp: string; readonly ipConfiguration: string };
  /**
   * Rules that cannot be served as the document stands: their frontend or a backend they
   * forward to has no address, because the public IP or NIC it uses is not in the document
   * (a load balancer exported alone) and `--map` gives none.
   */
  readonly unserved?: readonly UnservedRule[];
}

export interface UnservedRule {
  readonly kind: 'loadBalancingRule' | 'inboundNatRule' | 'outboundRule' | 'instancePublicIp';
  readonly name: string;
  /** What the rule needs that has no address, each once. */
  readonly missing: readonly MissingAddress[];
  /** The rule's own idle timeout; the public IP's, unknown here, would win if it differed (B9). */
  readonly idleTimeoutInMinutes: number;
  readonly enableTcpReset: boolean;
}

/** A frontend whose public IP, or a backend member whose NIC, is not in the document. */
export interface MissingAddress {
  readonly kind: 'frontend' | 'member';
  /** The name `--map NAME=ADDR` takes: the frontend's, or the NIC ip configuration's `nic/ipconfig`. */
  readonly name: string;
  /** The ARM id of what is not in the document: the public IP, or the NIC ip configuration. */
  readonly resourceId: string;
  /** The `az` command that prints it. */
  readonly fetch: string;
}

/** Everything one document (or the control plane's store) describes. */
export interface RuntimeSnapshot {
  readonly loadBalancers: readonly LoadBalancerSnapshot[];
  readonly natGateways: readonly NatGateway[];
}

export const MINUTE_MS = 60_000;
