import { after } from 'node:test';
import assert from 'node:assert/strict';
import { repoRoot } from '../helpers/cli.js';
import { CLIENT, FRONTEND, Topology, systemTest } from '../helpers/netns.js';

/**
 * A floating-IP backend's TUN device is only written to: opened write-only it holds no read
 * buffer (4 MiB each otherwise), cannot be started, and still takes packets.
 */

const topologies: Topology[] = [];

after(async () => {
  for (const t of topologies) await t.destroy();
});

// Runs in the lb namespace: the devices appear there and vanish with the process.
const SCRIPT = `
import { execFileSync } from 'node:child_process';
import { Tun } from '${repoRoot}dist/src/dataplane/packet/tun.js';
import { tcpPacket } from '${repoRoot}dist/test/unit/packet/packets.js';
const wo = Tun.open('slwo0', { writeOnly: true });
const rd = Tun.open('slrd0');
let startError = '';
try {
  wo.start(() => {});
} catch (err) {
  startError = err.message;
}
execFileSync('ip', ['link', 'set', 'dev', 'slwo0', 'up']);
const pkt = tcpPacket({ src: '${CLIENT}', dst: '${FRONTEND}', sport: 40000, dport: 80, seq: 1, flags: 2 });
const written = wo.write(pkt, 0, pkt.length);
console.log(JSON.stringify({
  name: wo.name, buffer: wo.buffer.length, lengths: wo.lengths.length, readBuffer: rd.buffer.length,
  startError, written, length: pkt.length,
}));
wo.close();
rd.close();
`;

systemTest(
  'a write-only TUN device has no read buffer, refuses to start and still writes packets',
  async () => {
    const t = Topology.create();
    topologies.push(t);
    const out = JSON.parse(t.exec('lb', process.execPath, '--input-type=module', '-e', SCRIPT)) as Record<
      string,
      unknown
    >;
    assert.equal(out.name, 'slwo0');
    assert.equal(out.buffer, 0, 'no read buffer');
    assert.equal(out.lengths, 0);
    assert.ok((out.readBuffer as number) >= 4 * 1024 * 1024, 'a device that reads still has its buffer');
    assert.match(out.startError as string, /slwo0 was opened write-only/);
    assert.equal(out.written, out.length, 'the packet was written whole');
    assert.doesNotMatch(
      t.exec('lb', 'ip', '-o', 'link', 'show'),
      /slwo0|slrd0/,
      'the devices vanish when closed',
    );
  },
);
