import type { Diagnostic } from '../core/errors.js';
import { frontendConflicts, portConflicts } from './conflicts.js';
import { normId } from './ids.js';
import { arr, rec, str, type Rec } from './json.js';
import type {
  InstancePublicIpModel,
  LoadBalancerModel,
  NatGatewayModel,
  PublicIpModel,
  ResolveOptions,
  ResolvedDocument,
} from './model.js';
import { join } from './pointer.js';
import { readLbRule, readNatRule } from './read-inbound-rules.js';
import { readLoadBalancerShell } from './read-load-balancer.js';
import { readNatGateway } from './read-nat-gateway.js';
import { readNetworkInterface } from './read-network-interface.js';
import { readOutboundRule } from './read-outbound-rules.js';
import { readPublicIp } from './read-public-ip.js';
import { ResolveContext, type NicIpConfig } from './resolve-context.js';
import { resourceKind } from './schema.js';

/**
 * The semantic pass. It reads the normalized document defensively (the structural pass may
 * have found errors, and every error is reported in one go), resolves ARM id references,
 * and checks what JSON Schema cannot: ranges that depend on the SKU, ports, probe settings
 * (checks.ts, bounds.ts), and who claims which frontend (conflicts.ts). Its output keeps ARM's
 * names and units (model.ts); compile.ts turns it into the runtime snapshot.
 *
 * Here is only the order of the passes, which the readers (read-*.ts) depend on: public IPs
 * before the frontends that use them, NICs and load balancer shells before NICs join pools,
 * pools full (NICs that name them, then NICs they name) before any rule counts their members, NAT rules before the NICs that name them,
 * and every claim before the conflicts are judged.
 */

function run(ctx: ResolveContext, resources: readonly unknown[]): ResolvedDocument {
  const kinds = resources.map((r) => resourceKind(r));
  const at = (i: number): string => join('/resources', i);

  const publicIps: PublicIpModel[] = [];
  resources.forEach((r, i) => {
    if (kinds[i] === 'publicIPAddress') publicIps.push(readPublicIp(ctx, rec(r), at(i)));
  });
  const nics: NicIpConfig[] = [];
  resources.forEach((r, i) => {
    if (kinds[i] === 'networkInterface') nics.push(...readNetworkInterface(ctx, rec(r), at(i)));
  });

  const lbs: { model: LoadBalancerModel; raw: Rec; path: string }[] = [];
  resources.forEach((r, i) => {
    if (kinds[i] === 'loadBalancer')
      lbs.push({ model: readLoadBalancerShell(ctx, rec(r), at(i)), raw: rec(r), path: at(i) });
  });
  // NIC ip configurations join their pools before any rule counts a pool's members.
  for (const nic of nics) {
    for (const ref of nic.poolRefs) {
      const pool = ctx.pools.get(ref.id);
      if (pool !== undefined) pool.members.push(nic.member);
      else ctx.reportForeignRef(ref.id, ref.path, `ip configuration '${nic.member.name}'`, 'backend pool');
    }
  }
  // The pool's own list of NIC ip configurations: those the document holds join (once), the
  // others are served at their `--map` address or are missing.
  for (const [pool, refs] of ctx.poolNicRefs) {
    // Newer API versions list each NIC member twice (backendIPConfigurations, loadBalancerBackendAddresses).
    const seen = new Set<string>();
    for (const ref of refs) {
      if (seen.has(normId(ref.id))) continue;
      seen.add(normId(ref.id));
      const member =
        ctx.nicIpConfigs.get(ref.id)?.member ??
        ctx.outsideNicMember(ref.id, ref.path, `backendAddressPools '${pool.name}'`);
      if (member === undefined) continue;
      if ('ipAddress' in member) {
        if (!pool.members.some((m) => m.key === member.key)) pool.members.push(member);
      } else if (!pool.missingMembers.includes(member)) pool.missingMembers.push(member);
    }
  }
  for (const lb of lbs) readRules(ctx, lb.model, lb.raw, lb.path);
  for (const nic of nics) {
    for (const ref of nic.natRuleRefs) {
      const rule = ctx.natRules.get(ref.id);
      if (rule !== undefined) rule.target ??= nic.member;
      else
        ctx.reportForeignRef(ref.id, ref.path, `ip configuration '${nic.member.name}'`, 'inbound NAT rule');
    }
  }
  const instancePublicIps = readInstancePublicIps(
    ctx,
    nics,
    lbs.map((l) => l.model),
  );
  const natGateways: NatGatewayModel[] = [];
  resources.forEach((r, i) => {
    if (kinds[i] === 'natGateway') natGateways.push(readNatGateway(ctx, rec(r), at(i)));
  });
  const shared = frontendConflicts(
    lbs.flatMap(({ model }) =>
      model.frontends.map((fe) => ({
        ...fe,
        lb: model,
        publicIp: fe.publicIp === undefined ? undefined : { key: fe.publicIp.key, name: fe.publicIp.name },
      })),
    ),
  );
  ctx.diagnostics.push(...shared.diagnostics, ...portConflicts(ctx.claims, shared.pairs));
  return {
    loadBalancers: lbs.map((l) => l.model),
    publicIps,
    natGateways,
    instancePublicIps,
    mappedNames: [...ctx.mappedNames],
  };
}

