/**
 * The shape of one client library in `sluice explain --client`: its settings with their
 * defaults, and what they turn into on an idle connection (kernel TCP keepalive values on the
 * socket, application-level bytes, or the library closing the connection itself). The entries
 * are in client-node.ts and client-platform.ts; every default and mapping is cited in
 * docs/clients.md. Pure.
 */

export type SettingValue = number | boolean | string;

export type SettingType =
  /** `true` or `false`. */
  | { readonly kind: 'boolean' }
  /** `0` or `1`: an integer flag the library compares with 1 (grpc-js). */
  | { readonly kind: 'zeroOne' }
  /** Milliseconds, an integer; `min` defaults to 0. `-1` is "never" when `infinite` is set. */
  | { readonly kind: 'ms'; readonly min?: number; readonly infinite?: boolean }
  /** Milliseconds, or `false` (ioredis, node-redis 4). */
  | { readonly kind: 'msOrFalse' }
  /** Whole seconds, at least 1 (Linux sysctls). */
  | { readonly kind: 'seconds' }
  /** A positive integer (counts). */
  | { readonly kind: 'count' }
  /** A .NET TimeSpan: seconds, `[d.]hh:mm:ss[.fff]` or `Infinite`; stored as ms, Infinity for Infinite. */
  | { readonly kind: 'timespan' }
  | { readonly kind: 'choice'; readonly values: readonly string[] };

export interface SettingDef {
  readonly name: string;
  readonly type: SettingType;
  /** The library's default; absent when the setting has none (not set unless given). */
  readonly default?: SettingValue;
  /** What it does, in a few words (usage errors list it). */
  readonly means: string;
}

export type Settings = Readonly<Record<string, SettingValue | undefined>>;

/** TCP keepalive as the kernel runs it on the library's socket. */
export interface KernelKeepalive {
  /** Silence before the first probe (TCP_KEEPIDLE, tcp_keepalive_time, KeepAliveTime). */
  readonly idleMs: number;
  /** Between unanswered probes. */
  readonly intervalMs: number;
  /** Unanswered probes before the kernel gives up on the connection (ETIMEDOUT). */
  readonly probes: number;
  /** `setting`: from the library's settings; `libuv`: libuv's fallback; `system`: the OS defaults. */
  readonly origin: 'setting' | 'libuv' | 'system';
}

/** Bytes the library itself sends on a quiet connection. */
export interface AppPing {
  readonly everyMs: number;
  /** How long it waits for the answer before closing the connection, when it does. */
  readonly timeoutMs?: number;
  /** What is sent: "an HTTP/2 PING frame", "a Redis PING command". */
  readonly what: string;
}

/** The library closes a connection idle for this long itself (pool idle timeouts). */
export interface IdleClose {
  /** The idle time the setting names. */
  readonly afterMs: number;
  /** How much later it may come (a sweep that runs once a second closes up to a second late). */
  readonly slackMs?: number;
  /** The setting responsible, as the user would write it. */
  readonly by: string;
  /** 0 with keepAlive off: no connection is kept between requests at all. */
  readonly reuse: boolean;
}

export interface ClientMechanics {
  readonly kernel?: KernelKeepalive;
  readonly appPing?: AppPing;
  readonly closesIdle?: IdleClose;
  /** Facts about these settings that change the verdict's meaning (pings only with calls in flight...). */
  readonly notes: readonly string[];
}

export interface ClientLibrary {
  /** How `--client` names it: `pg`, `ioredis@5`, `@grpc/grpc-js`. */
  readonly name: string;
  readonly aliases?: readonly string[];
  /** What it is: "node-postgres Client". */
  readonly title: string;
  /** Who sends (or does not send) bytes, in sentences: the library's name unless given ("the application"). */
  readonly subject?: string;
  /** The versions whose source these defaults and mappings were checked in. */
  readonly checked: string;
  readonly settings: readonly SettingDef[];
  /** A word for a setting the library does not have (any more), shown in the usage error. */
  readonly missingHints?: Readonly<Record<string, string>>;
  /** A combination the library itself refuses: the message, or undefined. */
  readonly refuse?: (s: Settings) => string | undefined;
  readonly mechanics: (s: Settings) => ClientMechanics;
  /** How to get a kernel keepalive probe out within `belowMs` of silence; undefined: no such setting. */
  readonly kernelFix?: (s: Settings, belowMs: number) => string;
  /** How to get the library's own bytes out within `belowMs`; undefined: no such setting. */
  readonly pingFix?: (s: Settings, belowMs: number) => string;
  /** What keeps an idle connection open (or closes it first) when no setting does, for a timeout of `belowMs`. */
  readonly idleHint: (belowMs: number) => string;
}

/** Linux's defaults: net.ipv4.tcp_keepalive_time, _intvl, _probes (include/net/tcp.h). */
export const LINUX_KEEPALIVE = { idleMs: 7_200_000, intervalMs: 75_000, probes: 9 } as const;

/** TCP_KEEPIDLE above this is refused with EINVAL (MAX_TCP_KEEPIDLE, include/net/tcp.h). */
const MAX_TCP_KEEPIDLE_SECONDS = 32_767;

/**
 * What Node's `socket.setKeepAlive(true, delayMs)` leaves on a Linux socket (Node 20, libuv 1.46):
 * the delay is cut to whole seconds; 1 s or more sets TCP_KEEPIDLE to it with libuv's own
 * TCP_KEEPINTVL 1 s and TCP_KEEPCNT 10. Below 1 s (or above the kernel's limit) TCP_KEEPIDLE
 * fails with EINVAL and what was there stays: the system's defaults on a connected socket, but
 * libuv's 60 s (with 1 s and 10) when the call came while the socket was still being opened,
 * since libuv then enables keepalive with its fixed 60 s as it creates the socket.
 */
export function nodeKeepalive(delayMs: number, when: 'connected' | 'connecting'): KernelKeepalive {
  const seconds = Math.trunc(delayMs / 1000);
  if (seconds >= 1 && seconds <= MAX_TCP_KEEPIDLE_SECONDS) {
    return { idleMs: seconds * 1000, intervalMs: 1000, probes: 10, origin: 'setting' };
  }
  return when === 'connecting'
    ? { idleMs: 60_000, intervalMs: 1000, probes: 10, origin: 'libuv' }
    : { ...LINUX_KEEPALIVE, origin: 'system' };
}

export function numberSetting(s: Settings, name: string): number {
  const v = s[name];
  return typeof v === 'number' ? v : 0;
}

export function flag(s: Settings, name: string): boolean {
  return s[name] === true;
}

/** A delay for a Node setting, in milliseconds as users write it (Node counts whole seconds, so at least 1000). */
export function nodeDelayFix(setting: string, belowMs: number): string {
  return `set ${setting} to at least 1000 and below ${belowMs}`;
}
