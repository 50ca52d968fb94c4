/**
 * The load balancer's clock over the API: read it (`GET /sluice/v1/clock`), move a manual clock
 * (`POST /sluice/v1/clock/advance`), and end one flow now (`POST /sluice/v1/flows/{id}/expire`).
 * A test in any language drives time through these and asserts on its own sockets right after
 * the answer: the answer comes only once the flows that ended are reset or blackholed.
 */
import type { FastifyInstance } from 'fastify';
import { DURATION_FORMS, MAX_DURATION_MS, isDurationMs, parseDuration } from '../../core/duration.js';
import { isRecord } from '../../config/index.js';
import { ApiError } from '../arm.js';
import type { EndedFlow } from '../events.js';

/** How the load balancer's time moves: by itself (`--time-scale`), or only when told (`--clock manual`). */
export type ClockMode = 'system' | 'manual';

/** What GET /sluice/v1/clock answers. */
export interface ClockView {
  readonly mode: ClockMode;
  /** Load-balancer milliseconds since it started (whole milliseconds). */
  readonly now: number;
  /** Load-balancer milliseconds per real millisecond of the system clock (`--time-scale`). */
  readonly timeScale: number;
  /** The wall-clock time of the answer (ISO 8601, UTC). */
  readonly time: string;
}

/** What POST /sluice/v1/clock/advance answers: the clock after the move, and what ended on the way. */
export interface AdvanceResponse extends ClockView {
  readonly advancedMs: number;
  /** Every flow the move ended, in the order they ended. */
  readonly ended: readonly EndedFlow[];
}

/** What POST /sluice/v1/flows/{id}/expire answers. */
export interface ExpireResponse extends ClockView {
  /** The flow, as it ended. */
  readonly ended: readonly EndedFlow[];
}

/** What the clock routes need of the running load balancer. */
export interface ClockRuntime {
  clock(): ClockView;
  /** Moves a manual clock; resolves once what ended is reset or blackholed. */
  advance(ms: number): Promise<AdvanceResponse>;
  /** Ends one live flow as its idle timeout would; undefined when there is no such flow. */
  expireFlow(flowId: number): Promise<EndedFlow | undefined>;
}

/** `target`: the JSON pointer of the property at fault, none when the body lacks one. */
function invalid(message: string, target?: string): ApiError {
  return new ApiError('SLUICE_CLOCK_INVALID_DURATION', message, target === undefined ? {} : { target });
}

/**
 * The milliseconds a body of POST /sluice/v1/clock/advance asks for: `{"ms": N}` or
 * `{"by": "4m"}`, exactly one of them and nothing else.
 */
export function advanceMsOf(body: unknown): number {
  if (!isRecord(body))
    throw new ApiError(
      'SLUICE_API_BAD_REQUEST',
      'the request body must be a JSON object: {"ms": 240000} or {"by": "4m"}',
    );
  const unknown = Object.keys(body).filter((k) => k !== 'ms' && k !== 'by');
  if (unknown.length > 0)
    throw invalid(
      `unknown propert${unknown.length === 1 ? 'y' : 'ies'} ${unknown.map((k) => `'${k}'`).join(', ')}: give ms (whole milliseconds) or by (a duration such as 4m)`,
      `/${unknown[0]}`,
    );
  const hasMs = body['ms'] !== undefined;
  const hasBy = body['by'] !== undefined;
  if (hasMs && hasBy) throw invalid('give either ms or by, not both', '/by');
  if (hasMs) {
    const ms = body['ms'];
    if (!isDurationMs(ms))
      throw invalid(
        `ms must be a whole number of milliseconds from 0 to ${MAX_DURATION_MS}, got ${JSON.stringify(ms)}`,
        '/ms',
      );
    return ms;
  }
  if (hasBy) {
    const by = body['by'];
    if (typeof by !== 'string')
      throw invalid(`by must be a string such as ${DURATION_FORMS}, got ${JSON.stringify(by)}`, '/by');
    const ms = parseDuration(by);
    if (typeof ms !== 'number') throw invalid(`by: ${ms.error}; give ${DURATION_FORMS}`, '/by');
    return ms;
  }
  throw invalid('give ms (whole milliseconds, e.g. {"ms": 240000}) or by (a duration, e.g. {"by": "4m"})');
}

/** A flow id in a path: the whole number GET /sluice/v1/flows lists. */
function flowIdOf(text: string): number {
  const id = /^\d{1,15}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(id))
    throw new ApiError(
      'SLUICE_API_BAD_REQUEST',
      `'${text.slice(0, 40)}' is not a flow id: give the whole number GET /sluice/v1/flows lists as id`,
    );
  return id;
}

export function registerClockRoutes(app: FastifyInstance, runtime: ClockRuntime): void {
  app.get('/sluice/v1/clock', async (): Promise<ClockView> => runtime.clock());

  app.post('/sluice/v1/clock/advance', async (req): Promise<AdvanceResponse> => {
    const ms = advanceMsOf(req.body);
    if (runtime.clock().mode !== 'manual')
      throw new ApiError(
        'SLUICE_CLOCK_NOT_MANUAL',
        'This Sluice runs on the system clock, which moves by itself (--time-scale speeds it up); start it with --clock manual to move its time by hand.',
      );
    return runtime.advance(ms);
  });

  app.post<{ Params: { id: string } }>(
    '/sluice/v1/flows/:id/expire',
    async (req): Promise<ExpireResponse> => {
      const id = flowIdOf(req.params.id);
      const ended = await runtime.expireFlow(id);
      if (ended === undefined)
        throw new ApiError(
          'SLUICE_API_FLOW_NOT_FOUND',
          `No live flow has id ${id}: it has ended, or never was (GET /sluice/v1/flows lists the live ones).`,
        );
      return { ...runtime.clock(), ended: [ended] };
    },
  );
}
