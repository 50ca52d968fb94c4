/**
 * The data planes Sluice can run, by the name `--dataplane` gives. Adding a plane is one line
 * here and a module of its own (plane.ts says what a module is).
 */
import { packetPlaneModule } from './packet/module.js';
import { DEFAULT_BUSY_POLL_MICROS } from './packet/tun.js';
import type { DataPlane, DataPlaneModule } from './plane.js';
import { proxyPlaneModule } from './proxy/module.js';
import { DEFAULT_TCP_RELAY } from './proxy/proxy-plane.js';

const PLANES: readonly DataPlaneModule<DataPlane>[] = [proxyPlaneModule, packetPlaneModule];

/** The plane used when none is named. */
export const DEFAULT_DATA_PLANE = proxyPlaneModule;

/** The defaults of the planes' settings, as `--help` shows them. */
export const PLANE_DEFAULTS = {
  tcpRelay: DEFAULT_TCP_RELAY,
  busyPollMicros: DEFAULT_BUSY_POLL_MICROS,
} as const;

export function dataPlaneModule(name: string): DataPlaneModule<DataPlane> | undefined {
  return PLANES.find((p) => p.name === name);
}

export function dataPlaneNames(): string[] {
  return PLANES.map((p) => p.name);
}

export type { DataPlane, DataPlaneModule, PlaneSettings } from './plane.js';
