import { diagnostic, type Diagnostic } from '../core/errors.js';
import { isRecord } from './json.js';
import type { LoadBalancerModel } from './model.js';
import { join } from './pointer.js';

/**
 * Limits on the size of a document, so that no input can exhaust Sluice: how deep objects and
 * arrays nest, and how many children of each kind a load balancer has (Azure's own limits).
 */

/**
 * Levels of nesting allowed below a resource, the resource itself being level 1. An ARM
 * resource needs about a dozen; the recursive passes (template expressions, normalisation,
 * the schema) stay far from the stack's end with 64.
 */
export const MAX_DEPTH = 64;

interface Frame {
  readonly value: object;
  readonly depth: number;
  readonly parent: Frame | undefined;
  readonly key: string | number;
}

function pointerOf(frame: Frame): string {
  const keys: (string | number)[] = [];
  for (let f: Frame | undefined = frame; f?.parent !== undefined; f = f.parent) keys.push(f.key);
  return join('', ...keys.reverse());
}

/**
 * The first object or array, in document order, nested deeper than `limit` (the outermost
 * value is level 1). A loop, not recursion: a document too deep for the stack is what it looks for.
 */
export function findTooDeep(
  value: unknown,
  limit: number,
): { path: string; depth: number; nonFinite?: true } | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const stack: Frame[] = [{ value, depth: 1, parent: undefined, key: '' }];
  // JSON.parse turns a number too large for a double (1e400) into Infinity, which JSON cannot
  // write back: stored, it would come back as null. The first such number is reported too.
  let nonFinite: string | undefined;
  while (stack.length > 0) {
    const frame = stack.pop()!;
    if (frame.depth > limit) return { path: pointerOf(frame), depth: frame.depth };
    const v = frame.value as Record<string, unknown> | unknown[];
    const push = (child: unknown, key: string | number): void => {
      if (typeof child === 'object' && child !== null)
        stack.push({ value: child, depth: frame.depth + 1, parent: frame, key });
      else if (typeof child === 'number' && !Number.isFinite(child) && nonFinite === undefined)
        nonFinite = join(pointerOf(frame), key);
    };
    // Pushed last to first, so that the first child is looked at first.
    if (Array.isArray(v)) for (let i = v.length - 1; i >= 0; i--) push(v[i], i);
    else {
      const keys = Object.keys(v);
      for (let i = keys.length - 1; i >= 0; i--) push(v[keys[i]!], keys[i]!);
    }
  }
  return nonFinite === undefined ? undefined : { path: nonFinite, depth: 0, nonFinite: true };
}

/** The levels an input form wraps around each resource: an array (1) or `{ "resources": [...] }` (2). */
function wrapperLevels(json: unknown): number {
  if (Array.isArray(json)) return 1;
  return isRecord(json) && Array.isArray(json['resources']) ? 2 : 0;
}

/** The path says where: the message does not repeat it, it may be long. */
function tooDeep(path: string, nonFinite = false): Diagnostic {
  if (nonFinite)
    return diagnostic(
      'SLUICE_CONFIG_INVALID_VALUE',
      path,
      'a number here is too large for JSON to hold (it reads as infinity); give a finite number',
    );
  return diagnostic(
    'SLUICE_CONFIG_TOO_DEEP',
    path,
    `objects and arrays nest more than ${MAX_DEPTH} levels below the resource here; ` +
      'Sluice reads no document nested this deep (an ARM resource needs about a dozen levels)',
  );
}

/** A whole document in any input form: each resource may nest MAX_DEPTH levels. */
export function checkDocumentDepth(json: unknown): Diagnostic | undefined {
  const hit = findTooDeep(json, MAX_DEPTH + wrapperLevels(json));
  return hit === undefined ? undefined : tooDeep(hit.path, hit.nonFinite === true);
}

/** One resource, as the body of an API request; paths point into it. */
export function checkResourceDepth(resource: unknown): Diagnostic | undefined {
  const hit = findTooDeep(resource, MAX_DEPTH);
  return hit === undefined ? undefined : tooDeep(hit.path, hit.nonFinite === true);
}

/**
 * Azure's limits per load balancer ("Azure subscription and service limits", Load Balancer):
 * frontend IP configurations, load-balancing and inbound NAT rules together, outbound rules,
 * and the members of one backend pool. Basic has no outbound rules (a SKU error already).
 */
export const COUNT_LIMITS = {
  Standard: { frontends: 600, rules: 1500, outboundRules: 600, poolMembers: 5000 },
  Basic: { frontends: 200, rules: 250, outboundRules: undefined, poolMembers: 300 },
} as const;

export function checkCounts(loadBalancers: readonly LoadBalancerModel[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  const over = (
    count: number,
    limit: number | undefined,
    path: string,
    what: string,
    owner: string,
    sku: string,
  ): void => {
    if (limit === undefined || count <= limit) return;
    out.push(
      diagnostic(
        'SLUICE_CONFIG_COUNT_LIMIT',
        path,
        `${owner} has ${count} ${what}: a ${sku} load balancer allows at most ${limit}`,
      ),
    );
  };
  for (const lb of loadBalancers) {
    const limits = COUNT_LIMITS[lb.sku];
    const owner = `loadBalancers '${lb.name}'`;
    const at = (kind: string): string => join(lb.path, 'properties', kind);
    over(
      lb.frontends.length,
      limits.frontends,
      at('frontendIPConfigurations'),
      'frontend IP configurations',
      owner,
      lb.sku,
    );
    over(
      lb.rules.length + lb.natRules.length,
      limits.rules,
      at(lb.natRules.length > lb.rules.length ? 'inboundNatRules' : 'loadBalancingRules'),
      'load-balancing and inbound NAT rules',
      owner,
      lb.sku,
    );
    over(lb.outboundRules.length, limits.outboundRules, at('outboundRules'), 'outbound rules', owner, lb.sku);
    for (const pool of lb.pools)
      over(
        pool.members.length,
        limits.poolMembers,
        join(pool.path, 'properties', 'loadBalancerBackendAddresses'),
        'members',
        `${owner} backendAddressPools '${pool.name}'`,
        lb.sku,
      );
  }
  return out;
}
