/**
 * The lab's namespaces, links, addresses and routes, made with `ip`, `sysctl` and `nft`
 * (veth pairs only: nothing needs a kernel module beyond what namespaces already use).
 */
import { execFileSync } from 'node:child_process';
import type { LabPlan } from './plan.js';

export function run(cmd: string, args: readonly string[], input?: string): string {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      timeout: 15_000,
      ...(input !== undefined ? { input } : {}),
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

const ipn = (ns: string, ...args: string[]): string => run('ip', ['-n', ns, ...args]);
const sysctl = (ns: string, ...settings: string[]): void => {
  run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', ...settings]);
};

export function listNamespaces(): string[] {
  return run('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n !== '');
}

/** Creates a namespace with its loopback up; `created` learns it at once (for the undo). */
function addNamespace(ns: string, created: (ns: string) => void): void {
  run('ip', ['netns', 'add', ns]);
  created(ns);
  ipn(ns, 'link', 'set', 'lo', 'up');
  // Reverse-path checks would drop what the lab routes asymmetrically on purpose.
  sysctl(ns, 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0');
}

/** A veth pair from `a` (device `aDev`) to `b` (device `bDev`), both up. */
function link(a: string, aDev: string, b: string, bDev: string): void {
  ipn(a, 'link', 'add', aDev, 'type', 'veth', 'peer', 'name', bDev, 'netns', b);
  ipn(a, 'link', 'set', aDev, 'up');
  ipn(b, 'link', 'set', bDev, 'up');
}

/**
 * Builds every namespace and link of `plan`. `created` hears of each namespace as soon as it
 * exists, so a failure half-way can be taken back.
 */
export function buildNetwork(plan: LabPlan, created: (ns: string) => void): void {
  const r = plan.router.namespace;
  const c = plan.client;
  for (const ns of [c.namespace, r, ...(plan.etcd ? [plan.etcd.namespace] : [])]) addNamespace(ns, created);
  sysctl(
    r,
    'net.ipv4.ip_forward=1',
    'net.ipv4.fib_multipath_hash_policy=3',
    'net.ipv4.fib_multipath_hash_fields=0x0037',
  );
  link(c.namespace, 'eth0', r, 'client');
  ipn(c.namespace, 'addr', 'add', `${c.address}/24`, 'dev', 'eth0');
  ipn(r, 'addr', 'add', `${c.gateway}/24`, 'dev', 'client');
  ipn(c.namespace, 'route', 'add', 'default', 'via', c.gateway);
  if (plan.etcd) {
    const e = plan.etcd;
    link(e.namespace, 'eth0', r, 'etcd');
    ipn(e.namespace, 'addr', 'add', `${e.address}/24`, 'dev', 'eth0');
    ipn(r, 'addr', 'add', '198.18.9.1/24', 'dev', 'etcd');
    ipn(e.namespace, 'route', 'add', 'default', 'via', '198.18.9.1');
  }
  for (const b of plan.backends) {
    addNamespace(b.namespace, created);
    ipn(b.namespace, 'addr', 'add', `${b.address}/32`, 'dev', 'lo');
  }
  for (const i of plan.instances) {
    addNamespace(i.namespace, created);
    sysctl(i.namespace, 'net.ipv4.ip_forward=1');
    link(i.namespace, 'up0', r, i.routerDev);
    ipn(i.namespace, 'addr', 'add', `${i.address}/24`, 'dev', 'up0');
    ipn(r, 'addr', 'add', `${i.gateway}/24`, 'dev', i.routerDev);
    ipn(i.namespace, 'route', 'add', 'default', 'via', i.gateway);
    for (const b of plan.backends) {
      const toBackend = `b${b.index}`;
      const toInstance = `i${i.index}`;
      link(i.namespace, toBackend, b.namespace, toInstance);
      ipn(i.namespace, 'route', 'add', `${b.address}/32`, 'dev', toBackend);
      ipn(b.namespace, 'route', 'add', `${i.address}/32`, 'dev', toInstance);
      // Replies to clients go back through the instance that sent the connection's last packet.
      const table = String(100 + i.index);
      ipn(
        b.namespace,
        'route',
        'add',
        'default',
        'via',
        i.address,
        'dev',
        toInstance,
        'onlink',
        'table',
        table,
      );
      ipn(b.namespace, 'rule', 'add', 'priority', '100', 'fwmark', String(i.index), 'lookup', table);
    }
  }
  const first = plan.instances[0]!;
  for (const b of plan.backends) {
    // A route the kernel finds before the mark reroutes a packet (a SYN-ACK is routed first).
    ipn(b.namespace, 'route', 'add', 'default', 'via', first.address, 'dev', `i${first.index}`, 'onlink');
    run('ip', ['netns', 'exec', b.namespace, 'nft', '-f', '-'], returnPath(plan));
  }
}

/**
 * The backends' return path: each packet that comes in from instance K marks its connection K
 * (every packet, so a connection that ECMP moves to another instance follows it), and what the
 * backend sends on that connection is routed by the mark, back to instance K.
 */
export function returnPath(plan: LabPlan): string {
  const marks = plan.instances.map((i) => `"i${i.index}" : ${i.index}`).join(', ');
  return [
    'table ip sluice_lab {',
    '  chain prerouting {',
    '    type filter hook prerouting priority mangle; policy accept;',
    `    ct mark set iifname map { ${marks} }`,
    '  }',
    '  chain output {',
    '    type route hook output priority mangle; policy accept;',
    '    meta mark set ct mark',
    '  }',
    '}',
    '',
  ].join('\n');
}

/**
 * The next hops (gateway addresses) the router holds for `address`: its resilient group in
 * `table` when given and present, else the main table's route.
 */
export function routerNextHops(ns: string, address: string, table?: number): string[] {
  interface Route {
    dst: string;
    nhid?: number;
    gateway?: string;
    nexthops?: { gateway?: string }[];
  }
  interface Nexthop {
    id: number;
    gateway?: string;
    group?: { id: number }[];
  }
  const routes = (t: string): Route[] => {
    try {
      const out = run('ip', ['-n', ns, '-j', 'route', 'show', 'table', t, 'to', `${address}/32`]);
      return out.trim() === '' ? [] : (JSON.parse(out) as Route[]);
    } catch {
      // A table with no route yet does not exist.
      return [];
    }
  };
  let list = table !== undefined ? routes(String(table)) : [];
  if (list.length === 0) list = routes('main');
  const r = list.find((x) => x.dst === address || x.dst === `${address}/32`);
  if (r === undefined) return [];
  if (r.nexthops !== undefined)
    return r.nexthops
      .map((n) => n.gateway ?? '')
      .filter((g) => g !== '')
      .sort();
  if (r.nhid !== undefined) {
    const out = run('ip', ['-n', ns, '-j', 'nexthop', 'show']);
    const nhs = new Map((JSON.parse(out) as Nexthop[]).map((n) => [n.id, n]));
    const nh = nhs.get(r.nhid);
    const members = nh?.group !== undefined ? nh.group.map((g) => nhs.get(g.id)) : [nh];
    return members
      .map((m) => m?.gateway ?? '')
      .filter((g) => g !== '')
      .sort();
  }
  return r.gateway !== undefined ? [r.gateway] : [];
}
