/**
 * `--state etcd://HOST:PORT[,HOST:PORT...]/PREFIX`: where a pool of instances keeps its one
 * desired state. Parsed apart from the client so that a bad flag is a usage error before
 * anything connects.
 */
import { isIP } from 'node:net';

export interface StateEndpoint {
  readonly host: string;
  readonly port: number;
}

export interface EtcdLocation {
  /** The members of the etcd cluster to ask, in the order given. */
  readonly endpoints: readonly StateEndpoint[];
  /** The key prefix, without leading or trailing `/`. */
  readonly prefix: string;
  /** The one key that holds the state: `PREFIX/state`. */
  readonly key: string;
  /** The location as messages name it: `etcd://HOST:PORT/PREFIX`. */
  readonly url: string;
}

export const STATE_URL_FORM = 'etcd://HOST:PORT/PREFIX (several HOST:PORT separated by commas)';
export const STATE_KEY = 'state';
const MAX_PREFIX = 200;
const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

function endpointOf(text: string): StateEndpoint | string {
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  if (m === null) return `'${text}' is not HOST:PORT`;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return `port ${m[3]} is not 1-65535`;
  if (m[1] !== undefined) {
    if (isIP(host) !== 6) return `'[${host}]' is not an IPv6 address`;
  } else if (isIP(host) === 0 && !(HOST_NAME.test(host) && !/^[\d.]+$/.test(host))) {
    return `'${host}' is neither an IPv4 address nor a host name`;
  }
  return { host, port };
}

/** Parses `--state`; a string is the usage error to print. */
export function parseStateUrl(text: string): EtcdLocation | string {
  const fail = (why: string): string => `--state expects ${STATE_URL_FORM}, got '${text}': ${why}`;
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/]*)(\/.*)?$/i.exec(text);
  if (m === null) return fail('not a URL');
  if (m[1]!.toLowerCase() !== 'etcd')
    return fail(`the scheme '${m[1]!}' is not etcd (the default state store, a directory, is --state-dir)`);
  const authority = m[2]!;
  const path = m[3] ?? '';
  if (/[?#]/.test(text)) return fail('a query or fragment is not taken');
  if (authority.includes('@')) return fail('credentials in the URL are not taken');
  if (authority === '') return fail('no HOST:PORT');
  const endpoints: StateEndpoint[] = [];
  for (const part of authority.split(',')) {
    const e = endpointOf(part);
    if (typeof e === 'string') return fail(e);
    endpoints.push(e);
  }
  const prefix = path.replace(/^\//, '').replace(/\/$/, '');
  if (prefix === '') return fail('no PREFIX: give the key prefix the pool shares, e.g. /sluice/prod');
  if (prefix.length > MAX_PREFIX) return fail(`PREFIX is longer than ${MAX_PREFIX} characters`);
  for (const segment of prefix.split('/')) {
    if (!SEGMENT.test(segment) || segment === '.' || segment === '..')
      return fail(
        `PREFIX segment '${segment}' is not letters, digits, '.', '_' or '-' (and not '.' or '..')`,
      );
  }
  const hosts = endpoints.map((e) =>
    e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`,
  );
  return {
    endpoints,
    prefix,
    key: `${prefix}/${STATE_KEY}`,
    url: `etcd://${hosts.join(',')}/${prefix}`,
  };
}
