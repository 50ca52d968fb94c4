/**
 * What the packet plane changes on the host, and takes back on stop or exit: the TUN device
 * up with a long queue, a /32 route into it for every frontend address (and the inbound SNAT
 * address), and policy rules that steer the backends' replies into it (DNAT keeps the client
 * address, so replies are addressed to the client and would otherwise bypass Sluice).
 *
 * Floating IP needs one more thing: a packet for a floating-IP backend is still addressed to the
 * frontend IP, which routes back into the TUN device. So each such backend gets a TUN device of
 * its own that Sluice only writes to, and a rule sends what comes out of that device to a table
 * whose default route goes via the backend's address: the backend is the next hop, at L3.
 *
 * Changes made while Sluice runs (`up`, `sync`) run `ip` as child processes without blocking
 * the thread that reads the TUN device, so packets go on being forwarded while routes change;
 * taking everything back (`down`, also from an exit handler) is synchronous, and a change still
 * under way when the host is taken down removes what it adds as soon as it has added it.
 *
 * Sysctls are the host's business: Sluice reads net.ipv4.ip_forward and the TUN device's
 * effective rp_filter and refuses to start when they would stop forwarding, unless told with
 * `--configure-host` to set them (ip_forward=1, rp_filter=2 on the TUN device), in which case
 * ip_forward is restored on stop.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { SluiceError } from '../../core/errors.js';

export interface HostOptions {
  readonly tun: string;
  readonly configureHost: boolean;
  /** Packets the TUN device queues; the default 500 overflows during GC pauses. */
  readonly txQueueLen?: number;
  /** Routing table and rule priority for the backends' replies. */
  readonly table?: number;
  readonly priority?: number;
  /**
   * Runs `ip ARGS...`; throws on failure. For tests: a model of `ip`, used for every step (by
   * default `up` and `sync` run `ip` asynchronously and `down` synchronously).
   */
  readonly ip?: (args: readonly string[]) => void;
  readonly sysctl?: { read(path: string): string; write(path: string, value: string): void };
}

/** A host change that was refused; `SLUICE_HOST_SYSCTL` when a sysctl stands in the way. */
export class HostError extends SluiceError {
  constructor(message: string, code: 'SLUICE_HOST_NETWORK' | 'SLUICE_HOST_SYSCTL' = 'SLUICE_HOST_NETWORK') {
    super(code, message);
  }
}

/** A floating-IP backend's device and the routing table that sends its packets via the backend. */
interface FloatingRoute {
  readonly dev: string;
  readonly table: number;
}

export const DEFAULT_TABLE = 20942;
export const DEFAULT_PRIORITY = 20942;

function ipFailure(args: readonly string[], err: { stderr?: Buffer | string; message: string }): HostError {
  const why = err.stderr?.toString().trim().split('\n')[0] || err.message;
  return new HostError(`ip ${args.join(' ')}: ${why}`);
}

function runIpSync(args: readonly string[]): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw ipFailure(args, err as { stderr?: Buffer; message: string });
  }
}

function runIpAsync(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { encoding: 'utf8' }, (err, _stdout, stderr) => {
      if (err === null) resolve();
      else reject(ipFailure(args, { stderr, message: err.message }));
    });
  });
}

const procSys = {
  read: (path: string): string => readFileSync(`/proc/sys/${path}`, 'utf8').trim(),
  write: (path: string, value: string): void => writeFileSync(`/proc/sys/${path}`, value),
};

export class HostNetwork {
  /** `ip` off the thread, for changes while serving. */
  private readonly ipAsync: (args: readonly string[]) => Promise<void>;
  /** `ip` on the thread, for taking everything back at once. */
  private readonly ip: (args: readonly string[]) => void;
  /** Taken down: a change still under way takes back each step it makes. */
  private closed = false;
  private readonly sys: NonNullable<HostOptions['sysctl']>;
  private readonly table: string;
  private readonly prio: number;
  private readonly routes = new Set<string>();
  private readonly sources = new Set<string>();
  private iifRule = false;
  /** Floating-IP backends: address -> the device written for it and its routing table. */
  private readonly floating = new Map<string, FloatingRoute>();
  private restoreForward: string | undefined;
  private readonly onExit = (): void => this.down();

  constructor(private readonly options: HostOptions) {
    const model = options.ip;
    this.ip = model ?? runIpSync;
    this.ipAsync = model !== undefined ? async (args) => model(args) : runIpAsync;
    this.sys = options.sysctl ?? procSys;
    this.table = String(options.table ?? DEFAULT_TABLE);
    this.prio = options.priority ?? DEFAULT_PRIORITY;
  }

