import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestRule } from '../helpers/arm.js';
import type { Agent, SluiceProcess } from '../helpers/netns.js';
import {
  BACKENDS,
  FRONTEND,
  Topology,
  systemTest,
  systemUnavailable,
  writeLbConfig,
} from '../helpers/netns.js';

/**
 * Live reconfiguration through the API with the packet data plane: a PUT adds a rule without
 * disturbing a flow of another, and a PUT removing a reset-enabled rule resets its flow at once.
 */

const SCALE = 120;
const BACKEND_PORT = 8080;
const LB_PATH =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/test/providers/Microsoft.Network/loadBalancers/test-lb';
// Idle timeouts of 30 minutes (15 s here): nothing in this test ends by idle timeout.
const OLD: TestRule = {
  name: 'old',
  frontendPort: 80,
  backendPort: BACKEND_PORT,
  enableTcpReset: true,
  idleTimeoutInMinutes: 30,
};
const NEW: TestRule = {
  name: 'new',
  frontendPort: 90,
  backendPort: BACKEND_PORT,
  enableTcpReset: true,
  idleTimeoutInMinutes: 30,
};

let topo: Topology;
let sluice: SluiceProcess;
let client: Agent;
let dir = '';

/**
 * PUTs the load balancer through the API, which listens on the lb namespace's loopback;
 * returns the HTTP status and the response body.
 */
function put(rules: TestRule[], backends: readonly string[] = BACKENDS): { status: number; body: string } {
  const file = writeLbConfig(dir, rules, backends, `put-${rules.map((r) => r.name).join('-')}.json`);
  const out = topo.exec(
    'lb',
    'curl',
    '-s',
    '-w',
    '\n%{http_code}',
    '-X',
    'PUT',
    '-H',
    'content-type: application/json',
    '--data-binary',
    `@${file}`,
    `http://127.0.0.1:9180${LB_PATH}?api-version=2023-09-01`,
  );
  const cut = out.lastIndexOf('\n');
  return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut) };
}

before(async () => {
  if (systemUnavailable() !== undefined) return;
  topo = Topology.create();
  dir = mkdtempSync(join(tmpdir(), 'sluice-live-'));
  const config = writeLbConfig(dir, [OLD]);
  await topo.tcpBackends(BACKEND_PORT);
  client = topo.agent('client');
  sluice = topo.sluice(config, [
    '--dataplane',
    'packet',
    '--time-scale',
    String(SCALE),
    '--tun',
    'sltun2',
    '--configure-host',
    // The other system tests run with the default busy polling; this one without.
    '--busy-poll',
    '0',
    '--state-dir',
    join(dir, 'state'),
  ]);
  await sluice.ready();
});

after(async () => {
  await topo?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function connect(id: string, port: number): Promise<void> {
  client.send({ cmd: 'connect', id, host: FRONTEND, port });
  await client.event(id, 'connected', 5000);
  await echo(id, `hello ${id}`);
}

async function echo(id: string, text: string): Promise<void> {
  client.send({ cmd: 'send', id, text });
  await client.waitFor(`echo of ${text}`, (l) => l.id === id && l.ev === 'data' && l.text === text, 5000);
}

systemTest(
  'packet plane, live: adding a rule leaves a flow alone; removing its reset rule resets it at once',
  async () => {
    await connect('before', OLD.frontendPort);

    assert.equal(put([OLD, NEW]).status, 200, sluice.stderr.join('\n'));
    await connect('added', NEW.frontendPort);
    await echo('before', 'still here after the first PUT');
    assert.equal(client.events('before').filter((e) => e.ev === 'error').length, 0);

    const removedAt = Date.now();
    assert.equal(put([NEW]).status, 200);
    const err = await client.event('before', 'error', 3000);
    assert.equal(err.code, 'ECONNRESET', 'the flow of the removed rule was reset');
    assert.ok(Date.now() - removedAt < 3000, 'at once, long before its 15 s idle timeout');
    await echo('added', 'the kept rule still relays');
    assert.equal(client.events('added').filter((e) => e.ev === 'error').length, 0);
  },
);

/**
 * What the lb namespace's kernel routes IPv4 by: policy rules, every table's routes, and the
 * links (IPv6 routes are left out: the kernel adds link-local ones as interfaces settle).
 */
function hostRouting(): string {
  return ['-4 rule', '-4 route show table all', '-br link']
    .map((what) => topo.exec('lb', 'ip', ...what.split(' ')))
    .join('\n---\n');
}

systemTest(
  'packet plane, live: a floating-IP backend the kernel cannot route to fails the PUT and leaves the host and the flows as they were',
  async () => {
    // A rule and a flow to keep (whatever the tests before left, NEW serves now).
    assert.equal(put([NEW]).status, 200);
    await connect('kept', NEW.frontendPort);
    const before = hostRouting();
    // 198.18.9.2 is on none of lb's links: `ip route ... via` it is refused by the kernel.
    const { status, body } = put(
      [NEW, { name: 'floating', frontendPort: 100, backendPort: BACKEND_PORT, enableFloatingIP: true }],
      [...BACKENDS, '198.18.9.2'],
    );
    assert.equal(status, 409, `the PUT failed with 409: ${body}`);
    assert.match(body, /SLUICE_API_APPLY_FAILED/);
    assert.match(body, /"code":"SLUICE_HOST_NETWORK"/, "the details carry the host's own code");
    assert.match(body, /198\.18\.9\.2/, 'the error names the backend');
    assert.equal(hostRouting(), before, 'rules, routes and devices are as before the PUT');
    await echo('kept', 'the kept flow still relays');
    assert.equal(client.events('kept').filter((e) => e.ev === 'error').length, 0);
    assert.equal(sluice.child.exitCode, null, 'Sluice is still running');
  },
);
