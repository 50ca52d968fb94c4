import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/core/clock.js';
import { FlowEngine } from '../../../src/core/engine.js';
import { TCP_SYN } from '../../../src/core/tcp-state.js';
import { HostError, HostNetwork } from '../../../src/dataplane/packet/host.js';
import { PacketPlane } from '../../../src/dataplane/packet/packet-plane.js';
import { compileLb } from '../../helpers/arm.js';
import { FakeTun, tcpPacket } from './packets.js';

const FE = '198.18.100.10';
const FE2 = '198.18.100.11';
const CLIENT = '198.18.1.2';
const B1 = '198.18.2.2';
const B2 = '198.18.3.2';
/** Not on any of the host's links: a route via it is refused like the kernel refuses it. */
const FAR = '198.18.9.2';
const ON_LINK = new Set([B1, B2]);

/**
 * The rules and routing tables `ip` would leave, kept in memory with the kernel's answers to
 * what Sluice runs: duplicates and missing entries fail, and so does a gateway that is not
 * on-link ("Nexthop has invalid gateway").
 */
class FakeIp {
  readonly rules: string[] = [];
  readonly tables = new Map<string, Map<string, string>>();
  readonly log: string[] = [];

  readonly run = (args: readonly string[]): void => {
    this.log.push(args.join(' '));
    const fail = (why: string): never => {
      throw new HostError(`ip ${args.join(' ')}: ${why}`);
    };
    const [object, verb, ...rest] = args;
    if (object === 'link') return;
    if (object === 'rule') {
      const key = rest.join(' ');
      if (verb === 'add') {
        if (this.rules.includes(key)) fail('RTNETLINK answers: File exists');
        this.rules.push(key);
        return;
      }
      // `rule del priority P` removes the first rule of that priority, like the kernel.
      const i =
        rest.length === 2 ? this.rules.findIndex((r) => r.startsWith(`${key} `)) : this.rules.indexOf(key);
      if (i < 0) fail('RTNETLINK answers: No such file or directory');
      this.rules.splice(i, 1);
      return;
    }
    if (object === 'route') {
      if (verb === 'flush') {
        this.tables.delete(rest[1]!);
        return;
      }
      const t = rest.indexOf('table');
      const table = t < 0 ? 'main' : rest[t + 1]!;
      const spec = (t < 0 ? rest.slice(1) : rest.slice(1, t)).join(' ');
      const prefix = rest[0]!;
      const routes = this.tables.get(table) ?? new Map<string, string>();
      if (verb === 'replace') {
        const via = rest.indexOf('via');
        if (via >= 0 && !ON_LINK.has(rest[via + 1]!)) fail('Error: Nexthop has invalid gateway.');
        routes.set(prefix, spec);
        this.tables.set(table, routes);
        return;
      }
      if (verb === 'del') {
        if (routes.get(prefix) !== spec) fail('RTNETLINK answers: No such process');
        routes.delete(prefix);
        return;
      }
    }
    fail('unknown command');
  };

  /** What `ip rule` and `ip route show table N` would print, order aside. */
  dump(): { rules: string[]; tables: [string, [string, string][]][] } {
    return {
      rules: [...this.rules].sort(),
      tables: [...this.tables]
        .filter(([, r]) => r.size > 0)
        .map(([t, r]) => [t, [...r].sort()] as [string, [string, string][]])
        .sort(),
    };
  }
}

const sysctl = {
  read: (path: string): string => (path.endsWith('rp_filter') ? '0' : '1'),
  write: (): void => {},
};

function floatingLb(frontend: string, backends: readonly string[]) {
  return compileLb({
    frontend,
    backends,
    rules: [{ name: 'floating', frontendPort: 80, backendPort: 8080, enableFloatingIP: true }],
  });
}

