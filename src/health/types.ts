/**
 * The vocabulary shared by the prober, the probe runners and whoever consumes health
 * (the data planes, the control plane's event stream, metrics).
 */
import type { AdminState, ProbeProtocol } from '../core/snapshot.js';

/** What one probe attempt is aimed at. */
export interface ProbeTarget {
  readonly protocol: ProbeProtocol;
  readonly address: string;
  readonly port: number;
  /** Http/Https only; always starts with "/". */
  readonly requestPath?: string;
}

/**
 * The result of one attempt. `fastDown` marks a failure that takes a member out at once,
 * whatever the threshold: Azure does this for Http/Https probes answered with a status other
 * than 200 or with a TCP reset. Plain failures (no answer, refused TCP connect) count toward
 * the threshold.
 */
export type ProbeOutcome =
  | { readonly ok: true; readonly latencyMs: number; readonly detail?: string }
  | { readonly ok: false; readonly fastDown: boolean; readonly reason: string; readonly latencyMs?: number };

/**
 * Runs one attempt. It must settle promptly once `signal` aborts (the prober's timeout or
 * stop()) and must release every socket it opened by then, including ones still closing after
 * the outcome was reported. It should not reject; a rejection counts as a plain failure.
 */
export type ProbeRunner = (target: ProbeTarget, signal: AbortSignal) => Promise<ProbeOutcome>;

/** Raw probe verdict, before adminState is applied. `unknown`: no result yet. */
export type ProbeState = 'unknown' | 'up' | 'down';

/** A verdict set by hand in place of the probe's (`PUT /sluice/v1/health/...`). */
export type ProbeVerdict = 'up' | 'down';

/** Whether new flows may go to a member: the probe verdict with adminState applied. */
export type HealthState = 'unknown' | 'up' | 'down';

/** Why a member has its current effective state. */
export type HealthSource =
  /** adminState None: the probe decides. */
  | 'probe'
  /** adminState Up: in rotation whatever the probe says (it is still probed, for visibility). */
  | 'adminUp'
  /** adminState Down: out of rotation, not probed. */
  | 'adminDown'
  /** The rule has no probe: every member not administratively down is in rotation. */
  | 'noProbe';

export interface MemberHealth {
  readonly probeId?: string;
  readonly probeName?: string;
  readonly poolId: string;
  readonly memberId: string;
  readonly memberName: string;
  readonly address: string;
  readonly adminState: AdminState;
  /** Effective state: `up` is the only state that admits new flows. */
  readonly state: HealthState;
  readonly source: HealthSource;
  /** `notProbed` for adminState Down members and rules without a probe. */
  readonly probeState: ProbeState | 'notProbed';
  /** Set while a verdict set by hand stands in for the probe's (`probeState` is then that verdict). */
  readonly override?: ProbeVerdict;
  /** Clock time of the last change of `state` or `probeState`. */
  readonly since: number;
  /** The outcome that last changed the state, or the last failure's reason. */
  readonly reason: string;
  readonly lastLatencyMs?: number;
  readonly consecutiveSuccesses: number;
  readonly consecutiveFailures: number;
}

/**
 * One change of a member's health, for logs, the event stream and the data planes.
 * `from`/`to` are the effective state; with adminState Up they can be equal while
 * `probeState` changed underneath.
 */
export interface HealthTransition {
  /** Clock time of the change. */
  readonly at: number;
  readonly probeId: string;
  readonly probeName: string;
  readonly protocol: ProbeProtocol;
  readonly port: number;
  readonly poolId: string;
  readonly memberId: string;
  readonly memberName: string;
  readonly address: string;
  readonly adminState: AdminState;
  readonly from: HealthState;
  readonly to: HealthState;
  readonly probeState: ProbeState | 'notProbed';
  readonly reason: string;
  /** Real (unscaled) milliseconds of the attempt that caused the change, when it answered. */
  readonly latencyMs?: number;
}

export type HealthSink = (transition: HealthTransition) => void;
