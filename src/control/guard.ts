/**
 * The API's door: what every request passes before any route sees it, in this order. The host
 * it names (host.ts: DNS rebinding), then the bearer token (auth.ts), then the type of its body.
 * A request refused here changes nothing.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ApiError } from './arm.js';
import { checkBearer, tokenProblem } from './auth.js';
import {
  hostAllowed,
  hostText,
  parseAllowedHost,
  parseHostField,
  type HostName,
  type HostRule,
} from './host.js';

export interface GuardOptions {
  /** When set, every request needs `Authorization: Bearer <token>`. */
  readonly token?: string | undefined;
  /** Names and addresses `Host` may give besides the API's own address and `localhost`. */
  readonly allowedHosts?: readonly string[];
  /** This host's interface addresses (tests replace it); asked only on a wildcard listener. */
  readonly interfaceAddresses?: () => Iterable<string>;
}

export interface Guard {
  readonly token: string | undefined;
  readonly hosts: HostRule;
}

/** Checks the options; throws on a token or a host name no request could match. */
export function guardOf(options: GuardOptions): Guard {
  const problem = options.token === undefined ? undefined : tokenProblem(options.token);
  if (problem !== undefined) throw new Error(`the API token ${problem}`);
  const allowed: HostName[] = [];
  for (const text of options.allowedHosts ?? []) {
    const h = parseAllowedHost(text);
    if (typeof h === 'string') throw new Error(h);
    allowed.push(h);
  }
  return {
    token: options.token,
    hosts: { allowed, ...(options.interfaceAddresses ? { interfaces: options.interfaceAddresses } : {}) },
  };
}

function listenAddress(app: FastifyInstance): string | undefined {
  const a = app.server.address();
  return typeof a === 'object' && a !== null ? a.address : undefined;
}

/** A request whose target URI is in absolute form names its authority there as well. */
function absoluteAuthority(url: string | undefined): string | undefined {
  if (url === undefined || !/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return undefined;
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
}

/**
 * Refuses a request that does not name this API as its host. HTTP requires one well-formed
 * Host on HTTP/1.1 (RFC 9112 §3.2: 400 otherwise); an HTTP/1.0 request may lack one, and no
 * browser sends such a request, so it is served.
 */
function checkHost(req: FastifyRequest, rule: HostRule, listen: string | undefined): void {
  const raw = req.raw;
  let hostLines = 0;
  for (let i = 0; i < raw.rawHeaders.length; i += 2)
    if (raw.rawHeaders[i]!.toLowerCase() === 'host') hostLines++;
  if (hostLines > 1)
    throw new ApiError('SLUICE_API_BAD_REQUEST', 'The request has more than one Host header.');
  const fields: string[] = [];
  const host = raw.headers.host;
  if (host !== undefined) fields.push(host);
  else if (raw.httpVersionMajor > 1 || (raw.httpVersionMajor === 1 && raw.httpVersionMinor >= 1))
    throw new ApiError('SLUICE_API_BAD_REQUEST', 'An HTTP/1.1 request needs a Host header.');
  const authority = absoluteAuthority(raw.url);
  if (authority !== undefined) fields.push(authority);
  const arrival = { listen, local: raw.socket.localAddress };
  for (const field of fields) {
    const parsed = parseHostField(field);
    if (parsed === undefined)
      throw new ApiError(
        'SLUICE_API_BAD_REQUEST',
        `The request's host '${field.slice(0, 200)}' is not a host name or address with an optional port.`,
      );
    if (!hostAllowed(parsed, rule, arrival))
      throw new ApiError(
        'SLUICE_API_HOST_NOT_ALLOWED',
        `This API does not answer for the host '${hostText(parsed)}': it answers for the address it listens on, ` +
          'localhost, and the names given with --api-allow-host.',
      );
  }
}

function authorizationOf(req: FastifyRequest): string | undefined {
  const v = req.headers.authorization;
  return Array.isArray(v) ? v.join(',') : v;
}

/**
 * A credential other than the bearer token, for requests a browser makes by itself (a page, its
 * event stream) and so cannot give a header: the live page's session cookie (ui.ts).
 */
export interface OtherCredential {
  /** Whether the request, which has no bearer credential, carries one valid for it. */
  admits(req: FastifyRequest): boolean;
  /** Answers a request that has no valid credential itself (true), or leaves it the usual 401. */
  refuse(req: FastifyRequest, reply: FastifyReply): boolean;
}

/** Installs the checks as the app's first hooks; call before any other hook or route. */
export function installGuard(
  app: FastifyInstance,
  guard: Guard,
  logger: Logger | undefined,
  other?: OtherCredential,
): void {
  // First of all: a request for another host gets no further, not even to the token.
  app.addHook('onRequest', async (req) => {
    try {
      checkHost(req, guard.hosts, listenAddress(app));
    } catch (err) {
      if (err instanceof ApiError && err.code === 'SLUICE_API_HOST_NOT_ALLOWED')
        logger?.warn(
          { code: err.code, host: req.headers.host, remote: req.socket.remoteAddress },
          'API request refused: Host is not this API',
        );
      throw err;
    }
  });

  const token = guard.token;
  if (token !== undefined)
    app.addHook('onRequest', async (req, reply) => {
      const check = checkBearer(authorizationOf(req), token);
      if (check === 'ok') return;
      // A wrong token is refused whatever else the request carries.
      if (check === 'missing' && other?.admits(req) === true) return;
      void reply.header('www-authenticate', 'Bearer realm="sluice"');
      if (other?.refuse(req, reply) === true) return reply;
      throw new ApiError(
        'SLUICE_API_UNAUTHORIZED',
        check === 'missing' ? 'Authorization: Bearer <token> is required.' : 'The bearer token is not valid.',
      );
    });

  // Bodies are JSON only (415 otherwise): fastify would hand a text/plain body on as a string.
  app.removeContentTypeParser('text/plain');
}
