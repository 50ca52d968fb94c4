/**
 * Network namespaces for the packet plane's system tests: client, lb, backend1, backend2 and
 * internet, joined by veth pairs, addresses from 198.18.0.0/15 only, and Sluice run inside lb.
 * Nothing is created outside the namespaces, and `destroy` removes them whatever happened;
 * namespaces left by a run that was killed are removed by the next one.
 *
 *   client 198.18.1.2 --- 198.18.1.1 lb 198.18.2.1 --- 198.18.2.2 backend1
 *                                      198.18.3.1 --- 198.18.3.2 backend2
 *                                      198.18.4.1 --- 198.18.4.2 internet
 *   frontend 198.18.100.10, routed by Sluice into its TUN device in lb
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { lbDocument, type TestRule } from './arm.js';
import { cliPath, repoRoot } from './cli.js';

export const FRONTEND = '198.18.100.10';
export const CLIENT = '198.18.1.2';
export const BACKENDS = ['198.18.2.2', '198.18.3.2'] as const;
export const INTERNET = '198.18.4.2';

/** Writes `dir/NAME` (lb.json by default): a load balancer on FRONTEND with `rules` over `backends`. */
export function writeLbConfig(
  dir: string,
  rules: TestRule[],
  backends: readonly string[] = BACKENDS,
  name = 'lb.json',
): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(lbDocument({ frontend: FRONTEND, backends, rules })));
  return path;
}

const PREFIX = 'sltest';
const ROLES = ['client', 'lb', 'backend1', 'backend2', 'internet'] as const;
export type Role = (typeof ROLES)[number];

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

let why: string | undefined | null = null;

/** Why the system tests cannot run here, or undefined when they can. */
export function systemUnavailable(): string | undefined {
  if (why !== null) return why;
  why = probe();
  return why;
}

function probe(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'not root: network namespaces and TUN devices need root';
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun does not exist';
  if (!existsSync(cliPath)) return 'sluice is not built';
  const addon = `${repoRoot}native/build/Release/sluice_tun.node`;
  if (!existsSync(addon)) return 'the TUN addon is not built (npm run install)';
  const name = `${PREFIX}${process.pid}probe`;
  try {
    ip('netns', 'add', name);
    ip('netns', 'del', name);
  } catch (err) {
    return `ip netns is unusable: ${(err as Error).message.split('\n')[0]}`;
  }
  return undefined;
}

/**
 * `test`, skipped with a one-line reason where namespaces cannot be made, except in CI
 * (CI=true), where that is a failure: CI must prove the packet plane.
 */
export function systemTest(name: string, fn: (t: TestContext) => Promise<void>, timeoutMs = 60_000): void {
  const reason = systemUnavailable();
  if (reason === undefined) test(name, { timeout: timeoutMs }, fn);
  else if (process.env.CI === 'true')
    test(name, () => {
      throw new Error(`CI=true, yet the system tests cannot run: ${reason}`);
    });
  else test(name, { skip: reason }, () => {});
}

/**
 * Whether ethtool is here, for tests that turn checksum offloads off. Without it the test is
 * skipped with the reason, except in CI, where it fails (scripts/test.sh installs ethtool).
 */
