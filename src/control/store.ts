/**
 * The desired state: every ARM resource Sluice was given, by id. A change is compiled together
 * with everything else stored, applied to the running load balancer, written to the state store
 * (a file, or a store other instances share), and only then becomes the stored state; a failure
 * at any step leaves the store, the running state and the stored state as they were. Changes are
 * serialised: one at a time, in arrival order, and so are generations that other instances wrote
 * to a shared store (`adopt`).
 */
import {
  checkResourceDepth,
  invalidNameMessage,
  isRecord,
  nameProblem,
  normalizeDocument,
  type ValidationResult,
} from '../config/index.js';
import { SluiceError, type Diagnostic } from '../core/errors.js';
import type { RuntimeSnapshot } from '../core/snapshot.js';
import {
  ApiError,
  DEFAULT_RESOURCE_GROUP,
  DEFAULT_SUBSCRIPTION,
  RESOURCE_TYPES,
  idKey,
  newEtag,
  parseResourceId,
  resourceId,
  resourceSegment,
  type ArmErrorDetail,
  type ResourceRef,
} from './arm.js';
import type { StateContents, StoredResource } from './state.js';
import { httpStatusOf } from './status.js';

export interface StoreOptions {
  /** Validates and compiles a whole document, with the `--map` arguments stored with the state. */
  compile(document: { resources: unknown[] }, map: readonly string[]): ValidationResult;
  /** Makes the running load balancer serve `snapshot`; rejects when it cannot (nothing changed). */
  apply(snapshot: RuntimeSnapshot, generation: number): Promise<void>;
  /**
   * Writes the state durably over the stored state of revision `basis` (what `load`, `adopt` or
   * the last write left; 0 when nothing is stored, and always 0 for a file). Resolves with the
   * revision written, if the store has revisions; rejects with StaleState when the stored state
   * is no longer `basis` (another instance wrote since), with a SluiceError otherwise.
   */
  persist?(state: StateContents, basis: number): Promise<number | void>;
  /** Why a write cannot be made now (the shared store is unreachable), checked before anything is applied. */
  writable?(): SluiceError | undefined;
  /** A change was rejected by validation (for metrics and logs). */
  rejected?(errors: readonly Diagnostic[]): void;
}

/**
 * What a shared store answers a write made over an old revision: the state it holds now (none
 * when its key was deleted) and that state's revision. The change is made again over it.
 */
export class StaleState extends Error {
  constructor(
    readonly latest: StateContents | undefined,
    readonly revision: number,
  ) {
    super(`the stored state changed (now revision ${revision})`);
    this.name = 'StaleState';
  }
}

/** What became of a generation another instance stored. */
export type AdoptOutcome =
  | { readonly result: 'applied' | 'known' }
  /** Not served: invalid here, or the data plane refused it; the last one served goes on. */
  | {
      readonly result: 'invalid' | 'failed';
      readonly message: string;
      readonly errors: readonly Diagnostic[];
    };

/** How many times one change is made again over a newer stored state before it gives up. */
const MAX_STALE_RETRIES = 8;

export interface Preconditions {
  readonly ifMatch?: string | undefined;
  readonly ifNoneMatch?: string | undefined;
}

/** Where a deployment goes: resources of its template without an id are filed here. */
export interface DeploymentScope {
  readonly subscription: string;
  readonly resourceGroup: string;
}

export type DeploymentChange = 'added' | 'changed' | 'unchanged';

/** What a deployment did to one resource of its template, in template order. */
export interface DeployedResource {
  readonly resource: StoredResource;
  readonly change: DeploymentChange;
  /** Top-level properties (`properties.X`, or `sku`, `tags`...) that differ; empty unless changed. */
  readonly changedProperties: readonly string[];
}

export interface DeploymentResult {
  /** The generation serving the result: unchanged when nothing changed. */
  readonly generation: number;
  readonly resources: readonly DeployedResource[];
}

/**
 * Keys a template resource may carry that are instructions to ARM's deployment engine, not part
 * of the resource: one request applies everything at once, so there is no order to depend on.
 */
const TEMPLATE_ONLY = new Set(['apiVersion', 'dependsOn', 'comments']);

