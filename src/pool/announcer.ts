/**
 * Announcement by BGP: which frontend addresses this instance announces, kept in step with what
 * it can serve, through its BGP daemon (bird-speaker.ts). Every 250 ms it decides again:
 *
 * - a frontend is announced while the configuration serves it, the data plane can carry
 *   traffic, and at least one of its rules has a member a new flow could go to (probes and
 *   admin state, as the flow engine sees them); otherwise it is withdrawn, with the reason;
 * - on a graceful stop everything is withdrawn first; Sluice goes on serving until the routers
 *   have dropped this instance (seen in what they send back) and `--bgp-withdraw-wait` more,
 *   and only then stops BIRD and the data plane.
 *
 * It also reads, from BIRD, the BGP sessions and the paths the routers send back, and makes
 * them the pool's events (pool-events.ts).
 */
import { execFileSync } from 'node:child_process';
import type { Logger } from 'pino';
import type { InboundRule, RuntimeSnapshot } from '../core/snapshot.js';
import type { BgpSettings } from './bgp-settings.js';
import { peerProtocol, renderBirdConfig } from './bird-config.js';
import type { BirdReply } from './bird-control.js';
import { parseProtocols, parseRoutes, poolView, type SessionState } from './bird-routes.js';
import type { SpeakerEvent } from './bird-speaker.js';
import type { PoolEvent, PoolListener, PoolWatch, WithdrawReason } from './pool-events.js';

/** What the announcer reads of the running instance. */
export interface AnnouncerSource {
  snapshot(): RuntimeSnapshot;
  canServe(rule: InboundRule): boolean;
  /** Why the data plane cannot carry traffic, or undefined. */
  failure(): string | undefined;
  /** Load-balancer time (ms), for the events. */
  now(): number;
}

/** What the announcer needs of a BGP daemon. */
export interface Speaker {
  start(config: string): Promise<void>;
  configure(config: string): Promise<void>;
  query(command: string): Promise<BirdReply>;
  stop(): Promise<void>;
  abort(): void;
}

export interface AnnouncerOptions {
  readonly settings: BgpSettings;
  readonly source: AnnouncerSource;
  readonly speaker: (events: (e: SpeakerEvent) => void) => Speaker;
  readonly log: Logger;
  /** The TUN device the frontends are routed into. */
  readonly tun: string;
  /** The source address towards a peer (by default `ip route get`). */
  readonly sourceTowards?: (peer: string) => string;
  /** How often it decides again (ms). */
  readonly intervalMs?: number;
}

export interface Decision {
  /** Every frontend address the configuration serves. */
  readonly watch: readonly string[];
  readonly announce: readonly string[];
  /** Served frontends not announced, and why. */
  readonly withheld: ReadonlyMap<string, WithdrawReason>;
}

/** What to announce now: pure, from the snapshot and what the instance can do. */
export function decide(
  snapshot: RuntimeSnapshot,
  canServe: (rule: InboundRule) => boolean,
  failure: string | undefined,
  stopping: boolean,
): Decision {
  const servable = new Map<string, boolean>();
  for (const lb of snapshot.loadBalancers) {
    for (const r of [...lb.loadBalancingRules, ...lb.inboundNatRules]) {
      const a = r.frontend.address;
      servable.set(a, (servable.get(a) ?? false) || canServe(r));
    }
  }
  const watch = [...servable.keys()].sort();
  const withheld = new Map<string, WithdrawReason>();
  const announce: string[] = [];
  for (const a of watch) {
    if (stopping) withheld.set(a, 'stopping');
    else if (failure !== undefined) withheld.set(a, 'data-plane');
    else if (!servable.get(a)) withheld.set(a, 'no-healthy-backend');
    else announce.push(a);
  }
  return { watch, announce, withheld };
}

function defaultSourceTowards(peer: string): string {
  const out = execFileSync('ip', ['-j', 'route', 'get', peer], { encoding: 'utf8', timeout: 5000 });
  const src = (JSON.parse(out) as { prefsrc?: string }[])[0]?.prefsrc;
  if (src === undefined) throw new Error(`no source address towards ${peer}`);
  return src;
}

const INTERVAL_MS = 250;
/** On a graceful stop, how long to wait for the routers to drop this instance at most. */
const CONFIRM_MS = 3000;

export class Announcer implements PoolWatch {
  readonly instance: string;
  private readonly listeners = new Set<PoolListener>();
  private readonly speaker: Speaker;
  private readonly peers: (BgpSettings['peers'][number] & { source: string })[];
  private current: Decision = { watch: [], announce: [], withheld: new Map() };
  private sessions = new Map<string, SessionState>();
  private pool = new Map<string, readonly string[]>();
  private reported = false;
  private changes = new Map<string, number>();
  private anyChange: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopping = false;
  private ended = false;
  private unanswered = false;

