/**
 * A flow's 5-tuple as ten 32-bit words, the same layout for IPv4 and IPv6, so the flow
 * table can store keys in one typed array and compare and hash them without building
 * strings or bigints on the packet path (docs/benchmarks.md has the comparison).
 *
 *   words 0-3  source address (IPv4: word 0, words 1-3 zero)
 *   words 4-7  destination address
 *   word 8     source port << 16 | destination port
 *   word 9     address family << 8 | IP protocol number
 */
export const KEY_WORDS = 10;

export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export type IpProtocolNumber = typeof PROTO_TCP | typeof PROTO_UDP;

export const FAMILY_V4 = 4;
export const FAMILY_V6 = 6;
export type Family = typeof FAMILY_V4 | typeof FAMILY_V6;

/** Parses dotted-quad text; -1 when it is not an IPv4 address. */
export function parseIpv4(text: string): number {
  let value = 0;
  let part = -1;
  let parts = 0;
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (part < 0 || parts === 3) return -1;
      value = value * 256 + part;
      parts++;
      part = -1;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      // Leading zeros are ambiguous (octal in some parsers): refuse them.
      if (digits > 0 && part === 0) return -1;
      part = (part < 0 ? 0 : part * 10) + (c - 48);
      digits++;
      if (part > 255) return -1;
    } else return -1;
  }
  if (part < 0 || parts !== 3) return -1;
  return value * 256 + part;
}

/**
 * Parses an IP address into four words at `out[off]`. IPv4-mapped IPv6 text
 * (`::ffff:10.0.0.1`, what dual-stack sockets report) is taken as the IPv4 address, so a
 * flow has one key whichever way the socket layer spelled it. Returns the family, or 0.
 */
export function parseIp(text: string, out: Uint32Array, off: number): Family | 0 {
  const v4 = parseIpv4(text);
  if (v4 >= 0) {
    out[off] = v4;
    out[off + 1] = 0;
    out[off + 2] = 0;
    out[off + 3] = 0;
    return FAMILY_V4;
  }
  const zone = text.indexOf('%');
  const t = (zone >= 0 ? text.slice(0, zone) : text).toLowerCase();
  const groups = parseIpv6Groups(t);
  if (groups === null) return 0;
  if (groups[5] === 0xffff && groups.slice(0, 5).every((g) => g === 0)) {
    out[off] = ((groups[6]! << 16) | groups[7]!) >>> 0;
    out[off + 1] = 0;
    out[off + 2] = 0;
    out[off + 3] = 0;
    return FAMILY_V4;
  }
  for (let i = 0; i < 4; i++) out[off + i] = ((groups[2 * i]! << 16) | groups[2 * i + 1]!) >>> 0;
  return FAMILY_V6;
}

function parseIpv6Groups(t: string): number[] | null {
  if (t.length < 2 || !/^[0-9a-f:.]+$/.test(t)) return null;
  const halves = t.split('::');
  if (halves.length > 2) return null;
  const parse = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIpv4(p);
        if (v4 < 0) return null;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-f]{1,4}$/.test(p)) return null;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (head === null || tail === null) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const fill = 8 - head.length - tail.length;
  if (fill < 1) return null;
  return [...head, ...new Array<number>(fill).fill(0), ...tail];
}

/** Text of an address stored as four words. IPv6 in RFC 5952 form. */
export function formatIp(words: Uint32Array, off: number, family: number): string {
  if (family === FAMILY_V4) {
    const v = words[off]!;
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const g: number[] = [];
  for (let i = 0; i < 4; i++) g.push(words[off + i]! >>> 16, words[off + i]! & 0xffff);
  // Longest run of two or more zero groups becomes "::".
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}

/** Canonical text of an address, or undefined when it does not parse. */
export function normalizeIp(text: string): string | undefined {
  const w = new Uint32Array(4);
  const family = parseIp(text, w, 0);
  return family === 0 ? undefined : formatIp(w, 0, family);
}

/**
 * A mutable 5-tuple. Data planes keep one per thread and refill it for every packet, so
 * the hot path allocates nothing.
 */
export class FlowKey {
  readonly words = new Uint32Array(KEY_WORDS);

  /** IPv4 from numbers, as the packet plane reads them from headers. */
  setV4(protocol: number, src: number, srcPort: number, dst: number, dstPort: number): this {
    const w = this.words;
    w[0] = src;
    w[1] = 0;
    w[2] = 0;
    w[3] = 0;
    w[4] = dst;
    w[5] = 0;
    w[6] = 0;
    w[7] = 0;
    w[8] = ((srcPort << 16) | dstPort) >>> 0;
    w[9] = (FAMILY_V4 << 8) | protocol;
    return this;
  }

  /** From address text, as sockets report it. Throws on text that is not an address. */
  set(protocol: number, srcIp: string, srcPort: number, dstIp: string, dstPort: number): this {
    const w = this.words;
    const f1 = parseIp(srcIp, w, 0);
    const f2 = parseIp(dstIp, w, 4);
    if (f1 === 0 || f2 === 0) throw new TypeError(`not an IP address: ${f1 === 0 ? srcIp : dstIp}`);
    if (f1 !== f2) throw new TypeError(`address families differ: ${srcIp} and ${dstIp}`);
    w[8] = ((srcPort << 16) | dstPort) >>> 0;
    w[9] = (f1 << 8) | protocol;
    return this;
  }

  copyFrom(src: Uint32Array, off = 0): this {
    for (let i = 0; i < KEY_WORDS; i++) this.words[i] = src[off + i]!;
    return this;
  }

  get protocol(): number {
    return this.words[9]! & 0xff;
  }
  get family(): number {
    return this.words[9]! >>> 8;
  }
  get srcPort(): number {
    return this.words[8]! >>> 16;
  }
  get dstPort(): number {
    return this.words[8]! & 0xffff;
  }
  get srcIp(): string {
    return formatIp(this.words, 0, this.family);
  }
  get dstIp(): string {
    return formatIp(this.words, 4, this.family);
  }

  toString(): string {
    return keyToString(this.words, 0);
  }
}

export function keyToString(words: Uint32Array, off: number): string {
  const family = words[off + 9]! >>> 8;
  const proto = words[off + 9]! & 0xff;
  const name = proto === PROTO_TCP ? 'tcp' : proto === PROTO_UDP ? 'udp' : `ip${proto}`;
  const ep = (at: number, port: number): string => {
    const ip = formatIp(words, off + at, family);
    return family === FAMILY_V6 ? `[${ip}]:${port}` : `${ip}:${port}`;
  };
  return `${name} ${ep(0, words[off + 8]! >>> 16)} > ${ep(4, words[off + 8]! & 0xffff)}`;
}

export function keysEqual(a: Uint32Array, aOff: number, b: Uint32Array, bOff: number): boolean {
  for (let i = 0; i < KEY_WORDS; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function finish(h: number, len: number): number {
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 32-bit hash (MurmurHash3's mixing) of `count` words starting at `off`. */
export function hashWords(words: Uint32Array, off: number, count: number, seed: number): number {
  let h = seed | 0;
  for (let i = 0; i < count; i++) h = mix(h, words[off + i]!);
  return finish(h, count * 4);
}

/** Hash of a whole key, for the flow table's index. */
export function hashKey(words: Uint32Array, off: number, seed = 0x5eed): number {
  return hashWords(words, off, KEY_WORDS, seed);
}

/** Hash of a string, for member identities in Maglev. */
export function hashString(s: string, seed: number): number {
  let h = seed | 0;
  for (let i = 0; i < s.length; i++) h = mix(h, s.charCodeAt(i));
  return finish(h, s.length);
}
