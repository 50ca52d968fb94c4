import type { ErrorCode } from '../core/errors.js';

/**
 * The ranges of the durations and counts a document states, other than ports (checks.ts has
 * those, with the rules they depend on). Where Azure states a bound it is Azure's; where it
 * states none, the bound is what Sluice can honour: Node's timers take at most 2^31-1 ms (the
 * same limit as MAX_TIMEOUT_MS of src/time/system-clock.ts, which config does not import), and
 * ARM declares these properties 32-bit integers.
 * docs/errors.md says where each bound comes from.
 */

/**
 * Idle timeout ranges in minutes (B2). Outbound rules: 4-120, as Azure's outbound rules page and
 * its API accept; its TCP reset and idle timeout page says 4-100 for all three kinds of rule, an
 * inconsistency between Azure's own pages (docs/behaviour.md, B2).
 */
export const IDLE_RANGES = {
  standardInbound: { min: 4, max: 100, label: 'Standard SKU allows 4-100' },
  standardOutbound: { min: 4, max: 120, label: 'outbound rules allow 4-120' },
  basic: { min: 4, max: 30, label: 'Basic SKU allows 4-30' },
  publicIp: { min: 4, max: 30, label: 'public IP addresses allow 4-30' },
  natGateway: { min: 4, max: 120, label: 'NAT gateways allow 4-120' },
} as const;
export type IdleRange = (typeof IDLE_RANGES)[keyof typeof IDLE_RANGES];

/** Azure: "the maximum number of usable ephemeral ports per frontend IP address is 64,000". */
export const MAX_SNAT_PORTS_PER_FRONTEND = 64_000;

/** The longest delay a Node timer holds, in milliseconds (about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/** MAX_TIMER_MS in whole seconds: 2,147,483. */
export const MAX_TIMER_SECONDS = Math.floor(MAX_TIMER_MS / 1000);
/** ARM's REST API declares these properties `"format": "int32"`. */
export const INT32_MAX = 2 ** 31 - 1;

export interface Bound {
  readonly min: number;
  readonly max: number;
  readonly code: ErrorCode;
  /** Why the range is what it is, as a message says it. */
  readonly why: string;
}

const timerWhy = 'at most what a timer can wait, 2^31-1 ms';

export const BOUNDS = {
  /** Azure: "the minimum value is 5" (REST API, ProbePropertiesFormat); no maximum is stated. */
  intervalInSeconds: {
    min: 5,
    max: MAX_TIMER_SECONDS,
    code: 'SLUICE_CONFIG_PROBE_INTERVAL',
    why: `Azure's minimum is 5; ${timerWhy}`,
  },
  probeThreshold: {
    min: 1,
    max: INT32_MAX,
    code: 'SLUICE_CONFIG_PROBE_THRESHOLD',
    why: 'a count of probes, a 32-bit integer in ARM',
  },
  numberOfProbes: {
    min: 1,
    max: INT32_MAX,
    code: 'SLUICE_CONFIG_PROBE_THRESHOLD',
    why: 'a count of probes, a 32-bit integer in ARM',
  },
  /** Azure states no range for the drain period; 0 (the default) resets at once. */
  drainPeriodInSeconds: {
    min: 0,
    max: MAX_TIMER_SECONDS,
    code: 'SLUICE_CONFIG_DRAIN_PERIOD',
    why: `not negative; ${timerWhy}`,
  },
} as const satisfies Record<string, Bound>;

export type BoundedProperty = keyof typeof BOUNDS;

/** The message for `value` outside its bound, naming the resource and the allowed range; undefined when inside. */
export function outOfBound(
  prop: BoundedProperty,
  value: number | undefined,
  owner: string,
): string | undefined {
  if (value === undefined) return undefined;
  const b: Bound = BOUNDS[prop];
  if (value >= b.min && value <= b.max) return undefined;
  return `${owner} ${prop} ${value} is out of range: allowed ${b.min}-${b.max} (${b.why})`;
}