  constructor(private readonly options: AnnouncerOptions) {
    const towards = options.sourceTowards ?? defaultSourceTowards;
    this.peers = options.settings.peers.map((p) => ({ ...p, source: towards(p.address) }));
    this.instance = options.settings.routerId ?? this.peers[0]!.source;
    this.speaker = options.speaker((e) => this.onSpeaker(e));
  }

  /** Starts the BGP daemon with what can be announced now, and the loop that keeps it so. */
  async start(): Promise<void> {
    this.current = this.decideNow();
    await this.speaker.start(this.config(this.current));
    this.report(this.current);
    this.schedule();
  }

  subscribe(listener: PoolListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  view(): ReadonlyMap<string, readonly string[]> {
    return this.pool;
  }

  lastChange(frontend?: string): number | undefined {
    return frontend === undefined ? this.anyChange : (this.changes.get(frontend) ?? this.anyChange);
  }

  announced(): readonly string[] {
    return this.current.announce;
  }

  sessionsUp(): boolean {
    return this.peers.every((_, i) => this.sessions.get(peerProtocol(i))?.up === true);
  }

  /** The sessions, what is announced and the pool's size, for the metrics. */
  state(): {
    sessions: { peer: string; up: boolean }[];
    frontends: { address: string; announced: boolean }[];
    pool: Map<string, number>;
  } {
    return {
      sessions: this.peers.map((p, i) => ({
        peer: p.address,
        up: this.sessions.get(peerProtocol(i))?.up === true,
      })),
      frontends: this.current.watch.map((address) => ({
        address,
        announced: this.current.announce.includes(address),
      })),
      pool: new Map([...this.pool].map(([a, list]) => [a, list.length])),
    };
  }

  /** What the `ready` log line says of the announcement. */
  describe(): Record<string, unknown> {
    return {
      routerId: this.instance,
      as: this.options.settings.localAs,
      peers: this.peers.map((p) => `${p.address}:${p.port}`),
      bfdMs: this.options.settings.bfdMs,
    };
  }

  /**
   * Withdraws everything, waits for the routers to drop this instance (or 3 s) and
   * `--bgp-withdraw-wait` more, serving all the while, then stops the BGP daemon.
   */
  async stop(): Promise<void> {
    if (this.ended) return;
    this.stopping = true;
    clearTimeout(this.timer);
    await this.ticking;
    const log = this.options.log;
    const started = Date.now();
    let confirmed = false;
    try {
      await this.apply(this.decideNow());
      while (Date.now() - started < CONFIRM_MS) {
        await this.read();
        confirmed = [...this.pool.values()].every((list) => !list.includes(this.instance));
        if (confirmed || !this.sessionsUp()) break;
        await sleep(50);
      }
    } catch (err) {
      // A BIRD that does not answer (being started again) announces nothing anyway.
      log.warn({ err: (err as Error).message }, 'bgp: the BGP daemon did not answer while withdrawing');
    }
    log.info(
      { confirmed, afterMs: Date.now() - started, waitMs: this.options.settings.withdrawWaitMs },
      confirmed
        ? 'bgp: the routers dropped this instance; serving on for --bgp-withdraw-wait'
        : 'bgp: no confirmation from the routers that they dropped this instance; serving on for --bgp-withdraw-wait',
    );
    await sleep(this.options.settings.withdrawWaitMs);
    this.ended = true;
    await this.speaker.stop();
  }

  abort(): void {
    this.stopping = true;
    this.ended = true;
    clearTimeout(this.timer);
    this.speaker.abort();
  }

  private decideNow(): Decision {
    const s = this.options.source;
    return decide(s.snapshot(), (r) => s.canServe(r), s.failure(), this.stopping);
  }

  private config(d: Decision): string {
    const st = this.options.settings;
    return renderBirdConfig({
      routerId: this.instance,
      localAs: st.localAs,
      peerAs: st.peerAs,
      peers: this.peers,
      holdSeconds: st.holdSeconds,
      bfdMs: st.bfdMs,
      tun: this.options.tun,
      announce: d.announce,
      watch: d.watch,
    });
  }

  private schedule(): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      this.ticking = this.tick().finally(() => {
        this.ticking = undefined;
        this.schedule();
      });
    }, this.options.intervalMs ?? INTERVAL_MS);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    try {
      await this.apply(this.decideNow());
      await this.read();
      this.unanswered = false;
    } catch (err) {
      // Once per outage: BIRD being started again fails every tick until it is back.
      if (!this.unanswered)
        this.options.log.warn({ err: (err as Error).message }, 'bgp: the BGP daemon did not answer');
      this.unanswered = true;
    }
  }

  /** Serves decision `d` when it differs from the one in force. */
  private async apply(d: Decision): Promise<void> {
    const before = this.current;
    const same =
      d.announce.join() === before.announce.join() &&
      d.watch.join() === before.watch.join() &&
      [...d.withheld].join() === [...before.withheld].join();
    if (same) return;
    if (d.announce.join() !== before.announce.join() || d.watch.join() !== before.watch.join())
      await this.speaker.configure(this.config(d));
    this.current = d;
    this.report(d);
  }

  /** Each served frontend: announced, or the reason it is not. */
  private states = new Map<string, 'announced' | WithdrawReason>();

  /** Events and log lines for what a decision changed. */
  private report(d: Decision): void {
    const at = this.options.source.now();
    const log = this.options.log;
    const next = new Map<string, 'announced' | WithdrawReason>(d.withheld);
    for (const a of d.announce) next.set(a, 'announced');
    const added: string[] = [];
    const byReason = new Map<WithdrawReason, { frontends: string[]; withdrawn: string[] }>();
    const note = (a: string, reason: WithdrawReason, was: string | undefined): void => {
      let e = byReason.get(reason);
      if (e === undefined) byReason.set(reason, (e = { frontends: [], withdrawn: [] }));
      e.frontends.push(a);
      if (was === 'announced') e.withdrawn.push(a);
    };
    for (const [a, s] of next) {
      const was = this.states.get(a);
      if (was === s) continue;
      if (s === 'announced') added.push(a);
      else note(a, s, was);
    }
    for (const [a, was] of this.states) if (!next.has(a)) note(a, 'not-served', was);
    this.states = next;
    if (added.length > 0) {
      log.info({ frontends: added }, 'bgp: announcing');
      this.emit({ type: 'announced', at, frontends: added });
    }
    for (const [reason, { frontends, withdrawn }] of byReason) {
      const detail = reason === 'data-plane' ? this.options.source.failure() : undefined;
      const extra = detail !== undefined ? { detail } : {};
      log.info(
        { frontends, reason, ...extra },
        withdrawn.length > 0 ? 'bgp: withdrawn' : 'bgp: not announcing',
      );
      if (withdrawn.length > 0) this.emit({ type: 'withdrawn', at, frontends: withdrawn, reason, ...extra });
    }
  }

  /** Reads the sessions and the paths the routers sent back; reports what changed. */
  private async read(): Promise<void> {
    const at = this.options.source.now();
    const protocols = parseProtocols((await this.speaker.query('show protocols')).lines);
    for (const s of protocols) {
      const before = this.sessions.get(s.name);
      if (before?.up === s.up) continue;
      this.sessions.set(s.name, s);
      const i = this.peers.findIndex((_, k) => peerProtocol(k) === s.name);
      const peer = i < 0 ? s.name : this.peers[i]!.address;
      if (before !== undefined || s.up) {
        this.options.log.info({ peer, state: s.state }, `bgp: session to ${peer} ${s.up ? 'up' : 'down'}`);
        this.emit({ type: 'session', at, peer, up: s.up, state: s.state });
        this.anyChange = at;
      }
    }
    const paths = parseRoutes((await this.speaker.query('show route where source = RTS_BGP all')).lines);
    const view = poolView(paths, this.current.watch);
    for (const [frontend, instances] of view) {
      const before = this.pool.get(frontend) ?? [];
      if (this.reported && instances.join() === before.join()) continue;
      const joined = instances.filter((i) => !before.includes(i));
      const left = before.filter((i) => !instances.includes(i));
      if (this.reported && joined.length === 0 && left.length === 0) continue;
      this.changes.set(frontend, at);
      this.anyChange = at;
      this.options.log.info({ frontend, instances, joined, left }, 'bgp: pool changed');
      this.emit({ type: 'pool', at, frontend, instances, joined, left });
    }
    this.pool = view;
    this.reported = true;
  }

  private onSpeaker(e: SpeakerEvent): void {
    const at = this.options.source.now();
    if (e.type === 'started') this.emit({ type: 'daemon', at, state: 'started', detail: `pid ${e.pid}` });
    else if (e.type === 'exited')
      this.emit({ type: 'daemon', at, state: 'exited', detail: `${e.code ?? e.signal ?? ''}` });
    else this.emit({ type: 'daemon', at, state: 'restarting', detail: `in ${e.inMs} ms` });
    if (e.type === 'exited') {
      // Its sessions went with it.
      for (const [name, s] of this.sessions) this.sessions.set(name, { ...s, up: false, state: 'Down' });
      this.anyChange = at;
    }
  }

  private emit(e: PoolEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        this.listeners.delete(l);
      }
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