  /**
   * Brings the (already created) TUN device up and checks or sets the sysctls. All or nothing:
   * when a step fails, what the steps before it changed is taken back before the error is
   * thrown.
   */
  async up(): Promise<void> {
    const dev = this.options.tun;
    this.closed = false;
    process.on('exit', this.onExit);
    try {
      this.sysctls();
      // Rules of a Sluice that was killed outright would make `ip rule add` fail: clear them.
      for (const prio of [this.prio, this.prio + 1]) {
        for (let i = 0; i < 10_000; i++) {
          try {
            await this.ipAsync(['rule', 'del', 'priority', String(prio)]);
          } catch {
            break;
          }
        }
      }
      await this.step(
        ['link', 'set', 'dev', dev, 'up', 'txqueuelen', String(this.options.txQueueLen ?? 10_000)],
        [],
      );
      // What comes out of the TUN device is routed normally, never back in by the rules below.
      await this.step(
        ['rule', 'add', 'priority', String(this.prio), 'iif', dev, 'lookup', 'main'],
        ['rule', 'del', 'priority', String(this.prio), 'iif', dev, 'lookup', 'main'],
      );
      this.iifRule = true;
      await this.step(
        ['route', 'replace', 'default', 'dev', dev, 'table', this.table],
        ['route', 'flush', 'table', this.table],
      );
    } catch (err) {
      this.down();
      throw err;
    }
  }

  /**
   * One `ip` step of a change, off the thread. When the host was taken down while it ran, what
   * it added is removed at once (`undo`, on the thread) and the change stops there.
   */
  private async step(args: readonly string[], undo: readonly string[]): Promise<void> {
    await this.ipAsync(args);
    if (this.closed) {
      if (undo.length > 0) this.quiet(undo);
      throw new HostError('the host network was taken down while it was being changed');
    }
  }

  private sysctls(): void {
    const forward = this.sys.read('net/ipv4/ip_forward');
    if (forward !== '1') {
      if (!this.options.configureHost)
        throw new HostError(
          'net.ipv4.ip_forward is 0, so the kernel would not forward what Sluice writes: set it to 1 or pass --configure-host',
          'SLUICE_HOST_SYSCTL',
        );
      this.sys.write('net/ipv4/ip_forward', '1');
      this.restoreForward = forward;
    }
    this.looseRpFilter(this.options.tun);
  }

  /** Packets Sluice writes come from addresses routed elsewhere: strict rp_filter drops them. */
  private looseRpFilter(dev: string): void {
    // The effective rp_filter of an interface is the larger of `all` and its own.
    const all = Number(this.sys.read('net/ipv4/conf/all/rp_filter'));
    const own = Number(this.sys.read(`net/ipv4/conf/${dev}/rp_filter`));
    if (Math.max(all, own) === 1) {
      if (!this.options.configureHost)
        throw new HostError(
          `strict rp_filter on ${dev} would drop forwarded packets (their sources are routed elsewhere): set net.ipv4.conf.${dev}.rp_filter=2 (or all.rp_filter=0; a device Sluice creates starts with default.rp_filter) or pass --configure-host`,
          'SLUICE_HOST_SYSCTL',
        );
      this.sys.write(`net/ipv4/conf/${dev}/rp_filter`, '2');
    }
  }

  /**
   * Makes the host route `addresses` into the TUN device, send traffic from `backends` (members
   * whose replies Sluice must rewrite) into it, and route what Sluice writes to each floating-IP
   * backend's device via that backend's address (`floating`: address -> device name, the
   * devices already open). A floating-IP backend must be on-link (a neighbour of this host):
   * the frontend IP it owns is reachable only through it.
   *
   * All or nothing: everything is added before anything is removed, so flows of addresses that
   * stay are not disturbed, and when an addition fails the ones made before it are taken back
   * and the host is left as the previous sync made it.
   */
  async sync(
    addresses: Iterable<string>,
    backends: Iterable<string>,
    floating: ReadonlyMap<string, string> = new Map(),
  ): Promise<void> {
    const dev = this.options.tun;
    const wantRoutes = new Set(addresses);
    const wantSources = new Set(backends);
    const undo: (() => void)[] = [];
    const replaced: FloatingRoute[] = [];
    try {
      for (const a of wantRoutes) {
        if (this.routes.has(a)) continue;
        await this.step(['route', 'replace', `${a}/32`, 'dev', dev], ['route', 'del', `${a}/32`, 'dev', dev]);
        this.routes.add(a);
        undo.push(() => {
          this.quiet(['route', 'del', `${a}/32`, 'dev', dev]);
          this.routes.delete(a);
        });
      }
      for (const a of wantSources) {
        if (this.sources.has(a)) continue;
        const rule = this.sourceRule(a);
        await this.step(['rule', 'add', ...rule], ['rule', 'del', ...rule]);
        this.sources.add(a);
        undo.push(() => {
          this.quiet(['rule', 'del', ...rule]);
          this.sources.delete(a);
        });
      }
      for (const [addr, fdev] of floating) {
        const had = this.floating.get(addr);
        if (had !== undefined && had.dev === fdev) continue;
        // A backend that moves to another device keeps its old route until the new one is in.
        const f = { dev: fdev, table: this.freeTable(replaced) };
        await this.addFloating(addr, f, undo);
        if (had !== undefined) replaced.push(had);
        this.floating.set(addr, f);
        undo.push(() => {
          if (had !== undefined) this.floating.set(addr, had);
          else this.floating.delete(addr);
        });
      }
    } catch (err) {
      for (const u of undo.reverse()) u();
      throw err;
    }
    for (const f of replaced) await this.removeFloating(f);
    for (const addr of [...this.floating.keys()]) {
      if (floating.has(addr)) continue;
      const f = this.floating.get(addr)!;
      this.floating.delete(addr);
      await this.removeFloating(f);
    }
    for (const a of [...this.routes]) {
      if (wantRoutes.has(a)) continue;
      this.routes.delete(a);
      await this.quietAsync(['route', 'del', `${a}/32`, 'dev', dev]);
    }
    for (const a of [...this.sources]) {
      if (wantSources.has(a)) continue;
      this.sources.delete(a);
      await this.quietAsync(['rule', 'del', ...this.sourceRule(a)]);
    }
  }

