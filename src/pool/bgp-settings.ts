/**
 * How an instance announces its frontends over BGP: the `--bgp*` flags of `sluice run`, read
 * into one settings object. Checked here, before anything starts, so a bad flag is a usage
 * error (exit 2) and never a BGP daemon that refuses its configuration.
 */
import { parseIpv4 } from '../core/flow-key.js';

export interface BgpPeer {
  readonly address: string;
  readonly port: number;
}

export interface BgpSettings {
  /** The routers to announce to (`--bgp`, repeatable). */
  readonly peers: readonly BgpPeer[];
  /** This instance's AS number (`--bgp-as`). */
  readonly localAs: number;
  /** The routers' AS number (`--bgp-peer-as`). */
  readonly peerAs: number;
  /** BGP router ID (`--bgp-router-id`); by default the source address towards the first peer. */
  readonly routerId?: string;
  /** BFD transmit and receive interval in ms, detection after 3 missed (`--bgp-bfd`); 0: off. */
  readonly bfdMs: number;
  /** BGP hold time in seconds (`--bgp-hold-time`); keepalives every third of it. */
  readonly holdSeconds: number;
  /** On a graceful stop: how long to go on serving once the routers dropped this instance. */
  readonly withdrawWaitMs: number;
  /** Where the daemon's configuration, control socket and log go (`--bgp-dir`). */
  readonly dir: string;
  /** The BIRD 2 binary (`--bgp-daemon`). */
  readonly daemon: string;
  /** Keeping flows across a change of the pool (`--pool-*`). */
  readonly pool: PoolSettings;
}

/** How an instance keeps flows across a change of the pool (docs/scale-out.md). */
export interface PoolSettings {
  /** Adopt the flows the router moves here (`--pool-adopt on|off`). */
  readonly adopt: boolean;
  /** The UDP port the instances talk to each other on (`--pool-port`). */
  readonly port: number;
  /** How late a change may be learned after the router acted on it (`--pool-grace`, real ms). */
  readonly graceMs: number;
  /** How long an idle end waits for the pool's answer (`--pool-ask-wait`, real ms). */
  readonly askMs: number;
  /** How long after a change the router may still move flows (`--pool-settle`, real ms). */
  readonly settleMs: number;
}

export interface BgpCliOptions {
  bgp?: string[];
  bgpAs?: string;
  bgpPeerAs?: string;
  bgpRouterId?: string;
  bgpBfd?: string;
  bgpHoldTime?: string;
  bgpWithdrawWait?: string;
  bgpDir?: string;
  bgpDaemon?: string;
  poolAdopt?: string;
  poolPort?: string;
  poolGrace?: string;
  poolAskWait?: string;
  poolSettle?: string;
}

export const BGP_DEFAULTS = {
  localAs: 65001,
  peerAs: 65000,
  bfdMs: 0,
  holdSeconds: 3,
  withdrawWaitMs: 1000,
  daemon: 'bird',
} as const;

export const POOL_DEFAULTS = {
  port: 9182,
  graceMs: 1000,
  askMs: 250,
  settleMs: 0,
} as const;

function asNumber(flag: string, text: string | undefined, fallback: number): number | string {
  if (text === undefined) return fallback;
  const n = Number(text);
  // 0 and 23456 (AS_TRANS) and 4294967295 are reserved.
  if (!/^\d+$/.test(text) || n < 1 || n > 4294967294 || n === 23456)
    return `${flag} expects an AS number from 1 to 4294967294 (not 23456), got '${text}'`;
  return n;
}

function wholeNumber(flag: string, text: string | undefined, fallback: number, min: number, max: number) {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max)
    return `${flag} expects a whole number from ${min} to ${max}, got '${text}'`;
  return n;
}

/** `ADDR` or `ADDR:PORT`; a string is the usage error. */
export function parsePeer(text: string): BgpPeer | string {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?$/.exec(text.trim());
  const port = m?.[2] === undefined ? 179 : Number(m[2]);
  if (m === null || parseIpv4(m[1]!) < 0 || port < 1 || port > 65535)
    return `--bgp expects a router's IPv4 address, optionally with :PORT (198.18.11.1 or 198.18.11.1:179), got '${text}'`;
  return { address: m[1]!, port };
}

/**
 * The settings the flags give, undefined when no `--bgp` was given (and no other `--bgp-*`
 * either), or a usage error. `stateDir` is where `--bgp-dir` defaults to (its `bgp` directory).
 */
