import type { Sku } from '../core/snapshot.js';
import { checkBound, checkIp, checkNames, checkPort } from './checks.js';
import { childKey, normId, resourceKey, type IdIndex } from './ids.js';
import { arr, int, oneOf, rec, refId, str, type Rec } from './json.js';
import { LB_CHILD_KINDS } from './load.js';
import type { FrontendModel, LoadBalancerModel, MemberModel, PoolModel, ProbeModel } from './model.js';
import { join } from './pointer.js';
import type { ResolveContext } from './resolve-context.js';

/**
 * A loadBalancers resource without its rules: the SKU, and the frontends, pools and probes
 * that rules refer to. Its rules are read by read-inbound-rules.ts and read-outbound-rules.ts.
 */

/** Frontends, pools and probes: what rules refer to. Rules come once every NIC has joined its pools. */
export function readLoadBalancerShell(ctx: ResolveContext, res: Rec, path: string): LoadBalancerModel {
  const { key, id, known } = resourceKey(res, 'loadbalancers');
  const name = str(res, 'name') ?? '';
  const props = rec(res['properties']);
  const ppath = join(path, 'properties');
  const skuName = str(rec(res['sku']), 'name');
  // Azure's API still defaults to Basic, but every export states its SKU; a hand-written
  // document without one means the load balancer Sluice models: Standard.
  const sku: Sku = skuName === 'Basic' ? 'Basic' : 'Standard';
  if (str(rec(res['sku']), 'tier') === 'Global') {
    ctx.report(
      'SLUICE_CONFIG_UNSUPPORTED',
      join(path, 'sku', 'tier'),
      `loadBalancers '${name}': the Global tier (cross-region load balancer) is not modelled; it is treated as Regional`,
    );
  }
  if (arr(props, 'inboundNatPools').length > 0) {
    ctx.report(
      'SLUICE_CONFIG_UNSUPPORTED',
      join(ppath, 'inboundNatPools'),
      `loadBalancers '${name}': inboundNatPools (virtual machine scale sets) are not supported; use inboundNatRules with frontendPortRangeStart/End`,
    );
  }
  for (const kind of LB_CHILD_KINDS) checkNames(ctx, arr(props, kind), join(ppath, kind), kind);

  const model: LoadBalancerModel = {
    key,
    id,
    name,
    path,
    sku,
    frontends: [],
    pools: [],
    probes: [],
    rules: [],
    natRules: [],
    outboundRules: [],
  };
  ctx.loadBalancers.add(key, model, known);
  if (!known) ctx.idless.add(key);
  const register = <T>(index: IdIndex<T>, kind: string, child: Rec, item: T): void => {
    const own = str(child, 'id');
    index.add(
      childKey(key, kind, str(child, 'name') ?? ''),
      item,
      known,
      own === undefined ? undefined : normId(own),
    );
  };

  arr(props, 'frontendIPConfigurations').forEach((c, i) => {
    const fe = readFrontend(ctx, rec(c), join(ppath, 'frontendIPConfigurations', i), key);
    if (fe !== undefined) {
      model.frontends.push(fe);
      register(ctx.frontends, 'frontendIPConfigurations', rec(c), fe);
    }
  });
  arr(props, 'backendAddressPools').forEach((c, i) => {
    const pool = readPool(ctx, rec(c), join(ppath, 'backendAddressPools', i), key);
    if (pool !== undefined) {
      model.pools.push(pool);
      register(ctx.pools, 'backendAddressPools', rec(c), pool);
    }
  });
  arr(props, 'probes').forEach((c, i) => {
    const probe = readProbe(ctx, rec(c), join(ppath, 'probes', i), key);
    if (probe !== undefined) {
      model.probes.push(probe);
      register(ctx.probes, 'probes', rec(c), probe);
    }
  });
  return model;
}

