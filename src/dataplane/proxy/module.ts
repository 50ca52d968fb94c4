/**
 * The proxy data plane as a module of the registry: TCP and UDP relayed through sockets on the
 * frontend addresses, on any OS and without privileges. What it cannot do needs packets (HA
 * ports, floating IP, SNAT of backend traffic).
 */
import type { FlowShareRefusal } from '../../core/budget.js';
import type { RuntimeSnapshot } from '../../core/snapshot.js';
import type { DataPlaneModule, PlaneContext, PlaneSettings } from '../plane.js';
import type { ProxyEvent } from './events.js';
import { proxyUnsupported } from './listeners.js';
import { DEFAULT_HOLD_MS, DEFAULT_TCP_RELAY, ProxyPlane } from './proxy-plane.js';
import { tcpHandles } from './tcp-handles.js';

export const proxyPlaneModule: DataPlaneModule<ProxyPlane> = {
  name: 'proxy',
  summary: 'sockets on the frontend addresses (any OS, no privileges)',
  flowsHoldDescriptors: true,
  indexReplies: false,
  unsupported: (snapshot) =>
    proxyUnsupported(snapshot).map(
      (line) => `${line}: not possible in the proxy data plane; use --dataplane packet`,
    ),
  partial: (snapshot) => servable(snapshot),
  adapt: (snapshot, settings) => withInstancePorts(snapshot, settings.instancePorts),
  unavailable: (settings) =>
    (settings.tcpRelay ?? DEFAULT_TCP_RELAY) === 'handles' && tcpHandles === undefined
      ? "--tcp-relay handles: this Node does not hand out libuv's TCP handles"
      : undefined,
  create: (context, settings: PlaneSettings) =>
    new ProxyPlane({
      engine: context.engine,
      clock: context.clock,
      holdMs: settings.holdMs ?? DEFAULT_HOLD_MS,
      // Read buffers are taken back from quiet streams about once a second of real time.
      sweepEveryMs: 1000 * context.timeScale,
      wake: context.wake,
      budget: context.budget,
      ...(settings.tcpRelay !== undefined ? { tcpRelay: settings.tcpRelay } : {}),
      events: (e) => logProxyEvent(context, e),
    }),
  readyFields: (plane) => ({ tcpRelay: plane.tcpRelay }),
};

/**
 * An instance-level public IP forwards every port; sockets can only listen on ports named in
 * advance. With `--instance-ports` its one all-ports rule becomes one rule per port given
 * (TCP and UDP, the same port on the member); without, it stays as it is and is left out.
 */
export function withInstancePorts(
  snapshot: RuntimeSnapshot,
  ports: readonly number[] | undefined,
): RuntimeSnapshot {
  if (ports === undefined || ports.length === 0) return snapshot;
  if (!snapshot.loadBalancers.some((lb) => lb.instancePublicIp !== undefined)) return snapshot;
  const loadBalancers = snapshot.loadBalancers.map((lb) => {
    if (lb.instancePublicIp === undefined) return lb;
    const loadBalancingRules = lb.loadBalancingRules.flatMap((r) =>
      r.haPorts
        ? ports.map((port) => ({
            ...r,
            id: `${r.id}:${port}`,
            name: `${r.name}:${port}`,
            haPorts: false,
            frontendPort: port,
            backendPort: port,
          }))
        : [r],
    );
    return { ...lb, loadBalancingRules };
  });
  return { ...snapshot, loadBalancers };
}

/**
 * What the proxy plane serves of a snapshot: every load-balancing and inbound NAT rule it can.
 * HA-ports rules and outbound rules need packets and are left out; a floating-IP rule is served
 * by connecting to the member at its backend port, so the backend sees Sluice's address, not the
 * frontend IP.
 */
