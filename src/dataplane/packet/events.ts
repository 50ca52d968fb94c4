/** What the packet plane reports: counters it keeps, and events for its injected sink. */
import { DROP_REASONS, type DropReason } from './ipv4.js';

export interface PacketStats {
  packetsIn: number;
  bytesIn: number;
  forwardedToBackend: number;
  forwardedToClient: number;
  /** Idle resets (B4), by direction. */
  rstToClient: number;
  rstToBackend: number;
  /** RSTs answering a later segment of an expired flow, or any non-SYN of no flow (B6). */
  rstAnswers: number;
  readErrors: number;
  writeErrors: number;
  drops: Record<DropReason, number>;
}

export function emptyPacketStats(): PacketStats {
  return {
    packetsIn: 0,
    bytesIn: 0,
    forwardedToBackend: 0,
    forwardedToClient: 0,
    rstToClient: 0,
    rstToBackend: 0,
    rstAnswers: 0,
    readErrors: 0,
    writeErrors: 0,
    drops: Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>,
  };
}

export type PacketEvent =
  | { readonly type: 'ready'; readonly tun: string; readonly routes: readonly string[] }
  /** The first TUN read or write error of each kind (later ones are only counted). */
  | { readonly type: 'io-error'; readonly op: 'read' | 'write'; readonly errno: number }
  | { readonly type: 'snat-exhausted'; readonly address: string };

export type PacketEventSink = (event: PacketEvent) => void;
