/**
 * Keeping flows across a change of the pool, for `sluice run --bgp`: what feeds the flow engine
 * the times of the pool's changes (its own start and announcement, what BGP reports, what the
 * other instances say), and carries the engine's questions about idle flows to the other
 * instances and their answers back (gossip.ts). The decisions are the engine's
 * (core/engine-pool.ts); docs/scale-out.md says why they hold.
 */
import type { Logger } from 'pino';
import type { SluiceApp } from '../app.js';
import { FlowKey } from '../core/flow-key.js';
import type { DataPlane } from '../dataplane/registry.js';
import type { PoolSettings } from './bgp-settings.js';
import { PoolGossip, type GossipFlow } from './gossip.js';
import type { PoolEvent, PoolWatch } from './pool-events.js';

export interface PoolLink {
  /** Tells the other instances that this one is about to withdraw (a graceful stop). */
  leaving(): void;
  close(): void;
  /** Datagrams sent, received and ignored. */
  counts(): { sent: number; received: number; ignored: number };
}

/**
 * Wires `app` (whose engine runs with the pool option) to the pool that `watch` reports. The
 * start of this instance is itself a change: a restarted instance adopts the flows it carried
 * before, which the router hands back to it.
 */
export async function startPoolLink(
  app: SluiceApp<DataPlane>,
  watch: PoolWatch,
  settings: PoolSettings,
  log: Logger,
): Promise<PoolLink> {
  const engine = app.engine;
  const scale = app.clockMode === 'manual' ? 1 : app.timeScale;
  const plog = log.child({ component: 'pool' });
  engine.poolChanged(app.clock.now());
  const unsubscribe = watch.subscribe((e: PoolEvent) => {
    switch (e.type) {
      case 'pool':
        engine.poolChanged(e.at, e.frontend);
        break;
      case 'announced':
      case 'withdrawn':
        for (const f of e.frontends) engine.poolChanged(e.at, f);
        break;
      case 'session':
        engine.poolChanged(e.at);
        break;
      case 'daemon':
        if (e.state === 'exited') engine.poolChanged(e.at);
        break;
    }
  });
  const peers = (): string[] => [...new Set([...watch.view().values()].flat())];
  const key = new FlowKey();
  const gossip = new PoolGossip({
    instance: watch.instance,
    port: settings.port,
    bind: watch.instance,
    peers,
    waitMs: settings.askMs,
    log: plog,
    handlers: {
      leaving: (from) => {
        engine.poolChanged(app.clock.now());
        plog.info({ instance: from }, 'pool: an instance says it is leaving');
      },
      carries: (from, flows) => {
        const winsTie = watch.instance < from;
        const out: number[] = [];
        flows.forEach((f, i) => {
          try {
            key.set(f.protocol, f.src, f.srcPort, f.dst, f.dstPort);
          } catch {
            return;
          }
          if (engine.carries(key, f.idleMs * scale, winsTie)) out.push(i);
        });
        return out;
      },
      settled: (id, carried) => {
        app.plane.settleAsk?.(id, carried);
      },
    },
  });
  try {
    await gossip.start();
  } catch (err) {
    unsubscribe();
    throw new Error(
      `the pool's UDP port ${watch.instance}:${settings.port} cannot be opened (--pool-port): ${(err as Error).message}`,
    );
  }
  app.onPoolQuestion = (q) => {
    const flow: GossipFlow = {
      protocol: q.key.protocol,
      src: q.key.srcIp,
      srcPort: q.key.srcPort,
      dst: q.key.dstIp,
      dstPort: q.key.dstPort,
      idleMs: q.idleMs / scale,
    };
    gossip.ask(q.flowId, flow);
  };
  plog.info(
    { port: settings.port, graceMs: settings.graceMs, askMs: settings.askMs, settleMs: settings.settleMs },
    'pool: adopting flows moved by a change of the pool',
  );
  return {
    leaving: () => {
      gossip.leaving();
      engine.poolChanged(app.clock.now());
    },
    close: () => {
      app.onPoolQuestion = undefined;
      unsubscribe();
      gossip.close();
    },
    counts: () => ({ ...gossip.counts }),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The last part of a graceful stop, once the routers have dropped this instance: serves on while
 * packets still come (flows the router has moved whose backends still answer through this
 * instance, until the flows' next client packets take their return path to the new instance),
 * until none came for `quietMs`, for `maxMs` at most. Real milliseconds.
 */
export async function waitTrafficGone(
  plane: DataPlane,
  log: Logger,
  quietMs = 300,
  maxMs = 5000,
): Promise<void> {
  const read = plane.packetsIn;
  if (read === undefined) return;
  const started = Date.now();
  let last = read.call(plane);
  let quietSince = started;
  while (Date.now() - quietSince < quietMs && Date.now() - started < maxMs) {
    await sleep(50);
    const now = read.call(plane);
    if (now !== last) {
      last = now;
      quietSince = Date.now();
    }
  }
  const quiet = Date.now() - quietSince >= quietMs;
  log.info(
    { afterMs: Date.now() - started, quiet },
    quiet ? 'pool: no more packets come to this instance' : 'pool: packets still come; stopping all the same',
  );
}
