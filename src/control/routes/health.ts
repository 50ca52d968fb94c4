/**
 * Backend health over the API: what the probes say of every probed member
 * (`GET /sluice/v1/health`), and a probe verdict set by hand for a test
 * (`PUT /sluice/v1/health/{lb}/{pool}/{member}` with `{"probe": "down"}`; `DELETE` gives the
 * member back to its probes). Probes go on meanwhile; their results count again once cleared.
 */
import type { FastifyInstance } from 'fastify';
import { isRecord } from '../../config/index.js';
import type { AdminState } from '../../core/snapshot.js';
import { ApiError } from '../arm.js';

export type Verdict = 'up' | 'down';

/** One (probe, member) pair as GET /sluice/v1/health lists it. */
export interface HealthView {
  readonly lb: string;
  readonly pool: string;
  readonly member: string;
  readonly address: string;
  readonly probe: string;
  /** Whether new flows may go to the member: `up`, `down`, or `unknown` before any answer. */
  readonly state: 'up' | 'down' | 'unknown';
  /** The probe's verdict (or the one set by hand), before adminState; `notProbed` when adminState is Down. */
  readonly probeState: 'up' | 'down' | 'unknown' | 'notProbed';
  /** Set while a verdict set by hand stands in for the probe's. */
  readonly override?: Verdict;
  readonly adminState: AdminState;
  readonly reason: string;
  /** Load-balancer time of the last change. */
  readonly since: number;
}

export interface HealthResponse {
  readonly members: readonly HealthView[];
}

/** A member as a path names it: load balancer, pool, and the member's name or address. */
export interface MemberRef {
  readonly lb: string;
  readonly pool: string;
  readonly member: string;
}

export type ProbeMarkResult =
  | { readonly ok: true; readonly members: readonly HealthView[] }
  | { readonly ok: false; readonly problem: 'not-found' | 'not-probed'; readonly message: string };

/** What the health routes need of the running load balancer. */
export interface HealthRuntime {
  health(): readonly HealthView[];
  /** Sets (`up`, `down`) or clears (`undefined`) a member's probe verdict by hand. */
  markProbe(ref: MemberRef, verdict: Verdict | undefined): ProbeMarkResult;
}

function verdictOf(body: unknown): Verdict {
  if (!isRecord(body))
    throw new ApiError('SLUICE_API_BAD_REQUEST', 'the request body must be a JSON object: {"probe": "down"}');
  const unknown = Object.keys(body).filter((k) => k !== 'probe');
  if (unknown.length > 0)
    throw new ApiError(
      'SLUICE_API_BAD_REQUEST',
      `unknown property '${unknown[0]}': give probe ("up" or "down")`,
      {
        target: `/${unknown[0]}`,
      },
    );
  const v = body['probe'];
  if (v !== 'up' && v !== 'down')
    throw new ApiError(
      'SLUICE_API_BAD_REQUEST',
      `probe must be "up" or "down", got ${v === undefined ? 'nothing' : JSON.stringify(v)}`,
      { target: '/probe' },
    );
  return v;
}

function answer(result: ProbeMarkResult): HealthResponse {
  if (result.ok) return { members: result.members };
  throw new ApiError(
    result.problem === 'not-found' ? 'SLUICE_API_MEMBER_NOT_FOUND' : 'SLUICE_HEALTH_NOT_PROBED',
    `${result.message}.`,
  );
}

export function registerHealthRoutes(app: FastifyInstance, runtime: HealthRuntime): void {
  app.get('/sluice/v1/health', async (): Promise<HealthResponse> => ({ members: runtime.health() }));

  const memberPath = '/sluice/v1/health/:lb/:pool/:member';
  app.put<{ Params: MemberRef }>(memberPath, async (req) =>
    answer(runtime.markProbe(req.params, verdictOf(req.body))),
  );
  app.delete<{ Params: MemberRef }>(memberPath, async (req) =>
    answer(runtime.markProbe(req.params, undefined)),
  );
}
