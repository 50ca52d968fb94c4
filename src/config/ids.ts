import { str, type Rec } from './json.js';

/**
 * ARM id identity: how a reference finds the resource it names. ARM compares ids
 * case-insensitively; a trailing slash or surrounding blanks do not make another id.
 */

const PROVIDERS = '/providers/';
const SYNTHETIC_SCOPE = '/subscriptions/unknown/resourcegroups/unknown';

export function normId(id: string): string {
  return id.trim().replace(/\/+$/, '').toLowerCase();
}

/** The part of an ARM id from `/providers/` on, which names a resource inside its scope. */
function tailOf(key: string): string {
  const i = key.indexOf(PROVIDERS);
  return i < 0 ? key : key.slice(i);
}

/**
 * ARM ids, compared case-insensitively as ARM does. A resource that states no `id` (a
 * hand-written document) answers to any id with its provider path, whatever the
 * subscription and resource group say.
 */
export class IdIndex<T> {
  private readonly exact = new Map<string, T>();
  private readonly loose = new Map<string, T>();

  add(key: string, item: T, ownIdKnown: boolean, alias?: string): void {
    if (!this.exact.has(key)) this.exact.set(key, item);
    if (alias !== undefined && !this.exact.has(alias)) this.exact.set(alias, item);
    if (!ownIdKnown && !this.loose.has(tailOf(key))) this.loose.set(tailOf(key), item);
  }

  get(ref: string): T | undefined {
    const key = normId(ref);
    return this.exact.get(key) ?? this.loose.get(tailOf(key));
  }
}

/**
 * A top-level resource's key and id: its own `id`, or, when it states none, a synthetic one in
 * an unknown scope (`known: false`), which IdIndex lets any scope's reference reach.
 */
export function resourceKey(res: Rec, provider: string): { key: string; id: string; known: boolean } {
  const own = str(res, 'id');
  if (own !== undefined && own.trim() !== '') return { key: normId(own), id: own, known: true };
  const name = str(res, 'name') ?? '';
  const id = `${SYNTHETIC_SCOPE}${PROVIDERS}microsoft.network/${provider}/${name}`;
  return { key: normId(id), id, known: false };
}

/** A child's key (a frontend, a rule, a NIC ip configuration), derived from its parent's; its own `id` is an alias. */
export function childKey(parentKey: string, kind: string, name: string): string {
  return normId(`${parentKey}/${kind}/${name}`);
}

/** The key of the load balancer an id names a child of, if it names one. */
export function parentLoadBalancerKey(id: string): string | undefined {
  return /^(.*\/providers\/microsoft\.network\/loadbalancers\/[^/]+)\//.exec(normId(id))?.[1];
}

const SCALE_SET_NIC_CONFIG =
  /\/virtualmachinescalesets\/([^/]+)\/virtualmachines\/([^/]+)\/networkinterfaces\/([^/]+)\/ipconfigurations\/([^/]+)$/i;
const NIC_CONFIG = /\/networkinterfaces\/([^/]+)\/ipconfigurations\/([^/]+)$/i;

/**
 * The name `--map` knows a NIC ip configuration by: `nic/ipconfig`, and for an instance of a
 * virtual machine scale set (AKS node pools), whose NICs all share one name,
 * `scaleset/instance/nic/ipconfig`. Undefined for an id that names no ip configuration.
 */
export function nicConfigMapName(id: string): string | undefined {
  const trimmed = id.trim().replace(/\/+$/, '');
  const set = SCALE_SET_NIC_CONFIG.exec(trimmed);
  if (set !== null) return `${set[1]}/${set[2]}/${set[3]}/${set[4]}`;
  const nic = NIC_CONFIG.exec(trimmed);
  return nic === null ? undefined : `${nic[1]}/${nic[2]}`;
}

/**
 * The `az` command that prints the NICs of these ip configurations, in a form Sluice reads
 * beside the load balancer: `az network nic show --ids ...` (an array for several), or, for
 * a scale set's instances, `az vmss nic list`.
 */
export function nicShowCommand(configIds: readonly string[]): string {
  const nics = new Set<string>();
  const sets = new Set<string>();
  for (const id of configIds) {
    const trimmed = id.trim().replace(/\/+$/, '');
    const set = SCALE_SET_NIC_CONFIG.exec(trimmed);
    if (set !== null) {
      const group = /\/resourcegroups\/([^/]+)\//i.exec(trimmed)?.[1] ?? 'RESOURCE_GROUP';
      sets.add(`az vmss nic list -g ${group} --vmss-name ${set[1]!}`);
    } else nics.add(trimmed.replace(/\/ipconfigurations\/[^/]+$/i, ''));
  }
  return [...(nics.size > 0 ? [`az network nic show --ids ${[...nics].join(' ')}`] : []), ...sets].join('; ');
}
