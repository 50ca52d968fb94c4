/**
 * Which `Host` the API answers for. A web page can make a browser send requests to the API
 * through a name of the page's own whose DNS answer it switches to 127.0.0.1 (DNS rebinding);
 * the browser still names that name in `Host`. So the API serves only requests that name it by
 * an address it listens on, `localhost`, or a name its operator gave (`--api-allow-host`). The
 * port is not compared: a tunnel or a port forward changes it, and it tells nothing of the name.
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/** A host as a request names it: an IP address (canonical text) or a DNS name (lowercase). */
export type HostName =
  { readonly kind: 'address'; readonly address: string } | { readonly kind: 'name'; readonly name: string };

/** `name`, `name:port`, `a.b.c.d:port`, `[v6]:port`: reg-name characters only, no user info. */
const HOST_FIELD = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+))(?::(\d{1,5}))?$/;

/**
 * The canonical text of an IP address, or undefined when `text` is none: IPv6 compressed and
 * lowercase, an IPv4-mapped IPv6 address as its IPv4 address (a dual-stack socket reports
 * IPv4 clients so), a zone (`%eth0`) dropped.
 */
export function canonicalAddress(text: string): string | undefined {
  const bare = text.replace(/%.*$/, '');
  const family = isIP(bare);
  if (family === 0) return undefined;
  const hostname = new URL(family === 6 ? `http://[${bare}]/` : `http://${bare}/`).hostname;
  if (family === 4) return hostname;
  const v6 = hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
  if (mapped === null) return v6;
  const hi = parseInt(mapped[1]!, 16);
  const lo = parseInt(mapped[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** Parses a `Host` header value; undefined when it is not a host with an optional port. */
export function parseHostField(value: string): HostName | undefined {
  const m = HOST_FIELD.exec(value);
  if (m === null) return undefined;
  if (m[3] !== undefined && Number(m[3]) > 65535) return undefined;
  if (m[1] !== undefined) {
    if (isIP(m[1]) !== 6) return undefined;
    const address = canonicalAddress(m[1]);
    return address === undefined ? undefined : { kind: 'address', address };
  }
  let hostname: string;
  try {
    // As a browser reads it: `127.1` and `0x7f.0.0.1` are 127.0.0.1; anything else is a name.
    hostname = new URL(`http://${m[2]!}/`).hostname;
  } catch {
    return undefined;
  }
  return isIP(hostname) === 4 ? { kind: 'address', address: hostname } : { kind: 'name', name: hostname };
}

/** Parses an `--api-allow-host` value: a name or an address (IPv6 with or without brackets), no port. */
export function parseAllowedHost(text: string): HostName | string {
  const field = isIP(text) === 6 ? `[${text}]` : text;
  const host = /:\d+$/.test(text) && isIP(text) !== 6 ? undefined : parseHostField(field);
  return host ?? `--api-allow-host expects a host name or an IP address without a port, got '${text}'`;
}

export function hostText(h: HostName): string {
  return h.kind === 'name' ? h.name : h.address.includes(':') ? `[${h.address}]` : h.address;
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

/** Every address of this host's interfaces, canonical. */
export function interfaceAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) =>
    (list ?? []).map((i) => canonicalAddress(i.address) ?? i.address),
  );
}

export interface HostRule {
  /** Names and addresses the operator gave. */
  readonly allowed: readonly HostName[];
  /** This host's interface addresses, asked only when the API listens on a wildcard address. */
  readonly interfaces?: () => Iterable<string>;
}

/** Where the request came in: the address the server listens on, and the socket's own address. */
export interface Arrival {
  readonly listen: string | undefined;
  readonly local: string | undefined;
}

/** Whether a request naming `host` is one the API answers. */
export function hostAllowed(host: HostName, rule: HostRule, arrival: Arrival): boolean {
  if (host.kind === 'name')
    return host.name === 'localhost' || rule.allowed.some((a) => a.kind === 'name' && a.name === host.name);
  if (rule.allowed.some((a) => a.kind === 'address' && a.address === host.address)) return true;
  const listen = arrival.listen === undefined ? undefined : canonicalAddress(arrival.listen);
  if (listen === host.address) return true;
  if (listen === undefined || !WILDCARDS.has(listen)) return false;
  // A wildcard listener is reached at any address of the host; a rebound name is still a name.
  if (arrival.local !== undefined && canonicalAddress(arrival.local) === host.address) return true;
  for (const a of (rule.interfaces ?? interfaceAddresses)()) if (a === host.address) return true;
  return false;
}
