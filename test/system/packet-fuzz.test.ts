import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Agent, SluiceProcess } from '../helpers/netns.js';
import {
  CLIENT,
  FRONTEND,
  Topology,
  systemTest,
  systemUnavailable,
  writeLbConfig,
} from '../helpers/netns.js';
import { waitUntil } from '../helpers/net.js';

/**
 * Malformed traffic through the real TUN device: a raw socket in the client namespace sends
 * 1,000,000 random and malformed IPv4 packets to the frontend address, the lb namespace's
 * kernel forwards what it accepts into Sluice's TUN device, and Sluice must crash on none,
 * count every packet it read as dropped by a reason, and go on serving.
 *
 * The kernel checks IP headers before forwarding (and fills in the length and checksum of
 * what a raw socket sends), so what reaches the TUN device is malformed above IP: truncated
 * and lying TCP and UDP headers, odd flag sets, other protocols, fragments, ports with no
 * rule. The IP-level cases (lying lengths, bad versions) are fuzzed through an in-memory TUN
 * in test/unit/packet/packet-plane.test.ts.
 */

const TUN = 'sltun5';
const PORT = 80;
const BACKEND_PORT = 8080;
const PACKETS = 1_000_000;

let topo: Topology;
let sluice: SluiceProcess;
let client: Agent;
let dir = '';

before(async () => {
  if (systemUnavailable() !== undefined) return;
  topo = Topology.create();
  dir = mkdtempSync(join(tmpdir(), 'sluice-fuzz-'));
  const config = writeLbConfig(dir, [
    { name: 'web', frontendPort: PORT, backendPort: BACKEND_PORT, enableTcpReset: true },
  ]);
  await topo.tcpBackends(BACKEND_PORT);
  client = topo.agent('client');
  sluice = topo.sluice(config, ['--dataplane', 'packet', '--tun', TUN, '--configure-host']);
  await sluice.ready();
});

after(async () => {
  await topo?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * Sends N packets from a pool of 4,096 random ones (seeded), each one of these kinds: TCP to
 * a port with no rule with random flags, TCP cut short inside its header, TCP whose data
 * offset points past the packet, UDP whose length field lies, another IP protocol, a fragment
 * of a TCP segment, and random bytes as TCP or UDP. Nothing goes to the rule's port, so no
 * packet may create a flow: every one that reaches Sluice is a drop.
 */
const SENDER = String.raw`
import random, socket, struct, sys
dst, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
src = socket.inet_aton(sys.argv[4])
dsta = socket.inet_aton(dst)
def ip(proto, payload, frag=0):
    # Version/IHL, TOS, total length (the kernel fills it), id, flags+offset, TTL, protocol,
    # checksum (filled by the kernel), source, destination.
    return struct.pack('!BBHHHBBH4s4s', 0x45, 0, 0, rnd.randrange(1, 65536), frag, 64, proto, 0, src, dsta) + payload
def port():
    p = rnd.randrange(1, 65536)
    return p if p != ${PORT} else 81
def tcp(flags, offset_words=5, extra=b''):
    return struct.pack('!HHIIBBHHH', rnd.randrange(1024, 65536), port(), rnd.getrandbits(32), rnd.getrandbits(32),
                       offset_words << 4, flags, 65535, rnd.getrandbits(16), 0) + extra
pool = []
for i in range(4096):
    k = rnd.randrange(7)
    if k == 0:
        p = ip(6, tcp(rnd.randrange(256), extra=bytes(rnd.randrange(40))))
    elif k == 1:
        p = ip(6, tcp(0x10)[:rnd.randrange(20)])
    elif k == 2:
        p = ip(6, tcp(0x18, offset_words=15, extra=bytes(rnd.randrange(20))))
    elif k == 3:
        body = bytes(rnd.randrange(30))
        p = ip(17, struct.pack('!HHHH', rnd.randrange(1024, 65536), port(), rnd.choice([0, 1, 7, 200, 65535]), 0) + body)
    elif k == 4:
        p = ip(rnd.choice([1, 2, 41, 47, 50, 51, 89, 132, 253]), bytes(rnd.randrange(8, 60)))
    elif k == 5:
        p = ip(6, tcp(0x02, extra=bytes(16)), frag=rnd.choice([0x2000, 0x2000 | 3, 5, 185]))
    else:
        p = ip(rnd.choice([6, 17]), bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(60))))
    pool.append(p)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
sent = 0
for i in range(n):
    try:
        s.sendto(pool[i & 4095], (dst, 0))
        sent += 1
    except OSError:
        pass
print(sent)
`;

/** Packets Sluice has read from its TUN device (the kernel counts them as transmitted). */
function tunReadPackets(): number {
  const info = JSON.parse(topo.exec('lb', 'ip', '-s', '-j', 'link', 'show', TUN)) as {
    stats64: { tx: { packets: number } };
  }[];
  return info[0]!.stats64.tx.packets;
}

/** sluice_packet_dropped_total by reason, from GET /metrics of the running Sluice. */
function drops(): Map<string, number> {
  const text = topo.exec('lb', 'curl', '-sf', 'http://127.0.0.1:9180/metrics');
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^sluice_packet_dropped_total\{reason="([^"]+)"\} (\d+)$/gm)) {
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);

systemTest(
  `fuzz: ${PACKETS.toLocaleString('en')} random and malformed packets through the TUN device crash nothing, each read one is dropped by a reason, and service goes on`,
  async () => {
    const readBefore = tunReadPackets();
    const dropsBefore = total(drops());
    // A million packets from Python take a few seconds alone, and several times that on a busy machine.
    const sent = Number(
      topo.execWithin(90_000, 'client', 'python3', '-c', SENDER, FRONTEND, String(PACKETS), '7', CLIENT),
    );
    assert.ok(sent >= PACKETS * 0.99, `the raw socket sent ${sent} of ${PACKETS}`);
    // Sluice reads what the kernel queued on the device; every packet read must be counted.
    let read = 0;
    let dropped = 0;
    await waitUntil(20_000, 'every packet read is counted as dropped', () => {
      read = tunReadPackets() - readBefore;
      dropped = total(drops()) - dropsBefore;
      return read > 0 && read === dropped;
    }).catch(() => {
      assert.fail(`Sluice read ${read} packets from ${TUN} and counted ${dropped} as dropped`);
    });
    assert.ok(
      read >= sent * 0.5,
      `${read} of ${sent} packets reached Sluice (the rest the kernel refused or queued out)`,
    );
    const reasons = drops();
    for (const reason of ['no-rule', 'bad-tcp-header', 'bad-udp-header', 'protocol', 'fragment']) {
      assert.ok((reasons.get(reason) ?? 0) > 0, `some dropped as ${reason}: ${JSON.stringify([...reasons])}`);
    }
    assert.equal(reasons.get('other') ?? 0, 0, 'no packet made the plane throw');
    assert.equal(sluice.child.exitCode, null, 'Sluice is still running');
    // And it still serves: a real connection through the rule echoes.
    client.send({ cmd: 'connect', id: 'after', host: FRONTEND, port: PORT });
    await client.event('after', 'connected', 5000);
    client.send({ cmd: 'send', id: 'after', text: 'still-here' });
    await client.waitFor('echo', (l) => l.id === 'after' && l.ev === 'data' && l.text === 'still-here', 5000);
  },
  120_000,
);
