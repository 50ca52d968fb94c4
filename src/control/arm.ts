/**
 * ARM's conventions as the API speaks them: resource ids and types, the shape of a resource in
 * a response (ids of child resources, etag, provisioningState) and the error body.
 */
import { randomUUID } from 'node:crypto';
import { LB_CHILD_ARRAYS, invalidNameMessage, isRecord, nameProblem } from '../config/index.js';
import { SluiceError, type Diagnostic, type ErrorCode } from '../core/errors.js';
import type { StoredResource } from './state.js';
import { httpStatusOf } from './status.js';

/** The resource types the API serves, by the path segment ARM uses (canonical case). */
export const RESOURCE_TYPES = {
  loadBalancers: 'Microsoft.Network/loadBalancers',
  publicIPAddresses: 'Microsoft.Network/publicIPAddresses',
  natGateways: 'Microsoft.Network/natGateways',
  networkInterfaces: 'Microsoft.Network/networkInterfaces',
} as const;

export type ResourceSegment = keyof typeof RESOURCE_TYPES;

export function resourceSegment(segment: string): ResourceSegment | undefined {
  const lower = segment.toLowerCase();
  return (Object.keys(RESOURCE_TYPES) as ResourceSegment[]).find((k) => k.toLowerCase() === lower);
}

/** Where resources without an id in a `sluice run` document are filed. */
export const DEFAULT_SUBSCRIPTION = '00000000-0000-0000-0000-000000000000';
export const DEFAULT_RESOURCE_GROUP = 'sluice';

export interface ResourceRef {
  readonly subscription: string;
  readonly resourceGroup: string;
  readonly segment: ResourceSegment;
  readonly name: string;
}

export function resourceId(ref: ResourceRef): string {
  return `/subscriptions/${ref.subscription}/resourceGroups/${ref.resourceGroup}/providers/${RESOURCE_TYPES[ref.segment]}/${ref.name}`;
}

/** Ids compare case-insensitively, as in ARM. */
export function idKey(id: string): string {
  return id.trim().replace(/\/+$/, '').toLowerCase();
}

const ID_PATTERN =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Network\/([^/]+)\/([^/]+)$/i;

export function parseResourceId(id: string): ResourceRef | undefined {
  const m = ID_PATTERN.exec(id.trim().replace(/\/+$/, ''));
  if (!m) return undefined;
  const segment = resourceSegment(m[3]!);
  if (segment === undefined) return undefined;
  return { subscription: m[1]!, resourceGroup: m[2]!, segment, name: m[4]! };
}

/**
 * Refuses a name in a request path that ARM would refuse. The router has percent-decoded it, so
 * `a%2Fb` arrives as `a/b`: taken as it is, it would be the id of another resource's child.
 */
export function checkPathName(segment: ResourceSegment, name: string): void {
  const problem = nameProblem(name);
  if (problem === undefined) return;
  const message = invalidNameMessage(`the ${segment}`, name, problem);
  throw new ApiError(
    'SLUICE_CONFIG_INVALID_NAME',
    `The resource name in the path is not valid: ${message}.`,
    {
      target: 'name',
      details: [{ code: 'SLUICE_CONFIG_INVALID_NAME', message, target: 'name' }],
    },
  );
}

export function newEtag(): string {
  return `W/"${randomUUID()}"`;
}

/** Child arrays of a load balancer whose elements ARM gives ids. */
const LB_CHILDREN = LB_CHILD_ARRAYS;

/** A stored resource as ARM returns it. */
export function armView(r: StoredResource): Record<string, unknown> {
  const props = isRecord(r.body['properties']) ? { ...r.body['properties'] } : {};
  if (r.type.toLowerCase() === RESOURCE_TYPES.loadBalancers.toLowerCase()) {
    for (const kind of LB_CHILDREN) {
      const list = props[kind];
      if (!Array.isArray(list)) continue;
      props[kind] = list.map((child) => {
        if (!isRecord(child)) return child;
        const name = typeof child['name'] === 'string' ? child['name'] : '';
        const childProps = isRecord(child['properties']) ? child['properties'] : {};
        return {
          ...child,
          id: `${r.id}/${kind}/${name}`,
          name,
          etag: r.etag,
          type: `${r.type}/${kind}`,
          properties: { ...childProps, provisioningState: 'Succeeded' },
        };
      });
    }
  }
  return {
    id: r.id,
    name: r.name,
    type: r.type,
    etag: r.etag,
    ...Object.fromEntries(Object.entries(r.body).filter(([k]) => k !== 'properties')),
    properties: { ...props, provisioningState: 'Succeeded' },
  };
}

export interface ArmErrorDetail {
  readonly code: string;
  readonly message: string;
  readonly target?: string;
}

export interface ArmErrorBody {
  readonly error: {
    readonly code: string;
    readonly message: string;
    readonly target?: string;
    readonly details: readonly ArmErrorDetail[];
  };
}

/** An error the API answers with: a registered code, its HTTP status and ARM's body. */
export class ApiError extends SluiceError {
  readonly target: string | undefined;
  readonly details: readonly ArmErrorDetail[];
  /** What the API answers with. */
  readonly httpStatus: number;

  constructor(
    code: ErrorCode,
    message: string,
    options: {
      target?: string;
      details?: readonly ArmErrorDetail[];
      diagnostics?: readonly Diagnostic[];
    } = {},
  ) {
    super(code, message, options.diagnostics ?? []);
    this.httpStatus = httpStatusOf(code) ?? 500;
    this.target = options.target;
    this.details = options.details ?? [];
  }

  body(): ArmErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.target !== undefined ? { target: this.target } : {}),
        details: this.details,
      },
    };
  }
}
