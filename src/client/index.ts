/**
 * A typed client of Sluice's HTTP API, for the CLI (`sluice flows`, `sluice apply`) and for
 * tests. It speaks the same routes a user reaches with curl; nothing here knows the server code.
 */
import type { ArmErrorBody } from '../control/arm.js';
import type { SluiceEvent } from '../control/events.js';
import type { AdvanceResponse, ClockView, ExpireResponse } from '../control/routes/clock.js';
import type { HealthResponse, MemberRef, Verdict } from '../control/routes/health.js';
import type { DeploymentView, FlowsResponse, StateStoreHealth } from '../control/server.js';

export type { DeploymentView, FlowsResponse, FlowView, StateStoreHealth } from '../control/server.js';
export type { EndedFlow, SluiceEvent } from '../control/events.js';
export type { AdvanceResponse, ClockMode, ClockView, ExpireResponse } from '../control/routes/clock.js';
export type { HealthResponse, HealthView, MemberRef, Verdict } from '../control/routes/health.js';

export const DEFAULT_API_VERSION = '2024-05-01';

export type ResourceType = 'loadBalancers' | 'publicIPAddresses' | 'natGateways' | 'networkInterfaces';

export interface ResourceAddress {
  readonly subscription: string;
  readonly resourceGroup: string;
  readonly type: ResourceType;
  readonly name: string;
}

export interface ArmResource {
  readonly id: string;
  readonly name: string;
  readonly type: string;
  readonly etag: string;
  readonly properties: Record<string, unknown> & { readonly provisioningState: string };
  readonly [key: string]: unknown;
}

export interface Health {
  readonly status: 'ok';
  readonly generation: number;
  readonly loadBalancers: readonly string[];
  readonly listeners: number;
  /** Where the desired state is kept and whether it answers (docs/api.md, Health). */
  readonly stateStore?: StateStoreHealth;
}

export interface FlowQuery {
  readonly lb?: string;
  readonly rule?: string;
  readonly state?: string;
  readonly limit?: number;
}

/** An answer other than 2xx: the status and, for API errors, ARM's error body. */
export class ApiClientError extends Error {
  constructor(
    readonly status: number,
    readonly body: ArmErrorBody | undefined,
    text: string,
  ) {
    super(body?.error.message ?? `HTTP ${status}: ${text.slice(0, 200)}`);
    this.name = 'ApiClientError';
  }

  get code(): string | undefined {
    return this.body?.error.code;
  }
}

export interface ClientOptions {
  /** `http://host:port`, or `host:port`. */
  readonly base: string;
  readonly token?: string | undefined;
  readonly apiVersion?: string;
}

function baseUrl(base: string): string {
  const b = /^https?:\/\//.test(base) ? base : `http://${base}`;
  return b.replace(/\/+$/, '');
}

export function resourcePath(a: ResourceAddress): string {
  const e = encodeURIComponent;
  return `/subscriptions/${e(a.subscription)}/resourceGroups/${e(a.resourceGroup)}/providers/Microsoft.Network/${a.type}/${e(a.name)}`;
}

/** Where a deployment goes: resources without an id are filed in its resource group. */
export interface DeploymentAddress {
  readonly subscription: string;
  readonly resourceGroup: string;
  readonly name: string;
}

export function deploymentPath(a: DeploymentAddress): string {
  const e = encodeURIComponent;
  return `/subscriptions/${e(a.subscription)}/resourceGroups/${e(a.resourceGroup)}/providers/Microsoft.Resources/deployments/${e(a.name)}`;
}

export class SluiceClient {
  readonly base: string;
  private readonly token: string | undefined;
  readonly apiVersion: string;

  constructor(options: ClientOptions) {
    this.base = baseUrl(options.base);
    this.token = options.token;
    this.apiVersion = options.apiVersion ?? DEFAULT_API_VERSION;
  }

  /** One request; resolves with the status and parsed body of a 2xx answer, else throws. */
  async request<T>(
    method: string,
    path: string,
    init: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<{ status: number; body: T; headers: Headers }> {
    const headers: Record<string, string> = { accept: 'application/json', ...init.headers };
    if (this.token !== undefined) headers['authorization'] = `Bearer ${this.token}`;
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(this.base + path, {
      method,
      headers,
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      ...(init.signal ? { signal: init.signal } : {}),
    });
    const text = await res.text();
    const type = res.headers.get('content-type') ?? '';
    let parsed: unknown = text;
    if (type.includes('json') && text !== '') parsed = JSON.parse(text) as unknown;
    if (!res.ok) {
      const armBody =
        typeof parsed === 'object' && parsed !== null && 'error' in parsed
          ? (parsed as ArmErrorBody)
          : undefined;
      throw new ApiClientError(res.status, armBody, text);
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  }

  private withVersion(path: string): string {
    return `${path}?api-version=${encodeURIComponent(this.apiVersion)}`;
  }

  async health(): Promise<Health> {
    return (await this.request<Health>('GET', '/healthz')).body;
  }

  async metrics(): Promise<string> {
    return (await this.request<string>('GET', '/metrics')).body;
  }

  async flows(query: FlowQuery = {}): Promise<FlowsResponse> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, String(v));
    const qs = q.toString();
    return (await this.request<FlowsResponse>('GET', `/sluice/v1/flows${qs ? `?${qs}` : ''}`)).body;
  }

