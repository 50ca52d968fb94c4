import { checkIdle, checkOutboundPorts, checkOutboundSku, outboundRange } from './checks.js';
import { childKey } from './ids.js';
import { arr, bool, int, oneOf, rec, str, type Rec } from './json.js';
import type { FrontendModel, LoadBalancerModel, OutboundRuleModel } from './model.js';
import { join } from './pointer.js';
import type { ResolveContext } from './resolve-context.js';

/** An outbound rule: the public frontends a pool's members leave by, and the SNAT ports each gets. */
export function readOutboundRule(
  ctx: ResolveContext,
  lb: LoadBalancerModel,
  c: Rec,
  path: string,
): OutboundRuleModel | undefined {
  const name = str(c, 'name');
  if (name === undefined) return undefined;
  const owner = `outboundRules '${name}'`;
  const props = rec(c['properties']);
  const pp = join(path, 'properties');
  checkOutboundSku(ctx, lb.sku, props, path, pp, owner);
  const idle = int(props, 'idleTimeoutInMinutes');
  checkIdle(ctx, idle, join(pp, 'idleTimeoutInMinutes'), owner, outboundRange(lb.sku));
  const frontends: FrontendModel[] = [];
  arr(props, 'frontendIPConfigurations').forEach((r, i) => {
    const fe = ctx.resolveRef(
      ctx.frontends,
      { [i]: r },
      String(i),
      join(pp, 'frontendIPConfigurations'),
      owner,
      'frontend',
    );
    if (fe === undefined) return;
    if (fe.internal) {
      ctx.report(
        'SLUICE_CONFIG_INVALID_VALUE',
        join(pp, 'frontendIPConfigurations', i, 'id'),
        `${owner} uses frontend '${fe.name}', which is internal: outbound rules need a public frontend`,
      );
    }
    frontends.push(fe);
  });
  const pool = ctx.resolveRef(ctx.pools, props, 'backendAddressPool', pp, owner, 'backend pool');
  const protocol = oneOf(str(props, 'protocol'), ['Tcp', 'Udp', 'All'] as const);
  const ports = int(props, 'allocatedOutboundPorts');
  checkOutboundPorts(ctx, ports, pp, owner, pool, frontends);
  if (pool === undefined || protocol === undefined || frontends.length === 0) return undefined;
  return {
    key: childKey(lb.key, 'outboundRules', name),
    id: str(c, 'id') ?? '',
    name,
    path,
    frontends,
    pool,
    protocol,
    allocatedOutboundPorts: ports,
    idleTimeoutInMinutes: idle,
    enableTcpReset: bool(props, 'enableTcpReset'),
  };
}