export function ethtoolAvailable(t: TestContext): boolean {
  try {
    execFileSync('ethtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    const reason = 'ethtool is missing: checksum offloads cannot be turned off';
    if (process.env.CI === 'true') throw new Error(`CI=true, yet ${reason} (scripts/test.sh installs it)`);
    t.skip(reason);
    return false;
  }
}

/** Removes namespaces of earlier runs whose process is gone. */
function cleanLeftovers(): void {
  const list = ip('netns', 'list');
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${PREFIX}(\\d+)x`).exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && existsSync(`/proc/${pid}`)) continue;
    try {
      ip('netns', 'del', name);
    } catch {
      /* raced with another cleaner */
    }
  }
}

let serial = 0;

export class Topology {
  readonly ns: Record<Role, string>;
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;

  private constructor(id: string) {
    this.ns = Object.fromEntries(ROLES.map((r) => [r, `${PREFIX}${process.pid}x${id}${r}`])) as Record<
      Role,
      string
    >;
  }

  /** `tag` goes into the namespaces' names, so a test file's namespaces are told from others'. */
  static create(tag = ''): Topology {
    cleanLeftovers();
    const t = new Topology(`${tag}${serial++}`);
    try {
      t.build();
    } catch (err) {
      t.destroy();
      throw err;
    }
    return t;
  }

  private build(): void {
    const n = this.ns;
    for (const r of ROLES) {
      ip('netns', 'add', n[r]);
      ip('-n', n[r], 'link', 'set', 'lo', 'up');
    }
    const link = (role: Role, dev: string, addr: string, lbDev: string, lbAddr: string): void => {
      ip('-n', n[role], 'link', 'add', dev, 'type', 'veth', 'peer', 'name', lbDev, 'netns', n.lb);
      ip('-n', n[role], 'addr', 'add', `${addr}/24`, 'dev', dev);
      ip('-n', n[role], 'link', 'set', dev, 'up');
      ip('-n', n.lb, 'addr', 'add', `${lbAddr}/24`, 'dev', lbDev);
      ip('-n', n.lb, 'link', 'set', lbDev, 'up');
      // Every other address is behind lb: the backends' replies to clients go through it.
      ip('-n', n[role], 'route', 'add', 'default', 'via', lbAddr);
    };
    link('client', 'eth0', CLIENT, 'lbc', '198.18.1.1');
    link('backend1', 'eth0', BACKENDS[0], 'lbb1', '198.18.2.1');
    link('backend2', 'eth0', BACKENDS[1], 'lbb2', '198.18.3.1');
    link('internet', 'eth0', INTERNET, 'lbi', '198.18.4.1');
  }

  /** Runs a command in a namespace; returns stdout. */
  exec(role: Role, cmd: string, ...args: string[]): string {
    return this.execWithin(10_000, role, cmd, ...args);
  }

  /** `exec` for a command that may take longer than 10 s on a loaded machine (a bulk sender). */
  execWithin(ms: number, role: Role, cmd: string, ...args: string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.ns[role], cmd, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: ms,
    });
  }

  sysctl(role: Role, name: string, value: string): void {
    this.exec(role, 'sysctl', '-qw', `${name}=${value}`);
  }

  /** A TCP counter of a namespace's /proc/net/snmp (e.g. InCsumErrors). */
  tcpCounter(role: Role, name: string): number {
    return this.snmpCounter(role, 'Tcp', name);
  }

  /** A counter of a namespace's /proc/net/snmp, e.g. ('Udp', 'InCsumErrors'). */
  snmpCounter(role: Role, proto: 'Ip' | 'Tcp' | 'Udp', name: string): number {
    const lines = this.exec(role, 'cat', '/proc/net/snmp')
      .split('\n')
      .filter((l) => l.startsWith(`${proto}:`));
    const keys = lines[0]?.split(/\s+/) ?? [];
    const values = lines[1]?.split(/\s+/) ?? [];
    const i = keys.indexOf(name);
    if (i < 0) throw new Error(`no ${proto} counter ${name}`);
    return Number(values[i]);
  }

  /** Starts a long-running process in a namespace; it is killed by `destroy`. */
  spawn(role: Role, cmd: string, args: readonly string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.ns[role], cmd, ...args], {
      cwd: repoRoot,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Starts `sluice run CONFIG ARGS` in lb. */
  sluice(config: string, args: readonly string[]): SluiceProcess {
    return new SluiceProcess(this.spawn('lb', process.execPath, [cliPath, 'run', config, ...args]));
  }

  /** Starts an endpoint agent in a namespace. */
  agent(role: Role): Agent {
    return new Agent(this.spawn(role, 'python3', ['-u', '-c', AGENT]));
  }

  /** Agents in backend1 and backend2, each serving a TCP echo on `port` once this resolves. */
  async tcpBackends(port: number): Promise<Agent[]> {
    const backends = [this.agent('backend1'), this.agent('backend2')];
    for (const b of backends) {
      b.send({ cmd: 'serve', port });
      await b.waitFor('backend listening', (l) => l.ev === 'listening', 5000);
    }
    return backends;
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const exits = [...this.children].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const t = setTimeout(() => {
            c.kill('SIGKILL');
          }, 3000);
          c.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          c.kill('SIGTERM');
        }),
    );
    await Promise.all(exits);
    for (const r of ROLES) {
      try {
        ip('netns', 'del', this.ns[r]);
      } catch {
        /* never created */
      }
    }
  }
}

/** Lines of JSON from a child, and bounded waits for one that matches. */
class Lines {
  readonly lines: Record<string, unknown>[] = [];
  readonly stderr: string[] = [];
  private readonly waiters = new Set<() => void>();
  private ended = false;

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (l) => {
      try {
        this.lines.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        this.lines.push({ raw: l });
      }
      for (const w of this.waiters) w();
    });
    createInterface({ input: child.stderr! }).on('line', (l) => this.stderr.push(l));
    child.once('exit', () => {
      this.ended = true;
      for (const w of this.waiters) w();
    });
  }

  find(pred: (l: Record<string, unknown>) => boolean): Record<string, unknown> | undefined {
    return this.lines.find(pred);
  }

  waitFor(
    what: string,
    pred: (l: Record<string, unknown>) => boolean,
    ms: number,
  ): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = this.lines.find(pred);
        if (hit) finish(() => resolve(hit));
        else if (this.ended)
          finish(() => reject(new Error(`exited before ${what}; stderr: ${this.stderr.join(' | ')}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`no ${what} within ${ms} ms`))), ms);
      const finish = (f: () => void): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        f();
      };
      this.waiters.add(check);
      check();
    });
  }
}

export class SluiceProcess extends Lines {
  ready(ms = 10_000): Promise<Record<string, unknown>> {
    return this.waitFor('sluice ready', (l) => l.msg === 'ready', ms);
  }

