import { diagnostic, type Diagnostic } from '../core/errors.js';
import { join } from './pointer.js';

/**
 * Who serves what. Within one load balancer, two rules on the same frontend address, protocol
 * and port are a port conflict. Across load balancers Azure refuses more: a frontend IP
 * configuration belongs to one load balancer, so two of them may not use one public IP
 * address, nor one private IP in one subnet, whatever their ports; and two load balancers
 * that claim one address (after `--map`), protocol and port would leave the traffic to
 * whichever started last.
 */

/** A load balancer, as a conflict names it. */
export interface ClaimOwner {
  readonly key: string;
  readonly name: string;
}

/** The ports a rule serves on one frontend address and protocol. */
export interface PortClaim {
  /** The served address, or `frontend:KEY` for a frontend with no address (it conflicts only with itself). */
  readonly address: string;
  readonly protocol: 'Tcp' | 'Udp';
  readonly lo: number;
  readonly hi: number;
  readonly lb: ClaimOwner;
  /** The frontend IP configuration's key. */
  readonly frontend: string;
  /** `loadBalancingRules 'web'`: how messages name the rule. */
  readonly owner: string;
  /** Where the claim is made; also what tells two rules apart. */
  readonly path: string;
}

/** A frontend IP configuration, as the cross-load-balancer check sees it. */
export interface FrontendUse {
  readonly lb: ClaimOwner;
  readonly key: string;
  readonly name: string;
  readonly path: string;
  readonly internal: boolean;
  readonly publicIp?: { readonly key: string; readonly name: string };
  readonly ipAddress?: string;
  readonly subnetKey?: string;
}

function rangeText(lo: number, hi: number): string {
  return lo === hi ? `port ${lo}` : `ports ${lo}-${hi}`;
}

/** Frontends of different load balancers on one public IP resource, or one private IP in one subnet. */
export function frontendConflicts(frontends: readonly FrontendUse[]): {
  readonly diagnostics: Diagnostic[];
  /** `keyA|keyB` of every pair of frontends reported, both orders. */
  readonly pairs: ReadonlySet<string>;
} {
  const diagnostics: Diagnostic[] = [];
  const pairs = new Set<string>();
  const byUse = new Map<string, FrontendUse>();
  for (const fe of frontends) {
    let use: string | undefined;
    let what = '';
    let path = fe.path;
    if (fe.publicIp !== undefined) {
      use = `pip|${fe.publicIp.key}`;
      what = `public IP address '${fe.publicIp.name}'`;
      path = join(fe.path, 'properties', 'publicIPAddress', 'id');
    } else if (fe.internal && fe.ipAddress !== undefined && fe.subnetKey !== undefined) {
      // Without a subnet on both sides nothing says the two addresses are in one network.
      use = `private|${fe.subnetKey}|${fe.ipAddress.toLowerCase()}`;
      what = `private IP address ${fe.ipAddress} in one subnet`;
      path = join(fe.path, 'properties', 'privateIPAddress');
    }
    if (use === undefined) continue;
    const first = byUse.get(use);
    if (first === undefined) {
      byUse.set(use, fe);
      continue;
    }
    if (first.lb.key === fe.lb.key) continue;
    pairs.add(`${first.key}|${fe.key}`).add(`${fe.key}|${first.key}`);
    diagnostics.push(
      diagnostic(
        'SLUICE_CONFIG_FRONTEND_CONFLICT',
        path,
        `loadBalancers '${fe.lb.name}' frontendIPConfigurations '${fe.name}' and loadBalancers '${first.lb.name}' ` +
          `frontendIPConfigurations '${first.name}' both use ${what}: a frontend IP configuration belongs to one load balancer`,
      ),
    );
  }
  return { diagnostics, pairs };
}

/**
 * Overlapping port claims on one address and protocol: a port conflict within one load
 * balancer, a frontend conflict across two. Pairs of frontends already reported as shared are
 * not reported again for their ports.
 */
export function portConflicts(
  claims: readonly PortClaim[],
  sharedFrontends: ReadonlySet<string> = new Set(),
): Diagnostic[] {
  const out: Diagnostic[] = [];
  const groups = new Map<string, PortClaim[]>();
  for (const c of claims) {
    const k = `${c.address}|${c.protocol}`;
    const list = groups.get(k);
    if (list === undefined) groups.set(k, [c]);
    else list.push(c);
  }
  const reported = new Set<string>();
  for (const list of groups.values()) {
    for (let j = 1; j < list.length; j++) {
      const b = list[j]!;
      for (let i = 0; i < j; i++) {
        const a = list[i]!;
        if (a.path === b.path || a.hi < b.lo || b.hi < a.lo) continue;
        const pair = `${a.path}|${b.path}`;
        // A rule with protocol All claims Tcp and Udp; one report per pair is enough.
        if (reported.has(pair)) continue;
        reported.add(pair);
        const ports = rangeText(Math.max(a.lo, b.lo), Math.min(a.hi, b.hi));
        if (a.lb.key === b.lb.key) {
          const where = a.address.startsWith('frontend:') ? 'the same frontend' : a.address;
          out.push(
            diagnostic(
              'SLUICE_CONFIG_PORT_CONFLICT',
              b.path,
              `${b.owner} and ${a.owner} both claim ${where} ${b.protocol} ${ports}`,
            ),
          );
        } else if (!sharedFrontends.has(`${a.frontend}|${b.frontend}`)) {
          out.push(
            diagnostic(
              'SLUICE_CONFIG_FRONTEND_CONFLICT',
              b.path,
              `loadBalancers '${b.lb.name}' ${b.owner} and loadBalancers '${a.lb.name}' ${a.owner} both claim ` +
                `${a.address} ${b.protocol} ${ports}: one address, protocol and port is served by one load balancer`,
            ),
          );
        }
      }
    }
  }
  return out;
}
