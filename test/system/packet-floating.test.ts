import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BACKENDS,
  CLIENT,
  FRONTEND,
  Topology,
  systemTest,
  systemUnavailable,
  writeLbConfig,
} from '../helpers/netns.js';

/**
 * Floating IP in the packet data plane against kernel TCP stacks: the backend owns the frontend
 * IP (on its loopback, as Azure requires) and gets the flow still addressed to it; its replies
 * come from the frontend IP through Sluice. 4 minutes at --time-scale 120 is 2 s.
 */

const SCALE = 120;
const IDLE_S = (4 * 60) / SCALE;
let dir = '';
const topologies: Topology[] = [];

before(() => {
  if (systemUnavailable() !== undefined) return;
  dir = mkdtempSync(join(tmpdir(), 'sluice-floating-'));
});

after(async () => {
  for (const t of topologies) await t.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

systemTest(
  'floating IP: the backend accepts on the frontend IP (getsockname), replies reach the client from the frontend, idle reset fails both ends',
  async () => {
    const t = Topology.create();
    topologies.push(t);
    t.exec('backend1', 'ip', 'addr', 'add', `${FRONTEND}/32`, 'dev', 'lo');
    const backend = t.agent('backend1');
    backend.send({ cmd: 'serve', port: 8080 });
    await backend.waitFor('listening', (l) => l.ev === 'listening', 5000);
    const config = writeLbConfig(
      dir,
      [
        {
          name: 'floating',
          frontendPort: 80,
          backendPort: 8080,
          enableTcpReset: true,
          enableFloatingIP: true,
        },
      ],
      [BACKENDS[0]],
      'floating.json',
    );
    const s = t.sluice(config, [
      '--dataplane',
      'packet',
      '--tun',
      'sltun10',
      '--configure-host',
      '--time-scale',
      String(SCALE),
    ]);
    await s.ready();
    const client = t.agent('client');
    client.send({ cmd: 'connect', id: 'f0', host: FRONTEND, port: 80 });
    const connected = await client.event('f0', 'connected', 5000);
    const accept = await backend.waitFor('accept', (l) => l.ev === 'accept', 5000);
    assert.equal(accept.local, FRONTEND, 'the backend socket is bound to the frontend IP: no DNAT');
    assert.equal(accept.localPort, 8080, 'the port is mapped to the backend port');
    assert.equal(accept.peer, CLIENT);
    assert.equal(accept.peerPort, connected.localPort);
    client.send({ cmd: 'send', id: 'f0', text: 'ping' });
    const echo = await client.waitFor('echo', (l) => l.id === 'f0' && l.ev === 'data', 5000);
    assert.equal(echo.text, 'ping', "the backend's reply from the frontend IP came back through Sluice");
    const clientErr = await client.event('f0', 'error', IDLE_S * 3000);
    const backendErr = await backend.event(accept.id as string, 'error', 2000);
    assert.equal(clientErr.code, 'ECONNRESET');
    assert.equal(backendErr.code, 'ECONNRESET');
    const idle = (clientErr.t as number) - (echo.t as number);
    assert.ok(idle > IDLE_S - 0.2 && idle < IDLE_S + 1.5, `reset after ${idle} s idle`);
    assert.equal(await s.stop(), 0);
    const links = t.exec('lb', 'ip', '-o', 'link', 'show');
    assert.doesNotMatch(links, /sltun10/, 'the TUN devices are gone after exit');
    const rules = t.exec('lb', 'ip', 'rule', 'show');
    assert.doesNotMatch(rules, /sltun10|20942|20943/, 'the policy rules are gone after exit');
  },
);
