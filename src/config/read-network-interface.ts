import { checkIp, checkNames } from './checks.js';
import { childKey, nicConfigMapName, normId, resourceKey } from './ids.js';
import { arr, rec, refId, str, type Rec } from './json.js';
import type { MemberModel } from './model.js';
import { join } from './pointer.js';
import type { NicIpConfig, ResolveContext } from './resolve-context.js';

/**
 * A networkInterfaces resource: each ip configuration with a private address is a backend
 * member. The pools and NAT rules it names are joined later (resolve.ts), once the load
 * balancers that hold them are read.
 */
export function readNetworkInterface(ctx: ResolveContext, res: Rec, path: string): NicIpConfig[] {
  const { key: nicKey, known } = resourceKey(res, 'networkinterfaces');
  const nicName = str(res, 'name') ?? '';
  const ppath = join(path, 'properties');
  const configs = arr(rec(res['properties']), 'ipConfigurations');
  checkNames(
    ctx,
    configs,
    join(ppath, 'ipConfigurations'),
    `networkInterfaces '${nicName}' ipConfigurations`,
  );
  const out: NicIpConfig[] = [];
  configs.forEach((c, i) => {
    const cfg = rec(c);
    const cpath = join(ppath, 'ipConfigurations', i);
    const name = str(cfg, 'name');
    if (name === undefined) return;
    const props = rec(cfg['properties']);
    const pp = join(cpath, 'properties');
    const label = `${nicName}/${name}`;
    const derived = childKey(nicKey, 'ipConfigurations', name);
    const own = str(cfg, 'id');
    // `--map nic/ipconfig=ADDR` serves the member at another address (or gives one it lacks).
    const mapName = (own === undefined ? undefined : nicConfigMapName(own)) ?? label;
    const mapped = ctx.mappedAddress(mapName);
    const address =
      mapped ??
      checkIp(
        ctx,
        str(props, 'privateIPAddress'),
        join(pp, 'privateIPAddress'),
        `ip configuration '${label}' privateIPAddress`,
      );
    if (address === undefined) {
      if (str(props, 'privateIPAddress') === undefined) {
        ctx.report(
          'SLUICE_CONFIG_REQUIRED',
          join(pp, 'privateIPAddress'),
          `ip configuration '${label}' needs its privateIPAddress to be used as a backend (or --map ${mapName}=ADDR)`,
        );
      }
      return;
    }
    const subnet = refId(props, 'subnet');
    const member: MemberModel = {
      key: derived,
      // A scale set's instances share NIC names: their members are told apart by instance.
      name: mapName.split('/').length > 2 ? mapName : label,
      path: cpath,
      ipAddress: address,
      adminState: 'None',
      subnetKey: subnet === undefined ? undefined : normId(subnet),
    };
    const refsOf = (prop: string): { id: string; path: string }[] =>
      arr(props, prop).flatMap((r, j) => {
        const id = str(rec(r), 'id');
        return id === undefined ? [] : [{ id, path: join(pp, prop, j, 'id') }];
      });
    const pip = refId(props, 'publicIPAddress');
    const entry: NicIpConfig = {
      member,
      path: cpath,
      poolRefs: refsOf('loadBalancerBackendAddressPools'),
      natRuleRefs: refsOf('loadBalancerInboundNatRules'),
      ...(pip === undefined ? {} : { publicIpRef: { id: pip, path: join(pp, 'publicIPAddress', 'id') } }),
    };
    ctx.nicIpConfigs.add(derived, entry, known, own === undefined ? undefined : normId(own));
    out.push(entry);
  });
  return out;
}