/**
 * NIC ip configurations with a public IP of their own (the seeds' single VM): served 1:1 at
 * the public IP's address. A public IP is attached to one resource: one that a load balancer
 * frontend also uses is a conflict, as ARM refuses it.
 */
function readInstancePublicIps(
  ctx: ResolveContext,
  nics: readonly NicIpConfig[],
  lbs: readonly LoadBalancerModel[],
): InstancePublicIpModel[] {
  const onFrontends = new Map<string, string>();
  for (const lb of lbs)
    for (const f of lb.frontends)
      if (f.publicIp !== undefined)
        onFrontends.set(f.publicIp.key, `frontend '${f.name}' of load balancer '${lb.name}'`);
  const out: InstancePublicIpModel[] = [];
  for (const nic of nics) {
    const ref = nic.publicIpRef;
    if (ref === undefined) continue;
    const owner = `ip configuration '${nic.member.name}'`;
    const pip = ctx.publicIps.get(ref.id);
    const base = { key: nic.member.key, name: nic.member.name, path: nic.path, member: nic.member };
    if (pip === undefined) {
      const pipName = ref.id.split('/').pop() ?? '';
      const mapped = ctx.mappedAddress(pipName);
      ctx.report(
        'SLUICE_CONFIG_REFERENCE_OUTSIDE',
        ref.path,
        mapped !== undefined
          ? `${owner} has public IP address ${JSON.stringify(ref.id)}, which is not in the document: served at ${mapped} as --map gives it, with Azure's default idle timeout of 4 minutes (its own idleTimeoutInMinutes is unknown); \`az network public-ip show --ids ${ref.id}\` prints it`
          : `${owner} has public IP address ${JSON.stringify(ref.id)}, which is not in the document: its address and idle timeout are unknown, so the instance's public path is not served; add --map ${pipName}=ADDR, or get it with \`az network public-ip show --ids ${ref.id} > pip.json\` and give pip.json beside the NIC`,
      );
      out.push({
        ...base,
        missingPublicIpId: ref.id,
        ...(mapped === undefined ? {} : { ipAddress: mapped }),
      });
      continue;
    }
    const taken = onFrontends.get(pip.key);
    if (taken !== undefined) {
      ctx.report(
        'SLUICE_CONFIG_FRONTEND_CONFLICT',
        ref.path,
        `${owner} has public IP address '${pip.name}', which ${taken} uses too: a public IP is attached to one resource`,
      );
      continue;
    }
    onFrontends.set(pip.key, owner);
    if (pip.ipAddress === undefined)
      ctx.report(
        'SLUICE_CONFIG_REQUIRED',
        join(pip.path, 'properties', 'ipAddress'),
        `publicIPAddresses '${pip.name}' has no ipAddress, so ${owner} has no public address to serve (or --map ${pip.name}=ADDR)`,
      );
    out.push({
      ...base,
      publicIp: pip,
      ...(pip.ipAddress === undefined ? {} : { ipAddress: pip.ipAddress }),
    });
  }
  return out;
}

/** A load balancer's rules, once its pools hold every member: load-balancing, inbound NAT, outbound. */
function readRules(ctx: ResolveContext, lb: LoadBalancerModel, res: Rec, path: string): void {
  const props = rec(res['properties']);
  const ppath = join(path, 'properties');
  arr(props, 'loadBalancingRules').forEach((c, i) => {
    const rule = readLbRule(ctx, lb, rec(c), join(ppath, 'loadBalancingRules', i));
    if (rule !== undefined) lb.rules.push(rule);
  });
  arr(props, 'inboundNatRules').forEach((c, i) => {
    const child = rec(c);
    const rule = readNatRule(ctx, lb, child, join(ppath, 'inboundNatRules', i));
    if (rule !== undefined) {
      lb.natRules.push(rule);
      const own = str(child, 'id');
      ctx.natRules.add(rule.key, rule, !ctx.idless.has(lb.key), own === undefined ? undefined : normId(own));
    }
  });
  arr(props, 'outboundRules').forEach((c, i) => {
    const rule = readOutboundRule(ctx, lb, rec(c), join(ppath, 'outboundRules', i));
    if (rule !== undefined) lb.outboundRules.push(rule);
  });
}

/** Resolves references and checks the document's meaning; never throws on a malformed document. */
export function resolveDocument(
  document: { readonly resources: readonly unknown[] },
  options: ResolveOptions = {},
): { readonly model: ResolvedDocument; readonly diagnostics: readonly Diagnostic[] } {
  const ctx = new ResolveContext(options);
  const model = run(ctx, document.resources);
  return { model, diagnostics: ctx.diagnostics };
}
