/**
 * What the instances of a pool tell each other directly (docs/scale-out.md, "Keeping flows
 * across a change of instances"): small JSON datagrams over UDP, to every instance the routers
 * report behind a frontend (by its BGP router ID), all at one port (`--pool-port`).
 *
 * - `leaving`: an instance is about to withdraw (a graceful stop, an upgrade): the others open a
 *   change window before the router moves its flows to them, rather than when BGP tells them.
 * - `ask` and `answer`: an instance is about to end idle flows that may have moved away; does
 *   another instance carry them (a live copy with a more recent packet)? Each instance answers
 *   with the ones it carries.
 *
 * Only datagrams from the pool's own instances are read: the pool's network is trusted, as it is
 * for etcd and BGP. A lost datagram costs little: without `leaving` the window opens when BGP
 * tells (the engine's grace covers the delay); a question is sent again, halfway through the
 * wait, to the instances that have not answered, and with neither answer the flow ends after
 * the wait as its idle timeout says, as a single instance would end it.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import type { Logger } from 'pino';

/** A flow asked about, as on the wire: the client to frontend tuple and how long it has been idle. */
export interface GossipFlow {
  readonly protocol: number;
  readonly src: string;
  readonly srcPort: number;
  readonly dst: string;
  readonly dstPort: number;
  /** Real milliseconds (instances may run at different --time-scale). */
  readonly idleMs: number;
}

export interface GossipHandlers {
  /** Instance `from` says it is leaving the pool. */
  leaving(from: string): void;
  /** Instance `from` asks about `flows`: the indices of those this instance carries. */
  carries(from: string, flows: readonly GossipFlow[]): number[];
  /** The answer about a flow this instance asked about (`id`): carried by another instance, or by none. */
  settled(id: number, carried: boolean): void;
}

export interface GossipOptions {
  /** This instance, as the others name it (its BGP router ID). */
  readonly instance: string;
  readonly port: number;
  /** The address to listen on; every address when not given or not local. */
  readonly bind?: string;
  /** The other instances of the pool now. */
  readonly peers: () => readonly string[];
  readonly handlers: GossipHandlers;
  /** How long a question waits for its answers (real ms). */
  readonly waitMs: number;
  readonly log: Logger;
}

/** Flows per question: a datagram stays below a common MTU. */
const PER_DATAGRAM = 20;

interface Question {
  readonly ids: readonly number[];
  readonly waiting: Set<string>;
  readonly settled: Set<number>;
  readonly timers: NodeJS.Timeout[];
}

type Message =
  | { readonly t: 'leaving' }
  | { readonly t: 'ask'; readonly n: number; readonly flows: readonly (readonly unknown[])[] }
  | { readonly t: 'answer'; readonly n: number; readonly carried: readonly number[] };

function parse(text: string): Message | undefined {
  try {
    const m = JSON.parse(text) as Record<string, unknown>;
    if (m.t === 'leaving') return { t: 'leaving' };
    if (m.t === 'ask' && Number.isInteger(m.n) && Array.isArray(m.flows))
      return { t: 'ask', n: m.n as number, flows: (m.flows as unknown[]).filter(Array.isArray) };
    if (m.t === 'answer' && Number.isInteger(m.n) && Array.isArray(m.carried))
      return {
        t: 'answer',
        n: m.n as number,
        carried: (m.carried as unknown[]).filter(Number.isInteger) as number[],
      };
  } catch {
    /* not ours */
  }
  return undefined;
}

function flowOf(a: readonly unknown[]): GossipFlow | undefined {
  const [protocol, src, srcPort, dst, dstPort, idleMs] = a;
  if (
    typeof protocol !== 'number' ||
    typeof src !== 'string' ||
    typeof srcPort !== 'number' ||
    typeof dst !== 'string' ||
    typeof dstPort !== 'number' ||
    typeof idleMs !== 'number'
  )
    return undefined;
  return { protocol, src, srcPort, dst, dstPort, idleMs };
}

export class PoolGossip {
  private socket: Socket | undefined;
  private readonly queue: { id: number; flow: GossipFlow }[] = [];
  private flushing = false;
  private serial = 0;
  private readonly questions = new Map<number, Question>();
  private closed = false;
  /** What was sent and received, for the log and the tests. */
  readonly counts = { sent: 0, received: 0, ignored: 0 };

  constructor(private readonly o: GossipOptions) {}

