import { IDLE_RANGES } from './bounds.js';
import { checkIdle } from './checks.js';
import { normId, resourceKey } from './ids.js';
import { arr, int, rec, str, type Rec } from './json.js';
import type { NatGatewayModel, PublicIpModel } from './model.js';
import { join } from './pointer.js';
import type { ResolveContext } from './resolve-context.js';

/** A natGateways resource: the outbound path of the subnets it names, through its public IPs. */
export function readNatGateway(ctx: ResolveContext, res: Rec, path: string): NatGatewayModel {
  const { key, id } = resourceKey(res, 'natgateways');
  const name = str(res, 'name') ?? '';
  const owner = `natGateways '${name}'`;
  const props = rec(res['properties']);
  const pp = join(path, 'properties');
  const idle = int(props, 'idleTimeoutInMinutes');
  checkIdle(ctx, idle, join(pp, 'idleTimeoutInMinutes'), owner, IDLE_RANGES.natGateway);
  const publicIps: PublicIpModel[] = [];
  arr(props, 'publicIpAddresses').forEach((r, i) => {
    const pip = ctx.resolveRef(
      ctx.publicIps,
      { [i]: r },
      String(i),
      join(pp, 'publicIpAddresses'),
      owner,
      'public IP address',
    );
    if (pip !== undefined) publicIps.push(pip);
  });
  const subnetKeys = arr(props, 'subnets').flatMap((r) => {
    const sid = str(rec(r), 'id');
    return sid === undefined ? [] : [normId(sid)];
  });
  return { key, id, name, path, idleTimeoutInMinutes: idle, subnetKeys, publicIps };
}
