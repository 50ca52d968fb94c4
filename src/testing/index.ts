/**
 * `sluice/testing`: a load balancer with Azure's idle semantics inside a Node test, on loopback,
 * on the proxy data plane, with a manual clock by default, so that a test reproduces in
 * milliseconds what four idle minutes do to its own clients (a reset, or a silent drop), with
 * no child process, no root and no sleep.
 *
 *   const lb = await startSluice(await idleReset('127.0.0.1:5432'));
 *   const pool = new pg.Pool(lb.frontend());
 *   ...
 *   await lb.advance('4m');   // resolves once both ends have their RST
 */
import { readFile } from 'node:fs/promises';
import { SluiceApp, type LogLevel } from '../app.js';
import { normalizeDocument, validateDocument } from '../config/index.js';
import { isRecord } from '../config/json.js';
import type { EndedFlow, SluiceEvent } from '../control/events.js';
import type { AdvanceResponse } from '../control/routes/clock.js';
import type { HealthView } from '../control/routes/health.js';
import { flowView, type FlowView } from '../control/server.js';
import { ManualClock } from '../core/clock.js';
import { parseDuration } from '../core/duration.js';
import { SluiceError } from '../core/errors.js';
import type { RuntimeSnapshot } from '../core/snapshot.js';
import { proxyPlaneModule } from '../dataplane/proxy/module.js';
import type { DataPlane } from '../dataplane/plane.js';

export { idleDrop, idleReset, inFront, type Backend, type InFrontOptions } from './scenarios.js';
export type { AdvanceResponse, EndedFlow, FlowView, HealthView, SluiceEvent };

export interface StartOptions {
  /** `manual` (the default): the balancer's time stands still until `advance`. `system`: it runs. */
  readonly clock?: 'manual' | 'system';
  /** With the system clock: load-balancer milliseconds per real millisecond. */
  readonly timeScale?: number;
  /** `--map OLD=NEW` arguments: serve an exported document's addresses on loopback. */
  readonly map?: readonly string[];
  /** How long a quiet UDP flow lives, in load-balancer milliseconds (4 minutes). */
  readonly udpFlowTimeoutMs?: number;
  /** The balancer's log; silent unless asked. */
  readonly logLevel?: LogLevel;
}

/** Where a test connects to reach a rule: a `{ host, port }` that net.connect and most clients take. */
export interface FrontendAddress {
  readonly host: string;
  readonly port: number;
}

/** A backend member: by its name in the document, or its address. */
export type MemberName = string;

/** What `startSluice` gives: the balancer, and the handles a test drives it by. */
export interface TestBalancer {
  /** The frontend of `rule` (by name; the only rule when there is one). */
  frontend(rule?: string): FrontendAddress;
  /** Every served rule's name. */
  readonly rules: readonly string[];
  /** The balancer's time, in milliseconds. */
  now(): number;
  /**
   * Moves the manual clock by `by` (milliseconds, or `'4m'`, `'90s'`, `'1h30m'`), running every
   * idle timeout, drain and probe interval due on the way; resolves once the flows it ended are
   * reset (both ends have their RST) or blackholed, with those flows.
   */
  advance(by: number | string): Promise<AdvanceResponse>;
  /** Ends one flow now, as its idle timeout would (reset or silent drop). */
  expire(flow: number | Pick<FlowView, 'id'>): Promise<EndedFlow | undefined>;
  /** The live flows, as GET /sluice/v1/flows lists them. */
  flows(): FlowView[];
  /** Every event so far (flow.created, flow.expired, flow.closed, probe.up/down, config.applied...). */
  readonly events: readonly SluiceEvent[];
  /**
   * The next event of `type` (or matching `match`) after the one the last `waitFor` returned,
   * among those already published or to come; rejects after `timeoutMs` of real time (2000).
   */
  waitFor(match: string | ((e: SluiceEvent) => boolean), timeoutMs?: number): Promise<SluiceEvent>;
  /** What the probes say of every probed member. */
  health(): HealthView[];
  /** Sets a probed member's probe verdict by hand (the first member when none is named) until `clearMark`. */
  markDown(member?: MemberName): void;
  markUp(member?: MemberName): void;
  clearMark(member?: MemberName): void;
  /**
   * Removes a member from its pool, as a scale-in does: no new flows; its flows go on for the
   * pool's drainPeriodInSeconds of the balancer's time, then are reset.
   */
  drain(member?: MemberName): Promise<void>;
  /** A member's adminState: `Down` takes it out at once (its flows are reset), `Up`/`None` back. */
  setAdminState(state: 'Up' | 'Down' | 'None', member?: MemberName): Promise<void>;
  /** A live change of a rule's idle timeout (the only rule when none is named). */
  setIdleTimeout(minutes: number, rule?: string): Promise<void>;
  /** Replaces the whole configuration, validated as `sluice validate` does; throws with every error. */
  apply(document: unknown): Promise<void>;
  /** Warnings of the last configuration applied (what the proxy plane leaves out, unused --map...). */
  readonly warnings: readonly string[];
  stop(): Promise<void>;
}

