/**
 * `sluice explain`: for every path a flow can take through a load balancer, which idle timeout
 * applies, which setting decided it (B9, B10), and what the two endpoints see when the flow
 * stays idle longer than that, optionally judged against a client's TCP keepalive settings.
 * Pure: works on a compiled snapshot.
 */
import type {
  ArmProtocol,
  BackendMember,
  Frontend,
  IdleDecidedBy,
  IdleTimeout,
  InboundNatRule,
  LoadBalancingRule,
  NatGateway,
  OutboundRule,
  RuntimeSnapshot,
  MissingAddress,
  UnservedRule,
} from './snapshot.js';
import { clientPathVerdict, type ClientPathVerdict, type PathFacts } from './client-verdict.js';
import type { ClientBehaviour } from './client-spec.js';

export type PathKind =
  | 'loadBalancingRule'
  | 'inboundNatRule'
  | 'outboundRule'
  | 'natGateway'
  | 'instancePublicIp'
  | 'instanceOutbound';
export type OnIdle = 'reset' | 'drop' | 'none';

/** Linux's tcp_keepalive_time, tcp_keepalive_intvl and tcp_keepalive_probes, in seconds and count. */
export interface KeepaliveSettings {
  readonly timeSeconds: number;
  readonly intervalSeconds: number;
  readonly probes: number;
}

export interface KeepaliveVerdict {
  readonly survives: boolean;
  readonly reason: string;
}

export interface ExplainedPath {
  readonly kind: PathKind;
  readonly loadBalancer: string;
  readonly name: string;
  readonly protocol: ArmProtocol;
  /** Where flows enter: "address:port", "address:start-end", "address:*" or, outbound, the SNAT addresses. */
  readonly frontend: string;
  /** Where flows go (inbound) or come from (outbound). */
  readonly backend: string;
  readonly idleTimeoutMinutes: number;
  readonly decidedBy: IdleDecidedBy;
  readonly overridden: readonly { readonly by: IdleDecidedBy; readonly idleTimeoutMinutes: number }[];
  readonly onIdle: OnIdle;
  /** Plain-language account of the precedence decision. */
  readonly why: string;
  /** Plain-language account of what the endpoints see after an idle period. */
  readonly whatHappens: string;
  readonly keepalive?: KeepaliveVerdict;
  /** The proxy data plane serves this path (not outbound rules, NAT gateways, a VM's own outbound or HA ports). */
  readonly servedByProxyPlane: boolean;
  /** Per `--client`, whether an idle connection survives this path on each data plane. */
  readonly clients?: readonly ClientPathVerdict[];
}

export interface ExplainReport {
  readonly paths: readonly ExplainedPath[];
  readonly notes: readonly string[];
  /** The `--client` arguments, understood. */
  readonly clients?: readonly ClientBehaviour[];
}

export interface ExplainOptions {
  readonly keepalive?: KeepaliveSettings;
  readonly clients?: readonly ClientBehaviour[];
  /** Sluice's fixed UDP flow timeout (B8). */
  readonly udpFlowTimeoutMs: number;
}

/** Linux gives up on unacknowledged data after about 15.4 minutes with the default tcp_retries2 = 15. */
const LINUX_RETRANSMIT_GIVE_UP_MINUTES = 15.4;

const SETTING_NAMES: Record<IdleDecidedBy, string> = {
  rule: 'the rule',
  frontendPublicIP: "the frontend's public IP address",
  instancePublicIP: "the instance's public IP address",
  outboundRule: 'the outbound rule',
  publicIPOutboundDefault: "the public IP's locked outbound idle timeout",
  natGateway: 'the NAT gateway of the backend subnet',
};

export function parseKeepalive(text: string): KeepaliveSettings | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*,\s*(\d+(?:\.\d+)?)\s*,\s*(\d+)\s*$/.exec(text);
  if (!m) return undefined;
  const [timeSeconds, intervalSeconds, probes] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (!(timeSeconds > 0) || !(intervalSeconds > 0) || !(probes > 0)) return undefined;
  return { timeSeconds, intervalSeconds, probes };
}

function minutes(n: number): string {
  return `${formatNumber(n)} minute${n === 1 ? '' : 's'}`;
}

function seconds(n: number): string {
  return `${formatNumber(n)}s`;
}

