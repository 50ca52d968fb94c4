import { readFile } from 'node:fs/promises';
import { diagnostic, type Diagnostic } from '../core/errors.js';
import { isRecord } from './json.js';
import { checkDocumentDepth } from './limits.js';
import { join, parent } from './pointer.js';

/**
 * Reading a document and bringing its three input forms (and the two shapes Azure prints)
 * to one: `{ "resources": [ ... ] }` with every resource and child in ARM's nested
 * `properties` shape. The later passes only ever see that form; `toSourcePath` carries
 * their JSON pointers back to the place in the file the user wrote.
 */

export type InputForm = 'resource' | 'array' | 'resources';

export const TYPE_LOAD_BALANCER = 'microsoft.network/loadbalancers';
export const TYPE_PUBLIC_IP = 'microsoft.network/publicipaddresses';
export const TYPE_NAT_GATEWAY = 'microsoft.network/natgateways';
export const TYPE_NETWORK_INTERFACE = 'microsoft.network/networkinterfaces';

export interface NormalizedDocument {
  readonly form: InputForm;
  /** `{ resources: [...] }`, nested form; paths of the later passes point into this. */
  readonly document: { readonly resources: readonly unknown[] };
  /** Maps a pointer into `document` to the pointer into the user's own JSON. */
  toSourcePath(path: string): string;
  /** Problems found while reading (template expressions, a document with no load balancer). */
  readonly diagnostics: readonly Diagnostic[];
}

export type ParseResult =
  { readonly ok: true; readonly json: unknown } | { readonly ok: false; readonly diagnostic: Diagnostic };

/** JSON.parse does not recurse; everything after it does, so the depth is checked here first. */
export function parseConfigText(text: string): ParseResult {
  let json: unknown;
  try {
    json = JSON.parse(text) as unknown;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return { ok: false, diagnostic: diagnostic('SLUICE_CONFIG_NOT_JSON', '', `not valid JSON: ${reason}`) };
  }
  const deep = checkDocumentDepth(json);
  return deep === undefined ? { ok: true, json } : { ok: false, diagnostic: deep };
}

export async function readConfigFile(file: string): Promise<ParseResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return {
      ok: false,
      diagnostic: diagnostic('SLUICE_CONFIG_UNREADABLE', '', `cannot read ${file}: ${reason}`),
    };
  }
  // A UTF-8 byte order mark is what some Windows editors and PowerShell redirections write.
  return parseConfigText(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
}

/** Keys that sit beside `properties` in ARM's shape; everything else is a property. */
const ENVELOPE_KEYS = new Set([
  'name',
  'id',
  'etag',
  'type',
  'location',
  'tags',
  'zones',
  'sku',
  'extendedLocation',
  'apiVersion',
  'dependsOn',
  'comments',
  'condition',
  'copy',
  'scope',
  'kind',
  'resourceGroup',
  'subscriptionId',
  'systemData',
  'managedBy',
  'identity',
  'properties',
]);

/** A load balancer's child arrays Sluice models, in the order ARM prints them. */
export const LB_CHILD_KINDS = [
  'frontendIPConfigurations',
  'backendAddressPools',
  'probes',
  'loadBalancingRules',
  'inboundNatRules',
  'outboundRules',
] as const;

/** Every load balancer child array whose elements are sub-resources with ids (NAT pools are read, not run). */
export const LB_CHILD_ARRAYS = [...LB_CHILD_KINDS, 'inboundNatPools'] as const;

/** Child arrays whose elements are ARM sub-resources with their own `properties`. */
const CHILD_ARRAYS: Readonly<Record<string, readonly string[]>> = {
  [TYPE_LOAD_BALANCER]: LB_CHILD_ARRAYS,
  [TYPE_NETWORK_INTERFACE]: ['ipConfigurations'],
};
const POOL_MEMBER_ARRAY = 'loadBalancerBackendAddresses';

