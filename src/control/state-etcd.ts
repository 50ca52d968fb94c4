/**
 * The desired state in etcd (`--state etcd://HOST:PORT/PREFIX`), shared by every instance of a
 * pool: one key, `PREFIX/state`, holds the same JSON as a state file. A write is a transaction
 * that puts the new state only if the key is still at the revision the change was made over
 * (compare-and-swap on its mod_revision), so two instances writing at once cannot both win and
 * no write is lost; the loser gets the state that won in the same answer. A watch on the key
 * brings every other instance's writes. Whether etcd answers is tracked here, for /healthz,
 * metrics, and to refuse a change at once while it does not.
 */
import { ExponentialBackoff, noop, type IBackoff } from 'cockatiel';
import { Etcd3, isRecoverableError, type IKeyValue, type Watcher } from 'etcd3';
import { SluiceError } from '../core/errors.js';
import { decodeState, encodeState, type StateContents, type StateOrigin } from './state.js';
import type { EtcdLocation } from './state-url.js';
import { StaleState } from './store.js';

export interface EtcdStatus {
  /** etcd answered the last call and the watch is attached. */
  readonly up: boolean;
  /** Since when (epoch milliseconds) it has been up, or down. */
  readonly since: number;
  /** Why it is down. */
  readonly reason?: string;
}

/** What the key holds: the state (none when there is no key) and its mod_revision (0: no key). */
export interface StoredRead {
  readonly contents: StateContents | undefined;
  readonly revision: number;
  /** etcd's revision when it answered: a watch from the next one misses nothing. */
  readonly clusterRevision: number;
}

/** A change of the key another instance made (or this one: the store knows its own revisions). */
export type StateChange =
  | { readonly contents: StateContents | undefined; readonly revision: number }
  | { readonly error: SluiceError; readonly revision: number };

export interface EtcdStateOptions {
  /** Real milliseconds an etcd call may take before it counts as unanswered. Default 2000. */
  readonly callTimeoutMs?: number;
}

const DEFAULT_CALL_TIMEOUT_MS = 2000;

export class EtcdState {
  private readonly client: Etcd3;
  private readonly origin: StateOrigin;
  private watcher: Watcher | undefined;
  private closed = false;
  private current: EtcdStatus = { up: false, since: Date.now(), reason: 'not connected yet' };
  private readonly listeners = new Set<(s: EtcdStatus) => void>();

  constructor(
    readonly location: EtcdLocation,
    options: EtcdStateOptions = {},
  ) {
    const timeout = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.origin = {
      label: `the state in ${location.url} (key ${location.key})`,
      remedy: `Delete the key (etcdctl del ${location.key}) to start from the configuration file.`,
    };
    this.client = new Etcd3({
      hosts: location.endpoints.map((e) =>
        e.host.includes(':') ? `http://[${e.host}]:${e.port}` : `http://${e.host}:${e.port}`,
      ),
      dialTimeout: timeout,
      // One answer within the timeout or none: Sluice decides what to do when etcd does not
      // answer (refuse the change, wait at start), so the client neither retries nor opens
      // circuits that would keep it away from an etcd that is back.
      faultHandling: {
        host: () => noop,
        global: noop,
        // The client's own default is a factory in this slot too; it calls next() on it.
        watchBackoff: new ExponentialBackoff({
          initialDelay: 100,
          maxDelay: 1000,
        }) as unknown as IBackoff<unknown>,
      },
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
      grpcOptions: {
        // A peer that vanished without closing the connection is noticed within ~15 s.
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
      },
    });
  }

  get status(): EtcdStatus {
    return this.current;
  }