export function bgpSettingsOf(opts: BgpCliOptions, stateDir: string): BgpSettings | undefined | string {
  const given = (opts.bgp ?? []).length > 0;
  if (!given) {
    const stray = (
      [
        ['--bgp-as', opts.bgpAs],
        ['--bgp-peer-as', opts.bgpPeerAs],
        ['--bgp-router-id', opts.bgpRouterId],
        ['--bgp-bfd', opts.bgpBfd],
        ['--bgp-hold-time', opts.bgpHoldTime],
        ['--bgp-withdraw-wait', opts.bgpWithdrawWait],
        ['--bgp-dir', opts.bgpDir],
        ['--bgp-daemon', opts.bgpDaemon],
        ['--pool-adopt', opts.poolAdopt],
        ['--pool-port', opts.poolPort],
        ['--pool-grace', opts.poolGrace],
        ['--pool-ask-wait', opts.poolAskWait],
        ['--pool-settle', opts.poolSettle],
      ] as const
    ).find(([, v]) => v !== undefined);
    return stray === undefined ? undefined : `${stray[0]} needs --bgp ROUTER`;
  }
  const peers: BgpPeer[] = [];
  for (const text of opts.bgp ?? []) {
    const p = parsePeer(text);
    if (typeof p === 'string') return p;
    if (peers.some((q) => q.address === p.address)) return `--bgp names ${p.address} twice`;
    peers.push(p);
  }
  const localAs = asNumber('--bgp-as', opts.bgpAs, BGP_DEFAULTS.localAs);
  const peerAs = asNumber('--bgp-peer-as', opts.bgpPeerAs, BGP_DEFAULTS.peerAs);
  const bfdMs = wholeNumber('--bgp-bfd', opts.bgpBfd, BGP_DEFAULTS.bfdMs, 0, 10_000);
  // RFC 4271: a hold time is 0 (no keepalives, never used here) or at least 3 seconds.
  const hold = wholeNumber('--bgp-hold-time', opts.bgpHoldTime, BGP_DEFAULTS.holdSeconds, 3, 65535);
  const wait =
    opts.bgpWithdrawWait === undefined ? BGP_DEFAULTS.withdrawWaitMs / 1000 : Number(opts.bgpWithdrawWait);
  for (const v of [localAs, peerAs, bfdMs, hold]) if (typeof v === 'string') return v;
  if (!Number.isFinite(wait) || wait < 0 || wait > 600)
    return `--bgp-withdraw-wait expects seconds from 0 to 600, got '${opts.bgpWithdrawWait}'`;
  if (bfdMs !== 0 && (bfdMs as number) < 10)
    return `--bgp-bfd expects 0 (off) or at least 10 ms, got '${opts.bgpBfd}'`;
  if (opts.bgpRouterId !== undefined && parseIpv4(opts.bgpRouterId) < 0)
    return `--bgp-router-id expects an IPv4 address, got '${opts.bgpRouterId}'`;
  const pool = poolSettingsOf(opts);
  if (typeof pool === 'string') return pool;
  return {
    peers,
    localAs: localAs as number,
    peerAs: peerAs as number,
    ...(opts.bgpRouterId !== undefined ? { routerId: opts.bgpRouterId } : {}),
    bfdMs: bfdMs as number,
    holdSeconds: hold as number,
    withdrawWaitMs: Math.round(wait * 1000),
    dir: opts.bgpDir ?? `${stateDir.replace(/\/+$/, '')}/bgp`,
    daemon: opts.bgpDaemon ?? BGP_DEFAULTS.daemon,
    pool,
  };
}

function poolSettingsOf(opts: BgpCliOptions): PoolSettings | string {
  const adopt = opts.poolAdopt ?? 'on';
  if (adopt !== 'on' && adopt !== 'off') return `--pool-adopt expects on or off, got '${adopt}'`;
  const port = wholeNumber('--pool-port', opts.poolPort, POOL_DEFAULTS.port, 1, 65535);
  const grace = wholeNumber('--pool-grace', opts.poolGrace, POOL_DEFAULTS.graceMs, 0, 60_000);
  const ask = wholeNumber('--pool-ask-wait', opts.poolAskWait, POOL_DEFAULTS.askMs, 1, 60_000);
  const settle = opts.poolSettle === undefined ? POOL_DEFAULTS.settleMs / 1000 : Number(opts.poolSettle);
  for (const v of [port, grace, ask]) if (typeof v === 'string') return v;
  if (!Number.isFinite(settle) || settle < 0 || settle > 3600)
    return `--pool-settle expects seconds from 0 to 3600, got '${opts.poolSettle}'`;
  return {
    adopt: adopt === 'on',
    port: port as number,
    graceMs: grace as number,
    askMs: ask as number,
    settleMs: Math.round(settle * 1000),
  };
}
