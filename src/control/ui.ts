/**
 * The live page: `GET /` (and `/ui`) serve the static page of ui/ at the package root as it is,
 * `GET /sluice/v1/overview` what it shows beside the flows and the events, and `/ui/session` its
 * sign-in when the API has a token.
 *
 * A browser cannot give a bearer header when it loads a page or opens an EventSource, so a
 * token holder exchanges the token (as a bearer header, from the sign-in form) for a session
 * cookie: random, HttpOnly, SameSite=Strict, held only in memory, ended after an hour unused
 * and twelve hours at most. The cookie only lets in what the page itself asks for, all of it
 * reading (GET, and the DELETE that signs out); everything that changes the balancer still
 * needs the token. The token never appears in a URL.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { FlowInfo } from '../core/events.js';
import type { RuntimeSnapshot } from '../core/snapshot.js';
import { ApiError } from './arm.js';
import type { OtherCredential } from './guard.js';
import { overviewOf, staticLive, type LiveRuntime, type Overview } from './overview.js';

/** The page's routes, for the API's ROUTES table. */
export const UI_ROUTES = [
  ['GET', '/'],
  ['GET', '/ui'],
  ['GET', '/ui/app.js'],
  ['GET', '/ui/app.css'],
  ['GET', '/ui/session'],
  ['POST', '/ui/session'],
  ['DELETE', '/ui/session'],
  ['GET', '/sluice/v1/overview'],
] as const;

/** What the cookie lets in: the page, its files, and what it reads. */
const COOKIE_ROUTES = new Set([
  'GET /',
  'GET /ui',
  'GET /ui/app.js',
  'GET /ui/app.css',
  'GET /ui/session',
  'DELETE /ui/session',
  'GET /sluice/v1/overview',
  'GET /sluice/v1/flows',
  'GET /sluice/v1/events',
]);

export const SESSION_IDLE_MS = 60 * 60_000;
export const SESSION_MAX_MS = 12 * 60 * 60_000;
/** Sessions held at most; signing in once more ends the oldest. */
export const MAX_SESSIONS = 64;

interface Session {
  readonly createdAt: number;
  lastUsedAt: number;
  /** Event streams opened with it: they end with it. */
  readonly streams: Set<Socket>;
}

/** The sessions of the live page, in memory: a restart signs everybody out. */
export class PageSessions {
  private readonly sessions = new Map<string, Session>();

  /** `now`: real milliseconds (tests give their own). */
  constructor(private readonly now: () => number = Date.now) {}

  get size(): number {
    return this.sessions.size;
  }

  /** A new session's id (32 random bytes, base64url). */
  issue(): string {
    this.sweep();
    while (this.sessions.size >= MAX_SESSIONS) this.end(this.sessions.keys().next().value!);
    const id = randomBytes(32).toString('base64url');
    const at = this.now();
    this.sessions.set(id, { createdAt: at, lastUsedAt: at, streams: new Set() });
    return id;
  }

  /** The live session of `id`, marked used now; undefined when there is none or it has ended. */
  use(id: string | undefined): Session | undefined {
    if (id === undefined) return undefined;
    const s = this.sessions.get(id);
    if (s === undefined) return undefined;
    const at = this.now();
    if (this.expired(s, at)) {
      this.end(id);
      return undefined;
    }
    s.lastUsedAt = at;
    return s;
  }

  /** When the session of `id` ends at the latest if used no more (real ms), or undefined. */
  endsAt(id: string): number | undefined {
    const s = this.sessions.get(id);
    return s === undefined
      ? undefined
      : Math.min(s.lastUsedAt + SESSION_IDLE_MS, s.createdAt + SESSION_MAX_MS);
  }

  end(id: string): void {
    const s = this.sessions.get(id);
    if (s === undefined) return;
    this.sessions.delete(id);
    for (const socket of s.streams) socket.destroy();
  }

  /** Ends the sessions whose time is up, and their event streams. */
  sweep(): void {
    const at = this.now();
    for (const [id, s] of this.sessions) if (this.expired(s, at)) this.end(id);
  }

  endAll(): void {
    for (const id of [...this.sessions.keys()]) this.end(id);
  }

  private expired(s: Session, at: number): boolean {
    return at >= s.lastUsedAt + SESSION_IDLE_MS || at >= s.createdAt + SESSION_MAX_MS;
  }
}

/**
 * The cookie's name carries the API's port: a browser sends a host's cookies to all its ports,
 * and two Sluices on one host must not sign each other out.
 */
function cookieName(req: FastifyRequest): string {
  return `sluice_session_${req.socket.localPort ?? 0}`;
}

function cookieOf(req: FastifyRequest): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) return undefined;
  const name = cookieName(req);
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function routeKey(req: FastifyRequest): string {
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  return `${method} ${req.routeOptions.url ?? ''}`;
}

interface PageFiles {
  readonly index: Buffer;
  readonly js: Buffer;
  readonly css: Buffer;
  readonly signIn: Buffer;
  /** The sign-in page's own script and style, allowed by their digests. */
  readonly signInPolicy: string;
}

/** ui/ at the package root: beside dist/ in a checkout and in the installed package alike. */
const UI_DIR = new URL('../../../ui/', import.meta.url);