  private sourceRule(address: string): string[] {
    return ['priority', String(this.prio + 1), 'from', `${address}/32`, 'lookup', this.table];
  }

  /** The lowest per-backend table that neither a floating-IP backend nor `also` uses. */
  private freeTable(also: readonly FloatingRoute[]): number {
    const used = new Set([...this.floating.values(), ...also].map((f) => f.table));
    let table = Number(this.table) + 1;
    while (used.has(table)) table++;
    return table;
  }

  /** Routes what comes out of `f.dev` via `addr`, pushing onto `undo` how to take it back. */
  private async addFloating(addr: string, f: FloatingRoute, undo: (() => void)[]): Promise<void> {
    // The device is new to this sync and vanishes when the plane closes it on failure, so its
    // rp_filter and link state need no undo.
    this.looseRpFilter(f.dev);
    await this.step(['link', 'set', 'dev', f.dev, 'up'], []);
    const table = String(f.table);
    try {
      await this.step(
        ['route', 'replace', 'default', 'via', addr, 'table', table],
        ['route', 'flush', 'table', table],
      );
    } catch (err) {
      if (this.closed) throw err;
      throw new HostError(
        `floating IP: cannot route via backend ${addr}, which must be on-link (a neighbour of this host): ${(err as Error).message}`,
      );
    }
    undo.push(() => this.quiet(['route', 'flush', 'table', table]));
    const rule = ['priority', String(this.prio), 'iif', f.dev, 'lookup', table];
    await this.step(['rule', 'add', ...rule], ['rule', 'del', ...rule]);
    undo.push(() => this.quiet(['rule', 'del', ...rule]));
  }

  private async removeFloating(f: FloatingRoute): Promise<void> {
    await this.quietAsync([
      'rule',
      'del',
      'priority',
      String(this.prio),
      'iif',
      f.dev,
      'lookup',
      String(f.table),
    ]);
    await this.quietAsync(['route', 'flush', 'table', String(f.table)]);
  }

  /**
   * Removes everything `up` and `sync` added, at once and on the thread; safe to call twice and
   * from an exit handler. A change still under way takes back what it adds after this.
   */
  down(): void {
    this.closed = true;
    process.off('exit', this.onExit);
    const dev = this.options.tun;
    for (const f of this.floating.values()) {
      this.quiet(['rule', 'del', 'priority', String(this.prio), 'iif', f.dev, 'lookup', String(f.table)]);
      this.quiet(['route', 'flush', 'table', String(f.table)]);
    }
    this.floating.clear();
    for (const a of this.routes) this.quiet(['route', 'del', `${a}/32`, 'dev', dev]);
    this.routes.clear();
    for (const a of this.sources) this.quiet(['rule', 'del', ...this.sourceRule(a)]);
    this.sources.clear();
    if (this.iifRule)
      this.quiet(['rule', 'del', 'priority', String(this.prio), 'iif', this.options.tun, 'lookup', 'main']);
    this.iifRule = false;
    this.quiet(['route', 'flush', 'table', this.table]);
    if (this.restoreForward !== undefined) {
      try {
        this.sys.write('net/ipv4/ip_forward', this.restoreForward);
      } catch {
        /* the host keeps forwarding; nothing worse */
      }
      this.restoreForward = undefined;
    }
  }

  private async quietAsync(args: readonly string[]): Promise<void> {
    try {
      await this.ipAsync(args);
    } catch {
      /* already gone (the device's routes vanish with it) */
    }
  }

  private quiet(args: readonly string[]): void {
    try {
      this.ip(args);
    } catch {
      /* already gone (the device's routes vanish with it) */
    }
  }
}