export const EMPTY_SNAPSHOT: RuntimeSnapshot = Object.freeze({
  loadBalancers: Object.freeze([]),
  natGateways: Object.freeze([]),
});

const ENVELOPE = new Set(['id', 'name', 'type', 'etag']);

function bodyOf(nested: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(nested).filter(([k]) => !ENVELOPE.has(k)));
}

/** The document the compiler sees for a set of stored resources. */
export function documentOf(resources: readonly StoredResource[]): { resources: unknown[] } {
  return {
    resources: resources.map((r) => ({
      ...(r.implicitId === true ? {} : { id: r.id }),
      name: r.name,
      type: r.type,
      ...r.body,
    })),
  };
}

/** Compiles, treating a set with no load balancer (yet, or any more) as an empty configuration. */
function compileSet(
  options: StoreOptions,
  resources: readonly StoredResource[],
  map: readonly string[],
): ValidationResult {
  const result = options.compile(documentOf(resources), map);
  if (result.valid) return result;
  const real = result.errors.filter((d) => d.code !== 'SLUICE_CONFIG_NO_LOAD_BALANCER');
  if (real.length > 0) return { ...result, errors: real };
  return { valid: true, errors: [], warnings: result.warnings, snapshot: EMPTY_SNAPSHOT };
}

/**
 * The resources of a `sluice run` document, filed under the subscription and resource group
 * their ids name, or the defaults when they have none.
 */
