/** What the composition root needs of a data plane, whichever one runs. */
import type { RuntimeSnapshot } from '../core/snapshot.js';

export interface DataPlane {
  /**
   * Serves `snapshot` (which the flow engine already holds): opens what it adds, closes what it
   * removes, ends the flows of removed rules. All or nothing: on failure nothing changed.
   */
  apply(snapshot: RuntimeSnapshot): Promise<void>;
  /** Ends a member's flows now; returns how many. */
  endFlowsOfMember(memberId: string, action: 'reset' | 'close'): number;
  /** What is being served, one entry per protocol, address and port (or range). */
  listening(): string[];
  /** Stops serving; every flow ends and every resource is released. */
  stop(): Promise<void>;
}
