/**
 * Announcement by BGP for `sluice run --bgp`: the announcer over a BIRD speaker, wired to a
 * running instance. What a pool of instances is, and why BIRD: docs/scale-out.md.
 */
import type { Logger } from 'pino';
import type { SluiceApp } from '../app.js';
import type { DataPlane } from '../dataplane/registry.js';
import { Announcer } from './announcer.js';
import type { BgpSettings } from './bgp-settings.js';
import { BirdSpeaker, speakerUnavailable } from './bird-speaker.js';

export {
  bgpSettingsOf,
  BGP_DEFAULTS,
  POOL_DEFAULTS,
  type BgpCliOptions,
  type BgpSettings,
  type PoolSettings,
} from './bgp-settings.js';
export { startPoolLink, waitTrafficGone, type PoolLink } from './adoption.js';
export type { PoolEvent, PoolWatch, WithdrawReason } from './pool-events.js';
export { Announcer, speakerUnavailable };

/** Starts announcing what `app` serves; rejects (SLUICE_HOST_BGP_DAEMON) when BIRD cannot start. */
export async function startAnnouncer(
  app: SluiceApp<DataPlane>,
  settings: BgpSettings,
  log: Logger,
  tun: string,
): Promise<Announcer> {
  const bgpLog = log.child({ component: 'bgp' });
  const announcer = new Announcer({
    settings,
    tun,
    log: bgpLog,
    source: {
      snapshot: () => app.engine.snapshot,
      // In a pool, not before every member has had a probe result: until then this instance could
      // pick another member for a flow than the instance the flow comes from.
      canServe: (rule) => app.engine.canServe(rule) && (!app.engine.inPool || app.engine.healthKnown(rule)),
      failure: () => app.plane.failure?.(),
      now: () => app.clock.now(),
    },
    speaker: (events) => new BirdSpeaker({ daemon: settings.daemon, dir: settings.dir, log: bgpLog, events }),
  });
  await announcer.start();
  app.metrics.setBgpSource(() => announcer.state());
  return announcer;
}