function digest(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

function inline(html: string, tag: 'script' | 'style'): string {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(html);
  return m === null ? "'none'" : digest(m[1]!);
}

const PAGE_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function readPageFiles(): PageFiles | string {
  try {
    const read = (name: string): Buffer => readFileSync(new URL(name, UI_DIR));
    const signIn = read('sign-in.html');
    const text = signIn.toString('utf8');
    return {
      index: read('index.html'),
      js: read('app.js'),
      css: read('app.css'),
      signIn,
      signInPolicy:
        `default-src 'none'; script-src ${inline(text, 'script')}; style-src ${inline(text, 'style')}; ` +
        "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    };
  } catch (err) {
    return `The live page is not installed: ${(err as Error).message}`;
  }
}

const PAGE_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/** What the page's routes read of the running load balancer. */
export interface PageRuntime {
  flows(): readonly FlowInfo[];
  labelsOf(ruleId: string): { readonly lb: string; readonly rule: string };
  readonly timeScale: number;
  readonly live?: LiveRuntime | undefined;
}

/** What `GET /ui/session` answers. */
export interface SessionView {
  /** The API asks for a token: the page needs a session. */
  readonly tokenRequired: boolean;
  /** This request came with a live session cookie. */
  readonly signedIn: boolean;
  /** With a session: when it ends if the page stops asking (wall clock, ISO 8601). */
  readonly endsAt?: string;
}

export class LivePage {
  private readonly files = readPageFiles();
  /** Only with a token: without one the page needs no session. */
  readonly sessions: PageSessions | undefined;

  constructor(options: { readonly tokenRequired: boolean; readonly sessions?: PageSessions }) {
    this.sessions = options.tokenRequired ? (options.sessions ?? new PageSessions()) : undefined;
  }

  /** The cookie as the guard's other credential. */
  readonly credential: OtherCredential = {
    admits: (req) => {
      if (this.sessions === undefined || !COOKIE_ROUTES.has(routeKey(req))) return false;
      const session = this.sessions.use(cookieOf(req));
      if (session === undefined) return false;
      if (req.routeOptions.url === '/sluice/v1/events') {
        const socket = req.raw.socket;
        session.streams.add(socket);
        socket.once('close', () => session.streams.delete(socket));
      }
      return true;
    },
    // A browser asking for the page without a session gets the sign-in form, and nothing else.
    refuse: (req, reply) => {
      const key = routeKey(req);
      if (key !== 'GET /' && key !== 'GET /ui') return false;
      if (!/\btext\/html\b/.test(String(req.headers.accept ?? ''))) return false;
      if (typeof this.files === 'string') return false;
      void reply
        .code(401)
        .headers({ ...PAGE_HEADERS, 'content-security-policy': this.files.signInPolicy })
        .type('text/html; charset=utf-8')
        .send(this.files.signIn);
      return true;
    },
  };

  /** `configured`: what the store holds, shown when the runtime has no live view. */
  register(
    app: FastifyInstance,
    runtime: PageRuntime,
    configured: { readonly snapshot: RuntimeSnapshot; readonly generation: number },
  ): void {
    const files = (): PageFiles => {
      if (typeof this.files === 'string') throw new ApiError('SLUICE_API_NOT_FOUND', this.files);
      return this.files;
    };
    const serve = (reply: FastifyReply, body: Buffer, type: string): FastifyReply =>
      reply
        .headers({ ...PAGE_HEADERS, 'content-security-policy': PAGE_POLICY })
        .type(type)
        .send(body);
    const page = async (_req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> =>
      serve(reply, files().index, 'text/html; charset=utf-8');
    app.get('/', page);
    app.get('/ui', page);
    app.get('/ui/app.js', async (_req, reply) => serve(reply, files().js, 'text/javascript; charset=utf-8'));
    app.get('/ui/app.css', async (_req, reply) => serve(reply, files().css, 'text/css; charset=utf-8'));

    const sessions = this.sessions;
    app.get('/ui/session', async (req, reply): Promise<SessionView> => {
      void reply.header('cache-control', 'no-store');
      const id = cookieOf(req);
      const endsAt = id === undefined ? undefined : sessions?.endsAt(id);
      return {
        tokenRequired: sessions !== undefined,
        signedIn: endsAt !== undefined,
        ...(endsAt !== undefined ? { endsAt: new Date(endsAt).toISOString() } : {}),
      };
    });
    // The guard let this in with the bearer token only: a cookie cannot make another cookie.
    app.post('/ui/session', async (req, reply) => {
      void reply.header('cache-control', 'no-store');
      if (sessions !== undefined)
        void reply.header(
          'set-cookie',
          `${cookieName(req)}=${sessions.issue()}; Path=/; HttpOnly; SameSite=Strict`,
        );
      return reply.code(204).send();
    });
    app.delete('/ui/session', async (req, reply) => {
      const id = cookieOf(req);
      if (id !== undefined) sessions?.end(id);
      return reply
        .code(204)
        .header('set-cookie', `${cookieName(req)}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`)
        .send();
    });

    const live =
      runtime.live ??
      staticLive(
        () => configured.snapshot,
        () => configured.generation,
      );
    app.get('/sluice/v1/overview', async (): Promise<Overview> =>
      overviewOf(live, runtime.flows(), (id) => runtime.labelsOf(id), runtime.timeScale),
    );

    if (sessions !== undefined) {
      const sweep = setInterval(() => sessions.sweep(), 60_000);
      sweep.unref();
      app.addHook('preClose', async () => {
        clearInterval(sweep);
        sessions.endAll();
      });
    }
  }
}
