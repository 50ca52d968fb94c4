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
 * Sysctls are the host's business: Sluice reads net.ipv4.ip_forward and the TUN device's
 * effective rp_filter and refuses to start when they would stop forwarding, unless told with
 * `--configure-host` to set them (ip_forward=1, rp_filter=2 on the TUN device), in which case
 * ip_forward is restored on stop.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

export interface HostOptions {
  readonly tun: string;
  readonly configureHost: boolean;
  /** Packets the TUN device queues; the default 500 overflows during GC pauses. */
  readonly txQueueLen?: number;
  /** Routing table and rule priority for the backends' replies. */
  readonly table?: number;
  readonly priority?: number;
  /** Runs `ip ARGS...`; throws on failure. */
  readonly ip?: (args: readonly string[]) => void;
  readonly sysctl?: { read(path: string): string; write(path: string, value: string): void };
}

export class HostError extends Error {}

/** A floating-IP backend's device and the routing table that sends its packets via the backend. */
interface FloatingRoute {
  readonly dev: string;
  readonly table: number;
}

export const DEFAULT_TABLE = 20942;
export const DEFAULT_PRIORITY = 20942;

function runIp(args: readonly string[]): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    const why = e.stderr?.toString().trim().split('\n')[0] ?? e.message;
    throw new HostError(`ip ${args.join(' ')}: ${why}`);
  }
}

const procSys = {
  read: (path: string): string => readFileSync(`/proc/sys/${path}`, 'utf8').trim(),
  write: (path: string, value: string): void => writeFileSync(`/proc/sys/${path}`, value),
};

export class HostNetwork {
  private readonly ip: (args: readonly string[]) => void;
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
    this.ip = options.ip ?? runIp;
    this.sys = options.sysctl ?? procSys;
    this.table = String(options.table ?? DEFAULT_TABLE);
    this.prio = options.priority ?? DEFAULT_PRIORITY;
  }

  /**
   * Brings the (already created) TUN device up and checks or sets the sysctls. All or nothing:
   * when a step fails, what the steps before it changed is taken back before the error is
   * thrown.
   */
  up(): void {
    const dev = this.options.tun;
    process.on('exit', this.onExit);
    try {
      this.sysctls();
      // Rules of a Sluice that was killed outright would make `ip rule add` fail: clear them.
      for (const prio of [this.prio, this.prio + 1]) {
        for (let i = 0; i < 10_000; i++) {
          try {
            this.ip(['rule', 'del', 'priority', String(prio)]);
          } catch {
            break;
          }
        }
      }
      this.ip(['link', 'set', 'dev', dev, 'up', 'txqueuelen', String(this.options.txQueueLen ?? 10_000)]);
      // What comes out of the TUN device is routed normally, never back in by the rules below.
      this.ip(['rule', 'add', 'priority', String(this.prio), 'iif', dev, 'lookup', 'main']);
      this.iifRule = true;
      this.ip(['route', 'replace', 'default', 'dev', dev, 'table', this.table]);
    } catch (err) {
      this.down();
      throw err;
    }
  }

  private sysctls(): void {
    const forward = this.sys.read('net/ipv4/ip_forward');
    if (forward !== '1') {
      if (!this.options.configureHost)
        throw new HostError(
          'net.ipv4.ip_forward is 0, so the kernel would not forward what Sluice writes: set it to 1 or pass --configure-host',
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
  sync(
    addresses: Iterable<string>,
    backends: Iterable<string>,
    floating: ReadonlyMap<string, string> = new Map(),
  ): void {
    const dev = this.options.tun;
    const wantRoutes = new Set(addresses);
    const wantSources = new Set(backends);
    const undo: (() => void)[] = [];
    const replaced: FloatingRoute[] = [];
    try {
      for (const a of wantRoutes) {
        if (this.routes.has(a)) continue;
        this.ip(['route', 'replace', `${a}/32`, 'dev', dev]);
        this.routes.add(a);
        undo.push(() => {
          this.quiet(['route', 'del', `${a}/32`, 'dev', dev]);
          this.routes.delete(a);
        });
      }
      for (const a of wantSources) {
        if (this.sources.has(a)) continue;
        const rule = ['priority', String(this.prio + 1), 'from', `${a}/32`, 'lookup', this.table];
        this.ip(['rule', 'add', ...rule]);
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
        this.addFloating(addr, f, undo);
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
    for (const f of replaced) this.removeFloating(f);
    for (const addr of [...this.floating.keys()]) {
      if (floating.has(addr)) continue;
      this.removeFloating(this.floating.get(addr)!);
      this.floating.delete(addr);
    }
    for (const a of [...this.routes]) {
      if (wantRoutes.has(a)) continue;
      this.quiet(['route', 'del', `${a}/32`, 'dev', dev]);
      this.routes.delete(a);
    }
    for (const a of [...this.sources]) {
      if (wantSources.has(a)) continue;
      this.quiet(['rule', 'del', 'priority', String(this.prio + 1), 'from', `${a}/32`, 'lookup', this.table]);
      this.sources.delete(a);
    }
  }

  /** The lowest per-backend table that neither a floating-IP backend nor `also` uses. */
  private freeTable(also: readonly FloatingRoute[]): number {
    const used = new Set([...this.floating.values(), ...also].map((f) => f.table));
    let table = Number(this.table) + 1;
    while (used.has(table)) table++;
    return table;
  }

  /** Routes what comes out of `f.dev` via `addr`, pushing onto `undo` how to take it back. */
  private addFloating(addr: string, f: FloatingRoute, undo: (() => void)[]): void {
    // The device is new to this sync and vanishes when the plane closes it on failure, so its
    // rp_filter and link state need no undo.
    this.looseRpFilter(f.dev);
    this.ip(['link', 'set', 'dev', f.dev, 'up']);
    const table = String(f.table);
    try {
      this.ip(['route', 'replace', 'default', 'via', addr, 'table', table]);
    } catch (err) {
      throw new HostError(
        `floating IP: cannot route via backend ${addr}, which must be on-link (a neighbour of this host): ${(err as Error).message}`,
      );
    }
    undo.push(() => this.quiet(['route', 'flush', 'table', table]));
    this.ip(['rule', 'add', 'priority', String(this.prio), 'iif', f.dev, 'lookup', table]);
    undo.push(() =>
      this.quiet(['rule', 'del', 'priority', String(this.prio), 'iif', f.dev, 'lookup', table]),
    );
  }

  private removeFloating(f: FloatingRoute): void {
    this.quiet(['rule', 'del', 'priority', String(this.prio), 'iif', f.dev, 'lookup', String(f.table)]);
    this.quiet(['route', 'flush', 'table', String(f.table)]);
  }

  /** Removes everything `up` and `sync` added; safe to call twice and from an exit handler. */
  down(): void {
    process.off('exit', this.onExit);
    this.sync([], []);
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

  private quiet(args: readonly string[]): void {
    try {
      this.ip(args);
    } catch {
      /* already gone (the device's routes vanish with it) */
    }
  }
}
