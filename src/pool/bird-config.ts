/**
 * The BIRD 2 configuration of one instance, rendered from what it announces. Pure: the speaker
 * writes the text and tells BIRD to read it again, which BIRD does without resetting its
 * sessions (a static protocol's routes are added and withdrawn in place).
 *
 * - Each frontend is a static route via the TUN device, so BIRD withdraws it by itself when the
 *   device goes down or vanishes (the Sluice process died, or its data plane closed it), even
 *   before Sluice or the BGP session notices.
 * - Only those routes are exported, each tagged with the large community (AS, 1, ROUTER-ID):
 *   the instance's mark, by which every instance tells the others' paths apart in what the
 *   router sends back (add-path, received into BIRD's table and installed nowhere).
 * - Graceful restart is off: a router must drop a dead instance's routes at once, not keep
 *   them as stale for minutes.
 */
import { parseIpv4 } from '../core/flow-key.js';
import type { BgpPeer } from './bgp-settings.js';

/** The second field of the large community that marks an instance's announcements. */
export const INSTANCE_TAG = 1;

export const STATIC_PROTOCOL = 'sluice_frontends';

export interface BirdConfigInput {
  readonly routerId: string;
  readonly localAs: number;
  readonly peerAs: number;
  readonly peers: readonly (BgpPeer & { readonly source: string })[];
  readonly holdSeconds: number;
  readonly bfdMs: number;
  /** The TUN device the frontends are routed into. */
  readonly tun: string;
  /** Frontend addresses announced now. */
  readonly announce: readonly string[];
  /** Frontend addresses whose paths (any instance's) are received, for the pool's view. */
  readonly watch: readonly string[];
}

/** The name BIRD knows the session with peer `i` by. */
export function peerProtocol(i: number): string {
  return `router${i + 1}`;
}

/** An IPv4 address as the unsigned 32-bit number a large community's field holds. */
export function addressNumber(address: string): number {
  const n = parseIpv4(address);
  if (n < 0) throw new TypeError(`not an IPv4 address: ${address}`);
  return n >>> 0;
}

export function numberAddress(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

function quoted(text: string): string {
  if (!/^[A-Za-z0-9_.:-]+$/.test(text)) throw new TypeError(`unsafe name for BIRD: ${text}`);
  return `"${text}"`;
}

export function renderBirdConfig(c: BirdConfigInput): string {
  const sorted = (list: readonly string[]): string[] => [...new Set(list)].sort();
  const routes = sorted(c.announce)
    .map((a) => `  route ${a}/32 via ${quoted(c.tun)};`)
    .join('\n');
  const watch = sorted(c.watch);
  const tag = `(${c.localAs}, ${INSTANCE_TAG}, ${addressNumber(c.routerId)})`;
  const keepalive = Math.max(1, Math.floor(c.holdSeconds / 3));
  const lines = [
    '# Written by Sluice; rewritten whenever what it announces changes.',
    `router id ${c.routerId};`,
    'log stderr { info, remote, warning, error, auth, fatal, bug };',
    // Two fields (date and time) in `show protocols`, which the speaker reads.
    'timeformat protocol iso long;',
    '',
    'protocol device {',
    '  scan time 10;',
    '}',
    '',
    `protocol static ${STATIC_PROTOCOL} {`,
    '  ipv4;',
    ...(routes === '' ? [] : [routes]),
    '}',
    '',
  ];
  if (c.bfdMs > 0)
    lines.push(
      'protocol bfd {',
      '  interface "*" {',
      `    min rx interval ${c.bfdMs} ms;`,
      `    min tx interval ${c.bfdMs} ms;`,
      '    idle tx interval 1000 ms;',
      '    multiplier 3;',
      '  };',
      '}',
      '',
    );
  c.peers.forEach((p, i) => {
    lines.push(
      `protocol bgp ${peerProtocol(i)} {`,
      `  local ${p.source} as ${c.localAs};`,
      `  neighbor ${p.address} port ${p.port} as ${c.peerAs};`,
      `  hold time ${c.holdSeconds};`,
      `  keepalive time ${keepalive};`,
      '  connect delay time 1;',
      '  connect retry time 2;',
      '  error wait time 1, 10;',
      '  graceful restart off;',
      '  long lived graceful restart off;',
      // The router sends every instance's path back, this one's own included (same AS).
      '  allow local as;',
      ...(c.bfdMs > 0 ? ['  bfd on;'] : []),
      '  ipv4 {',
      '    add paths rx;',
      watch.length === 0
        ? '    import none;'
        : `    import where net ~ [ ${watch.map((a) => `${a}/32`).join(', ')} ];`,
      '    export filter {',
      `      if proto != ${quoted(STATIC_PROTOCOL)} then reject;`,
      `      bgp_large_community.add(${tag});`,
      '      accept;',
      '    };',
      '    next hop self;',
      '  };',
      '}',
      '',
    );
  });
  return lines.join('\n');
}