/** A document, or the path of a file holding one, made ready for the proxy plane. */
function compile(
  document: unknown,
  map: readonly string[],
): { snapshot: RuntimeSnapshot; warnings: string[] } {
  const result = validateDocument(document, { map });
  if (!result.valid || result.snapshot === undefined)
    throw new SluiceError(
      result.errors[0]?.code ?? 'SLUICE_CONFIG_INVALID_VALUE',
      `the document is not a valid configuration:\n${result.errors
        .map((d) => `${d.path === '' ? '(document)' : d.path}: ${d.message} [${d.code}]`)
        .join('\n')}`,
    );
  const warnings = result.warnings.map((w) => `${w.path}: ${w.message} [${w.code}]`);
  const plane = proxyPlaneModule;
  const adapted = plane.adapt?.(result.snapshot, {}) ?? result.snapshot;
  if (plane.unsupported(adapted).length === 0 || plane.partial === undefined)
    return { snapshot: adapted, warnings };
  const partial = plane.partial(adapted);
  return { snapshot: partial.snapshot, warnings: [...warnings, ...partial.warnings] };
}

async function documentOf(input: unknown): Promise<unknown> {
  if (typeof input !== 'string') return input;
  return JSON.parse(await readFile(input, 'utf8')) as unknown;
}

/** The resources of a document in ARM's nested form, to change one property and apply again. */
function nestedResources(document: unknown): Record<string, unknown>[] {
  const { document: normalized } = normalizeDocument(document);
  return structuredClone(normalized.resources).filter(isRecord);
}

function childrenOf(resource: Record<string, unknown>, kind: string): Record<string, unknown>[] {
  const props = resource['properties'];
  const list = isRecord(props) ? props[kind] : undefined;
  return Array.isArray(list) ? list.filter(isRecord) : [];
}

function propsOf(child: Record<string, unknown>): Record<string, unknown> {
  if (!isRecord(child['properties'])) child['properties'] = {};
  return child['properties'] as Record<string, unknown>;
}

