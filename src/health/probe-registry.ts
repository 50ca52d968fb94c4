/**
 * Probe types by name, so a new kind of probe is one registration rather than a branch in the
 * prober. Each prober gets its own registry: tests register fake runners without touching
 * anyone else's.
 */
import type { ProbeRunner } from './types.js';
import { tcpProbe } from './probe-tcp.js';
import { httpProbe, httpsProbe } from './probe-http.js';

export class ProbeRegistry {
  private readonly runners = new Map<string, ProbeRunner>();

  register(name: string, runner: ProbeRunner): this {
    this.runners.set(name, runner);
    return this;
  }

  get(name: string): ProbeRunner | undefined {
    return this.runners.get(name);
  }

  has(name: string): boolean {
    return this.runners.has(name);
  }

  names(): string[] {
    return [...this.runners.keys()];
  }
}

/** The probe types Azure offers: Tcp, Http and Https, on real sockets. */
export function defaultProbeRegistry(): ProbeRegistry {
  return new ProbeRegistry()
    .register('Tcp', tcpProbe)
    .register('Http', httpProbe)
    .register('Https', httpsProbe);
}
