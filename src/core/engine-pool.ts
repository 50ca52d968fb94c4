/**
 * The flow engine in a pool of instances behind ECMP (docs/scale-out.md, "Keeping flows across a
 * change of instances"). When the pool changes (an instance lost, added or restarted) the router
 * moves flows between instances, and an instance receives mid-flow segments of flows it never
 * saw, while the copy left on the instance they came from goes idle. What the engine decides
 * about both, as pure logic fed with the times of the pool's changes (the caller learns them
 * from BGP, from the other instances, and from its own start):
 *
 * - the adoption window: from a change until one idle timeout of the rule (plus the router's
 *   settle time) after it, a client's non-SYN segment that no record knows starts an
 *   ESTABLISHED flow, to the member Maglev picks (the one the previous instance picked);
 *   outside every window such a segment is dropped (B3) or answered with a RST (B6), as ever;
 * - the grace for late news: a change is learned some time after the router acted on it, so on
 *   a reset path a stray outside a window is first dropped silently, and answered with its RST
 *   only when it is still a stray `graceMs` later with still no window open (its sender's
 *   retransmission), so a flow moved before the news is not reset;
 * - asking before an idle end: a flow whose last packet here came before or around a change may
 *   have moved to an instance that carries it now. At its idle timeout the engine asks the pool
 *   (the `ask` hook) and waits up to `askMs`: carried elsewhere, the copy here is retired
 *   silently (no RST, no tombstone: a RST would reach both ends of a live flow); otherwise it
 *   ends as its idle timeout says (B3-B5). A packet meanwhile keeps it here.
 */
import { KEY_WORDS, FlowKey } from './flow-key.js';

/** Pool marks of a flow record (FlowTable.pool). */
export const POOL_ADOPTED = 1;
/** Its idle timeout came, and the engine waits for the pool to say whether another instance carries it. */
export const POOL_ASKING = 2;

export interface PoolOptions {
  /**
   * How late a change of the pool may be learned after the router acted on it (BFD or hold
   * time, the BGP daemon's report, the caller's polling). Load-balancer milliseconds.
   */
  readonly graceMs: number;
  /**
   * How long after a change the router may still move flows (a resilient next-hop group that
   * moves busy buckets after its unbalanced timer). Default 0.
   */
  readonly settleMs?: number;
  /** How long an idle end waits for the pool's answer. */
  readonly askMs: number;
  /**
   * Called when a flow that may have moved reaches its idle timeout; the answer comes back by
   * `FlowEngine.settleAsk`. Without it (or without an answer), the flow ends after `askMs`.
   */
  readonly ask?: (question: PoolQuestion) => void;
  /** Strays held at most (the oldest is forgotten first). Default 65,536. */
  readonly maxHeld?: number;
}

/** An idle flow the engine asks the pool about: does another instance carry it? */
export interface PoolQuestion {
  readonly flowId: number;
  /** The original tuple: client to frontend. */
  readonly key: FlowKey;
  /** How long the flow has been idle here. */
  readonly idleMs: number;
}

/** A held stray older than this many graces is a new one. */
const HELD_MAX_AGE_GRACES = 16;

export class PoolRuntime {
  readonly graceMs: number;
  readonly settleMs: number;
  readonly askMs: number;
  private readonly maxHeld: number;
  private any = -Infinity;
  private readonly byFrontend = new Map<string, number>();
  /** Strays of reset paths dropped silently so far, by tuple: when first seen. */
  private readonly held = new Map<string, number>();
  /** Flows waiting for the pool's answer, by flow id: until when. */
  private readonly asking = new Map<number, number>();

  constructor(readonly options: PoolOptions) {
    if (!(options.graceMs >= 0)) throw new RangeError(`pool graceMs must be >= 0, got ${options.graceMs}`);
    if (!(options.askMs >= 0)) throw new RangeError(`pool askMs must be >= 0, got ${options.askMs}`);
    this.graceMs = options.graceMs;
    this.settleMs = options.settleMs ?? 0;
    this.askMs = options.askMs;
    this.maxHeld = options.maxHeld ?? 65_536;
  }

