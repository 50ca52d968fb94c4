import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Agent } from '../helpers/netns.js';
import {
  BACKENDS,
  CLIENT,
  FRONTEND,
  Topology,
  ethtoolAvailable,
  systemTest,
  systemUnavailable,
  writeLbConfig,
} from '../helpers/netns.js';

/**
 * The packet data plane's host side: what it refuses, what it leaves behind, and whether the
 * checksums it rewrites are right when a receiver really checks them.
 */

const PORT = 80;
const BACKEND_PORT = 8080;
let dir = '';
let config = '';
const topologies: Topology[] = [];

before(() => {
  if (systemUnavailable() !== undefined) return;
  dir = mkdtempSync(join(tmpdir(), 'sluice-system-'));
  config = writeLbConfig(dir, [
    { name: 'web', frontendPort: PORT, backendPort: BACKEND_PORT, idleTimeoutInMinutes: 30 },
  ]);
});

after(async () => {
  for (const t of topologies) await t.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function topology(): Topology {
  const t = Topology.create();
  topologies.push(t);
  return t;
}

systemTest(
  'without --configure-host, ip_forward=0 is refused with a one-line reason and nothing is left',
  async () => {
    const t = topology();
    const s = t.sluice(config, ['--dataplane', 'packet', '--tun', 'sltun1']);
    const code = await new Promise<number | null>((resolve) => s.child.once('exit', resolve));
    assert.equal(code, 1);
    assert.equal(s.stderr.length, 1, s.stderr.join('\n'));
    assert.match(s.stderr[0]!, /^sluice: net\.ipv4\.ip_forward is 0.*--configure-host/);
    assert.doesNotMatch(t.exec('lb', 'ip', 'rule'), /20942/);
    assert.doesNotMatch(t.exec('lb', 'ip', 'link'), /sltun1/);
  },
);

systemTest('--configure-host sets what it needs and SIGTERM takes back everything it added', async () => {
  const t = topology();
  const s = t.sluice(config, ['--dataplane', 'packet', '--tun', 'sltun2', '--configure-host']);
  await s.ready();
  assert.equal(t.exec('lb', 'sysctl', '-n', 'net.ipv4.ip_forward').trim(), '1');
  assert.match(t.exec('lb', 'ip', 'link', 'show', 'sltun2'), /UP/);
  assert.match(t.exec('lb', 'ip', 'route'), new RegExp(`${FRONTEND.replaceAll('.', '\\.')} dev sltun2`));
  const rules = t.exec('lb', 'ip', 'rule');
  for (const b of BACKENDS) assert.match(rules, new RegExp(`from ${b.replaceAll('.', '\\.')} lookup 20942`));
  assert.equal(await s.stop(), 0);
  assert.doesNotMatch(t.exec('lb', 'ip', 'rule'), /20942/);
  assert.doesNotMatch(t.exec('lb', 'ip', 'link'), /sltun2/);
  assert.doesNotMatch(t.exec('lb', 'ip', 'route'), /sltun2/);
  assert.equal(t.exec('lb', 'sysctl', '-n', 'net.ipv4.ip_forward').trim(), '0', 'ip_forward restored');
});

/** Sends `bytes` through the frontend and waits until all of them came back. */
async function echoThrough(client: Agent, id: string, bytes: number): Promise<void> {
  client.send({ cmd: 'connect', id, host: FRONTEND, port: PORT });
  await client.event(id, 'connected', 5000);
  let text = '';
  for (let i = 0; text.length < bytes; i++) text += `${i.toString(36)}:sluice;`;
  text = text.slice(0, bytes);
  client.send({ cmd: 'send', id, text });
  assert.equal(await client.received(id, bytes), bytes);
}

systemTest(
  'checksums: receivers that verify every checksum accept what Sluice rewrote (full and partial sums)',
  async (ctx) => {
    if (!ethtoolAvailable(ctx)) return;
    const t = topology();
    const backends = await t.tcpBackends(BACKEND_PORT);
    const client = t.agent('client');
    // A veth trusts partial checksums and marks the rest verified; turn both off so the
    // receiving stacks check every byte, and make lb's egress finish partial sums in software.
    for (const role of ['client', 'backend1', 'backend2'] as const)
      t.exec(role, 'ethtool', '-K', 'eth0', 'rx', 'off');
    for (const dev of ['lbc', 'lbb1', 'lbb2']) t.exec('lb', 'ethtool', '-K', dev, 'tx', 'off');
    const s = t.sluice(config, ['--dataplane', 'packet', '--tun', 'sltun3', '--configure-host']);
    await s.ready();
    const errors = (): number =>
      t.tcpCounter('client', 'InCsumErrors') +
      t.tcpCounter('backend1', 'InCsumErrors') +
      t.tcpCounter('backend2', 'InCsumErrors');
    const before = errors();
    // Endpoints with checksum offload send partial sums (and GSO super-packets) into the TUN...
    await echoThrough(client, 'partial', 1_000_000);
    // ...without it, complete checksums that Sluice updates incrementally.
    for (const role of ['client', 'backend1', 'backend2'] as const)
      t.exec(role, 'ethtool', '-K', 'eth0', 'tx', 'off');
    await echoThrough(client, 'full', 1_000_000);
    assert.equal(errors(), before, 'no TCP checksum errors at the endpoints');
    assert.ok(
      backends.some((b) => b.lines.some((l) => l.ev === 'accept' && l.peer === CLIENT)),
      'the backend saw the client address (DNAT)',
    );
    await s.stop();
  },
);

systemTest(
  'two SIGINTs 20 ms apart, the second during shutdown, still take back every route, rule and device',
  async () => {
    const t = topology();
    const s = t.sluice(config, ['--dataplane', 'packet', '--tun', 'sltun4', '--configure-host']);
    await s.ready();
    assert.match(t.exec('lb', 'ip', 'rule'), /20942/);
    // A request that never finishes keeps the API's graceful close waiting (up to its 10 s
    // request timeout), so the second signal surely lands while Sluice is stopping.
    const slow = t.spawn('lb', 'python3', [
      '-u',
      '-c',
      String.raw`
import socket, sys, time
s = socket.create_connection(('127.0.0.1', 9180))
s.sendall(b'PUT /subscriptions/s/resourceGroups/g/providers/Microsoft.Network/loadBalancers/x?api-version=2023-09-01 HTTP/1.1\r\nHost: 127.0.0.1:9180\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{')
print('sent', flush=True)
time.sleep(30)
`,
    ]);
    await new Promise<void>((resolve) => slow.stdout!.once('data', () => resolve()));
    const exited = new Promise<number | null>((resolve) => s.child.once('exit', (code) => resolve(code)));
    s.child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 20));
    s.child.kill('SIGINT');
    assert.equal(await exited, 0);
    slow.kill('SIGKILL');
    assert.ok(
      s.find((l) => l.msg === 'stopping'),
      'the first signal started a graceful stop',
    );
    assert.ok(
      s.find((l) => typeof l.msg === 'string' && l.msg.startsWith('second signal while stopping')),
      `the cut-short stop is logged: ${JSON.stringify(s.lines.slice(-4))}`,
    );
    assert.ok(s.find((l) => l.msg === 'stopped' && l.forced === true));
    assert.doesNotMatch(t.exec('lb', 'ip', 'rule'), /20942/);
    assert.doesNotMatch(t.exec('lb', 'ip', 'link'), /sltun4/);
    assert.doesNotMatch(t.exec('lb', 'ip', 'route'), /sltun4/);
    assert.equal(t.exec('lb', 'ip', 'route', 'show', 'table', '20942').trim(), '');
    assert.equal(t.exec('lb', 'sysctl', '-n', 'net.ipv4.ip_forward').trim(), '0', 'ip_forward restored');
  },
);

systemTest(
  'a frontend that is an address of the host is refused with exit 1, naming it and why',
  async () => {
    const t = topology();
    // 198.18.2.1 is lb's own address towards backend1; 127.0.0.9 is loopback; both through --map.
    for (const [args, address] of [
      [['--map', `${FRONTEND}=198.18.2.1`], '198.18.2.1'],
      [['--map', `${FRONTEND}=127.0.0.9`], '127.0.0.9'],
    ] as const) {
      const s = t.sluice(config, ['--dataplane', 'packet', '--tun', 'sltun5', '--configure-host', ...args]);
      const code = await new Promise<number | null>((resolve) => s.child.once('exit', resolve));
      assert.equal(code, 1, s.stderr.join('\n'));
      const line = s.stderr.find((l) => l.includes(address));
      assert.ok(line, s.stderr.join('\n'));
      assert.match(
        line,
        /frontend 'fe' .* is [\d.]+, an address of this host: the kernel would answer .*\[SLUICE_PLANE_UNSUPPORTED\]$/,
      );
      assert.doesNotMatch(t.exec('lb', 'ip', 'link'), /sltun5/, 'nothing was set up');
    }
  },
);
