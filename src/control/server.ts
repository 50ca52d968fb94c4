/**
 * The HTTP API of `sluice run`: ARM-shaped resources (load balancers, public IPs, NAT gateways,
 * network interfaces) and the runtime views (flows, events, metrics, health). Everything it
 * changes goes through the ResourceStore; everything it shows comes from a ControlRuntime, so the
 * server knows neither the data plane nor the flow engine.
 */
import { STATUS_CODES, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { Share, type ApiShareRefusal } from '../core/budget.js';
import type { FlowInfo } from '../core/events.js';
import { isRecord } from '../config/index.js';
import { ApiError, armView, checkPathName, resourceSegment, type ResourceRef } from './arm.js';
import { EVENT_TYPES, endpointText, type SluiceEvent, type SluiceEventType } from './events.js';
import { guardOf, installGuard, type GuardOptions } from './guard.js';
import { registerClockRoutes, type ClockMode, type ClockRuntime } from './routes/clock.js';
import { registerHealthRoutes, type HealthRuntime } from './routes/health.js';
import type { LiveRuntime } from './overview.js';
import { LivePage, UI_ROUTES } from './ui.js';
import type { DeploymentResult, ResourceStore } from './store.js';

export const BODY_LIMIT = 1024 * 1024;
export const DEFAULT_API_PORT = 9180;
const DEFAULT_FLOW_LIMIT = 1000;
const MAX_FLOW_LIMIT = 100_000;
/** An event stream whose client reads this far behind is cut off rather than buffered. */
const SSE_MAX_BUFFER = 1024 * 1024;

/** What the API shows of the running load balancer, and what a test may do to it (clock, health). */
export interface ControlRuntime extends ClockRuntime, HealthRuntime {
  flows(): readonly FlowInfo[];
  /** Load balancer and rule names of a rule id. */
  labelsOf(ruleId: string): { readonly lb: string; readonly rule: string };
  subscribe(listener: (event: SluiceEvent) => void): () => void;
  listening(): readonly string[];
  /** Load-balancer milliseconds per real millisecond (`--time-scale`). */
  readonly timeScale: number;
  /** What the live page shows beyond flows and events; without it, what the store holds. */
  readonly live?: LiveRuntime;
}

/** Where the desired state is kept and whether it answers, as /healthz shows it. */
export interface StateStoreHealth {
  /** `file` (--state-dir) or `etcd` (--state etcd://, shared by a pool). */
  readonly kind: 'file' | 'etcd';
  /** The state directory, or the etcd URL. */
  readonly location: string;
  /** The store answers: changes can be made. While it does not, the last state is served. */
  readonly up: boolean;
  /** Since when it has been up or down (ISO time); etcd only. */
  readonly since?: string;
  /** Why it is down. */
  readonly reason?: string;
  /** The generation stored: ahead of `generation` while one is not served here. */
  readonly generation: number;
}

export interface ApiOptions extends GuardOptions {
  readonly store: ResourceStore;
  /** The state store's health for /healthz; without it /healthz has no `stateStore`. */
  readonly stateStore?: () => StateStoreHealth;
  readonly runtime: ControlRuntime;
  readonly registry: Registry;
  readonly logger?: Logger;
  /** Real milliseconds a client has to send a whole request. Default 10 s. */
  readonly requestTimeoutMs?: number;
  /**
   * Real milliseconds a client has to send its request headers, from when it connected or
   * began its request: an idle connection is closed after this. Default 5 s (at most
   * requestTimeoutMs).
   */
  readonly headersTimeoutMs?: number;
  /** Open connections at most (the API's share of descriptors); beyond, new ones are dropped. */
  readonly maxConnections?: number;
  /** Open event streams at most; beyond, GET /sluice/v1/events is a 503. */
  readonly maxEventStreams?: number;
  /** A connection dropped, or an event stream refused, because its share is full. */
  readonly refused?: (reason: ApiShareRefusal) => void;
  /** Real milliseconds between SSE keep-alive comments. Default 15 s. */
  readonly heartbeatMs?: number;
}

/** The routes the API serves, as docs/api.md lists them (a test compares the two). */
export const ROUTES = [
  ['GET', '/healthz'],
  ['GET', '/metrics'],
  ['GET', '/sluice/v1/flows'],
  ['POST', '/sluice/v1/flows/{id}/expire'],
  ['GET', '/sluice/v1/events'],
  ['GET', '/sluice/v1/clock'],
  ['POST', '/sluice/v1/clock/advance'],
  ['GET', '/sluice/v1/health'],
  ['PUT', '/sluice/v1/health/{lb}/{pool}/{member}'],
  ['DELETE', '/sluice/v1/health/{lb}/{pool}/{member}'],
  ['GET', '/subscriptions/{subscriptionId}/providers/Microsoft.Network/{resourceType}'],
  [
    'GET',
    '/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/{resourceType}',
  ],
  [
    'GET',
    '/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/{resourceType}/{name}',
  ],
  [
    'PUT',
    '/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/{resourceType}/{name}',
  ],
  [
    'DELETE',
    '/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/{resourceType}/{name}',
  ],
  [
    'PUT',
    '/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Resources/deployments/{deploymentName}',
  ],
  ...UI_ROUTES,
] as const;

const ROUTE_PATTERNS = ROUTES.map(([method, path]) => ({
  method,
  pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/]+')}/?$`, 'i'),
}));

