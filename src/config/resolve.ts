import type { Diagnostic } from '../core/errors.js';
import { frontendConflicts, portConflicts } from './conflicts.js';
import { normId } from './ids.js';
import { arr, rec, str, type Rec } from './json.js';
import type {
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
 * pools full before any rule counts their members, NAT rules before the NICs that name them,
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
  for (const lb of lbs) readRules(ctx, lb.model, lb.raw, lb.path);
  for (const nic of nics) {
    for (const ref of nic.natRuleRefs) {
      const rule = ctx.natRules.get(ref.id);
      if (rule !== undefined) rule.target ??= nic.member;
      else
        ctx.reportForeignRef(ref.id, ref.path, `ip configuration '${nic.member.name}'`, 'inbound NAT rule');
    }
  }
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
    mappedNames: [...ctx.mappedNames],
  };
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