  /** The load balancer's clock: manual or system, where it is, its time scale. */
  async clock(): Promise<ClockView> {
    return (await this.request<ClockView>('GET', '/sluice/v1/clock')).body;
  }

  /**
   * Moves a manual clock by `by`: milliseconds, or a duration such as `90s`, `4m`, `1h30m`.
   * Resolves once every flow the move ended is reset or blackholed, with those flows.
   */
  async advance(by: number | string): Promise<AdvanceResponse> {
    const body = typeof by === 'number' ? { ms: by } : { by };
    return (await this.request<AdvanceResponse>('POST', '/sluice/v1/clock/advance', { body })).body;
  }

  /** Ends one live flow now, as its rule would at idle (reset or silent drop). */
  async expireFlow(flowId: number): Promise<ExpireResponse> {
    return (await this.request<ExpireResponse>('POST', `/sluice/v1/flows/${flowId}/expire`)).body;
  }

  /** What the probes say of every probed backend member. */
  async healthOf(): Promise<HealthResponse> {
    return (await this.request<HealthResponse>('GET', '/sluice/v1/health')).body;
  }

  /**
   * Sets a member's probe verdict by hand (`up`, `down`), in place of its probes until cleared
   * (`undefined`). The member is named by its name or its address.
   */
  async markProbe(member: MemberRef, verdict: Verdict | undefined): Promise<HealthResponse> {
    const e = encodeURIComponent;
    const path = `/sluice/v1/health/${e(member.lb)}/${e(member.pool)}/${e(member.member)}`;
    const r =
      verdict === undefined
        ? await this.request<HealthResponse>('DELETE', path)
        : await this.request<HealthResponse>('PUT', path, { body: { probe: verdict } });
    return r.body;
  }

  /** Creates or replaces a resource: `created` is true for a 201. */
  async put(
    address: ResourceAddress,
    resource: unknown,
    options: { ifMatch?: string; ifNoneMatch?: string } = {},
  ): Promise<{ created: boolean; resource: ArmResource }> {
    const headers: Record<string, string> = {};
    if (options.ifMatch !== undefined) headers['if-match'] = options.ifMatch;
    if (options.ifNoneMatch !== undefined) headers['if-none-match'] = options.ifNoneMatch;
    const r = await this.request<ArmResource>('PUT', this.withVersion(resourcePath(address)), {
      body: resource,
      headers,
    });
    return { created: r.status === 201, resource: r.body };
  }

  /**
   * Creates or replaces every resource of `resources` as one change (ARM's template deployment,
   * Incremental mode): all are applied, or on any error none.
   */
  async deploy(address: DeploymentAddress, resources: readonly unknown[]): Promise<DeploymentView> {
    const body = { properties: { mode: 'Incremental', template: { resources } } };
    return (await this.request<DeploymentView>('PUT', this.withVersion(deploymentPath(address)), { body }))
      .body;
  }

  async get(address: ResourceAddress): Promise<ArmResource> {
    return (await this.request<ArmResource>('GET', this.withVersion(resourcePath(address)))).body;
  }

  /** Resolves true when the resource existed. */
  async delete(address: ResourceAddress, options: { ifMatch?: string } = {}): Promise<boolean> {
    const headers: Record<string, string> = {};
    if (options.ifMatch !== undefined) headers['if-match'] = options.ifMatch;
    const r = await this.request<unknown>('DELETE', this.withVersion(resourcePath(address)), { headers });
    return r.status === 200;
  }

  async list(subscription: string, type: ResourceType, resourceGroup?: string): Promise<ArmResource[]> {
    const e = encodeURIComponent;
    const scope =
      resourceGroup === undefined
        ? `/subscriptions/${e(subscription)}`
        : `/subscriptions/${e(subscription)}/resourceGroups/${e(resourceGroup)}`;
    const path = this.withVersion(`${scope}/providers/Microsoft.Network/${type}`);
    return (await this.request<{ value: ArmResource[] }>('GET', path)).body.value;
  }

  /**
   * The event stream, as an async iterator; ends when `signal` aborts or the server closes it.
   * `types` keeps only those event types.
   */
  async *events(
    options: { signal?: AbortSignal; types?: readonly string[] } = {},
  ): AsyncGenerator<SluiceEvent> {
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (this.token !== undefined) headers['authorization'] = `Bearer ${this.token}`;
    const qs = options.types ? `?types=${encodeURIComponent(options.types.join(','))}` : '';
    const res = await fetch(`${this.base}/sluice/v1/events${qs}`, {
      headers,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (!res.ok || res.body === null) {
      const text = await res.text();
      let body: ArmErrorBody | undefined;
      try {
        body = JSON.parse(text) as ArmErrorBody;
      } catch {
        body = undefined;
      }
      throw new ApiClientError(res.status, body, text);
    }
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).trimStart())
            .join('\n');
          if (data !== '') yield JSON.parse(data) as SluiceEvent;
        }
      }
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err;
    }
  }
}