  /** Called with every change of status (up to down or back). Returns the unsubscriber. */
  onStatus(listener: (s: EtcdStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Why a write cannot be made now, or undefined when etcd is answering. */
  writable(): SluiceError | undefined {
    if (this.current.up) return undefined;
    return unavailable(
      `the shared state store ${this.location.url} is unreachable (${this.current.reason ?? 'down'}); nothing changed, the load balancer keeps serving its last state`,
    );
  }

  /** Reads the key; rejects with SLUICE_STATE_STORE_UNAVAILABLE or SLUICE_STATE_CORRUPT. */
  async read(): Promise<StoredRead> {
    const { kv, clusterRevision } = await this.readKey();
    return { ...this.decode(kv), clusterRevision };
  }

  private async readKey(): Promise<{ kv: IKeyValue | undefined; clusterRevision: number }> {
    let res;
    try {
      res = await this.client.get(this.location.key).exec();
    } catch (err) {
      this.down(errorText(err));
      throw unavailable(`cannot read ${this.location.url}: ${errorText(err)}`);
    }
    this.reachable();
    return { kv: res.kvs[0], clusterRevision: Number(res.header.revision) };
  }

  /**
   * Writes `state` if the key is still at revision `basis` (0: absent). Resolves with the new
   * revision; rejects with StaleState (and the state that is there now) when it is not, with
   * SLUICE_STATE_STORE_UNAVAILABLE when etcd does not answer (the outcome is then unknown:
   * the watch brings it if it was written), with SLUICE_STATE_WRITE when etcd refuses it.
   */
  async write(state: StateContents, basis: number): Promise<number> {
    const down = this.writable();
    if (down !== undefined) throw down;
    const key = this.location.key;
    const text = encodeState(state);
    let res;
    try {
      res = await (
        basis === 0 ? this.client.if(key, 'Version', '==', 0) : this.client.if(key, 'Mod', '==', basis)
      )
        .then(this.client.put(key).value(text))
        .else(this.client.get(key))
        .commit();
    } catch (err) {
      if (isRecoverableError(err as Error)) {
        this.down(errorText(err));
        throw unavailable(
          `the shared state store ${this.location.url} did not answer the write (${errorText(err)}); the load balancer keeps serving its last state. The change may have been stored all the same: GET the resource to see`,
        );
      }
      throw new SluiceError(
        'SLUICE_STATE_WRITE',
        `${this.location.url} refused the state (${state.resources.length} resources, ${Buffer.byteLength(text)} bytes): ${errorText(err)}; nothing changed`,
      );
    }
    this.reachable();
    if (res.succeeded) return Number(res.header.revision);
    const now = this.decode(res.responses[0]?.response_range.kvs[0]);
    throw new StaleState(now.contents, now.revision);
  }

  /**
   * Watches the key from `fromRevision` on: `change` gets each new value (or its deletion), and
   * after every reconnection the value read anew, so that nothing written while the watch was
   * away is missed, even when etcd compacted the revisions in between.
   */
  async watch(fromRevision: number, change: (c: StateChange) => void): Promise<void> {
    const watcher = await this.client
      .watch()
      .key(this.location.key)
      .startRevision(String(fromRevision))
      .create();
    this.watcher = watcher;
    this.reachable();
    const deliver = (kv: IKeyValue, deleted: boolean): void => this.deliverTo(change, kv, deleted);
    watcher.on('put', (kv) => deliver(kv, false));
    watcher.on('delete', (kv) => deliver(kv, true));
    watcher.on('disconnected', (err: Error) => {
      if (!this.closed) this.down(errorText(err));
    });
    watcher.on('connected', () => {
      if (this.closed) return;
      this.reachable();
      this.readKey().then(
        ({ kv }) => {
          if (kv !== undefined) deliver(kv, false);
        },
        () => {},
      );
    });
    watcher.on('error', (err: Error) => {
      // The watch was cancelled (its revision compacted away): watch again from what is there.
      if (this.closed) return;
      this.down(errorText(err));
      void watcher.cancel().catch(() => {});
      void this.rewatch(change);
    });
  }

  private async rewatch(change: (c: StateChange) => void): Promise<void> {
    for (let delay = 100; !this.closed; delay = Math.min(delay * 2, 1000)) {
      try {
        const { kv, clusterRevision } = await this.readKey();
        if (kv !== undefined) this.deliverTo(change, kv, false);
        await this.watch(clusterRevision + 1, change);
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watcher?.cancel().catch(() => {});
    this.client.close();
  }

  private deliverTo(change: (c: StateChange) => void, kv: IKeyValue, deleted: boolean): void {
    const revision = Number(kv.mod_revision);
    if (deleted) {
      change({ contents: undefined, revision });
      return;
    }
    try {
      change({ contents: decodeState(kv.value.toString('utf8'), this.origin), revision });
    } catch (err) {
      if (!(err instanceof SluiceError)) throw err;
      change({ error: err, revision });
    }
  }

  private decode(kv: IKeyValue | undefined): { contents: StateContents | undefined; revision: number } {
    if (kv === undefined) return { contents: undefined, revision: 0 };
    return {
      contents: decodeState(kv.value.toString('utf8'), this.origin),
      revision: Number(kv.mod_revision),
    };
  }

  private reachable(): void {
    if (!this.current.up) this.set({ up: true, since: Date.now() });
  }

  private down(reason: string): void {
    if (this.current.up || this.current.reason !== reason)
      this.set({ up: false, since: this.current.up ? Date.now() : this.current.since, reason });
  }

  private set(s: EtcdStatus): void {
    const changed = s.up !== this.current.up;
    this.current = s;
    if (changed) for (const l of this.listeners) l(s);
  }
}

function unavailable(message: string): SluiceError {
  return new SluiceError('SLUICE_STATE_STORE_UNAVAILABLE', message);
}

/** gRPC's messages start with the status code (`14 UNAVAILABLE: ...`); the rest says why. */
function errorText(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s+Please report this error at \S+$/, '');
}