/** The methods the API serves on a concrete path (HEAD with GET, as fastify does). */
function methodsOf(path: string): string[] {
  const methods = ROUTE_PATTERNS.filter((r) => r.pattern.test(path)).map((r) => r.method as string);
  if (methods.includes('GET')) methods.push('HEAD');
  return [...new Set(methods)];
}

/** A flow as GET /sluice/v1/flows lists it. */
export interface FlowView {
  readonly id: number;
  readonly protocol: string;
  readonly lb: string;
  readonly rule: string;
  readonly ruleRemoved: boolean;
  readonly state: string;
  readonly client: string;
  readonly frontend: string;
  readonly backend: string;
  readonly ageMs: number;
  readonly idleMs: number;
  readonly msLeft: number;
  readonly timeoutMs: number;
  readonly bytesToBackend: number;
  readonly bytesToClient: number;
  readonly packetsToBackend: number;
  readonly packetsToClient: number;
  /** Adopted by this instance of a pool from a mid-flow segment (docs/scale-out.md). */
  readonly adopted?: true;
}

export interface FlowsResponse {
  /** How the load balancer's time moves, and where it is (as GET /sluice/v1/clock). */
  readonly clock: { readonly mode: ClockMode; readonly now: number };
  readonly timeScale: number;
  readonly total: number;
  readonly flows: readonly FlowView[];
}

const API_VERSION = /^\d{4}-\d{2}-\d{2}(-preview)?$/;

function apiVersionOf(req: FastifyRequest): void {
  const v = (req.query as Record<string, unknown>)['api-version'];
  if (v === undefined || v === '')
    throw new ApiError(
      'SLUICE_API_MISSING_API_VERSION',
      'The api-version query parameter (?api-version=) is required for all requests.',
    );
  if (typeof v !== 'string' || !API_VERSION.test(v))
    throw new ApiError(
      'SLUICE_API_INVALID_API_VERSION',
      `The api-version '${String(v)}' is invalid. The supported format is 'YYYY-MM-DD' or 'YYYY-MM-DD-preview'.`,
    );
}

interface ResourceParams {
  subscriptionId: string;
  resourceGroupName: string;
  resourceType: string;
  name: string;
}

function refOf(p: ResourceParams): ResourceRef {
  const segment = resourceSegment(p.resourceType);
  if (segment === undefined)
    throw new ApiError(
      'SLUICE_API_NOT_FOUND',
      `The resource type '${p.resourceType}' is not served by Sluice (loadBalancers, publicIPAddresses, natGateways, networkInterfaces).`,
    );
  checkPathName(segment, p.name);
  return { subscription: p.subscriptionId, resourceGroup: p.resourceGroupName, segment, name: p.name };
}

/** ARM's rule for deployment names. */
const DEPLOYMENT_NAME = /^[-\w.()]{1,64}$/;

interface DeploymentParams {
  subscriptionId: string;
  resourceGroupName: string;
  deploymentName: string;
}

