/**
 * How `sluice run` and `sluice demo` end. The first SIGINT or SIGTERM starts a graceful stop
 * (the API closes, flows end, the data plane takes back what it changed on the host). A second
 * one during that stop must not kill the process half-way, which on the packet plane would
 * leave routes and policy rules behind: it cuts the graceful end of the flows short, takes back
 * the host changes at once, and says so in the log.
 */
import type { Logger } from 'pino';

export type StopKind = 'graceful' | 'forced';

export interface Stoppable {
  /** The graceful stop. */
  stop(): Promise<void>;
  /** Stops at once, synchronously: host changes taken back, flows cut. Safe after `stop` began. */
  abort(): void;
}

/** Resolves once the process has been told to stop and has stopped, saying how. */
export function stopOnSignal(log: Logger, target: Stoppable): Promise<StopKind> {
  return new Promise<StopKind>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log.warn(
          { signal },
          'second signal while stopping: the graceful end of the flows is cut short; host clean-up is done now',
        );
        try {
          target.abort();
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          resolve('forced');
        }
        return;
      }
      stopping = true;
      log.info({ signal }, 'stopping');
      void target.stop().then(
        () => {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          resolve('graceful');
        },
        (err: unknown) => {
          log.error({ err }, 'graceful stop failed; taking back host changes now');
          target.abort();
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          resolve('forced');
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
