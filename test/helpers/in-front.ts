/**
 * Sluice in front of one real server, in the test's process: the proxy plane on a manual clock,
 * one frontend address with a reset rule and a silent-drop rule to the same backend port. The
 * balancer's time moves only when the test calls `idle()` or `advance(ms)`.
 */
import { SluiceApp } from '../../src/app.js';
import { ManualClock } from '../../src/core/clock.js';
import type { FlowInfo } from '../../src/core/events.js';
import { compileLb } from './arm.js';
import { freePort, waitUntil } from './net.js';

/** The rules' idle timeout: Azure's default, 4 minutes, in load-balancer milliseconds. */
export const IDLE_MS = 4 * 60_000;
/**
 * How far `idle()` moves the clock past the timeout: the engine's timing wheel expires a flow
 * within one tick (10 ms) after its deadline, so exactly IDLE_MS can be a tick short.
 */
export const PAST_TIMEOUT_MS = 1_000;

export interface InFront {
  readonly app: SluiceApp;
  readonly clock: ManualClock;
  readonly frontend: string;
  /** Frontend ports: `reset` has enableTcpReset, `drop` does not. */
  readonly ports: { readonly reset: number; readonly drop: number };
  /** Moves the balancer's clock past the idle timeout of every flow idle since now (or before). */
  idle(): void;
  advance(ms: number): void;
  /** The live flow whose client port is `port`, if any. */
  flowOf(clientPort: number): FlowInfo | undefined;
  /** Waits until the flow of `clientPort` has carried a byte at the balancer's present time. */
  activeNow(clientPort: number, what: string, ms?: number): Promise<FlowInfo>;
  stop(): Promise<void>;
}

export async function sluiceInFront(
  frontend: string,
  backend: { readonly host: string; readonly port: number },
): Promise<InFront> {
  const ports = { reset: await freePort(frontend), drop: await freePort(frontend) };
  const clock = new ManualClock(0);
  const app = await SluiceApp.start(
    compileLb({
      frontend,
      backends: [backend.host],
      rules: [
        { name: 'reset', frontendPort: ports.reset, backendPort: backend.port, enableTcpReset: true },
        { name: 'drop', frontendPort: ports.drop, backendPort: backend.port, enableTcpReset: false },
      ],
    }),
    { clock, logLevel: 'silent' },
  );
  const flowOf = (clientPort: number): FlowInfo | undefined =>
    app.engine.flows().find((f) => f.client.port === clientPort);
  return {
    app,
    clock,
    frontend,
    ports,
    idle: () => clock.advance(IDLE_MS + PAST_TIMEOUT_MS),
    advance: (ms) => clock.advance(ms),
    flowOf,
    activeNow: (clientPort, what, ms = 5000) =>
      waitUntil(ms, what, () => {
        const f = flowOf(clientPort);
        return f !== undefined && f.lastSeenAt === clock.now() ? f : undefined;
      }),
    stop: () => app.stop(),
  };
}
