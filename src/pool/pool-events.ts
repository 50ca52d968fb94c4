/**
 * How an instance learns that the pool is changing: what its announcer tells the rest of the
 * process. The events come from BGP itself: this instance's sessions to its routers, what it
 * announces or withdraws and why, and the instances the routers spread each frontend over, as
 * they report it (every instance receives every instance's path back, by add-path, each
 * marked with the router ID of the instance that announced it).
 *
 * A consumer that must act while instances come and go (adopting the flows ECMP moved to this
 * instance, see docs/scale-out.md) subscribes, or asks `lastChange(frontend)` when a packet it
 * does not know arrives. Times are load-balancer milliseconds, as the flow engine's clock
 * gives them.
 */

export type WithdrawReason =
  /** No rule on the frontend has a member a new flow could go to (probes, admin state). */
  | 'no-healthy-backend'
  /** The data plane cannot carry traffic (its TUN device is gone or down, reads keep failing). */
  | 'data-plane'
  /** The configuration no longer serves the frontend. */
  | 'not-served'
  /** Sluice is stopping. */
  | 'stopping';

export type PoolEvent =
  /** A BGP session to a router came up or went down. */
  | {
      readonly type: 'session';
      readonly at: number;
      readonly peer: string;
      readonly up: boolean;
      readonly state: string;
    }
  /** This instance began announcing these frontends. */
  | { readonly type: 'announced'; readonly at: number; readonly frontends: readonly string[] }
  /** This instance stopped announcing these frontends. */
  | {
      readonly type: 'withdrawn';
      readonly at: number;
      readonly frontends: readonly string[];
      readonly reason: WithdrawReason;
      readonly detail?: string;
    }
  /**
   * The instances behind a frontend changed, as the routers report them (router IDs). The first
   * report after this instance starts counts as a change: a restarted instance is itself one.
   */
  | {
      readonly type: 'pool';
      readonly at: number;
      readonly frontend: string;
      readonly instances: readonly string[];
      readonly joined: readonly string[];
      readonly left: readonly string[];
    }
  /** The BGP daemon started, exited, or is being started again. */
  | {
      readonly type: 'daemon';
      readonly at: number;
      readonly state: 'started' | 'exited' | 'restarting';
      readonly detail?: string;
    };

export type PoolListener = (event: PoolEvent) => void;

/** What the announcer offers the rest of the instance (flow adoption, the API, metrics). */
export interface PoolWatch {
  /** This instance as the others see it: its BGP router ID. */
  readonly instance: string;
  /** Subscribes to the pool's events; returns the function that unsubscribes. */
  subscribe(listener: PoolListener): () => void;
  /** The instances the routers spread each watched frontend over now (router IDs, sorted). */
  view(): ReadonlyMap<string, readonly string[]>;
  /**
   * When the set of instances behind `frontend` (behind any frontend, when not given) last
   * changed, or this instance's sessions last went up or down: the start of a change window.
   * Undefined before the routers first reported anything.
   */
  lastChange(frontend?: string): number | undefined;
  /** The frontends this instance announces now. */
  announced(): readonly string[];
  /** Whether every BGP session is established. */
  sessionsUp(): boolean;
}
