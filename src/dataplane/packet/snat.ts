/**
 * Ports of the inbound SNAT address (`--inbound-snat`, full NAT): each flow gets its own port,
 * so a backend's replies, addressed to that port, lead back to the flow's client. A port is
 * taken back only once the flow, and its tombstone, are gone from the engine; allocation
 * starts at a random point so that a restarted Sluice does not meet a backend's old
 * connections on the same ports.
 */
export const SNAT_FIRST_PORT = 1024;
const PORTS = 65536;

export class SnatPorts {
  /** Per port: the flow holding it, or -1. */
  private readonly flowOf = new Float64Array(PORTS).fill(-1);
  readonly clientAddr = new Uint32Array(PORTS);
  readonly clientPort = new Uint16Array(PORTS);
  readonly frontendAddr = new Uint32Array(PORTS);
  readonly frontendPort = new Uint16Array(PORTS);
  readonly protocol = new Uint8Array(PORTS);
  private readonly byFlow = new Map<number, number>();
  private cursor: number;

  constructor(random: () => number = Math.random) {
    this.cursor = SNAT_FIRST_PORT + Math.floor(random() * (PORTS - SNAT_FIRST_PORT));
  }

  get inUse(): number {
    return this.byFlow.size;
  }

  portOf(flowId: number): number {
    return this.byFlow.get(flowId) ?? -1;
  }

  /** The flow that holds `port`, or -1. */
  flowAt(port: number): number {
    return this.flowOf[port]!;
  }

  /**
   * A port for a new flow, or -1 when every port is held. `held(flowId, port)` says whether an
   * earlier holder still exists in the engine (as a flow or a tombstone).
   */
  allocate(
    flowId: number,
    protocol: number,
    clientAddr: number,
    clientPort: number,
    frontendAddr: number,
    frontendPort: number,
    held: (flowId: number, port: number) => boolean,
  ): number {
    for (let n = 0; n < PORTS - SNAT_FIRST_PORT; n++) {
      const port = this.cursor;
      this.cursor = port + 1 >= PORTS ? SNAT_FIRST_PORT : port + 1;
      const owner = this.flowOf[port]!;
      if (owner >= 0) {
        if (held(owner, port)) continue;
        this.byFlow.delete(owner);
      }
      this.flowOf[port] = flowId;
      this.clientAddr[port] = clientAddr;
      this.clientPort[port] = clientPort;
      this.frontendAddr[port] = frontendAddr;
      this.frontendPort[port] = frontendPort;
      this.protocol[port] = protocol;
      this.byFlow.set(flowId, port);
      return port;
    }
    return -1;
  }
}