  /** Listens on the pool's port; rejects when it cannot. */
  async start(): Promise<void> {
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    socket.on('message', (buf, rinfo) => this.onMessage(buf, rinfo));
    socket.on('error', (err) => this.o.log.warn({ err: err.message }, 'pool: socket error'));
    const bind = (address: string | undefined): Promise<void> =>
      new Promise((resolve, reject) => {
        const fail = (err: Error): void => reject(err);
        socket.once('error', fail);
        socket.bind({ port: this.o.port, ...(address !== undefined ? { address } : {}) }, () => {
          socket.off('error', fail);
          resolve();
        });
      });
    try {
      await bind(this.o.bind);
    } catch (err) {
      if (this.o.bind === undefined || (err as NodeJS.ErrnoException).code !== 'EADDRNOTAVAIL') throw err;
      await bind(undefined);
    }
    this.socket = socket;
  }

  /** Tells every other instance that this one is about to withdraw. */
  leaving(): void {
    // Twice: a lost datagram would only leave the window to BGP's news.
    for (let i = 0; i < 2; i++) this.sendAll({ t: 'leaving' });
  }

  /** Asks the pool about a flow; the answer comes to `handlers.settled(id, ...)`. */
  ask(id: number, flow: GossipFlow): void {
    this.queue.push({ id, flow });
    if (this.flushing) return;
    this.flushing = true;
    // Flows reaching their timeout together go out together.
    setImmediate(() => this.flush());
  }

  close(): void {
    this.closed = true;
    for (const q of this.questions.values()) for (const t of q.timers) clearTimeout(t);
    this.questions.clear();
    this.socket?.close();
    this.socket = undefined;
  }

  private peers(): string[] {
    return [...new Set(this.o.peers())].filter((p) => p !== this.o.instance);
  }

  private flush(): void {
    this.flushing = false;
    const batch = this.queue.splice(0);
    if (this.closed) return;
    const peers = this.peers();
    if (peers.length === 0) {
      for (const b of batch) this.o.handlers.settled(b.id, false);
      return;
    }
    for (let i = 0; i < batch.length; i += PER_DATAGRAM) {
      const part = batch.slice(i, i + PER_DATAGRAM);
      const n = ++this.serial;
      const flows = part.map(({ flow: f }) => [
        f.protocol,
        f.src,
        f.srcPort,
        f.dst,
        f.dstPort,
        Math.round(f.idleMs),
      ]);
      const q: Question = {
        ids: part.map((b) => b.id),
        waiting: new Set(peers),
        settled: new Set(),
        timers: [],
      };
      // Halfway through the wait, once more to those that have not answered (a datagram lost).
      const again = setTimeout(() => {
        for (const p of q.waiting) this.send(p, { t: 'ask', n, flows });
      }, this.o.waitMs / 2);
      const end = setTimeout(() => this.questions.delete(n), this.o.waitMs);
      again.unref();
      end.unref();
      q.timers.push(again, end);
      this.questions.set(n, q);
      for (const p of peers) this.send(p, { t: 'ask', n, flows });
    }
  }

  private onMessage(buf: Buffer, rinfo: RemoteInfo): void {
    const from = rinfo.address;
    const m = parse(buf.toString('utf8'));
    if (m === undefined || !this.peers().includes(from)) {
      this.counts.ignored++;
      return;
    }
    this.counts.received++;
    if (m.t === 'leaving') this.o.handlers.leaving(from);
    else if (m.t === 'ask') {
      const flows = m.flows.map(flowOf);
      const known = flows.flatMap((f, i) => (f !== undefined ? [{ f, i }] : []));
      const carried = this.o.handlers.carries(
        from,
        known.map((k) => k.f),
      );
      this.send(from, { t: 'answer', n: m.n, carried: carried.map((k) => known[k]!.i) });
    } else this.onAnswer(from, m.n, m.carried);
  }

  private onAnswer(from: string, n: number, carried: readonly number[]): void {
    const q = this.questions.get(n);
    if (q === undefined || !q.waiting.delete(from)) return;
    for (const i of carried) {
      const id = q.ids[i];
      if (id === undefined || q.settled.has(i)) continue;
      q.settled.add(i);
      this.o.handlers.settled(id, true);
    }
    if (q.waiting.size > 0) return;
    for (const t of q.timers) clearTimeout(t);
    this.questions.delete(n);
    q.ids.forEach((id, i) => {
      if (!q.settled.has(i)) this.o.handlers.settled(id, false);
    });
  }

  private sendAll(m: Message): void {
    for (const p of this.peers()) this.send(p, m);
  }

  private send(to: string, m: Message): void {
    const s = this.socket;
    if (s === undefined) return;
    this.counts.sent++;
    s.send(JSON.stringify(m), this.o.port, to, (err) => {
      if (err !== null && !this.closed) this.o.log.debug({ to, err: err.message }, 'pool: send failed');
    });
  }
}
