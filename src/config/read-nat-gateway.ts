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
    const pipId = str(rec(r), 'id');
    if (pipId === undefined) return;
    const pip = ctx.publicIps.get(pipId);
    if (pip !== undefined) publicIps.push(pip);
    else
      ctx.report(
        ctx.outsideReferences === 'error'
          ? 'SLUICE_CONFIG_REFERENCE_NOT_FOUND'
          : 'SLUICE_CONFIG_REFERENCE_OUTSIDE',
        join(pp, 'publicIpAddresses', i, 'id'),
        `${owner} uses public IP address ${JSON.stringify(pipId)}, which is not in the document: its members' outbound flows leave from no address of it; get it with \`az network public-ip show --ids ${pipId} > pip.json\` and give pip.json beside the gateway`,
      );
  });
  const subnetKeys = arr(props, 'subnets').flatMap((r) => {
    const sid = str(rec(r), 'id');
    return sid === undefined ? [] : [normId(sid)];
  });
  return { key, id, name, path, idleTimeoutInMinutes: idle, subnetKeys, publicIps };
}