test('floating IP: a reconfiguration whose backend is not on-link fails with a clear error and leaves the rules, routes and devices of the previous one', async () => {
  const clock = new ManualClock(0);
  const before = floatingLb(FE, [B1]);
  const engine = new FlowEngine({ clock, snapshot: before, indexReplies: true });
  const ip = new FakeIp();
  const opened = new Map<string, FakeTun>();
  const tun = new FakeTun('fake0');
  const plane = new PacketPlane({
    engine,
    clock,
    tun: 'fake0',
    device: tun,
    hostOptions: { ip: ip.run, sysctl },
    openDevice: (name) => {
      const d = new FakeTun(name);
      opened.set(name, d);
      return d;
    },
  });
  await plane.apply(before);
  const working = ip.dump();
  assert.ok(
    working.rules.includes('priority 20942 iif fake0f0 lookup 20943'),
    `the backend's device has its rule: ${working.rules.join(' | ')}`,
  );

  // A new frontend and two more floating-IP backends: B2 is set up before FAR fails.
  const after = floatingLb(FE2, [B1, B2, FAR]);
  engine.setSnapshot(after);
  ip.log.length = 0;
  await assert.rejects(
    plane.apply(after),
    (err: Error) =>
      err instanceof HostError &&
      err.message.includes(`via backend ${FAR}`) &&
      err.message.includes('on-link') &&
      err.message.includes('Nexthop has invalid gateway'),
  );
  engine.setSnapshot(before);
  assert.ok(
    ip.log.includes(`route replace default via ${B2} table 20944`) &&
      ip.log.includes(`rule add priority 20943 from ${FE2}/32 lookup 20942`) &&
      ip.log.includes(`route replace ${FE2}/32 dev fake0`),
    `the failed attempt had added routes and rules before it failed: ${ip.log.join(' | ')}`,
  );
  assert.deepEqual(ip.dump(), working, 'the host is as the previous configuration left it');
  assert.equal(opened.get('fake0f0')!.closed, false, "the working backend's device stays open");
  assert.ok(
    opened.get('fake0f1')!.closed && opened.get('fake0f2')!.closed,
    'the devices of the attempt are closed',
  );

  // The previous configuration still forwards: to B1 through its own device.
  tun.inject(tcpPacket({ src: CLIENT, dst: FE, sport: 40000, dport: 80, seq: 100, flags: TCP_SYN }));
  const [syn] = opened.get('fake0f0')!.take();
  assert.deepEqual([syn?.dst, syn?.dport], [FE, 8080]);

  // What Sluice remembers of the host matches the host: a good reconfiguration and stop are clean.
  const fixed = floatingLb(FE2, [B1, B2]);
  engine.setSnapshot(fixed);
  await plane.apply(fixed);
  const now = ip.dump();
  assert.deepEqual(
    now.rules.filter((r) => r.startsWith('priority 20943 ')).sort(),
    [
      `priority 20943 from ${B1}/32 lookup 20942`,
      `priority 20943 from ${B2}/32 lookup 20942`,
      `priority 20943 from ${FE2}/32 lookup 20942`,
    ].sort(),
  );
  assert.deepEqual(
    now.tables.find(([t]) => t === 'main')?.[1],
    [[`${FE2}/32`, 'dev fake0']],
    'only the new frontend is routed in',
  );
  await plane.stop();
  assert.deepEqual(ip.dump(), { rules: [], tables: [] }, 'stop takes back everything');
});

test('host: a floating-IP backend moved to another device keeps its old route until the new one is in, also when the move fails', async () => {
  const ip = new FakeIp();
  const host = new HostNetwork({ tun: 'sl0', configureHost: false, ip: ip.run, sysctl });
  await host.up();
  await host.sync([FE], [B1], new Map([[B1, 'sl0f0']]));
  const working = ip.dump();
  await assert.rejects(
    () =>
      host.sync(
        [FE],
        [B1],
        new Map([
          [B1, 'sl0f1'],
          [FAR, 'sl0f2'],
        ]),
      ),
    /via backend 198\.18\.9\.2/,
  );
  assert.deepEqual(ip.dump(), working);
  await host.sync([FE], [B1], new Map([[B1, 'sl0f1']]));
  const moved = ip.dump();
  assert.ok(moved.rules.includes('priority 20942 iif sl0f1 lookup 20944'), moved.rules.join(' | '));
  assert.ok(!moved.rules.some((r) => r.includes('sl0f0')), 'the old device has no rule left');
  assert.equal(
    moved.tables.find(([t]) => t === '20943'),
    undefined,
    "the old device's table is flushed",
  );
  assert.deepEqual(moved.tables.find(([t]) => t === '20944')?.[1], [['default', `via ${B1}`]]);
  host.down();
  assert.deepEqual(ip.dump(), { rules: [], tables: [] });
});

test('host: a set-up step that fails takes back the steps before it (no rule or route is left)', async () => {
  const ip = new FakeIp();
  let forward = '0';
  const writes: string[] = [];
  const failing = (args: readonly string[]): void => {
    if (args.join(' ').startsWith('route replace default dev sl0')) {
      throw new HostError('ip route replace: RTNETLINK answers: Network is down');
    }
    ip.run(args);
  };
  const host = new HostNetwork({
    tun: 'sl0',
    configureHost: true,
    ip: failing,
    sysctl: {
      read: (path) => (path === 'net/ipv4/ip_forward' ? forward : '0'),
      write: (path, value) => {
        writes.push(`${path}=${value}`);
        if (path === 'net/ipv4/ip_forward') forward = value;
      },
    },
  });
  const exitListeners = process.listenerCount('exit');
  await assert.rejects(() => host.up(), /Network is down/);
  assert.ok(ip.log.includes('rule add priority 20942 iif sl0 lookup main'), 'the rule was added first');
  assert.deepEqual(ip.dump(), { rules: [], tables: [] }, 'and taken back');
  assert.deepEqual(writes, ['net/ipv4/ip_forward=1', 'net/ipv4/ip_forward=0'], 'ip_forward restored');
  assert.equal(process.listenerCount('exit'), exitListeners, 'no exit hook is left behind');
});

test('host: taken down while a change is under way, the change takes back what it adds and stops', async () => {
  const ip = new FakeIp();
  const host = new HostNetwork({ tun: 'sl0', configureHost: false, ip: ip.run, sysctl });
  await host.up();
  await host.sync([FE], [B1]);
  // The change's first step is under way (off the thread) when the host is taken down.
  const change = host.sync([FE, FE2], [B1, B2]);
  host.down();
  await assert.rejects(change, /taken down while it was being changed/);
  assert.deepEqual(ip.dump(), { rules: [], tables: [] }, 'nothing the change added is left');
});
