import { checkHaPorts, checkIdle, checkPort, checkReset, inboundRange } from './checks.js';
import { childKey } from './ids.js';
import { arr, bool, int, oneOf, rec, refId, str, type Rec } from './json.js';
import type { LbRuleModel, LoadBalancerModel, NatRuleModel, PoolModel } from './model.js';
import { join } from './pointer.js';
import type { ResolveContext } from './resolve-context.js';

/**
 * The rules that bring traffic in: load-balancing rules (a frontend port spread over a pool)
 * and inbound NAT rules (a frontend port, or a range of them, to one member each). Each rule
 * read claims its frontend ports for the conflict check.
 */

export function readLbRule(
  ctx: ResolveContext,
  lb: LoadBalancerModel,
  c: Rec,
  path: string,
): LbRuleModel | undefined {
  const name = str(c, 'name');
  if (name === undefined) return undefined;
  const owner = `loadBalancingRules '${name}'`;
  const props = rec(c['properties']);
  const pp = join(path, 'properties');
  const protocol = oneOf(str(props, 'protocol'), ['Tcp', 'Udp', 'All'] as const);
  const frontend = ctx.resolveRef(ctx.frontends, props, 'frontendIPConfiguration', pp, owner, 'frontend');
  const poolProp = refId(props, 'backendAddressPool') !== undefined ? 'backendAddressPool' : undefined;
  let pool =
    poolProp === undefined
      ? undefined
      : ctx.resolveRef(ctx.pools, props, poolProp, pp, owner, 'backend pool');
  if (poolProp === undefined) {
    const first = arr(props, 'backendAddressPools')[0];
    if (first !== undefined)
      pool = ctx.resolveRef(
        ctx.pools,
        { 0: first },
        '0',
        join(pp, 'backendAddressPools'),
        owner,
        'backend pool',
      );
    else
      ctx.report(
        'SLUICE_CONFIG_UNRESOLVED_BACKEND',
        pp,
        `${owner} has no backendAddressPool: connections to it are refused`,
      );
  }
  const probe = ctx.resolveRef(ctx.probes, props, 'probe', pp, owner, 'probe');
  const idle = int(props, 'idleTimeoutInMinutes');
  checkIdle(ctx, idle, join(pp, 'idleTimeoutInMinutes'), owner, inboundRange(lb.sku));
  checkReset(ctx, lb.sku, props, pp, owner);

  const frontendPort = int(props, 'frontendPort');
  const backendPortRaw = int(props, 'backendPort');
  const fpOk = checkPort(ctx, frontendPort, join(pp, 'frontendPort'), owner, 'frontendPort', 0, 65534);
  const bpOk =
    backendPortRaw === undefined ||
    checkPort(ctx, backendPortRaw, join(pp, 'backendPort'), owner, 'backendPort', 0, 65535);
  const backendPort = backendPortRaw ?? frontendPort;
  const haPorts = frontendPort === 0;
  if (fpOk && bpOk)
    checkHaPorts(ctx, lb.sku, props, pp, owner, { protocol, frontend, frontendPort, backendPort });
  if (
    frontend === undefined ||
    protocol === undefined ||
    frontendPort === undefined ||
    backendPort === undefined ||
    !fpOk ||
    !bpOk
  )
    return undefined;
  if (haPorts) ctx.claim(lb, frontend, protocol, 0, 65535, owner, join(pp, 'frontendPort'));
  else ctx.claim(lb, frontend, protocol, frontendPort, frontendPort, owner, join(pp, 'frontendPort'));
  return {
    key: childKey(lb.key, 'loadBalancingRules', name),
    id: str(c, 'id') ?? '',
    name,
    path,
    frontend,
    protocol,
    frontendPort,
    backendPort,
    pool,
    probe,
    idleTimeoutInMinutes: idle,
    enableTcpReset: bool(props, 'enableTcpReset'),
    enableFloatingIP: bool(props, 'enableFloatingIP'),
    loadDistribution: oneOf(str(props, 'loadDistribution'), [
      'Default',
      'SourceIP',
      'SourceIPProtocol',
    ] as const),
    disableOutboundSnat: bool(props, 'disableOutboundSnat'),
  };
}