/** A template expression is a string in brackets; ARM reads "[[" as an escaped literal bracket. */
export function isTemplateExpression(s: string): boolean {
  return s.length >= 2 && s.startsWith('[') && !s.startsWith('[[') && s.endsWith(']');
}

function findTemplateExpressions(value: unknown, path: string, out: Diagnostic[]): void {
  if (typeof value === 'string') {
    if (isTemplateExpression(value)) {
      const shown = value.length > 80 ? value.slice(0, 77) + '...' : value;
      out.push(
        diagnostic(
          'SLUICE_CONFIG_TEMPLATE_EXPRESSION',
          path,
          `template expression ${JSON.stringify(shown)} is not evaluated: Sluice reads deployed values; ` +
            'export the deployed resource (az network lb show, or an ARM GET) or substitute the value',
        ),
      );
    }
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => findTemplateExpressions(v, join(path, i), out));
  } else if (isRecord(value)) {
    for (const [k, v] of Object.entries(value)) findTemplateExpressions(v, join(path, k), out);
  }
}

/** Records, for the nested form we build, where each piece was in the user's JSON. */
class PathMap {
  private readonly prefixes = new Map<string, string>();

  add(normalized: string, source: string): void {
    this.prefixes.set(normalized, source);
  }

  toSource(path: string): string {
    // Walk up to the longest recorded prefix; what lies below it was copied as it was.
    let probe = path;
    for (;;) {
      const hit = this.prefixes.get(probe);
      if (hit !== undefined) return hit + path.slice(probe.length);
      if (probe === '') return path;
      probe = parent(probe);
    }
  }
}

function resourceType(v: unknown): string | undefined {
  if (!isRecord(v)) return undefined;
  const t = v['type'];
  return typeof t === 'string' ? t.toLowerCase() : undefined;
}

/**
 * `az network lb show` prints sub-resources flattened (properties beside `name` and `id`);
 * ARM's REST API and templates nest them under `properties`. An object with no `properties`
 * and at least one non-envelope key is the flattened shape.
 */
function isFlattened(v: Record<string, unknown>): boolean {
  if (Object.hasOwn(v, 'properties')) return false;
  return Object.keys(v).some((k) => !ENVELOPE_KEYS.has(k));
}

function nest(
  v: unknown,
  normalizedPath: string,
  sourcePath: string,
  paths: PathMap,
  childArrays: readonly string[],
  grandChildArrays: Readonly<Record<string, readonly string[]>>,
): unknown {
  paths.add(normalizedPath, sourcePath);
  if (!isRecord(v)) return v;
  const flattened = isFlattened(v);
  const out: Record<string, unknown> = {};
  const props: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(v)) {
    if (flattened && !ENVELOPE_KEYS.has(k)) props[k] = val;
    else out[k] = val;
  }
  const propsPath = join(normalizedPath, 'properties');
  const propsSource = flattened ? sourcePath : join(sourcePath, 'properties');
  let properties: unknown = flattened ? props : v['properties'];
  if (flattened) {
    out['properties'] = props;
    for (const k of Object.keys(props)) paths.add(join(propsPath, k), join(sourcePath, k));
  }
  if (isRecord(properties)) {
    const copy: Record<string, unknown> = { ...properties };
    for (const key of childArrays) {
      const arr = copy[key];
      if (!Array.isArray(arr)) continue;
      copy[key] = arr.map((child, i) =>
        nest(
          child,
          join(propsPath, key, i),
          join(propsSource, key, i),
          paths,
          grandChildArrays[key] ?? [],
          {},
        ),
      );
    }
    properties = copy;
    out['properties'] = properties;
  }
  return out;
}

/**
 * ARM GETs and az print `null` for every optional property left unset; null means "absent"
 * to ARM, so it does here. A null array element is kept: that one is a real mistake.
 */
function dropNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropNulls);
  if (!isRecord(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(v)) if (val !== null) out[k] = dropNulls(val);
  return out;
}