class Harness implements TestBalancer {
  readonly events: SluiceEvent[] = [];
  warnings: string[];
  private cursor = 0;
  private document: unknown;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly app: SluiceApp<DataPlane>,
    document: unknown,
    warnings: string[],
    private readonly map: readonly string[],
  ) {
    this.document = document;
    this.warnings = warnings;
    this.unsubscribe = app.events.subscribe((e) => this.events.push(e));
  }

  get rules(): string[] {
    return this.served().map((r) => r.name);
  }

  private served(): { name: string; host: string; port: number }[] {
    return this.app.engine.snapshot.loadBalancers.flatMap((lb) => [
      ...lb.loadBalancingRules
        .filter((r) => !r.haPorts)
        .map((r) => ({ name: r.name, host: r.frontend.address, port: r.frontendPort })),
      ...lb.inboundNatRules.map((r) => ({
        name: r.name,
        host: r.frontend.address,
        port: r.frontendPortStart,
      })),
    ]);
  }

  frontend(rule?: string): FrontendAddress {
    const rules = this.served();
    const found =
      rule === undefined ? (rules.length === 1 ? rules[0] : undefined) : rules.find((r) => r.name === rule);
    if (found === undefined)
      throw new Error(
        rule === undefined
          ? `name the rule: the balancer serves ${rules.map((r) => r.name).join(', ') || 'no rule'}`
          : `no served rule is called '${rule}' (there are: ${rules.map((r) => r.name).join(', ') || 'none'})`,
      );
    return { host: found.host, port: found.port };
  }

  now(): number {
    return this.app.clock.now();
  }

  advance(by: number | string): Promise<AdvanceResponse> {
    const ms = typeof by === 'number' ? by : parseDuration(by);
    if (typeof ms !== 'number') throw new RangeError(`advance(${JSON.stringify(by)}): ${ms.error}`);
    return this.app.advanceClock(ms);
  }

  expire(flow: number | Pick<FlowView, 'id'>): Promise<EndedFlow | undefined> {
    return this.app.expireFlow(typeof flow === 'number' ? flow : flow.id);
  }

  flows(): FlowView[] {
    return this.app.engine.flows().map((f) => flowView(f, (id) => this.app.labelsOf(id)));
  }

  waitFor(match: string | ((e: SluiceEvent) => boolean), timeoutMs = 2000): Promise<SluiceEvent> {
    const test = typeof match === 'string' ? (e: SluiceEvent) => e.type === match : match;
    return new Promise((resolve, reject) => {
      const look = (): boolean => {
        for (let i = this.cursor; i < this.events.length; i++) {
          const e = this.events[i]!;
          if (test(e)) {
            this.cursor = i + 1;
            resolve(e);
            return true;
          }
        }
        return false;
      };
      if (look()) return;
      const timer = setTimeout(() => {
        off();
        reject(
          new Error(`no ${typeof match === 'string' ? match : 'matching'} event within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      const off = this.app.events.subscribe(() => {
        // Published after this listener's own push: look once the event is in the list.
        queueMicrotask(() => {
          if (look()) {
            clearTimeout(timer);
            off();
          }
        });
      });
    });
  }

  health(): HealthView[] {
    return this.app.healthView();
  }

  /** The lb and pool of a member named by name or address (the first member when none is named). */
  private memberRef(member: MemberName | undefined): { lb: string; pool: string; member: string } {
    for (const lb of this.app.engine.snapshot.loadBalancers)
      for (const pool of lb.pools)
        for (const m of pool.members)
          if (member === undefined || m.name === member || m.address === member)
            return { lb: lb.name, pool: pool.name, member: m.name };
    throw new Error(`no backend member is called or has the address '${member ?? '(any)'}'`);
  }

  private mark(member: MemberName | undefined, verdict: 'up' | 'down' | undefined): void {
    const result = this.app.markProbe(this.memberRef(member), verdict);
    if (!result.ok) throw new Error(result.message);
  }

  markDown(member?: MemberName): void {
    this.mark(member, 'down');
  }

  markUp(member?: MemberName): void {
    this.mark(member, 'up');
  }

  clearMark(member?: MemberName): void {
    this.mark(member, undefined);
  }

  /** Applies the document with `change` made to the member's entry (returning false to remove it). */
  private async changeMember(
    member: MemberName | undefined,
    change: (entry: Record<string, unknown>) => boolean,
  ): Promise<void> {
    const ref = this.memberRef(member);
    const resources = nestedResources(this.document);
    let found = false;
    for (const r of resources)
      for (const pool of childrenOf(r, 'backendAddressPools')) {
        const props = propsOf(pool);
        const list = childrenOf(pool, 'loadBalancerBackendAddresses');
        props['loadBalancerBackendAddresses'] = list.filter((m) => {
          if (m['name'] !== ref.member) return true;
          found = true;
          return change(m);
        });
      }
    if (!found)
      throw new Error(
        `member '${ref.member}' is not a loadBalancerBackendAddresses entry: change it through its NIC`,
      );
    await this.apply({ resources });
  }

  drain(member?: MemberName): Promise<void> {
    return this.changeMember(member, () => false);
  }

  setAdminState(state: 'Up' | 'Down' | 'None', member?: MemberName): Promise<void> {
    return this.changeMember(member, (m) => {
      propsOf(m)['adminState'] = state;
      return true;
    });
  }

  async setIdleTimeout(minutes: number, rule?: string): Promise<void> {
    const name = rule ?? this.frontendRuleName();
    const resources = nestedResources(this.document);
    let found = false;
    for (const r of resources)
      for (const kind of ['loadBalancingRules', 'inboundNatRules', 'outboundRules'])
        for (const child of childrenOf(r, kind))
          if (child['name'] === name) {
            propsOf(child)['idleTimeoutInMinutes'] = minutes;
            found = true;
          }
    if (!found) throw new Error(`no rule is called '${name}'`);
    await this.apply({ resources });
  }

  private frontendRuleName(): string {
    const rules = this.rules;
    if (rules.length !== 1) throw new Error(`name the rule: the balancer serves ${rules.join(', ')}`);
    return rules[0]!;
  }

  async apply(document: unknown): Promise<void> {
    const doc = await documentOf(document);
    const { snapshot, warnings } = compile(doc, this.map);
    await this.app.apply(snapshot);
    this.document = doc;
    this.warnings = warnings;
  }

  async stop(): Promise<void> {
    this.unsubscribe();
    await this.app.stop();
  }
}

/**
 * Starts a load balancer from an ARM document (an object in any form `sluice validate` reads,
 * or the path of a JSON file) in this process: proxy data plane, manual clock unless told
 * otherwise. Rejects with every error when the document is not valid, or when a frontend
 * cannot listen (its address or port taken).
 */
export async function startSluice(document: unknown, options: StartOptions = {}): Promise<TestBalancer> {
  const doc = await documentOf(document);
  const map = options.map ?? [];
  const { snapshot, warnings } = compile(doc, map);
  const manual = (options.clock ?? 'manual') === 'manual';
  if (manual && options.timeScale !== undefined && options.timeScale !== 1)
    throw new RangeError('a time scale needs the system clock: give clock: "system"');
  const app = await SluiceApp.start(snapshot, {
    plane: proxyPlaneModule,
    logLevel: options.logLevel ?? 'silent',
    ...(manual ? { clock: new ManualClock(0) } : {}),
    ...(options.timeScale !== undefined ? { timeScale: options.timeScale } : {}),
    ...(options.udpFlowTimeoutMs !== undefined ? { udpFlowTimeoutMs: options.udpFlowTimeoutMs } : {}),
  });
  return new Harness(app, doc, warnings, map);
}