export function resourcesOfDocument(json: unknown): StoredResource[] {
  const { document } = normalizeDocument(json);
  const byKey = new Map<string, StoredResource>();
  document.resources.forEach((raw, i) => {
    if (!isRecord(raw)) return;
    const rawType = typeof raw['type'] === 'string' ? raw['type'] : RESOURCE_TYPES.loadBalancers;
    const rawId = typeof raw['id'] === 'string' ? raw['id'] : undefined;
    const parsed = rawId === undefined ? undefined : parseResourceId(rawId);
    const segment = parsed?.segment ?? resourceSegment(rawType.replace(/^Microsoft\.Network\//i, ''));
    const name = typeof raw['name'] === 'string' ? raw['name'] : (parsed?.name ?? `resource-${i}`);
    const implicitId = rawId === undefined;
    const scope = `/subscriptions/${DEFAULT_SUBSCRIPTION}/resourceGroups/${DEFAULT_RESOURCE_GROUP}`;
    const id =
      rawId ??
      (segment !== undefined
        ? resourceId({
            subscription: DEFAULT_SUBSCRIPTION,
            resourceGroup: DEFAULT_RESOURCE_GROUP,
            segment,
            name,
          })
        : `${scope}/providers/${rawType}/${name}`);
    const type = segment !== undefined ? RESOURCE_TYPES[segment] : rawType;
    byKey.set(idKey(id), {
      id,
      type,
      name,
      etag: newEtag(),
      ...(implicitId ? { implicitId: true } : {}),
      body: bodyOf(raw),
    });
  });
  return [...byKey.values()];
}

/**
 * A change that would put two load balancers on one frontend conflicts with what is stored
 * rather than being malformed: 409, as ARM answers a request that conflicts with the current
 * state. Any other invalid result is 400.
 */
function validationError(
  result: ValidationResult,
  resources: readonly StoredResource[],
  targetIndex: number,
  verb: string,
): ApiError {
  const details: ArmErrorDetail[] = result.errors.map((d) => {
    const m = /^\/resources\/(\d+)(.*)$/.exec(d.path);
    let target = d.path;
    if (m) {
      const i = Number(m[1]);
      target = i === targetIndex ? m[2]! : `${resources[i]?.id ?? ''}#${m[2]!}`;
    }
    return { code: d.code, message: d.message, target };
  });
  const conflict = result.errors.find((d) => httpStatusOf(d.code) === 409);
  const first = conflict ?? result.errors[0];
  const count = `${result.errors.length} error${result.errors.length === 1 ? '' : 's'}`;
  return new ApiError(
    conflict === undefined ? 'SLUICE_API_VALIDATION' : 'SLUICE_API_CONFLICT',
    (conflict === undefined
      ? `${verb} would leave an invalid configuration (${count})`
      : `${verb} would leave two load balancers on one frontend (${count}); nothing changed`) +
      (first ? `; first: ${first.message}` : ''),
    {
      details,
      diagnostics: result.errors,
      ...(targetIndex >= 0 ? { target: resources[targetIndex]!.id } : {}),
    },
  );
}

/** JSON with sorted keys, so that two bodies compare by content alone. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isRecord(value))
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`)
      .join(',')}}`;
  return JSON.stringify(value) ?? 'null';
}

/** The top-level properties in which two bodies differ: `properties.X` as `X`, others by key. */
export function changedProperties(before: Record<string, unknown>, after: Record<string, unknown>): string[] {
  const changed: string[] = [];
  const differ = (a: Record<string, unknown>, b: Record<string, unknown>, skip?: string): string[] =>
    [...new Set([...Object.keys(a), ...Object.keys(b)])]
      .filter((k) => k !== skip && canonical(a[k]) !== canonical(b[k]))
      .sort();
  const props = (r: Record<string, unknown>): Record<string, unknown> =>
    isRecord(r['properties']) ? r['properties'] : {};
  changed.push(...differ(props(before), props(after)));
  changed.push(...differ(before, after, 'properties'));
  return changed;
}

/** A resource as the store keeps it: at `ref`, its body in ARM's nested shape, a new etag. */
function storedResource(ref: ResourceRef, body: Record<string, unknown>): StoredResource {
  const type = RESOURCE_TYPES[ref.segment];
  const { document } = normalizeDocument({ ...body, name: ref.name, type });
  const nested = document.resources[0];
  return {
    id: resourceId(ref),
    type,
    name: ref.name,
    etag: newEtag(),
    body: bodyOf(isRecord(nested) ? nested : {}),
  };
}

function etagMatches(header: string, etag: string): boolean {
  const strip = (s: string): string => s.trim().replace(/^W\//, '');
  return header.split(',').some((h) => h.trim() === '*' || strip(h) === strip(etag));
}

export class ResourceStore {
  // The stored state, as the API shows it: what the state store holds (as of `basis`).
  private resources = new Map<string, StoredResource>();
  private gen = 0;
  private map: readonly string[] = [];
  private seed: string | undefined;
  private basis = 0;
  // What runs: the same as the stored state, except after a generation another instance stored
  // that this one could not serve (`adopt`).
  private current: RuntimeSnapshot = EMPTY_SNAPSHOT;
  private servedGen = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: StoreOptions) {}

  /** The generation being served. */
  get generation(): number {
    return this.servedGen;
  }

  /** The generation stored: ahead of `generation` while a stored one could not be served. */
  get storedGeneration(): number {
    return this.gen;
  }

  /** The revision of the stored state in a shared store (0: none, or a file). */
  get revision(): number {
    return this.basis;
  }

  get snapshot(): RuntimeSnapshot {
    return this.current;
  }

  /**
   * Takes `contents` (stored at `revision`) as the stored state without applying it (the
   * caller starts the load balancer on the returned result). Nothing is taken when it does not
   * compile.
   */
  load(contents: StateContents, revision = 0): ValidationResult {
    const map = contents.map ?? [];
    const result = compileSet(this.options, contents.resources, map);
    if (!result.valid || result.snapshot === undefined) return result;
    this.take(contents, revision);
    this.current = result.snapshot;
    this.servedGen = contents.generation;
    return result;
  }

  contents(): StateContents {
    return {
      generation: this.gen,
      resources: [...this.resources.values()],
      ...(this.map.length > 0 ? { map: this.map } : {}),
      ...(this.seed !== undefined ? { seed: this.seed } : {}),
    };
  }

  /**
   * A generation another instance wrote to the shared store (`revision` there): validated and
   * applied through the same path as a change made here. It becomes the stored state either way,
   * since that is what the store holds and what the next change is made over; when it does not
   * validate or the data plane refuses it, the last generation served goes on being served.
   * A revision not newer than the one held is known already (this instance's own write).
   */
  adopt(contents: StateContents | undefined, revision: number): Promise<AdoptOutcome> {
    return this.serial(() => this.adoptNow(contents, revision));
  }

  private async adoptNow(contents: StateContents | undefined, revision: number): Promise<AdoptOutcome> {
    if (revision <= this.basis && revision !== 0) return { result: 'known' };
    if (contents === undefined) {
      // The key was deleted: nothing new to serve; the next change creates it again from here.
      this.basis = 0;
      return { result: 'known' };
    }
    this.take(contents, revision);
    const result = compileSet(this.options, contents.resources, contents.map ?? []);
    if (!result.valid || result.snapshot === undefined) {
      const count = `${result.errors.length} error${result.errors.length === 1 ? '' : 's'}`;
      const first = result.errors[0];
      return {
        result: 'invalid',
        message: `generation ${contents.generation} is not a valid configuration here (${count})${first ? `; first: ${first.message}` : ''}`,
        errors: result.errors,
      };
    }
    try {
      await this.options.apply(result.snapshot, contents.generation);
    } catch (err) {
      const errors = err instanceof SluiceError ? err.diagnostics : [];
      return { result: 'failed', message: (err as Error).message, errors };
    }
    this.current = result.snapshot;
    this.servedGen = contents.generation;
    return { result: 'applied' };
  }

  private take(contents: StateContents, revision: number): void {
    this.resources = new Map(contents.resources.map((r) => [idKey(r.id), r]));
    this.gen = contents.generation;
    this.map = contents.map ?? [];
    this.seed = contents.seed;
    this.basis = revision;
  }

  get(ref: ResourceRef): StoredResource | undefined {
    return this.resources.get(idKey(resourceId(ref)));
  }

  /** Resources of one type in a subscription, and in one resource group when given. */
  list(subscription: string, segment: ResourceRef['segment'], resourceGroup?: string): StoredResource[] {
    const prefix = idKey(
      resourceGroup === undefined
        ? `/subscriptions/${subscription}/`
        : `/subscriptions/${subscription}/resourceGroups/${resourceGroup}/`,
    );
    const type = RESOURCE_TYPES[segment].toLowerCase();
    return [...this.resources.values()].filter(
      (r) => idKey(r.id).startsWith(prefix) && r.type.toLowerCase() === type,
    );
  }

  /** Creates or replaces a resource. Resolves with `created` and the stored resource. */
  put(
    ref: ResourceRef,
    body: unknown,
    pre: Preconditions = {},
  ): Promise<{ created: boolean; resource: StoredResource }> {
    return this.serialFresh(async () => {
      if (!isRecord(body))
        throw new ApiError(
          'SLUICE_API_BAD_REQUEST',
          'the request body must be a JSON object (an ARM resource)',
        );
      const id = resourceId(ref);
      // Everything from here on walks the body recursively; a body nested too deep goes no further.
      const deep = checkResourceDepth(body);
      if (deep !== undefined) {
        this.options.rejected?.([deep]);
        const at = deep.path.length > 120 ? `${deep.path.slice(0, 117)}...` : deep.path;
        throw new ApiError(
          'SLUICE_API_VALIDATION',
          `this PUT is not a valid resource: at ${at}, ${deep.message}`,
          {
            target: id,
            details: [{ code: deep.code, message: deep.message, target: deep.path }],
            diagnostics: [deep],
          },
        );
      }
      const key = idKey(id);
      const existing = this.resources.get(key);
      this.checkPreconditions(existing, pre, id);
      const resource = storedResource(ref, body);
      const next = new Map(this.resources);
      next.set(key, resource);
      const list = [...next.values()];
      await this.commit(list, list.indexOf(resource), 'this PUT');
      return { created: existing === undefined, resource };
    });
  }

  /** Deletes a resource; resolves false when there was none. */
  delete(ref: ResourceRef, pre: Preconditions = {}): Promise<boolean> {
    return this.serialFresh(async () => {
      const id = resourceId(ref);
      const key = idKey(id);
      const existing = this.resources.get(key);
      this.checkPreconditions(existing, pre, id);
      if (existing === undefined) return false;
      const next = new Map(this.resources);
      next.delete(key);
      await this.commit([...next.values()], -1, `deleting ${id}`);
      return true;
    });
  }

  /**
   * Creates or replaces every resource of a template as one change: validated together with
   * the rest of the stored state, applied as one generation and stored once. On any error
   * nothing changes. Resources of the store the template does not name stay as they are (ARM's
   * Incremental mode).
   */
  deploy(scope: DeploymentScope, template: unknown): Promise<DeploymentResult> {
    return this.serialFresh(async () => {
      const parsed = this.parseTemplate(scope, template);
      const next = new Map(this.resources);
      const deployed: DeployedResource[] = [];
      for (const resource of parsed) {
        const existing = this.resources.get(idKey(resource.id));
        const changed = existing === undefined ? [] : changedProperties(existing.body, resource.body);
        if (existing !== undefined && changed.length === 0) {
          // The same resource again keeps its etag: nothing about it changed.
          deployed.push({ resource: existing, change: 'unchanged', changedProperties: [] });
          continue;
        }
        next.set(idKey(resource.id), resource);
        deployed.push({
          resource,
          change: existing === undefined ? 'added' : 'changed',
          changedProperties: changed,
        });
      }
      if (deployed.every((d) => d.change === 'unchanged'))
        return { generation: this.gen, resources: deployed };
      await this.commit([...next.values()], -1, 'this deployment');
      return { generation: this.gen, resources: deployed };
    });
  }

  /** The resources of `properties.template.resources`, normalised as a single PUT's body is. */
  private parseTemplate(scope: DeploymentScope, template: unknown): StoredResource[] {
    const at = (i: number): string => `/properties/template/resources/${i}`;
    const list = isRecord(template) ? template['resources'] : undefined;
    if (!Array.isArray(list))
      throw new ApiError(
        'SLUICE_API_INVALID_TEMPLATE',
        'a deployment needs properties.template.resources, an array of resources',
        { target: '/properties/template/resources' },
      );
    const problems: ArmErrorDetail[] = [];
    const problem = (i: number, message: string): void => {
      problems.push({ code: 'SLUICE_API_INVALID_TEMPLATE', message, target: at(i) });
    };
    const refs: (ResourceRef | undefined)[] = list.map((raw, i) => {
      if (!isRecord(raw)) return (problem(i, 'a resource must be a JSON object'), undefined);
      const typeText = typeof raw['type'] === 'string' ? raw['type'] : undefined;
      const typeSegment =
        typeText === undefined
          ? undefined
          : /^Microsoft\.Network\//i.test(typeText)
            ? resourceSegment(typeText.replace(/^Microsoft\.Network\//i, ''))
            : undefined;
      if (typeText !== undefined && typeSegment === undefined)
        return (problem(i, `type '${typeText}' is not served by Sluice`), undefined);
      if (typeof raw['id'] === 'string') {
        const ref = parseResourceId(raw['id']);
        if (ref === undefined)
          return (
            problem(i, `'${raw['id']}' is not the id of a Microsoft.Network resource Sluice serves`),
            undefined
          );
        if (typeSegment !== undefined && typeSegment !== ref.segment)
          return (problem(i, `type '${typeText!}' does not match the id '${raw['id']}'`), undefined);
        const nameProblemText = nameProblem(ref.name);
        if (nameProblemText !== undefined)
          return (problem(i, invalidNameMessage(`the ${ref.segment}`, ref.name, nameProblemText)), undefined);
        return ref;
      }
      const name = raw['name'];
      if (typeof name !== 'string') return (problem(i, 'a resource needs an id or a name'), undefined);
      const segment = typeSegment ?? 'loadBalancers';
      const nameProblemText = nameProblem(name);
      if (nameProblemText !== undefined)
        return (problem(i, invalidNameMessage(`the ${segment}`, name, nameProblemText)), undefined);
      return { ...scope, segment, name };
    });
    const seen = new Map<string, number>();
    refs.forEach((ref, i) => {
      if (ref === undefined) return;
      const key = idKey(resourceId(ref));
      const first = seen.get(key);
      if (first !== undefined)
        problem(i, `${resourceId(ref)} is also resource ${first}; give each resource once`);
      else seen.set(key, i);
    });
    if (problems.length > 0)
      throw new ApiError(
        'SLUICE_API_INVALID_TEMPLATE',
        `this deployment's template cannot be deployed (${problems.length} problem${problems.length === 1 ? '' : 's'}); first: ${problems[0]!.message}; nothing changed`,
        { details: problems },
      );
    // Every resource is walked recursively from here on: each is checked for depth first.
    const deep = list.flatMap((raw, i) => {
      const d = checkResourceDepth(raw);
      return d === undefined ? [] : [{ d, id: resourceId(refs[i]!) }];
    });
    if (deep.length > 0) {
      this.options.rejected?.(deep.map((x) => x.d));
      throw new ApiError(
        'SLUICE_API_VALIDATION',
        `this deployment holds a resource nested too deep (${deep[0]!.id}); nothing changed`,
        {
          details: deep.map(({ d, id }) => ({ code: d.code, message: d.message, target: `${id}#${d.path}` })),
          diagnostics: deep.map((x) => x.d),
        },
      );
    }
    return (list as Record<string, unknown>[]).map((raw, i) =>
      storedResource(
        refs[i]!,
        Object.fromEntries(Object.entries(raw).filter(([k]) => !TEMPLATE_ONLY.has(k))),
      ),
    );
  }

  private checkPreconditions(existing: StoredResource | undefined, pre: Preconditions, id: string): void {
    if (pre.ifMatch !== undefined && (existing === undefined || !etagMatches(pre.ifMatch, existing.etag))) {
      throw new ApiError(
        'SLUICE_API_PRECONDITION_FAILED',
        existing === undefined
          ? `If-Match: ${id} does not exist`
          : `If-Match ${pre.ifMatch} does not match the current etag ${existing.etag}`,
        { target: id },
      );
    }
    if (
      pre.ifNoneMatch !== undefined &&
      existing !== undefined &&
      etagMatches(pre.ifNoneMatch, existing.etag)
    ) {
      throw new ApiError(
        'SLUICE_API_PRECONDITION_FAILED',
        `If-None-Match: ${id} exists (etag ${existing.etag})`,
        {
          target: id,
        },
      );
    }
  }

  private async commit(list: StoredResource[], targetIndex: number, verb: string): Promise<void> {
    const result = compileSet(this.options, list, this.map);
    if (!result.valid || result.snapshot === undefined) {
      this.options.rejected?.(result.errors);
      throw validationError(result, list, targetIndex, verb);
    }
    // Nothing is applied that cannot be stored: the shared store is known to be unreachable.
    const down = this.options.writable?.();
    if (down !== undefined) throw new ApiError(down.code, down.message);
    const generation = this.gen + 1;
    try {
      await this.options.apply(result.snapshot, generation);
    } catch (err) {
      // The plane's own code (a listener, the host network...) goes in the details.
      const cause = err instanceof SluiceError ? [{ code: err.code, message: err.message }] : [];
      throw new ApiError('SLUICE_API_APPLY_FAILED', `nothing changed: ${(err as Error).message}`, {
        details: cause,
      });
    }
    const next: StateContents = {
      generation,
      resources: list,
      ...(this.map.length > 0 ? { map: this.map } : {}),
      ...(this.seed !== undefined ? { seed: this.seed } : {}),
    };
    let revision = 0;
    if (this.options.persist !== undefined) {
      try {
        revision = (await this.options.persist(next, this.basis)) ?? 0;
      } catch (err) {
        // The store still holds the previous state, so the running state goes back to it too.
        await this.options.apply(this.current, this.servedGen).catch(() => {});
        if (err instanceof StaleState) throw err;
        const code =
          err instanceof SluiceError && err.code.startsWith('SLUICE_STATE_')
            ? err.code
            : 'SLUICE_STATE_WRITE';
        throw new ApiError(code, (err as Error).message);
      }
    }
    this.take(next, revision);
    this.current = result.snapshot;
    this.servedGen = generation;
  }

  /**
   * Runs a change in turn; when a shared store says another instance stored a newer state
   * meanwhile, that state is adopted and the change is made again over it, preconditions and
   * validation included: a change is never written over a state it was not checked against.
   */
  private serialFresh<T>(fn: () => Promise<T>): Promise<T> {
    return this.serial(async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn();
        } catch (err) {
          if (!(err instanceof StaleState)) throw err;
          if (attempt > MAX_STALE_RETRIES)
            throw new ApiError(
              'SLUICE_STATE_CONTENDED',
              `the stored state changed on other instances ${attempt} times while this change was made; nothing changed; try again`,
            );
          await this.adoptNow(err.latest, err.revision);
        }
      }
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }
}