function normalizeResource(raw: unknown, index: number, sourcePath: string, paths: PathMap): unknown {
  const v = dropNulls(raw);
  const type = resourceType(v) ?? TYPE_LOAD_BALANCER;
  // A type is the document's text: `__proto__` or `constructor` must not reach Object's own.
  const children = Object.hasOwn(CHILD_ARRAYS, type) ? CHILD_ARRAYS[type]! : [];
  return nest(v, join('/resources', index), sourcePath, paths, children, {
    backendAddressPools: [POOL_MEMBER_ARRAY],
  });
}

function formOf(json: unknown): InputForm {
  if (Array.isArray(json)) return 'array';
  return isRecord(json) && Array.isArray(json['resources']) ? 'resources' : 'resource';
}

/** One LB resource, an array of resources, or `{ "resources": [...] }`, to one nested form. */
export function normalizeDocument(json: unknown): NormalizedDocument {
  // Every walk below recurses: a document nested too deep is refused before any of them.
  const deep = checkDocumentDepth(json);
  if (deep !== undefined)
    return { form: formOf(json), document: { resources: [] }, toSourcePath: (p) => p, diagnostics: [deep] };
  const diagnostics: Diagnostic[] = [];
  findTemplateExpressions(json, '', diagnostics);
  const paths = new PathMap();
  const form = formOf(json);
  let items: { value: unknown; source: string }[];
  if (form === 'array') items = (json as unknown[]).map((value, i) => ({ value, source: join('', i) }));
  else if (form === 'resources')
    items = ((json as Record<string, unknown>)['resources'] as unknown[]).map((value, i) => ({
      value,
      source: join('', 'resources', i),
    }));
  else items = [{ value: json, source: '' }];
  // An ARM template keeps child resources and unrelated types beside the load balancer.
  const resources = items.map((item, i) => normalizeResource(item.value, i, item.source, paths));
  const hasLb = items.some((item) => {
    const t = resourceType(item.value);
    return (
      t === TYPE_LOAD_BALANCER ||
      (t === undefined && form === 'resource' && isRecord(item.value)) ||
      (t === undefined && isRecord(item.value) && looksLikeLoadBalancer(item.value))
    );
  });
  // A VM with a public IP of its own (no load balancer) is a path Sluice serves too.
  const hasInstancePublicIp = items.some(
    (item, i) => resourceType(item.value) === TYPE_NETWORK_INTERFACE && nicHasPublicIp(resources[i]),
  );
  if (!hasLb && !hasInstancePublicIp) {
    diagnostics.push(
      diagnostic(
        'SLUICE_CONFIG_NO_LOAD_BALANCER',
        '',
        form === 'resource'
          ? 'the document is not a Microsoft.Network/loadBalancers resource (nor a networkInterfaces resource with a public IP)'
          : 'the document holds no Microsoft.Network/loadBalancers resource (nor a networkInterfaces resource with a public IP)',
      ),
    );
  }
  return {
    form,
    document: { resources },
    toSourcePath: (p) => paths.toSource(p),
    diagnostics,
  };
}

/** A resource without `type` (hand-written) counts as a load balancer when it has LB children. */
export function looksLikeLoadBalancer(v: Record<string, unknown>): boolean {
  const props = isRecord(v['properties']) ? v['properties'] : v;
  return (
    Array.isArray(props['frontendIPConfigurations']) ||
    Array.isArray(props['loadBalancingRules']) ||
    Array.isArray(props['backendAddressPools'])
  );
}

/** A normalized networkInterfaces resource with an instance-level public IP on an ip configuration. */
function nicHasPublicIp(resource: unknown): boolean {
  if (!isRecord(resource)) return false;
  const props = resource['properties'];
  const configs = isRecord(props) ? props['ipConfigurations'] : undefined;
  return (
    Array.isArray(configs) &&
    configs.some((c) => {
      const p = isRecord(c) ? c['properties'] : undefined;
      return isRecord(p) && isRecord(p['publicIPAddress']);
    })
  );
}
