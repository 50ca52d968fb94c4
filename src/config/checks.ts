import { isIP } from 'node:net';
import type { ArmProtocol, Sku } from '../core/snapshot.js';
import {
  BOUNDS,
  IDLE_RANGES,
  MAX_SNAT_PORTS_PER_FRONTEND,
  outOfBound,
  type BoundedProperty,
  type IdleRange,
} from './bounds.js';
import { bool, rec, str, type Rec } from './json.js';
import type { FrontendModel, PoolModel } from './model.js';
import { join } from './pointer.js';
import type { ResolveContext } from './resolve-context.js';

/**
 * What JSON Schema cannot check about a value: ranges that depend on the SKU or on the kind of
 * rule, addresses, ports, HA ports, SNAT port allocation, names unique among their siblings.
 * Each check reports to the resolution it is given; the two whose answer a reader needs return
 * it (checkIp the address, checkPort whether the port can be used).
 */

/** The address when it is one; an invalid one is reported and read as absent. */
export function checkIp(
  ctx: ResolveContext,
  value: string | undefined,
  path: string,
  what: string,
): string | undefined {
  if (value === undefined) return undefined;
  if (isIP(value) === 0) {
    ctx.report('SLUICE_CONFIG_INVALID_VALUE', path, `${what} ${JSON.stringify(value)} is not an IP address`);
    return undefined;
  }
  return value;
}

export function checkIdle(
  ctx: ResolveContext,
  value: number | undefined,
  path: string,
  owner: string,
  range: IdleRange,
): void {
  if (value === undefined) return;
  if (value < range.min || value > range.max) {
    ctx.report(
      'SLUICE_CONFIG_IDLE_TIMEOUT_RANGE',
      path,
      `${owner} idleTimeoutInMinutes ${value} is out of range: ${range.label}`,
    );
  }
}

/** The idle timeout range of a load-balancing or inbound NAT rule. */
export function inboundRange(sku: Sku): IdleRange {
  return sku === 'Basic' ? IDLE_RANGES.basic : IDLE_RANGES.standardInbound;
}

/** The idle timeout range of an outbound rule. */
export function outboundRange(sku: Sku): IdleRange {
  return sku === 'Basic' ? IDLE_RANGES.basic : IDLE_RANGES.standardOutbound;
}

export function checkBound(
  ctx: ResolveContext,
  prop: BoundedProperty,
  value: number | undefined,
  pp: string,
  owner: string,
): void {
  const problem = outOfBound(prop, value, owner);
  if (problem !== undefined) ctx.report(BOUNDS[prop].code, join(pp, prop), problem);
}

/** True when the port is stated and within `lo`-`hi`; out of range is reported. */
export function checkPort(
  ctx: ResolveContext,
  value: number | undefined,
  path: string,
  owner: string,
  prop: string,
  lo: number,
  hi: number,
): boolean {
  if (value === undefined) return false;
  if (value < lo || value > hi) {
    ctx.report(
      'SLUICE_CONFIG_PORT_RANGE',
      path,
      `${owner} ${prop} ${value} is out of range: allowed ${lo}-${hi}`,
    );
    return false;
  }
  return true;
}

/** Names unique among siblings, compared case-insensitively as ARM does. */
export function checkNames(ctx: ResolveContext, items: unknown[], path: string, kind: string): void {
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const name = str(rec(item), 'name');
    if (name === undefined) return;
    const lower = name.toLowerCase();
    const first = seen.get(lower);
    if (first !== undefined) {
      ctx.report(
        'SLUICE_CONFIG_DUPLICATE_NAME',
        join(path, i, 'name'),
        `${kind} '${name}' is defined twice (also at index ${first})`,
      );
    } else seen.set(lower, i);
  });
}

export function checkReset(ctx: ResolveContext, sku: Sku, props: Rec, pp: string, owner: string): void {
  if (sku === 'Basic' && bool(props, 'enableTcpReset') === true) {
    ctx.report(
      'SLUICE_CONFIG_TCP_RESET_BASIC',
      join(pp, 'enableTcpReset'),
      `${owner} enableTcpReset is true, but the Basic SKU does not offer TCP reset on idle; use the Standard SKU or remove it`,
    );
  }
}

/**
 * Port 0 and protocol All on a load-balancing rule whose ports are in range: together they
 * are HA ports, which ask for an internal frontend and the Standard SKU; apart they are errors.
 */
