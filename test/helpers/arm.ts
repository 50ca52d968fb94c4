/**
 * Builds load balancer documents in ARM's shape for tests, so each test states only what it
 * is about: addresses, ports and the idle settings of its rules.
 */
import assert from 'node:assert/strict';
import { validateDocument } from '../../src/config/index.js';
import type { RuntimeSnapshot } from '../../src/core/snapshot.js';

const LB_NAME = 'test-lb';
const LBS =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/test/providers/Microsoft.Network/loadBalancers';

export interface TestRule {
  readonly name: string;
  readonly protocol?: 'Tcp' | 'Udp' | 'All';
  readonly frontendPort: number;
  readonly backendPort: number;
  readonly idleTimeoutInMinutes?: number;
  readonly enableTcpReset?: boolean;
  readonly enableFloatingIP?: boolean;
  readonly loadDistribution?: 'Default' | 'SourceIP' | 'SourceIPProtocol';
  readonly probe?: string;
}

export interface TestProbe {
  readonly name: string;
  readonly protocol?: 'Tcp' | 'Http';
  readonly port: number;
  readonly intervalInSeconds?: number;
  readonly probeThreshold?: number;
  readonly requestPath?: string;
}

export interface TestNatRange {
  readonly name: string;
  readonly start: number;
  readonly end: number;
  readonly backendPort: number;
  readonly idleTimeoutInMinutes?: number;
  readonly enableTcpReset?: boolean;
}

export interface TestLb {
  /** Default `test-lb`. */
  readonly name?: string;
  readonly sku?: 'Standard' | 'Basic';
  readonly frontend: string;
  readonly backends: readonly string[];
  readonly rules?: readonly TestRule[];
  readonly probes?: readonly TestProbe[];
  readonly natRanges?: readonly TestNatRange[];
  /** Backend addresses whose adminState is Down. */
  readonly adminDown?: readonly string[];
}

export function lbDocument(lb: TestLb): Record<string, unknown> {
  const name = lb.name ?? LB_NAME;
  const base = `${LBS}/${name}`;
  const ref = (kind: string, child: string) => ({ id: `${base}/${kind}/${child}` });
  return {
    name,
    id: base,
    type: 'Microsoft.Network/loadBalancers',
    sku: { name: lb.sku ?? 'Standard' },
    properties: {
      frontendIPConfigurations: [{ name: 'fe', properties: { privateIPAddress: lb.frontend } }],
      backendAddressPools: [
        {
          name: 'pool',
          properties: {
            loadBalancerBackendAddresses: lb.backends.map((ip, i) => ({
              name: `member${i + 1}`,
              properties: { ipAddress: ip, ...(lb.adminDown?.includes(ip) ? { adminState: 'Down' } : {}) },
            })),
          },
        },
      ],
      probes: (lb.probes ?? []).map((p) => ({
        name: p.name,
        properties: {
          protocol: p.protocol ?? 'Tcp',
          port: p.port,
          intervalInSeconds: p.intervalInSeconds ?? 5,
          probeThreshold: p.probeThreshold ?? 1,
          ...(p.requestPath ? { requestPath: p.requestPath } : {}),
        },
      })),
      loadBalancingRules: (lb.rules ?? []).map((r) => ({
        name: r.name,
        properties: {
          frontendIPConfiguration: ref('frontendIPConfigurations', 'fe'),
          backendAddressPool: ref('backendAddressPools', 'pool'),
          protocol: r.protocol ?? 'Tcp',
          frontendPort: r.frontendPort,
          backendPort: r.backendPort,
          idleTimeoutInMinutes: r.idleTimeoutInMinutes ?? 4,
          enableTcpReset: r.enableTcpReset ?? false,
          ...(r.enableFloatingIP ? { enableFloatingIP: true } : {}),
          loadDistribution: r.loadDistribution ?? 'Default',
          ...(r.probe ? { probe: ref('probes', r.probe) } : {}),
        },
      })),
      inboundNatRules: (lb.natRanges ?? []).map((n) => ({
        name: n.name,
        properties: {
          frontendIPConfiguration: ref('frontendIPConfigurations', 'fe'),
          backendAddressPool: ref('backendAddressPools', 'pool'),
          protocol: 'Tcp',
          frontendPortRangeStart: n.start,
          frontendPortRangeEnd: n.end,
          backendPort: n.backendPort,
          idleTimeoutInMinutes: n.idleTimeoutInMinutes ?? 4,
          enableTcpReset: n.enableTcpReset ?? false,
        },
      })),
    },
  };
}

export function compileLb(lb: TestLb): RuntimeSnapshot {
  const result = validateDocument(lbDocument(lb));
  assert.ok(result.valid && result.snapshot, JSON.stringify(result.errors, null, 2));
  return result.snapshot;
}