function servable(snapshot: RuntimeSnapshot): { snapshot: RuntimeSnapshot; warnings: string[] } {
  const warnings: string[] = [];
  const packet = 'not served by the proxy data plane (--dataplane packet serves it)';
  const loadBalancers = snapshot.loadBalancers.map((lb) => {
    for (const r of lb.loadBalancingRules) {
      if (r.haPorts && lb.instancePublicIp !== undefined)
        warnings.push(
          `public IP '${lb.name}' of ${lb.instancePublicIp.ipConfiguration} (instance-level) forwards every port: not served by the proxy data plane, which listens only on the ports --instance-ports names (for example --instance-ports 22,443); --dataplane packet serves every port`,
        );
      else if (r.haPorts)
        warnings.push(`load balancer '${lb.name}': load-balancing rule '${r.name}' uses HA ports: ${packet}`);
      else if (r.enableFloatingIP)
        warnings.push(
          `load balancer '${lb.name}': load-balancing rule '${r.name}' enables floating IP: served by connecting to each member at port ${r.backendPort}, so the backend sees Sluice's address rather than the frontend IP (--dataplane packet keeps it)`,
        );
    }
    for (const r of lb.inboundNatRules)
      if (r.enableFloatingIP)
        warnings.push(
          `load balancer '${lb.name}': inbound NAT rule '${r.name}' enables floating IP: served by connecting to the member at its backend port, so the backend sees Sluice's address rather than the frontend IP (--dataplane packet keeps it)`,
        );
    for (const r of lb.outboundRules)
      warnings.push(
        lb.instancePublicIp !== undefined
          ? `public IP '${lb.name}' of ${lb.instancePublicIp.ipConfiguration} (instance-level): the VM's own outbound connections through it are ${packet}`
          : `load balancer '${lb.name}': outbound rule '${r.name}' (SNAT of the backends' own connections): ${packet}`,
      );
    if (!lb.loadBalancingRules.some((r) => r.haPorts) && lb.outboundRules.length === 0) return lb;
    return {
      ...lb,
      loadBalancingRules: lb.loadBalancingRules.filter((r) => !r.haPorts),
      outboundRules: [],
      outboundPaths: [],
    };
  });
  return { snapshot: { ...snapshot, loadBalancers }, warnings };
}

/** Out of descriptors, new flows are refused: said at most once a second. */
function descriptorShortage(context: PlaneContext, why: string): void {
  context.logRefusal(
    'emfile',
    'error',
    `out of file descriptors: new flows refused (${why}); raise the open-files limit (ulimit -n)`,
    { code: 'EMFILE' },
  );
}

/** What the log says when a share of the descriptors turns a new flow away. */
const SHARE_FULL: Record<FlowShareRefusal, readonly ['warn' | 'error', (capacity: number) => string]> = {
  'tcp-descriptors': [
    'error',
    (n) =>
      `out of file descriptors: new flows refused (${n} TCP flows is the TCP share of the open-files limit, --max-tcp-flows); raise the open-files limit (ulimit -n)`,
  ],
  'udp-flows': [
    'warn',
    (n) => `UDP share full: datagrams of new UDP flows dropped (${n} UDP flows, --max-udp-flows)`,
  ],
  'udp-per-client': [
    'warn',
    (n) =>
      `a client address holds its whole part of the UDP share: datagrams of its new UDP flows dropped (${n} flows per client address, --max-udp-flows-per-client)`,
  ],
};

function logProxyEvent(context: PlaneContext, e: ProxyEvent): void {
  const log = context.log;
  switch (e.type) {
    case 'listener-error':
      log.error({ rule: e.listener.ruleName, code: e.code }, e.message);
      break;
    case 'backend-unreachable':
      if (e.code === 'EMFILE' || e.code === 'ENFILE') {
        descriptorShortage(context, `no descriptor left to reach backend ${e.backend}`);
      } else {
        log.warn({ flow: e.flowId, backend: e.backend, code: e.code }, 'backend unreachable: client reset');
      }
      break;
    case 'share-full': {
      context.shareRefused(e.reason);
      const [level, says] = SHARE_FULL[e.reason];
      context.logRefusal(e.reason, level, says(e.capacity), { reason: e.reason, client: e.client });
      break;
    }
    case 'hold-released':
      log.debug({ flow: e.flowId, reason: e.reason }, 'blackholed flow released');
      break;
    case 'idle-reset':
    case 'idle-drop':
      break;
  }
}
