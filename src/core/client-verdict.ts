/**
 * Whether an idle connection of a client library survives one path of `sluice explain`, on each
 * data plane. The packet plane sees every packet, as Azure does: kernel keepalive probes and
 * application bytes both refresh the flow (B7). The proxy plane relays bytes: only application
 * bytes refresh it, and the probes are answered by Sluice's own host. Pure.
 */
import type { ClientBehaviour } from './client-spec.js';
import type { IdleClose, KernelKeepalive } from './client-types.js';
import type { OnIdle } from './explain.js';

export type DataPlaneName = 'proxy' | 'packet';

export type ClientOutcome =
  /** Something crosses the path more often than its idle timeout: the connection stays open. */
  | 'survives'
  /** The library closes the idle connection itself before the timeout: no dead connection is left. */
  | 'client-closes'
  /** The load balancer resets both ends at the timeout. */
  | 'reset'
  /** The load balancer forgets the flow silently at the timeout. */
  | 'drop'
  /** This plane does not serve the path. */
  | 'not-served'
  /** UDP: TCP settings do not apply. */
  | 'not-applicable';

export interface PlaneVerdict {
  readonly outcome: ClientOutcome;
  /** With reset or drop: minutes of silence after which the flow ends. */
  readonly afterMinutes?: number;
  readonly reason: string;
  /** What to change so that the connection survives, when something can. */
  readonly fix?: string;
}

export interface ClientPathVerdict {
  /** The `--client` argument. */
  readonly client: string;
  readonly proxy: PlaneVerdict;
  readonly packet: PlaneVerdict;
}

/** What a verdict needs to know of a path. */
export interface PathFacts {
  readonly onIdle: OnIdle;
  readonly idleTimeoutMinutes: number;
  /** NAT gateway: a packet of a forgotten flow is answered with a reset to its sender. */
  readonly resetsLatePackets: boolean;
  readonly servedByProxyPlane: boolean;
}

/** Linux gives up on unacknowledged data after about 15.4 minutes (tcp_retries2 = 15). */
const RETRANSMIT_GIVE_UP = 'about 15.4 minutes on Linux with its defaults';

export function formatDuration(ms: number): string {
  if (ms >= 120_000 && ms % 60_000 === 0) return `${ms / 60_000} minutes`;
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
}

function minutes(n: number): string {
  return `${n} minute${n === 1 ? '' : 's'}`;
}

function subjectOf(client: ClientBehaviour): string {
  return client.library.subject ?? client.library.name;
}

function idleCloseText(c: IdleClose): string {
  return `${formatDuration(c.afterMs)}${c.slackMs ? ` (or up to ${formatDuration(c.slackMs)} later)` : ''}`;
}

function kernelDescription(k: KernelKeepalive): string {
  return `kernel keepalive probes after ${formatDuration(k.idleMs)} of silence`;
}

/** The fix for a plane: the library's own setting for bytes first, then (packet plane) the kernel's. */
function fixFor(client: ClientBehaviour, plane: DataPlaneName, belowMs: number): string {
  const lib = client.library;
  const ping = lib.pingFix?.(client.settings, belowMs);
  const kernel = lib.kernelFix?.(client.settings, belowMs);
  const kernelEnough = (client.mechanics.kernel?.idleMs ?? Infinity) < belowMs;
  if (plane === 'proxy') {
    const bytes = ping ?? lib.idleHint(belowMs);
    return kernelEnough || !kernel
      ? `${bytes}.`
      : `${bytes}. (In Azure and on the packet plane, kernel keepalive is enough: ${kernel}.)`;
  }
  if (kernel && ping) return `${kernel}, or ${ping}.`;
  return `${kernel ?? ping ?? lib.idleHint(belowMs)}.`;
}