function readFrontend(ctx: ResolveContext, c: Rec, path: string, lbKey: string): FrontendModel | undefined {
  const name = str(c, 'name');
  if (name === undefined) return undefined;
  const owner = `frontendIPConfigurations '${name}'`;
  const props = rec(c['properties']);
  const pp = join(path, 'properties');
  for (const prop of ['publicIPPrefix', 'gatewayLoadBalancer']) {
    if (props[prop] !== undefined) {
      ctx.report(
        'SLUICE_CONFIG_UNSUPPORTED',
        join(pp, prop),
        `${owner} ${prop} is not supported; it is ignored`,
      );
    }
  }
  const privateRaw = str(props, 'privateIPAddress');
  const hasPublic = refId(props, 'publicIPAddress') !== undefined;
  const base = { key: childKey(lbKey, 'frontendIPConfigurations', name), id: str(c, 'id') ?? '', name, path };
  if (privateRaw !== undefined && hasPublic) {
    ctx.report(
      'SLUICE_CONFIG_INVALID_VALUE',
      join(pp, 'publicIPAddress'),
      `${owner} has both a privateIPAddress and a publicIPAddress; a frontend is either internal or public`,
    );
  }
  if (hasPublic && privateRaw === undefined) {
    const pipId = refId(props, 'publicIPAddress')!;
    const pip = ctx.publicIps.get(pipId);
    // `--map NAME=ADDR` may give the frontend, or its public IP by name, an address to serve.
    const mapped =
      pip === undefined ? ctx.mappedAddress(name, pipId.split('/').pop() ?? '') : ctx.mappedAddress(name);
    if (pip === undefined && mapped !== undefined) {
      // Served at the address the user gave it: a warning also where the public IP must be held.
      ctx.report(
        'SLUICE_CONFIG_REFERENCE_OUTSIDE',
        join(pp, 'publicIPAddress', 'id'),
        `${owner} uses public IP address ${JSON.stringify(pipId)}, which is not in the document: served at ${mapped} as --map gives it, but its idle timeout is unknown (if its idleTimeoutInMinutes differs from a rule's, it wins, B9); \`az network public-ip show --ids ${pipId}\` prints it`,
      );
      return { ...base, internal: false, ipAddress: mapped, missingPublicIpId: pipId };
    }
    if (pip === undefined) {
      // `az network lb show` prints the load balancer alone: its public IPs are ids only.
      ctx.report(
        ctx.outsideReferences === 'error'
          ? 'SLUICE_CONFIG_REFERENCE_NOT_FOUND'
          : 'SLUICE_CONFIG_REFERENCE_OUTSIDE',
        join(pp, 'publicIPAddress', 'id'),
        `${owner} uses public IP address ${JSON.stringify(pipId)}, which is not in the document: its address and idle timeout are unknown, so the rules on this frontend are not served (and if its idleTimeoutInMinutes differs from a rule's, it wins, B9); get it with \`az network public-ip show --ids ${pipId} > pip.json\` and give pip.json beside the load balancer`,
      );
      return { ...base, internal: false, missingPublicIpId: pipId };
    }
    if (mapped !== undefined) return { ...base, internal: false, ipAddress: mapped, publicIp: pip };
    if (pip.ipAddress === undefined) {
      ctx.report(
        'SLUICE_CONFIG_REQUIRED',
        join(pip.path, 'properties', 'ipAddress'),
        `publicIPAddresses '${pip.name}' has no ipAddress, so frontend '${name}' has no address to serve`,
      );
    }
    return { ...base, internal: false, ipAddress: pip.ipAddress, publicIp: pip };
  }
  if (privateRaw === undefined) {
    ctx.report(
      'SLUICE_CONFIG_REQUIRED',
      join(pp, 'privateIPAddress'),
      `${owner} needs a privateIPAddress (internal frontend) or a publicIPAddress reference (public frontend)`,
    );
    return { ...base, internal: true };
  }
  const ipAddress =
    ctx.mappedAddress(name) ??
    checkIp(ctx, privateRaw, join(pp, 'privateIPAddress'), `${owner} privateIPAddress`);
  const subnet = refId(props, 'subnet');
  return {
    ...base,
    internal: true,
    ipAddress,
    subnetKey: subnet === undefined ? undefined : normId(subnet),
  };
}

