/**
 * The composition root's part for the packet data plane: builds a PacketPlane for SluiceApp
 * and turns its events into log lines.
 */
import type { Logger } from 'pino';
import type { PlaneFactory } from './app.js';
import type { PacketEvent } from './dataplane/packet/events.js';
import { PacketPlane } from './dataplane/packet/packet-plane.js';

export interface PacketSetup {
  readonly tun: string;
  readonly inboundSnat?: string;
  readonly configureHost: boolean;
  readonly busyPollMicros?: number;
}

export function packetPlaneFactory(setup: PacketSetup): PlaneFactory<PacketPlane> {
  return {
    indexReplies: true,
    create: ({ engine, clock, log }) =>
      new PacketPlane({
        engine,
        clock,
        tun: setup.tun,
        configureHost: setup.configureHost,
        ...(setup.inboundSnat !== undefined ? { inboundSnat: setup.inboundSnat } : {}),
        ...(setup.busyPollMicros !== undefined ? { busyPollMicros: setup.busyPollMicros } : {}),
        events: (e) => logPacketEvent(log, e),
      }),
  };
}

function logPacketEvent(log: Logger, e: PacketEvent): void {
  switch (e.type) {
    case 'ready':
      log.info({ tun: e.tun, routes: e.routes }, 'packet data plane: frontends routed into the TUN device');
      break;
    case 'io-error':
      log.error(
        { op: e.op, errno: e.errno },
        `TUN ${e.op} failed (errno ${e.errno}); later ones are only counted`,
      );
      break;
    case 'snat-exhausted':
      log.warn({ address: e.address }, 'inbound SNAT ports exhausted: new flow refused');
      break;
  }
}