export function readNatRule(
  ctx: ResolveContext,
  lb: LoadBalancerModel,
  c: Rec,
  path: string,
): NatRuleModel | undefined {
  const name = str(c, 'name');
  if (name === undefined) return undefined;
  const owner = `inboundNatRules '${name}'`;
  const props = rec(c['properties']);
  const pp = join(path, 'properties');
  const protocol = oneOf(str(props, 'protocol'), ['Tcp', 'Udp', 'All'] as const);
  const frontend = ctx.resolveRef(ctx.frontends, props, 'frontendIPConfiguration', pp, owner, 'frontend');
  const idle = int(props, 'idleTimeoutInMinutes');
  checkIdle(ctx, idle, join(pp, 'idleTimeoutInMinutes'), owner, inboundRange(lb.sku));
  checkReset(ctx, lb.sku, props, pp, owner);
  const backendPort = int(props, 'backendPort');
  const bpOk = checkPort(ctx, backendPort, join(pp, 'backendPort'), owner, 'backendPort', 1, 65535);

  // Azure prints frontendPort 0 on port-range rules and leaves the range unset (or 0) on single-port ones.
  const nonZero = (k: string): number | undefined => {
    const v = int(props, k);
    return v === 0 ? undefined : v;
  };
  const start = nonZero('frontendPortRangeStart');
  const end = nonZero('frontendPortRangeEnd');
  const single = nonZero('frontendPort');
  const poolRef = refId(props, 'backendAddressPool');
  let lo: number | undefined;
  let hi: number | undefined;
  let pool: PoolModel | undefined;
  if (start !== undefined || end !== undefined) {
    if (single !== undefined) {
      ctx.report(
        'SLUICE_CONFIG_INVALID_VALUE',
        join(pp, 'frontendPort'),
        `${owner} sets both frontendPort and frontendPortRangeStart/End; use one or the other`,
      );
    }
    if (start === undefined)
      ctx.report(
        'SLUICE_CONFIG_REQUIRED',
        join(pp, 'frontendPortRangeStart'),
        `${owner} sets frontendPortRangeEnd but not frontendPortRangeStart`,
      );
    if (end === undefined)
      ctx.report(
        'SLUICE_CONFIG_REQUIRED',
        join(pp, 'frontendPortRangeEnd'),
        `${owner} sets frontendPortRangeStart but not frontendPortRangeEnd`,
      );
    if (poolRef === undefined)
      ctx.report(
        'SLUICE_CONFIG_REQUIRED',
        join(pp, 'backendAddressPool'),
        `${owner} has a frontend port range and needs a backendAddressPool to spread it over`,
      );
    else pool = ctx.resolveRef(ctx.pools, props, 'backendAddressPool', pp, owner, 'backend pool');
    const sOk = checkPort(
      ctx,
      start,
      join(pp, 'frontendPortRangeStart'),
      owner,
      'frontendPortRangeStart',
      1,
      65534,
    );
    const eOk = checkPort(
      ctx,
      end,
      join(pp, 'frontendPortRangeEnd'),
      owner,
      'frontendPortRangeEnd',
      1,
      65534,
    );
    if (sOk && eOk && start !== undefined && end !== undefined) {
      if (end < start) {
        ctx.report(
          'SLUICE_CONFIG_PORT_RANGE',
          join(pp, 'frontendPortRangeEnd'),
          `${owner} frontendPortRangeEnd ${end} is below frontendPortRangeStart ${start}`,
        );
      } else {
        lo = start;
        hi = end;
        const size = end - start + 1;
        if (pool !== undefined && pool.members.length > size) {
          ctx.report(
            'SLUICE_CONFIG_PORT_RANGE',
            join(pp, 'frontendPortRangeEnd'),
            `${owner} frontend port range ${start}-${end} holds ${size} port(s) but backendAddressPools '${pool.name}' has ${pool.members.length} members: each member needs its own port`,
          );
        }
      }
    }
  } else {
    if (single === undefined) {
      if (int(props, 'frontendPort') === 0)
        ctx.report(
          'SLUICE_CONFIG_PORT_RANGE',
          join(pp, 'frontendPort'),
          `${owner} frontendPort 0 is out of range: allowed 1-65534`,
        );
      else
        ctx.report(
          'SLUICE_CONFIG_REQUIRED',
          join(pp, 'frontendPort'),
          `${owner} needs a frontendPort, or frontendPortRangeStart/End with a backendAddressPool`,
        );
    } else if (checkPort(ctx, single, join(pp, 'frontendPort'), owner, 'frontendPort', 1, 65534)) {
      lo = single;
      hi = single;
    }
    if (poolRef !== undefined) {
      ctx.report(
        'SLUICE_CONFIG_INVALID_VALUE',
        join(pp, 'backendAddressPool'),
        `${owner} has a single frontendPort: a backendAddressPool needs frontendPortRangeStart/End; a single-port rule is bound to one NIC ip configuration`,
      );
    }
  }
  if (
    frontend === undefined ||
    protocol === undefined ||
    backendPort === undefined ||
    !bpOk ||
    lo === undefined ||
    hi === undefined
  )
    return undefined;
  ctx.claim(
    lb,
    frontend,
    protocol,
    lo,
    hi,
    owner,
    join(pp, single === undefined ? 'frontendPortRangeStart' : 'frontendPort'),
  );
  const rule: NatRuleModel = {
    key: childKey(lb.key, 'inboundNatRules', name),
    id: str(c, 'id') ?? '',
    name,
    path,
    frontend,
    protocol,
    frontendPortRangeStart: lo,
    frontendPortRangeEnd: hi,
    backendPort,
    pool,
    idleTimeoutInMinutes: idle,
    enableTcpReset: bool(props, 'enableTcpReset'),
    enableFloatingIP: bool(props, 'enableFloatingIP'),
  };
  // The NIC side names the rule too; the rule's own back-reference is a fallback.
  const backRef = refId(props, 'backendIPConfiguration');
  if (single !== undefined && backRef !== undefined) {
    const nic = ctx.nicIpConfigs.get(backRef);
    if (nic !== undefined) rule.target = nic.member;
    else {
      const member = ctx.outsideNicMember(backRef, join(pp, 'backendIPConfiguration', 'id'), owner);
      if (member !== undefined && 'ipAddress' in member) rule.target = member;
      else if (member !== undefined) rule.missingTarget = member;
    }
  }
  return rule;
}