function readPool(ctx: ResolveContext, c: Rec, path: string, lbKey: string): PoolModel | undefined {
  const name = str(c, 'name');
  if (name === undefined) return undefined;
  const owner = `backendAddressPools '${name}'`;
  const props = rec(c['properties']);
  const pp = join(path, 'properties');
  const drain = int(props, 'drainPeriodInSeconds');
  checkBound(ctx, 'drainPeriodInSeconds', drain, pp, owner);
  if (arr(props, 'tunnelInterfaces').length > 0) {
    ctx.report(
      'SLUICE_CONFIG_UNSUPPORTED',
      join(pp, 'tunnelInterfaces'),
      `${owner} tunnelInterfaces (gateway load balancer) are not supported; they are ignored`,
    );
  }
  const key = childKey(lbKey, 'backendAddressPools', name);
  const members: MemberModel[] = [];
  // NIC-based pools: `az network lb show` names each member's NIC ip configuration by id.
  const nicRefs: { id: string; path: string }[] = [];
  arr(props, 'backendIPConfigurations').forEach((r, i) => {
    const id = str(rec(r), 'id');
    if (id !== undefined) nicRefs.push({ id, path: join(pp, 'backendIPConfigurations', i, 'id') });
  });
  const addresses = arr(props, 'loadBalancerBackendAddresses');
  checkNames(
    ctx,
    addresses,
    join(pp, 'loadBalancerBackendAddresses'),
    `${owner} loadBalancerBackendAddresses`,
  );
  addresses.forEach((a, i) => {
    const addr = rec(a);
    const apath = join(pp, 'loadBalancerBackendAddresses', i);
    const memberName = str(addr, 'name');
    if (memberName === undefined) return;
    const ap = rec(addr['properties']);
    const raw = str(ap, 'ipAddress');
    if (raw === undefined && refId(ap, 'loadBalancerFrontendIPConfiguration') !== undefined) {
      // Cross-region pools name a regional frontend instead of an address.
      ctx.report(
        'SLUICE_CONFIG_UNSUPPORTED',
        join(apath, 'properties', 'loadBalancerFrontendIPConfiguration'),
        `${owner} member '${memberName}' points at a regional frontend (cross-region load balancer); it is ignored`,
      );
      return;
    }
    if (raw === undefined && refId(ap, 'networkInterfaceIPConfiguration') !== undefined) {
      // A NIC-based pool as newer API versions print it: the member is the NIC's ip configuration.
      nicRefs.push({
        id: refId(ap, 'networkInterfaceIPConfiguration')!,
        path: join(apath, 'properties', 'networkInterfaceIPConfiguration', 'id'),
      });
      return;
    }
    // `--map NAME=ADDR` may give a backend address another address by its name.
    const mapped = ctx.mappedAddress(memberName);
    if (raw === undefined && mapped === undefined) {
      ctx.report(
        'SLUICE_CONFIG_REQUIRED',
        join(apath, 'properties', 'ipAddress'),
        `${owner} member '${memberName}' needs an ipAddress (or --map ${memberName}=ADDR)`,
      );
      return;
    }
    const ipAddress =
      mapped ??
      checkIp(ctx, raw, join(apath, 'properties', 'ipAddress'), `${owner} member '${memberName}' ipAddress`);
    if (ipAddress === undefined) return;
    const subnet = refId(ap, 'subnet');
    members.push({
      key: `${key}/loadbalancerbackendaddresses/${memberName.toLowerCase()}`,
      name: memberName,
      path: apath,
      ipAddress,
      adminState: oneOf(str(ap, 'adminState'), ['None', 'Up', 'Down'] as const) ?? 'None',
      subnetKey: subnet === undefined ? undefined : normId(subnet),
    });
  });
  const pool: PoolModel = {
    key,
    id: str(c, 'id') ?? '',
    name,
    path,
    members,
    missingMembers: [],
    drainPeriodInSeconds: drain,
  };
  ctx.poolNicRefs.set(pool, nicRefs);
  return pool;
}

function readProbe(ctx: ResolveContext, c: Rec, path: string, lbKey: string): ProbeModel | undefined {
  const name = str(c, 'name');
  if (name === undefined) return undefined;
  const owner = `probes '${name}'`;
  const props = rec(c['properties']);
  const pp = join(path, 'properties');
  const protocol = oneOf(str(props, 'protocol'), ['Tcp', 'Http', 'Https'] as const);
  const port = int(props, 'port');
  const requestPath = str(props, 'requestPath');
  const interval = int(props, 'intervalInSeconds');
  if (protocol === 'Tcp' && requestPath !== undefined) {
    ctx.report(
      'SLUICE_CONFIG_PROBE_PATH',
      join(pp, 'requestPath'),
      `${owner} is a Tcp probe: requestPath is only allowed for Http and Https probes`,
    );
  }
  if ((protocol === 'Http' || protocol === 'Https') && requestPath === undefined) {
    ctx.report(
      'SLUICE_CONFIG_PROBE_PATH',
      join(pp, 'requestPath'),
      `${owner} is an ${protocol} probe and needs a requestPath (for example "/")`,
    );
  }
  if (requestPath !== undefined && protocol !== 'Tcp' && !requestPath.startsWith('/')) {
    ctx.report(
      'SLUICE_CONFIG_INVALID_VALUE',
      join(pp, 'requestPath'),
      `${owner} requestPath ${JSON.stringify(requestPath)} must start with "/"`,
    );
  }
  checkBound(ctx, 'intervalInSeconds', interval, pp, owner);
  checkBound(ctx, 'probeThreshold', int(props, 'probeThreshold'), pp, owner);
  checkBound(ctx, 'numberOfProbes', int(props, 'numberOfProbes'), pp, owner);
  const portOk = checkPort(ctx, port, join(pp, 'port'), owner, 'port', 1, 65535);
  if (protocol === undefined || port === undefined || !portOk) return undefined;
  return {
    key: childKey(lbKey, 'probes', name),
    id: str(c, 'id') ?? '',
    name,
    path,
    protocol,
    port,
    requestPath: protocol === 'Tcp' ? undefined : requestPath,
    intervalInSeconds: interval,
    probeThreshold: int(props, 'probeThreshold'),
    noHealthyBackendsBehavior: oneOf(str(props, 'noHealthyBackendsBehavior'), [
      'AllProbedDown',
      'AllProbedUp',
    ] as const),
  };
}