export function checkHaPorts(
  ctx: ResolveContext,
  sku: Sku,
  props: Rec,
  pp: string,
  owner: string,
  rule: {
    readonly protocol: ArmProtocol | undefined;
    readonly frontend: FrontendModel | undefined;
    readonly frontendPort: number | undefined;
    readonly backendPort: number | undefined;
  },
): void {
  const { protocol, frontend, frontendPort, backendPort } = rule;
  if (frontendPort === 0) {
    const problems: string[] = [];
    if (protocol !== undefined && protocol !== 'All') problems.push(`protocol is ${protocol}`);
    if (frontend !== undefined && !frontend.internal) problems.push('the frontend is public');
    if (backendPort !== 0) problems.push(`backendPort is ${String(backendPort)}`);
    if (problems.length > 0) {
      ctx.report(
        'SLUICE_CONFIG_HA_PORTS',
        join(pp, 'frontendPort'),
        `${owner} frontendPort 0 (HA ports) needs protocol All, backendPort 0 and an internal frontend, but ${problems.join(' and ')}`,
      );
    }
    if (sku === 'Basic') {
      ctx.report(
        'SLUICE_CONFIG_SKU_FEATURE',
        join(pp, 'frontendPort'),
        `${owner} uses HA ports (frontendPort 0), which the Basic SKU does not offer`,
      );
    }
    if (bool(props, 'enableTcpReset') === true && sku === 'Standard') {
      ctx.report(
        'SLUICE_CONFIG_HA_PORTS_TCP_RESET',
        join(pp, 'enableTcpReset'),
        `${owner} enables TCP reset on an HA-ports rule: Azure does not send it when a network virtual appliance is in the path; use an outbound rule with enableTcpReset on the appliance's traffic instead`,
      );
    }
  } else if (protocol === 'All') {
    ctx.report(
      'SLUICE_CONFIG_HA_PORTS',
      join(pp, 'protocol'),
      `${owner} protocol All is only for HA ports rules (frontendPort 0 and backendPort 0), but frontendPort is ${String(frontendPort)}`,
    );
  } else if (backendPort === 0) {
    ctx.report(
      'SLUICE_CONFIG_PORT_RANGE',
      join(pp, 'backendPort'),
      `${owner} backendPort 0 is only allowed for HA ports rules: allowed 1-65535`,
    );
  }
}

/** Outbound rules are a Standard SKU feature. */
export function checkOutboundSku(
  ctx: ResolveContext,
  sku: Sku,
  props: Rec,
  path: string,
  pp: string,
  owner: string,
): void {
  if (sku === 'Basic') {
    ctx.report('SLUICE_CONFIG_SKU_FEATURE', path, `${owner}: outbound rules need the Standard SKU`);
    checkReset(ctx, sku, props, pp, owner);
  }
}

/** An outbound rule's SNAT ports per member: multiples of 8, and no more than its frontend IPs offer the pool. */
export function checkOutboundPorts(
  ctx: ResolveContext,
  ports: number | undefined,
  pp: string,
  owner: string,
  pool: PoolModel | undefined,
  frontends: readonly FrontendModel[],
): void {
  if (ports === undefined || ports <= 0) return;
  if (ports % 8 !== 0) {
    ctx.report(
      'SLUICE_CONFIG_OUTBOUND_PORTS',
      join(pp, 'allocatedOutboundPorts'),
      `${owner} allocatedOutboundPorts ${ports} is not a multiple of 8`,
    );
  } else if (ports > MAX_SNAT_PORTS_PER_FRONTEND) {
    ctx.report(
      'SLUICE_CONFIG_OUTBOUND_PORTS',
      join(pp, 'allocatedOutboundPorts'),
      `${owner} allocatedOutboundPorts ${ports} is out of range: allowed 0-${MAX_SNAT_PORTS_PER_FRONTEND} in multiples of 8 (the ports one frontend IP offers a member)`,
    );
  } else if (pool !== undefined && frontends.length > 0) {
    const needed = ports * pool.members.length;
    const available = MAX_SNAT_PORTS_PER_FRONTEND * frontends.length;
    if (needed > available) {
      ctx.report(
        'SLUICE_CONFIG_OUTBOUND_PORTS',
        join(pp, 'allocatedOutboundPorts'),
        `${owner} allocatedOutboundPorts ${ports} x ${pool.members.length} members = ${needed} ports, more than the ${available} that ${frontends.length} frontend IP(s) offer (64000 each)`,
      );
    }
  }
}