/** How an end learns of a silent drop, on this plane, with these mechanics. */
function dropNotice(client: ClientBehaviour, plane: DataPlaneName, facts: PathFacts): string {
  const { kernel, appPing } = client.mechanics;
  if (facts.resetsLatePackets) {
    const first =
      kernel && appPing ? Math.min(kernel.idleMs, appPing.everyMs) : (kernel?.idleMs ?? appPing?.everyMs);
    return first === undefined
      ? 'The next packet either end sends is answered with a TCP reset to that end alone (ECONNRESET); an end that only waits is never told.'
      : `Its next ${kernel && first === kernel.idleMs ? 'keepalive probe' : 'ping'}, after ${formatDuration(first)} of silence, is answered with a TCP reset: the client fails with ECONNRESET then.`;
  }
  const parts: string[] = [];
  if (plane === 'packet' && kernel) {
    parts.push(
      `its kernel notices when ${kernel.probes} keepalive probe${kernel.probes === 1 ? '' : 's'} ${formatDuration(
        kernel.intervalMs,
      )} apart go unanswered, and fails the connection with ETIMEDOUT after ${formatDuration(
        kernel.idleMs + kernel.probes * kernel.intervalMs,
      )} of silence`,
    );
  }
  if (plane === 'proxy' && kernel) {
    parts.push("its kernel keepalive probes are answered by Sluice's host, so they never notice");
  }
  if (appPing) {
    parts.push(
      appPing.timeoutMs !== undefined && Number.isFinite(appPing.timeoutMs)
        ? `${subjectOf(client)} closes the connection when its first ping after the drop goes unanswered, ${formatDuration(
            appPing.everyMs + appPing.timeoutMs,
          )} into the silence`
        : `its ping after ${formatDuration(appPing.everyMs)} of silence waits for an answer that never comes`,
    );
  }
  if (!parts.some((p) => !p.includes('never notice'))) {
    parts.push(
      plane === 'packet'
        ? `the next request goes into the void and fails with ETIMEDOUT only when the TCP stack stops retransmitting (${RETRANSMIT_GIVE_UP}), unless the application's own timeout fires first`
        : "the next request goes unanswered until the application's own timeout fires, and Sluice closes both connections with a FIN when --hold-time ends (15 minutes by default)",
    );
  }
  const text = parts.join('; ');
  return `Nobody is told: ${text}.`;
}

