/**
 * Resource budgets: the process's open files split into shares, so that no one kind of client
 * can starve the others. A proxied TCP flow holds two descriptors, a UDP flow one (its upstream
 * socket), an API connection one (event streams are API connections too, with a ceiling of
 * their own), and a fixed reserve stays for listeners, probes, logs, state writes and Node
 * itself. When a share is full its newcomers are refused; the other shares are untouched.
 *
 * Pure accounting: the limit is read by the caller (host-limits.ts), enforcement is done by the
 * data plane and the API with the shares planned here.
 */

/** Descriptors kept out of every share: listeners, probes, logs, state writes, Node itself. */
export const DESCRIPTOR_RESERVE = 64;
/** A proxied TCP flow (or a blackholed one, held) keeps its client and its backend socket. */
export const DESCRIPTORS_PER_TCP_FLOW = 2;
/** Of the descriptors left for flows, UDP gets this part by default (one descriptor per flow). */
const UDP_PART = 1 / 8;
/** A single client address gets this part of the UDP share by default. */
const UDP_PER_CLIENT_PART = 1 / 8;
/** API connections by default: the limit / 32, within these bounds. */
const API_MIN = 4;
const API_MAX = 256;
/** Of the API connections, event streams may hold this part by default. */
const STREAMS_PART = 1 / 4;
/** Where the platform does not tell the open-files limit: ceilings that still bound a flood. */
const UNKNOWN_LIMIT_DEFAULTS = { udpFlows: 4096, apiConnections: 256, eventStreams: 64 } as const;

/** The shares an operator can set (each a count of flows or connections). */
export type ShareName = 'tcpFlows' | 'udpFlows' | 'udpFlowsPerClient' | 'apiConnections' | 'eventStreams';

export type ShareRequest = Partial<Record<ShareName, number>>;

/** Why a new flow found no room: `sluice_flow_refused_total{reason}`. */
export type FlowShareRefusal = 'tcp-descriptors' | 'udp-flows' | 'udp-per-client';

/** Why a new API connection or event stream found no room: `sluice_api_connections_refused_total{reason}`. */
export type ApiShareRefusal = 'connections' | 'event-streams';

export interface BudgetContext {
  /** The soft open-files limit of the process; undefined when the platform does not tell. */
  readonly openFiles: number | undefined;
  /** Whether the API is served (its connections need a share). */
  readonly api: boolean;
  /** Whether flows hold descriptors (the proxy plane's do; the packet plane's do not). */
  readonly flowsHoldDescriptors: boolean;
}

/** Every share, decided once at start. `undefined`: not bounded. */
export interface BudgetPlan {
  readonly openFiles: number | undefined;
  readonly reserve: number;
  readonly tcpFlows: number | undefined;
  readonly udpFlows: number | undefined;
  readonly udpFlowsPerClient: number | undefined;
  /** 0 when the API is off. */
  readonly apiConnections: number;
  /** Event streams are API connections: at most apiConnections - 1, so one is left for requests. */
  readonly eventStreams: number;
}

export type BudgetResult =
  { readonly ok: true; readonly plan: BudgetPlan } | { readonly ok: false; readonly problem: string };

/** How the shares are called in messages (the CLI passes its flag names). */
export type ShareLabels = Readonly<Record<ShareName, string>>;

const PLAIN_LABELS: ShareLabels = {
  tcpFlows: 'tcpFlows',
  udpFlows: 'udpFlows',
  udpFlowsPerClient: 'udpFlowsPerClient',
  apiConnections: 'apiConnections',
  eventStreams: 'eventStreams',
};

/** Descriptors a plan needs at most, reserve included (unbounded shares count as 0). */
export function descriptorsNeeded(plan: BudgetPlan): number {
  return (
    plan.reserve +
    DESCRIPTORS_PER_TCP_FLOW * (plan.tcpFlows ?? 0) +
    (plan.udpFlows ?? 0) +
    plan.apiConnections
  );
}

/**
 * Splits the open-files limit into shares. Shares given in `request` are taken as they are;
 * the others are derived from what is left: API connections the limit / 32 (4 to 256), event
 * streams a quarter of those, UDP an eighth of the descriptors left for flows, a client an
 * eighth of the UDP share, TCP the rest. Fails, saying which shares, when they do not fit.
 */