/** What a deployment answers: ARM's deployment resource, with what changed per resource. */
export interface DeploymentView {
  readonly id: string;
  readonly name: string;
  readonly type: 'Microsoft.Resources/deployments';
  readonly properties: {
    readonly provisioningState: 'Succeeded';
    readonly mode: 'Incremental';
    /** The generation serving the result (the previous one when nothing changed). */
    readonly generation: number;
    readonly outputResources: readonly { readonly id: string }[];
    readonly changes: readonly {
      readonly id: string;
      readonly type: string;
      readonly etag: string;
      readonly change: 'added' | 'changed' | 'unchanged';
      readonly changedProperties: readonly string[];
    }[];
  };
}

function deploymentView(p: DeploymentParams, result: DeploymentResult): DeploymentView {
  return {
    id: `/subscriptions/${p.subscriptionId}/resourceGroups/${p.resourceGroupName}/providers/Microsoft.Resources/deployments/${p.deploymentName}`,
    name: p.deploymentName,
    type: 'Microsoft.Resources/deployments',
    properties: {
      provisioningState: 'Succeeded',
      mode: 'Incremental',
      generation: result.generation,
      outputResources: result.resources.map((d) => ({ id: d.resource.id })),
      changes: result.resources.map((d) => ({
        id: d.resource.id,
        type: d.resource.type,
        etag: d.resource.etag,
        change: d.change,
        changedProperties: d.changedProperties,
      })),
    },
  };
}

/** The template of a deployment body; Sluice deploys only what the request holds, incrementally. */
function templateOf(body: unknown): unknown {
  if (!isRecord(body))
    throw new ApiError('SLUICE_API_BAD_REQUEST', 'the request body must be a JSON object (a deployment)');
  const props = body['properties'];
  if (!isRecord(props))
    throw new ApiError('SLUICE_API_INVALID_TEMPLATE', 'a deployment needs properties.template', {
      target: '/properties',
    });
  const mode = props['mode'];
  if (mode !== undefined && (typeof mode !== 'string' || mode.toLowerCase() !== 'incremental'))
    throw new ApiError(
      'SLUICE_API_INVALID_TEMPLATE',
      `mode '${String(mode)}' is not supported: Sluice deploys in Incremental mode (resources the template does not name stay as they are)`,
      { target: '/properties/mode' },
    );
  if (props['templateLink'] !== undefined)
    throw new ApiError(
      'SLUICE_API_INVALID_TEMPLATE',
      'templateLink is not supported: give the template itself in properties.template',
      { target: '/properties/templateLink' },
    );
  return props['template'];
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

interface Timeouts {
  readonly headersMs: number;
  readonly requestMs: number;
}

/**
 * The answer to a request the HTTP parser gave up on before any route saw it: too slow
 * (headersTimeout, requestTimeout), headers too large, or not HTTP at all. Node and fastify
 * would answer with their own bodies; an ARM client expects ARM's.
 */
function clientErrorOf(err: NodeJS.ErrnoException, timeouts: Timeouts): ApiError {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      // Node reports both timeouts alike.
      return new ApiError(
        'SLUICE_API_TIMEOUT',
        timeouts.headersMs === timeouts.requestMs
          ? `The request (headers and body) did not arrive within ${timeouts.requestMs} ms; the connection is closed.`
          : `The request headers did not arrive within ${timeouts.headersMs} ms, or the whole request within ${timeouts.requestMs} ms; the connection is closed.`,
      );
    case 'HPE_HEADER_OVERFLOW':
      return new ApiError('SLUICE_API_HEADERS_TOO_LARGE', 'The request headers are too large.');
    default:
      return new ApiError(
        'SLUICE_API_BAD_REQUEST',
        `The request is not valid HTTP (${err.code ?? err.message}).`,
      );
  }
}