export function clientVerdict(client: ClientBehaviour, facts: PathFacts, plane: DataPlaneName): PlaneVerdict {
  if (facts.onIdle === 'none') {
    return { outcome: 'not-applicable', reason: 'UDP: a TCP client library’s settings do not apply.' };
  }
  if (plane === 'proxy' && !facts.servedByProxyPlane) {
    return {
      outcome: 'not-served',
      reason:
        "The proxy plane does not serve this path (outbound rules, NAT gateways, a VM's own outbound connections and HA ports need --dataplane packet).",
    };
  }
  const timeoutMs = facts.idleTimeoutMinutes * 60_000;
  const { kernel, appPing, closesIdle } = client.mechanics;
  const who = subjectOf(client);
  const timeout = formatDuration(timeoutMs);

  if (closesIdle && !closesIdle.reuse) {
    return {
      outcome: 'client-closes',
      reason: `No connection stays open between requests (${closesIdle.by}): each socket is closed after its response, so the idle timeout never meets one.`,
    };
  }

  const closesAt = closesIdle ? closesIdle.afterMs + (closesIdle.slackMs ?? 0) : Infinity;
  if (closesIdle && closesAt < timeoutMs) {
    return {
      outcome: 'client-closes',
      reason: `${who} closes a connection idle for ${idleCloseText(closesIdle)} itself (${closesIdle.by}), before the idle timeout (${timeout}), so no dead connection is handed out: the next request opens a new one.`,
    };
  }
  const until = closesIdle
    ? `, until ${who} closes it itself after ${idleCloseText(closesIdle)} idle (${closesIdle.by})`
    : '';
  if (appPing && appPing.everyMs < timeoutMs) {
    return {
      outcome: 'survives',
      reason: `${who} sends ${appPing.what} every ${formatDuration(appPing.everyMs)} on a quiet connection, within the idle timeout (${timeout}); it is bytes on the connection, so it refreshes the flow on either plane${until}.`,
    };
  }
  if (plane === 'packet' && kernel && kernel.idleMs < timeoutMs) {
    return {
      outcome: 'survives',
      reason: `The ${kernelDescription(kernel)} go out within the idle timeout (${timeout}), and every packet refreshes the flow on the packet plane, as in Azure${until}.`,
    };
  }

  const why: string[] = [];
  if (plane === 'proxy' && kernel && kernel.idleMs < timeoutMs) {
    why.push(
      `its ${kernelDescription(kernel)} carry no data, and the proxy plane counts only bytes, so they do not refresh the flow (in Azure and on the packet plane they keep it open)`,
    );
  } else if (kernel) {
    why.push(
      `its first kernel keepalive probe would go out only after ${formatDuration(kernel.idleMs)} of silence`,
    );
  } else {
    why.push(`${who} enables no kernel keepalive`);
  }
  if (appPing) why.push(`and its ${appPing.what} comes only every ${formatDuration(appPing.everyMs)}`);
  else if (!client.library.pingFix) why.push('and it sends nothing of its own on an idle connection');
  else why.push('and no ping is set');
  const fix = fixFor(client, plane, timeoutMs);
  if (facts.onIdle === 'reset') {
    return {
      outcome: 'reset',
      afterMinutes: facts.idleTimeoutMinutes,
      reason: `After ${minutes(facts.idleTimeoutMinutes)} idle the load balancer resets both ends (ECONNRESET): ${why.join(', ')}.`,
      fix,
    };
  }
  return {
    outcome: 'drop',
    afterMinutes: facts.idleTimeoutMinutes,
    reason: `After ${minutes(facts.idleTimeoutMinutes)} idle the flow is silently dropped: ${why.join(', ')}. ${dropNotice(client, plane, facts)}`,
    fix,
  };
}

export function clientPathVerdict(client: ClientBehaviour, facts: PathFacts): ClientPathVerdict {
  return {
    client: client.spec,
    proxy: clientVerdict(client, facts, 'proxy'),
    packet: clientVerdict(client, facts, 'packet'),
  };
}

/** One paragraph on what the settings turn into, for the top of `explain`'s output. */
export function describeMechanics(client: ClientBehaviour): string {
  const { kernel, appPing, closesIdle, notes } = client.mechanics;
  const lib = subjectOf(client);
  const parts: string[] = [];
  if (kernel) {
    const origin =
      kernel.origin === 'setting'
        ? ''
        : kernel.origin === 'libuv'
          ? " (libuv's fixed 60 s: the delay asked for did not reach the socket)"
          : " (the operating system's defaults)";
    parts.push(
      `Kernel TCP keepalive on the socket: first probe after ${formatDuration(kernel.idleMs)} of silence, then ${
        kernel.probes
      } more ${formatDuration(kernel.intervalMs)} apart before the kernel gives up${origin}.`,
    );
  } else {
    parts.push('No kernel TCP keepalive on the socket.');
  }
  parts.push(
    appPing
      ? `Application bytes: ${appPing.what} every ${formatDuration(appPing.everyMs)} on a quiet connection${
          appPing.timeoutMs !== undefined
            ? `, answered within ${formatDuration(appPing.timeoutMs)} or the connection is closed`
            : ''
        }.`
      : `No application-level keepalive: ${lib} sends nothing on an idle connection.`,
  );
  if (closesIdle) {
    parts.push(
      closesIdle.reuse
        ? `${lib} closes a connection idle for ${idleCloseText(closesIdle)} (${closesIdle.by}).`
        : `No connection is kept between requests (${closesIdle.by}).`,
    );
  }
  return [...parts, ...notes].join(' ');
}
