import { IDLE_RANGES } from './bounds.js';
import { checkIdle, checkIp } from './checks.js';
import { resourceKey } from './ids.js';
import { int, rec, str, type Rec } from './json.js';
import type { PublicIpModel } from './model.js';
import { join } from './pointer.js';
import type { ResolveContext } from './resolve-context.js';

/** A publicIPAddresses resource: the address a public frontend or a NAT gateway uses. */
export function readPublicIp(ctx: ResolveContext, res: Rec, path: string): PublicIpModel {
  const { key, id, known } = resourceKey(res, 'publicipaddresses');
  const name = str(res, 'name') ?? '';
  const props = rec(res['properties']);
  const ppath = join(path, 'properties');
  const owner = `publicIPAddresses '${name}'`;
  const idle = int(props, 'idleTimeoutInMinutes');
  checkIdle(ctx, idle, join(ppath, 'idleTimeoutInMinutes'), owner, IDLE_RANGES.publicIp);
  // `--map NAME=ADDR` serves the public IP at a local address (or gives one it lacks).
  const ipAddress =
    ctx.mappedAddress(name) ??
    checkIp(ctx, str(props, 'ipAddress'), join(ppath, 'ipAddress'), `${owner} ipAddress`);
  const model: PublicIpModel = { key, id, name, path, ipAddress, idleTimeoutInMinutes: idle };
  ctx.publicIps.add(key, model, known);
  return model;
}
