/**
 * The packet data plane as a module of the registry: IP packets routed into a TUN device,
 * tracked and rewritten one by one (Linux, root or CAP_NET_ADMIN, the TUN addon).
 */
import type { Logger } from 'pino';
import type { DataPlaneModule } from '../plane.js';
import type { PacketEvent } from './events.js';
import { networkInterfaces } from 'node:os';
import { PacketPlane, localFrontends, packetUnsupported } from './packet-plane.js';
import { packetPlaneUnavailable } from './tun.js';

export const packetPlaneModule: DataPlaneModule<PacketPlane> = {
  name: 'packet',
  summary: 'packets through a TUN device (Linux, root)',
  // A flow is a record in the flow table, not a socket: the descriptor shares do not apply.
  flowsHoldDescriptors: false,
  indexReplies: true,
  unsupported: (snapshot) => [
    ...packetUnsupported(snapshot).map((line) => `${line}: not supported by the packet data plane yet`),
    ...localFrontends(snapshot, hostAddresses()),
  ],
  unavailable: () => packetPlaneUnavailable(),
  create: (context, settings) =>
    new PacketPlane({
      engine: context.engine,
      clock: context.clock,
      tun: settings.tun ?? 'sluice0',
      configureHost: settings.configureHost === true,
      ...(settings.inboundSnat !== undefined ? { inboundSnat: settings.inboundSnat } : {}),
      ...(settings.busyPollMicros !== undefined ? { busyPollMicros: settings.busyPollMicros } : {}),
      events: (e) => logPacketEvent(context.log, e),
    }),
  readyFields: (plane) => ({ tun: plane.tunName }),
};

/** The addresses of this host's interfaces (in its network namespace). */
function hostAddresses(): Set<string> {
  return new Set(
    Object.values(networkInterfaces())
      .flatMap((list) => list ?? [])
      .map((i) => i.address),
  );
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