function onClientError(err: NodeJS.ErrnoException, socket: Duplex, timeouts: Timeouts): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  // A response already under way on this connection must not get a second status line.
  const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && inFlight?.headersSent !== true) {
    const api = clientErrorOf(err, timeouts);
    const body = JSON.stringify(api.body());
    socket.write(
      `HTTP/1.1 ${api.httpStatus} ${STATUS_CODES[api.httpStatus] ?? ''}\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    );
  }
  socket.destroy(err);
}

/** Translates fastify's own errors (body limit, bad JSON, content type) into ARM bodies. */
function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return new ApiError('SLUICE_API_BODY_TOO_LARGE', `The request body is larger than ${BODY_LIMIT} bytes.`);
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    return new ApiError(
      'SLUICE_API_UNSUPPORTED_MEDIA_TYPE',
      'Send the body as JSON (Content-Type: application/json).',
    );
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500)
    return new ApiError('SLUICE_API_BAD_REQUEST', e.message ?? 'bad request');
  return new ApiError('SLUICE_API_INTERNAL', 'Internal error; see the Sluice log.');
}

/** A flow as the API lists it; `labelsOf` names its load balancer and rule. */
export function flowView(f: FlowInfo, labelsOf: (ruleId: string) => { lb: string; rule: string }): FlowView {
  const l = labelsOf(f.ruleId);
  return {
    id: f.id,
    protocol: f.protocol,
    lb: l.lb,
    rule: l.rule,
    ruleRemoved: f.ruleRemoved,
    state: f.state,
    client: endpointText(f.client),
    frontend: endpointText(f.frontend),
    backend: endpointText(f.backend),
    ageMs: Math.round(f.ageMs),
    idleMs: Math.round(f.idleMs),
    msLeft: Math.round(f.msLeft),
    timeoutMs: f.timeoutMs,
    bytesToBackend: f.bytesToBackend,
    bytesToClient: f.bytesToClient,
    packetsToBackend: f.packetsToBackend,
    packetsToClient: f.packetsToClient,
    ...(f.adopted === true ? { adopted: true as const } : {}),
  };
}

function queryString(req: FastifyRequest, key: string): string | undefined {
  const v = (req.query as Record<string, unknown>)[key];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') throw new ApiError('SLUICE_API_BAD_REQUEST', `give ${key} once`);
  return v;
}

export async function buildApi(options: ApiOptions): Promise<FastifyInstance> {
  const { store, runtime, registry, logger } = options;
  const guard = guardOf(options);
  const requestTimeout = options.requestTimeoutMs ?? 10_000;
  // Node refuses a headers timeout longer than the request timeout.
  const headersTimeout = Math.min(options.headersTimeoutMs ?? 5_000, requestTimeout);
  const timeouts: Timeouts = { headersMs: headersTimeout, requestMs: requestTimeout };
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const streams = new Set<ServerResponse>();
  const streamShare = new Share(options.maxEventStreams);
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT,
    routerOptions: { caseSensitive: false, ignoreTrailingSlash: true },
    clientErrorHandler: (err, socket) => onClientError(err, socket, timeouts),
    serverFactory: (handler) => {
      const server = createServer(
        {
          // Sluice answers a request without Host itself, with ARM's body (guard.ts).
          requireHostHeader: false,
          requestTimeout,
          headersTimeout,
          // Between requests of a kept-alive connection (Node's default, stated).
          keepAliveTimeout: 5_000,
          // Node enforces both timeouts only as often as it checks connections: a tenth of the
          // shorter one, so that they fire at most 10% late.
          connectionsCheckingInterval: Math.max(50, Math.min(500, headersTimeout / 10)),
        },
        handler as (req: IncomingMessage, res: ServerResponse) => void,
      );
      // Beyond its share Node closes a new connection as soon as it is accepted ('drop').
      if (options.maxConnections !== undefined) server.maxConnections = options.maxConnections;
      server.on('drop', () => options.refused?.('connections'));
      return server;
    },
  });

  const page = new LivePage({ tokenRequired: guard.token !== undefined });
  installGuard(app, guard, logger, page.credential);

  app.setErrorHandler((err, req, reply) => {
    const api = toApiError(err);
    if (api.httpStatus >= 500) logger?.error({ err, method: req.method, url: req.url }, 'API request failed');
    // The state store comes back by itself: the client may try again soon.
    if (api.code === 'SLUICE_STATE_STORE_UNAVAILABLE') void reply.header('retry-after', '1');
    void reply.code(api.httpStatus).type('application/json').send(api.body());
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    const allowed = methodsOf(path);
    if (allowed.length > 0) {
      // The path exists: a 404 would tell an operator the resource is missing when only the verb is wrong.
      const api = new ApiError(
        'SLUICE_API_METHOD_NOT_ALLOWED',
        `${path} does not support ${req.method}; use ${allowed.join(', ')}.`,
      );
      void reply.code(405).header('allow', allowed.join(', ')).type('application/json').send(api.body());
      return;
    }
    const api = new ApiError('SLUICE_API_NOT_FOUND', `No route for ${req.method} ${path}.`);
    void reply.code(404).type('application/json').send(api.body());
  });

  app.addHook('onResponse', async (req, reply) => {
    logger?.debug({ method: req.method, url: req.url, status: reply.statusCode }, 'API request');
  });

  app.addHook('preClose', async () => {
    for (const res of streams) res.end();
    streams.clear();
  });

  app.get('/healthz', async () => ({
    status: 'ok',
    generation: store.generation,
    loadBalancers: store.snapshot.loadBalancers.map((lb) => lb.name),
    listeners: runtime.listening().length,
    ...(options.stateStore !== undefined ? { stateStore: options.stateStore() } : {}),
  }));

  app.get('/metrics', async (_req, reply) => {
    const text = await registry.metrics();
    void reply.type(registry.contentType);
    return text;
  });

  app.get('/sluice/v1/flows', async (req): Promise<FlowsResponse> => {
    const lb = queryString(req, 'lb')?.toLowerCase();
    const rule = queryString(req, 'rule')?.toLowerCase();
    const state = queryString(req, 'state')?.toUpperCase();
    const limitText = queryString(req, 'limit');
    const limit = limitText === undefined ? DEFAULT_FLOW_LIMIT : Number(limitText);
    if (!Number.isInteger(limit) || limit < 0 || limit > MAX_FLOW_LIMIT)
      throw new ApiError(
        'SLUICE_API_BAD_REQUEST',
        `limit must be a whole number from 0 to ${MAX_FLOW_LIMIT}`,
      );
    const matching = runtime
      .flows()
      .map((f) => flowView(f, (id) => runtime.labelsOf(id)))
      .filter(
        (f) =>
          (lb === undefined || f.lb.toLowerCase() === lb) &&
          (rule === undefined || f.rule.toLowerCase() === rule) &&
          (state === undefined || f.state === state),
      )
      .sort((a, b) => a.id - b.id);
    const { mode, now } = runtime.clock();
    return {
      clock: { mode, now },
      timeScale: runtime.timeScale,
      total: matching.length,
      flows: matching.slice(0, limit),
    };
  });

  registerClockRoutes(app, runtime);
  registerHealthRoutes(app, runtime);

  app.get('/sluice/v1/events', async (req, reply) => {
    const typesText = queryString(req, 'types');
    let types: Set<string> | undefined;
    if (typesText !== undefined) {
      types = new Set(typesText.split(',').map((t) => t.trim()));
      const unknown = [...types].filter((t) => !EVENT_TYPES.includes(t as SluiceEventType));
      if (unknown.length > 0)
        throw new ApiError(
          'SLUICE_API_BAD_REQUEST',
          `unknown event type ${unknown.join(', ')}; known: ${EVENT_TYPES.join(', ')}`,
        );
    }
    if (!streamShare.take()) {
      options.refused?.('event-streams');
      const api = new ApiError(
        'SLUICE_API_TOO_MANY_EVENT_STREAMS',
        `All ${streamShare.capacity} event streams of the API's share are open (--max-event-streams); try again later.`,
      );
      // Closing the connection gives its descriptor back at once, rather than after keep-alive.
      return reply
        .code(api.httpStatus)
        .header('connection', 'close')
        .header('retry-after', '5')
        .type('application/json')
        .send(api.body());
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(': sluice events\n\n');
    streams.add(res);
    let id = 0;
    const unsubscribe = runtime.subscribe((e) => {
      if (types !== undefined && !types.has(e.type)) return;
      // A client that stopped reading must not make Sluice buffer without bound.
      if (res.writableLength > SSE_MAX_BUFFER) {
        res.destroy();
        return;
      }
      res.write(`id: ${++id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    });
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), heartbeatMs);
    heartbeat.unref();
    res.on('close', () => {
      unsubscribe();
      clearInterval(heartbeat);
      streams.delete(res);
      streamShare.give();
    });
  });

  const listRoute = async (
    req: FastifyRequest<{
      Params: Omit<ResourceParams, 'name' | 'resourceGroupName'> & { resourceGroupName?: string };
    }>,
  ): Promise<unknown> => {
    apiVersionOf(req);
    const p = req.params;
    const segment = resourceSegment(p.resourceType);
    if (segment === undefined)
      throw new ApiError('SLUICE_API_NOT_FOUND', `unknown resource type '${p.resourceType}'`);
    return { value: store.list(p.subscriptionId, segment, p.resourceGroupName).map(armView) };
  };
  app.get('/subscriptions/:subscriptionId/providers/Microsoft.Network/:resourceType', listRoute);
  app.get(
    '/subscriptions/:subscriptionId/resourceGroups/:resourceGroupName/providers/Microsoft.Network/:resourceType',
    listRoute,
  );

  const resourcePath =
    '/subscriptions/:subscriptionId/resourceGroups/:resourceGroupName/providers/Microsoft.Network/:resourceType/:name';

  app.get<{ Params: ResourceParams }>(resourcePath, async (req) => {
    apiVersionOf(req);
    const ref = refOf(req.params);
    const r = store.get(ref);
    if (r === undefined) throw notFound(ref);
    return armView(r);
  });

  app.put<{ Params: ResourceParams }>(resourcePath, async (req, reply) => {
    apiVersionOf(req);
    const ref = refOf(req.params);
    const { created, resource } = await store.put(ref, req.body, {
      ifMatch: header(req, 'if-match'),
      ifNoneMatch: header(req, 'if-none-match'),
    });
    void reply.code(created ? 201 : 200);
    return armView(resource);
  });

  app.delete<{ Params: ResourceParams }>(resourcePath, async (req, reply: FastifyReply) => {
    apiVersionOf(req);
    const ref = refOf(req.params);
    const deleted = await store.delete(ref, { ifMatch: header(req, 'if-match') });
    // ARM answers 204 for a resource that was not there.
    void reply.code(deleted ? 200 : 204);
    return deleted ? { status: 'Succeeded' } : undefined;
  });

  app.put<{ Params: DeploymentParams }>(
    '/subscriptions/:subscriptionId/resourceGroups/:resourceGroupName/providers/Microsoft.Resources/deployments/:deploymentName',
    async (req): Promise<DeploymentView> => {
      apiVersionOf(req);
      const p = req.params;
      if (!DEPLOYMENT_NAME.test(p.deploymentName))
        throw new ApiError(
          'SLUICE_API_BAD_REQUEST',
          `'${p.deploymentName}' is not a deployment name: 1-64 letters, digits, '-', '_', '.', '(' or ')'`,
        );
      const result = await store.deploy(
        { subscription: p.subscriptionId, resourceGroup: p.resourceGroupName },
        templateOf(req.body),
      );
      return deploymentView(p, result);
    },
  );

  page.register(app, runtime, store);

  await app.ready();
  return app;
}

function notFound(ref: ResourceRef): ApiError {
  return new ApiError(
    'SLUICE_API_NOT_FOUND',
    `The Resource 'Microsoft.Network/${ref.segment}/${ref.name}' under resource group '${ref.resourceGroup}' was not found.`,
  );
}

/** Parses `--api`: `ADDR:PORT`, `[V6]:PORT`, `:PORT`, or `off`. */
export function parseApiAddress(text: string): { host: string; port: number } | 'off' | { error: string } {
  if (text === 'off') return 'off';
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  if (!m) return { error: `--api expects ADDR:PORT or off, got '${text}'` };
  const port = Number(m[3]);
  if (port > 65535) return { error: `--api: port ${port} is out of range` };
  return { host: m[1] ?? (m[2] === '' ? '127.0.0.1' : m[2]!), port };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