  stop(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null)
      return Promise.resolve(this.child.exitCode);
    return new Promise((resolve) => {
      this.child.once('exit', (code) => resolve(code));
      this.child.kill('SIGTERM');
    });
  }
}

/**
 * A kernel TCP/UDP endpoint in a namespace (python3 sockets), driven by JSON commands on
 * stdin and reporting JSON events with a monotonic time `t` in seconds.
 */
export class Agent extends Lines {
  send(cmd: Record<string, unknown>): void {
    this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
  }

  events(id: string): Record<string, unknown>[] {
    return this.lines.filter((l) => l.id === id);
  }

  event(id: string, ev: string, ms: number): Promise<Record<string, unknown>> {
    return this.waitFor(`${ev} on ${id}`, (l) => l.id === id && l.ev === ev, ms);
  }

  /** Waits until `bytes` bytes of data have arrived on connection `id`; returns how many did. */
  async received(id: string, bytes: number, ms = 20_000): Promise<number> {
    const count = (): number =>
      this.lines.reduce((n, l) => (l.id === id && l.ev === 'data' ? n + (l.n as number) : n), 0);
    await this.waitFor(`${bytes} bytes on ${id}`, () => count() >= bytes, ms);
    return count();
  }
}

const AGENT = String.raw`
import errno, json, socket, sys, threading, time
lock = threading.Lock()
conns = {}
def emit(**kw):
    kw['t'] = time.monotonic()
    with lock:
        sys.stdout.write(json.dumps(kw) + '\n')
        sys.stdout.flush()
def code(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
def reader(cid, s, echo):
    try:
        while True:
            d = s.recv(65536)
            if not d:
                emit(ev='end', id=cid)
                return
            emit(ev='data', id=cid, n=len(d), text=d[:64].decode('latin1'))
            if echo:
                s.sendall(d)
    except OSError as e:
        emit(ev='error', id=cid, code=code(e))
def serve(port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(('0.0.0.0', port))
    srv.listen(128)
    emit(ev='listening', port=port)
    n = 0
    while True:
        c, a = srv.accept()
        n += 1
        cid = 's%d.%d' % (port, n)
        conns[cid] = c
        la = c.getsockname()
        emit(ev='accept', id=cid, peer=a[0], peerPort=a[1], port=port, local=la[0], localPort=la[1])
        threading.Thread(target=reader, args=(cid, c, True), daemon=True).start()
def udp_serve(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('0.0.0.0', port))
    conns['udp%d' % port] = s
    emit(ev='listening', port=port, proto='udp')
    while True:
        d, a = s.recvfrom(65536)
        emit(ev='udp', id='udp%d' % port, peer=a[0], peerPort=a[1], text=d.decode('latin1'))
        s.sendto(d, a)
def connect(c):
    cid = c['id']
    try:
        s = socket.socket()
        ka = c.get('keepalive')
        if ka:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, ka[0])
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, ka[1])
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, ka[2])
        s.settimeout(5)
        s.connect((c['host'], c['port']))
        s.settimeout(None)
        conns[cid] = s
        emit(ev='connected', id=cid, localPort=s.getsockname()[1])
        threading.Thread(target=reader, args=(cid, s, False), daemon=True).start()
    except OSError as e:
        emit(ev='error', id=cid, code=code(e))
def udp_open(c):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('0.0.0.0', 0))
    conns[c['id']] = s
    emit(ev='udp-open', id=c['id'], localPort=s.getsockname()[1])
    def rx():
        while True:
            d, a = s.recvfrom(65536)
            emit(ev='udp', id=c['id'], peer=a[0], peerPort=a[1], text=d.decode('latin1'))
    threading.Thread(target=rx, daemon=True).start()
for line in sys.stdin:
    c = json.loads(line)
    op = c['cmd']
    try:
        if op == 'serve':
            threading.Thread(target=serve, args=(c['port'],), daemon=True).start()
        elif op == 'udp-serve':
            threading.Thread(target=udp_serve, args=(c['port'],), daemon=True).start()
        elif op == 'connect':
            threading.Thread(target=connect, args=(c,), daemon=True).start()
        elif op == 'send':
            conns[c['id']].sendall(c['text'].encode('latin1'))
        elif op == 'shutdown':
            conns[c['id']].shutdown(socket.SHUT_WR)
        elif op == 'close':
            # shutdown first: a close alone waits for the reader thread's recv to let go of it.
            conns[c['id']].shutdown(socket.SHUT_RDWR)
            conns[c['id']].close()
        elif op == 'udp-open':
            udp_open(c)
        elif op == 'udp-send':
            conns[c['id']].sendto(c['text'].encode('latin1'), (c['host'], c['port']))
        elif op == 'udp-reply':
            conns[c['id']].sendto(c['text'].encode('latin1'), (c['host'], c['port']))
    except OSError as e:
        emit(ev='error', id=c.get('id'), code=code(e), op=op)
`;