export function planBudget(
  context: BudgetContext,
  request: ShareRequest = {},
  labels: ShareLabels = PLAIN_LABELS,
): BudgetResult {
  for (const [name, v] of Object.entries(request) as [ShareName, number | undefined][]) {
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0))
      return { ok: false, problem: `${labels[name]} expects a whole number >= 0, got ${v}` };
  }
  const fail = (problem: string): BudgetResult => ({ ok: false, problem });
  const given = (name: ShareName): boolean => request[name] !== undefined;
  if (!context.flowsHoldDescriptors) {
    const flowShares = (['tcpFlows', 'udpFlows', 'udpFlowsPerClient'] as const).filter(given);
    if (flowShares.length > 0)
      return fail(
        `${flowShares.map((n) => labels[n]).join(', ')}: only the proxy data plane holds descriptors per flow`,
      );
  }
  const limit = context.openFiles;
  const reserve = DESCRIPTOR_RESERVE;

  let api = 0;
  if (context.api) {
    api =
      request.apiConnections ??
      (limit === undefined
        ? UNKNOWN_LIMIT_DEFAULTS.apiConnections
        : Math.min(API_MAX, Math.max(API_MIN, Math.floor(limit / 32))));
    if (api < 1) return fail(`${labels.apiConnections} must be at least 1 while the API is served`);
  }
  let streams = 0;
  if (context.api) {
    streams =
      request.eventStreams ??
      (limit === undefined && !given('apiConnections')
        ? UNKNOWN_LIMIT_DEFAULTS.eventStreams
        : Math.max(api > 1 ? 1 : 0, Math.floor(api * STREAMS_PART)));
    if (streams > api - 1)
      return fail(
        `${labels.eventStreams} ${streams} leaves no API connection for other requests: at most ${labels.apiConnections} - 1 = ${api - 1}`,
      );
  }

  let tcp: number | undefined;
  let udp: number | undefined;
  let perClient: number | undefined;
  if (context.flowsHoldDescriptors) {
    tcp = request.tcpFlows;
    if (limit === undefined) {
      udp = request.udpFlows ?? UNKNOWN_LIMIT_DEFAULTS.udpFlows;
    } else {
      const forFlows = limit - reserve - api;
      udp =
        request.udpFlows ??
        Math.max(
          0,
          Math.min(Math.floor(forFlows * UDP_PART), forFlows - DESCRIPTORS_PER_TCP_FLOW * (tcp ?? 0)),
        );
      if (tcp === undefined) {
        tcp = Math.floor((forFlows - udp) / DESCRIPTORS_PER_TCP_FLOW);
        if (tcp < 1)
          return fail(
            `the open-files limit ${limit} leaves no room for TCP flows after the reserve (${reserve}), ` +
              `API connections (${api}) and UDP flows (${udp}); raise it (ulimit -n) or lower ${labels.udpFlows} or ${labels.apiConnections}`,
          );
      }
    }
    perClient =
      request.udpFlowsPerClient ?? (udp === 0 ? 0 : Math.max(1, Math.floor(udp * UDP_PER_CLIENT_PART)));
    if (perClient > udp)
      return fail(
        `${labels.udpFlowsPerClient} ${perClient} is more than the whole UDP share (${labels.udpFlows} ${udp})`,
      );
    if (perClient === 0 && udp > 0)
      return fail(
        `${labels.udpFlowsPerClient} 0 would refuse every UDP flow; use ${labels.udpFlows} 0 for that`,
      );
  }

  const plan: BudgetPlan = {
    openFiles: limit,
    reserve,
    tcpFlows: tcp,
    udpFlows: udp,
    udpFlowsPerClient: perClient,
    apiConnections: api,
    eventStreams: streams,
  };
  const needed = descriptorsNeeded(plan);
  if (limit !== undefined && needed > limit) {
    const parts = [`reserve ${reserve}`];
    if (tcp !== undefined) parts.push(`TCP flows ${DESCRIPTORS_PER_TCP_FLOW} x ${tcp} (${labels.tcpFlows})`);
    if (udp !== undefined) parts.push(`UDP flows ${udp} (${labels.udpFlows})`);
    if (context.api) parts.push(`API connections ${api} (${labels.apiConnections})`);
    const asked = (['tcpFlows', 'udpFlows', 'apiConnections'] as const).filter(given).map((n) => labels[n]);
    return fail(
      `the shares need ${needed} descriptors but the open-files limit is ${limit}: ${parts.join(' + ')}; ` +
        `raise the limit (ulimit -n)${asked.length > 0 ? ` or lower ${asked.join(', ')}` : ''}`,
    );
  }
  return { ok: true, plan };
}

/** A share taken and given back one at a time; a take beyond its capacity is refused and counted. */
export class Share {
  private held = 0;
  private refusals = 0;

  /** `capacity` undefined: never full. */
  constructor(readonly capacity: number | undefined) {}

  get used(): number {
    return this.held;
  }

  /** Takes refused since the start. */
  get refused(): number {
    return this.refusals;
  }

  get full(): boolean {
    return this.capacity !== undefined && this.held >= this.capacity;
  }

  take(): boolean {
    if (this.full) {
      this.refusals++;
      return false;
    }
    this.held++;
    return true;
  }

  give(): void {
    if (this.held > 0) this.held--;
  }
}

/** A share per key (a client address): each key may hold up to `perKey`. */
export class KeyedShare {
  private readonly held = new Map<string, number>();
  private refusals = 0;

  constructor(readonly perKey: number | undefined) {}

  usedBy(key: string): number {
    return this.held.get(key) ?? 0;
  }

  /** Keys holding at least one. */
  get holders(): number {
    return this.held.size;
  }

  get refused(): number {
    return this.refusals;
  }

  take(key: string): boolean {
    const n = this.held.get(key) ?? 0;
    if (this.perKey !== undefined && n >= this.perKey) {
      this.refusals++;
      return false;
    }
    this.held.set(key, n + 1);
    return true;
  }

  give(key: string): void {
    const n = this.held.get(key);
    if (n === undefined) return;
    if (n <= 1) this.held.delete(key);
    else this.held.set(key, n - 1);
  }
}

/** The UDP shares of a plan: the whole UDP share and each client address's part of it. */
export class UdpFlowBudget {
  readonly flows: Share;
  readonly perClient: KeyedShare;

  constructor(plan: Pick<BudgetPlan, 'udpFlows' | 'udpFlowsPerClient'>) {
    this.flows = new Share(plan.udpFlows);
    this.perClient = new KeyedShare(plan.udpFlowsPerClient);
  }

  /**
   * Room for one more flow of `client`, or why not. A client at its own ceiling is refused as
   * such even when the whole share is full too: it is the one to be told.
   */
  take(client: string): FlowShareRefusal | undefined {
    if (!this.perClient.take(client)) return 'udp-per-client';
    if (!this.flows.take()) {
      this.perClient.give(client);
      return 'udp-flows';
    }
    return undefined;
  }

  give(client: string): void {
    this.flows.give();
    this.perClient.give(client);
  }
}