  /** The pool behind `frontend` (behind every frontend, when not given) changed at `at`. */
  changed(at: number, frontend?: string): void {
    if (frontend === undefined) this.any = Math.max(this.any, at);
    else this.byFrontend.set(frontend, Math.max(this.byFrontend.get(frontend) ?? -Infinity, at));
  }

  /** When the pool behind `frontend` last changed, -Infinity when never. */
  lastChange(frontend: string): number {
    return Math.max(this.any, this.byFrontend.get(frontend) ?? -Infinity);
  }

  /**
   * Whether a flow of a rule with idle timeout `idleMs` on `frontend` may be adopted at `now`.
   * A flow the router moved at a change was live on its instance, so its next packet comes
   * within one idle timeout of the move, which is at most `settleMs` after the change: a later
   * segment belongs to a flow that its idle timeout already ended (docs/scale-out.md).
   */
  windowOpen(frontend: string, idleMs: number, now: number): boolean {
    const c = this.lastChange(frontend);
    return c !== -Infinity && now - c <= idleMs + this.settleMs;
  }

  /**
   * Whether a flow whose last packet here was at `lastSeen` may have been moved away since: a
   * change came after it, or so close before it that the router may have moved the flow only
   * after that packet.
   */
  mayHaveMoved(frontend: string, lastSeen: number): boolean {
    const c = this.lastChange(frontend);
    return c !== -Infinity && c + this.settleMs + this.graceMs >= lastSeen;
  }

  /**
   * A stray on a reset path outside every window (`words`: its tuple): true when its RST (B6)
   * is due now, false to drop it silently for now. The first one of a tuple is held; it is
   * answered once it is still a stray `graceMs` after that.
   */
  strayResetDue(words: Uint32Array, now: number): boolean {
    if (this.graceMs <= 0) return true;
    const k = keyText(words);
    const first = this.held.get(k);
    if (first === undefined || now - first > this.graceMs * HELD_MAX_AGE_GRACES) {
      this.hold(k, now);
      return false;
    }
    if (now - first < this.graceMs) return false;
    this.held.delete(k);
    return true;
  }

  /** The tuple is no stray any more (adopted, or a new flow). */
  forget(words: Uint32Array): void {
    if (this.held.size > 0) this.held.delete(keyText(words));
  }

  get heldCount(): number {
    return this.held.size;
  }

  /** A flow reached its idle timeout at `now` and waits `askMs` for the pool's answer. */
  beginAsk(flowId: number, now: number): void {
    this.asking.set(flowId, now + this.askMs);
  }

  /** Asks the pool about a flow waiting since `beginAsk`, when someone listens. */
  ask(flowId: number, words: Uint32Array, off: number, idleMs: number): void {
    const hook = this.options.ask;
    if (hook === undefined) return;
    const key = new FlowKey();
    key.copyFrom(words, off);
    hook({ flowId, key, idleMs });
  }

  /** Until when the flow waits for the pool's answer. */
  askDeadline(flowId: number): number {
    return this.asking.get(flowId) ?? -Infinity;
  }

  /** The flow waits no more (answered, a packet came, or it ended). */
  doneAsking(flowId: number): void {
    this.asking.delete(flowId);
  }

  get askingCount(): number {
    return this.asking.size;
  }

  private hold(k: string, now: number): void {
    this.held.delete(k);
    if (this.held.size >= this.maxHeld) {
      const oldest = this.held.keys().next();
      if (oldest.done !== true) this.held.delete(oldest.value);
    }
    this.held.set(k, now);
  }
}

function keyText(words: Uint32Array): string {
  let s = '';
  for (let i = 0; i < KEY_WORDS; i++) s += `${words[i]!.toString(36)},`;
  return s;
}

/**
 * Which of two copies of a flow on two instances carries it: the one whose last packet is the
 * more recent (the smaller idle time); on a tie, the one given `winsTie`.
 */
export function carriesRather(mineIdleMs: number, theirsIdleMs: number, winsTie: boolean): boolean {
  return mineIdleMs < theirsIdleMs || (mineIdleMs === theirsIdleMs && winsTie);
}