function formatNumber(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function hasTcp(protocol: ArmProtocol): boolean {
  return protocol !== 'Udp';
}

function onIdleOf(protocol: ArmProtocol, enableTcpReset: boolean): OnIdle {
  if (!hasTcp(protocol)) return 'none';
  return enableTcpReset ? 'reset' : 'drop';
}

function why(idle: IdleTimeout, protocol: ArmProtocol, udpFlowTimeoutMs: number): string {
  if (!hasTcp(protocol)) {
    return (
      `Does not apply: the idle timeout (${minutes(idle.minutes)} here) governs TCP only; UDP flows use ` +
      `Sluice's fixed UDP flow timeout of ${minutes(udpFlowTimeoutMs / 60_000)}.`
    );
  }
  const decided = `${minutes(idle.minutes)}, set by ${SETTING_NAMES[idle.decidedBy]}`;
  if (idle.overridden.length === 0) {
    return idle.decidedBy === 'rule' ? `${decided} (nothing else applies).` : `${decided}.`;
  }
  const lost = idle.overridden.map((o) => `${SETTING_NAMES[o.by]} (${minutes(o.minutes)})`).join(' and ');
  return `${decided}; it takes precedence over ${lost}.`;
}

function whatHappens(
  onIdle: OnIdle,
  idle: IdleTimeout,
  protocol: ArmProtocol,
  udpFlowTimeoutMs: number,
  outbound: boolean,
): string {
  const ends = outbound ? 'the backend and the remote server' : 'the client and the backend';
  const udp = `UDP flows are not subject to the TCP idle timeout: a UDP flow ends after ${minutes(
    udpFlowTimeoutMs / 60_000,
  )} without a datagram, silently, and the next datagram starts a new flow.`;
  if (onIdle === 'none') return udp;
  const after = `After ${minutes(idle.minutes)} with no packet in either direction,`;
  const tcp =
    onIdle === 'reset'
      ? `${after} the load balancer sends a TCP reset to both ${ends}: both sockets fail at once ` +
        `with ECONNRESET, and the application can reconnect straight away. A packet that arrives later on the ` +
        `same connection is answered with another reset.`
      : `${after} the load balancer forgets the connection without telling anyone. Both sides still believe it ` +
        `is open; the next data sent is silently discarded, so the sender retransmits until its TCP stack gives up ` +
        `(about ${minutes(LINUX_RETRANSMIT_GIVE_UP_MINUTES)} on Linux by default) and then fails with ETIMEDOUT. ` +
        `A side that only waits to receive hangs until its own timeout or keepalive notices.`;
  return protocol === 'All' ? `${tcp} ${udp}` : tcp;
}

export function keepaliveVerdict(
  keepalive: KeepaliveSettings,
  onIdle: OnIdle,
  idleTimeoutMinutes: number,
  /** A packet on a forgotten flow is answered with a reset (NAT gateway) rather than discarded. */
  resetsLatePackets = false,
): KeepaliveVerdict {
  if (onIdle === 'none') {
    return { survives: true, reason: 'TCP keepalive does not apply to UDP, and UDP flows are never reset.' };
  }
  const idleSeconds = idleTimeoutMinutes * 60;
  const { timeSeconds, intervalSeconds, probes } = keepalive;
  if (timeSeconds < idleSeconds) {
    return {
      survives: true,
      reason:
        `The first keepalive probe goes out after ${seconds(timeSeconds)} of silence, before the ` +
        `${seconds(idleSeconds)} idle timeout, and each answered probe restarts both the kernel's keepalive timer ` +
        `and the flow's idle timer, so an idle connection stays open.`,
    };
  }
  if (onIdle === 'reset') {
    return {
      survives: false,
      reason:
        `Keepalive waits ${seconds(timeSeconds)}, but the idle timeout is ${seconds(idleSeconds)}: the load balancer ` +
        `resets the connection first, and both sides see ECONNRESET after ${seconds(idleSeconds)} of silence. ` +
        `Lower tcp_keepalive_time below ${seconds(idleSeconds)} to keep the connection.`,
    };
  }
  if (resetsLatePackets) {
    return {
      survives: false,
      reason:
        `Keepalive waits ${seconds(timeSeconds)}, but the idle timeout is ${seconds(idleSeconds)}: the first probe ` +
        `finds the flow forgotten and is answered with a reset, so the connection fails with ECONNRESET after ` +
        `${seconds(timeSeconds)} of silence. Lower tcp_keepalive_time below ${seconds(idleSeconds)} to keep it.`,
    };
  }
  const detect = timeSeconds + intervalSeconds * probes;
  return {
    survives: false,
    reason:
      `Keepalive waits ${seconds(timeSeconds)}, but the idle timeout is ${seconds(idleSeconds)}: the flow is already ` +
      `forgotten when the first probe goes out, so ${probes} unanswered probe${probes === 1 ? '' : 's'} ` +
      `${seconds(intervalSeconds)} apart follow and the kernel drops the connection with ETIMEDOUT after ` +
      `${seconds(detect)} of silence. Lower tcp_keepalive_time below ${seconds(idleSeconds)} to keep the connection.`,
  };
}

function addressList(members: readonly BackendMember[]): string {
  return members.length === 0 ? 'no members' : members.map((m) => m.address).join(', ');
}

function frontendLabel(f: Frontend): string {
  return f.address === f.configuredAddress ? f.address : `${f.address} (configured ${f.configuredAddress})`;
}

function clientVerdicts(
  facts: PathFacts,
  options: ExplainOptions,
): { clients?: readonly ClientPathVerdict[] } {
  return options.clients && options.clients.length > 0
    ? { clients: options.clients.map((c) => clientPathVerdict(c, facts)) }
    : {};
}

function pathFor(
  base: Omit<
    ExplainedPath,
    | 'onIdle'
    | 'why'
    | 'whatHappens'
    | 'keepalive'
    | 'idleTimeoutMinutes'
    | 'decidedBy'
    | 'overridden'
    | 'clients'
  >,
  idle: IdleTimeout,
  enableTcpReset: boolean,
  options: ExplainOptions,
  resetsLatePackets = false,
): ExplainedPath {
  const onIdle = onIdleOf(base.protocol, enableTcpReset);
  const facts: PathFacts = {
    onIdle,
    idleTimeoutMinutes: idle.minutes,
    resetsLatePackets,
    servedByProxyPlane: base.servedByProxyPlane,
  };
  return {
    ...base,
    idleTimeoutMinutes: idle.minutes,
    decidedBy: idle.decidedBy,
    overridden: idle.overridden.map((o) => ({ by: o.by, idleTimeoutMinutes: o.minutes })),
    onIdle,
    why: why(idle, base.protocol, options.udpFlowTimeoutMs),
    whatHappens: whatHappens(
      onIdle,
      idle,
      base.protocol,
      options.udpFlowTimeoutMs,
      base.kind === 'outboundRule',
    ),
    ...(options.keepalive ? { keepalive: keepaliveVerdict(options.keepalive, onIdle, idle.minutes) } : {}),
    ...clientVerdicts(facts, options),
  };
}

function lbRulePath(lb: string, r: LoadBalancingRule, options: ExplainOptions): ExplainedPath {
  const port = r.haPorts ? '*' : String(r.frontendPort);
  const backendPort = r.haPorts ? 'the same port' : `port ${r.backendPort}`;
  return pathFor(
    {
      kind: 'loadBalancingRule',
      loadBalancer: lb,
      name: r.name,
      protocol: r.armProtocol,
      frontend: `${frontendLabel(r.frontend)}:${port}`,
      backend: `pool '${r.pool.name}' (${addressList(r.pool.members)}), ${backendPort}`,
      servedByProxyPlane: !r.haPorts,
    },
    r.idleTimeout,
    r.enableTcpReset,
    options,
  );
}

/** A VM's own public IP: every port, TCP and UDP, to the same port of its private address. */
function instancePath(lb: string, r: LoadBalancingRule, options: ExplainOptions): ExplainedPath {
  const path = pathFor(
    {
      kind: 'instancePublicIp',
      loadBalancer: lb,
      name: r.pool.name,
      protocol: r.armProtocol,
      frontend: `${frontendLabel(r.frontend)}:*`,
      backend: `${addressList(r.pool.members)}, the same port (1:1 NAT, no load balancer)`,
      // On the ports --instance-ports names.
      servedByProxyPlane: true,
    },
    r.idleTimeout,
    r.enableTcpReset,
    options,
  );
  return ownNat(path);
}

/** No load balancer on a VM's own public IP: the public IP's NAT forgets the flow. */
function ownNat(path: ExplainedPath): ExplainedPath {
  const own = (text: string): string => text.replaceAll('the load balancer', "the public IP's NAT");
  return {
    ...path,
    whatHappens: own(path.whatHappens),
    ...(path.keepalive === undefined
      ? {}
      : { keepalive: { ...path.keepalive, reason: own(path.keepalive.reason) } }),
  };
}

/** A VM's own connections leaving from its public IP: no SNAT port allocation, every port its own. */
function instanceOutboundPath(p: ExplainedPath, members: readonly BackendMember[]): ExplainedPath {
  return {
    ...ownNat(p),
    kind: 'instanceOutbound',
    name: members.map((m) => m.name).join(', '),
    backend: `outbound traffic of ${addressList(members)}, every port of the public IP its own (no SNAT port allocation, no load balancer)`,
  };
}

function natRulePath(lb: string, r: InboundNatRule, options: ExplainOptions): ExplainedPath {
  const ports =
    r.frontendPortStart === r.frontendPortEnd
      ? String(r.frontendPortStart)
      : `${r.frontendPortStart}-${r.frontendPortEnd}`;
  const backend = r.mappings
    .map((m) => `${m.member.address}:${m.backendPort} (port ${m.frontendPort})`)
    .join(', ');
  return pathFor(
    {
      kind: 'inboundNatRule',
      loadBalancer: lb,
      name: r.name,
      protocol: r.armProtocol,
      frontend: `${frontendLabel(r.frontend)}:${ports}`,
      backend: backend || 'no members',
      servedByProxyPlane: true,
    },
    r.idleTimeout,
    r.enableTcpReset,
    options,
  );
}

function outboundRulePath(
  lb: string,
  r: OutboundRule,
  idle: IdleTimeout,
  members: readonly BackendMember[],
  options: ExplainOptions,
): ExplainedPath {
  return pathFor(
    {
      kind: 'outboundRule',
      loadBalancer: lb,
      name: r.name,
      protocol: r.armProtocol,
      frontend: r.frontends.map(frontendLabel).join(', '),
      backend: `outbound traffic of ${addressList(members)} (pool '${r.pool.name}'), ${r.allocatedOutboundPorts} SNAT ports each`,
      servedByProxyPlane: false,
    },
    idle,
    r.enableTcpReset,
    options,
  );
}

function natGatewayPath(
  lb: string,
  g: NatGateway,
  idle: IdleTimeout,
  members: readonly BackendMember[],
  options: ExplainOptions,
): ExplainedPath {
  // A NAT gateway has no enableTcpReset: an idle flow is forgotten silently, and only a packet that
  // arrives afterwards on that connection is answered, with a reset to its sender alone.
  const path = pathFor(
    {
      kind: 'natGateway',
      loadBalancer: lb,
      name: g.name,
      protocol: 'All',
      frontend: g.publicIpAddresses.join(', ') || '(no public IP in the document)',
      backend: `outbound traffic of ${addressList(members)}`,
      servedByProxyPlane: false,
    },
    idle,
    false,
    options,
    true,
  );
  return {
    ...path,
    ...(options.keepalive
      ? { keepalive: keepaliveVerdict(options.keepalive, path.onIdle, idle.minutes, true) }
      : {}),
    whatHappens:
      `After ${minutes(idle.minutes)} with no packet in either direction, the NAT gateway forgets the ` +
      `connection without telling anyone. The next packet either side sends on it is answered with a TCP reset ` +
      `to that side only, which then fails with ECONNRESET; a side that only waits to receive is never told.`,
  };
}

/** How messages name a kind of rule: `load-balancing rule`, `inbound NAT rule`, `outbound rule`. */
export const RULE_KIND_LABEL: Record<UnservedRule['kind'], string> = {
  loadBalancingRule: 'load-balancing rule',
  inboundNatRule: 'inbound NAT rule',
  outboundRule: 'outbound rule',
  instancePublicIp: 'instance-level public IP path',
};

/** `frontend 'fe' has no address, since public IP ... is not in the document`, for each thing missing. */
export function missingAddresses(missing: readonly MissingAddress[]): string {
  return missing
    .map((m) =>
      m.kind === 'frontend'
        ? `frontend '${m.name}' has no address, since public IP ${m.resourceId} is not in the document`
        : `backend '${m.name}' has no address, since NIC ip configuration ${m.resourceId} is not in the document`,
    )
    .join('; ');
}

/** What to do about what is missing: the `--map` flags to add, or the `az` commands that print it. */
export function missingRemedy(missing: readonly MissingAddress[]): string {
  const maps = missing.map((m) => `--map ${m.name}=ADDR`).join(' ');
  const one = missing.length === 1;
  // One `az network nic show --ids ...` prints every NIC (as an array); scale sets list theirs.
  const NIC_SHOW = 'az network nic show --ids ';
  const nicIds = [
    ...new Set(
      missing.flatMap((m) => (m.fetch.startsWith(NIC_SHOW) ? m.fetch.slice(NIC_SHOW.length).split(' ') : [])),
    ),
  ];
  const commands = [
    ...new Set(missing.filter((m) => !m.fetch.startsWith(NIC_SHOW)).map((m) => m.fetch)),
    ...(nicIds.length > 0 ? [NIC_SHOW + nicIds.join(' ')] : []),
  ];
  const used = new Map<string, number>();
  const fetch = commands.map((c) => {
    const base = c.includes('public-ip') ? 'pip' : 'nics';
    const n = (used.get(base) ?? 0) + 1;
    used.set(base, n);
    return `\`${c} > ${base}${n === 1 ? '' : n}.json\``;
  });
  return (
    `add ${maps} to serve ${one ? 'it at a local ADDR' : 'them at local addresses'}, or get ${one ? 'it' : 'them'} with ` +
    `${fetch.join(' and ')} and give the file${fetch.length === 1 ? '' : 's'} beside the load balancer`
  );
}

/** What can be said of a rule whose frontend's public IP, or a backend's NIC, is not in the document. */
function unservedNote(lb: string, u: UnservedRule): string {
  const action = u.enableTcpReset
    ? 'reset (TCP RST to both ends)'
    : 'silent drop (no RST: both ends still think the connection is open)';
  const b9 = u.missing.some((m) => m.kind === 'frontend')
    ? "; if the public IP's idleTimeoutInMinutes differs, that one wins (B9)"
    : '';
  return (
    `${RULE_KIND_LABEL[u.kind]} '${u.name}'${u.kind === 'instancePublicIp' ? '' : ` (load balancer '${lb}')`}: ${missingAddresses(u.missing)}, so ${u.kind === 'instancePublicIp' ? 'it' : 'the rule'} is not served. ` +
    `Its own idle timeout is ${u.idleTimeoutInMinutes} minutes with ${action} at idle${b9}. To serve it, ${missingRemedy(u.missing)}.`
  );
}

export function explain(snapshot: RuntimeSnapshot, options: ExplainOptions): ExplainReport {
  const paths: ExplainedPath[] = [];
  const notes: string[] = [];
  for (const lb of snapshot.loadBalancers) {
    for (const r of lb.loadBalancingRules)
      paths.push(
        lb.instancePublicIp === undefined
          ? lbRulePath(lb.name, r, options)
          : instancePath(lb.name, r, options),
      );
    for (const r of lb.inboundNatRules) paths.push(natRulePath(lb.name, r, options));
    // Outbound paths are per member; members that share a path are shown together.
    const groups = new Map<string, { path: (typeof lb.outboundPaths)[number]; members: BackendMember[] }>();
    for (const p of lb.outboundPaths) {
      // Members share a line only when the same settings decided their timeout the same way.
      const via = p.via.kind === 'natGateway' ? `g:${p.via.natGateway.id}` : `r:${p.via.rule.id}`;
      const key = `${via}|${JSON.stringify(p.idleTimeout)}`;
      const group = groups.get(key);
      if (group) group.members.push(p.member);
      else groups.set(key, { path: p, members: [p.member] });
    }
    for (const { path, members } of groups.values()) {
      const explained =
        path.via.kind === 'natGateway'
          ? natGatewayPath(lb.name, path.via.natGateway, path.idleTimeout, members, options)
          : outboundRulePath(lb.name, path.via.rule, path.idleTimeout, members, options);
      paths.push(
        lb.instancePublicIp !== undefined && path.via.kind === 'outboundRule'
          ? instanceOutboundPath(explained, members)
          : explained,
      );
    }
  }
  for (const lb of snapshot.loadBalancers) {
    for (const u of lb.unserved ?? []) notes.push(unservedNote(lb.name, u));
  }
  if (options.keepalive && paths.some((p) => p.onIdle !== 'none')) {
    notes.push(
      "Sluice's default proxy data plane relays bytes, not packets: kernel TCP keepalive probes carry no data and " +
        'do not refresh its idle timer. Use `--dataplane packet`, or keepalives sent by the application, to see ' +
        'keepalive behave as it does in Azure.',
    );
  }
  return {
    paths,
    notes,
    ...(options.clients && options.clients.length > 0 ? { clients: options.clients } : {}),
  };
}
