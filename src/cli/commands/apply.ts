import { basename, extname } from 'node:path';
import type { Command } from 'commander';
import {
  ApiClientError,
  SluiceClient,
  type DeploymentView,
  type ResourceAddress,
} from '../../client/index.js';
import { isRecord, normalizeDocument, readInputs } from '../../config/index.js';
import {
  DEFAULT_RESOURCE_GROUP,
  DEFAULT_SUBSCRIPTION,
  parseResourceId,
  resourceSegment,
} from '../../control/arm.js';
import { DEFAULT_API } from '../control-setup.js';
import { clientToken } from '../token.js';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, formatDiagnostic } from '../options.js';

/**
 * `sluice apply FILE`: every resource of a document into a running Sluice as one deployment, so
 * that it is applied whole or not at all.
 */

export interface ApplyCliOptions {
  api?: string;
  token?: string;
  tokenFile?: string;
}

/** The deployment's name, after the file as `az deployment group create` names it. */
export function deploymentName(file: string): string {
  const name = basename(file, extname(file))
    .replace(/[^-\w.()]/g, '-')
    .slice(0, 64);
  return name === '' ? 'sluice-apply' : name;
}

function idOf(a: ResourceAddress): string {
  return `/subscriptions/${a.subscription}/resourceGroups/${a.resourceGroup}/providers/Microsoft.Network/${a.type}/${a.name}`;
}

/**
 * Where a resource goes: its own id, or for a hand-written resource without one, the scope its
 * child references name (`.../loadBalancers/NAME/frontendIPConfigurations/fe`), or the defaults.
 */
export function addressOf(resource: Record<string, unknown>, index: number): ResourceAddress | string {
  const id = typeof resource['id'] === 'string' ? resource['id'] : undefined;
  if (id !== undefined) {
    const ref = parseResourceId(id);
    if (ref === undefined)
      return `resource ${index}: '${id}' is not a Microsoft.Network resource Sluice serves`;
    return {
      subscription: ref.subscription,
      resourceGroup: ref.resourceGroup,
      type: ref.segment,
      name: ref.name,
    };
  }
  const typeText =
    typeof resource['type'] === 'string' ? resource['type'] : 'Microsoft.Network/loadBalancers';
  const type = resourceSegment(typeText.replace(/^Microsoft\.Network\//i, ''));
  if (type === undefined) return `resource ${index}: type '${typeText}' is not served by the API`;
  const name = typeof resource['name'] === 'string' ? resource['name'] : undefined;
  if (name === undefined) return `resource ${index}: no name and no id`;
  const own = new RegExp(
    `/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\\.Network/${type}/${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/`,
    'i',
  ).exec(JSON.stringify(resource));
  return {
    subscription: own?.[1] ?? DEFAULT_SUBSCRIPTION,
    resourceGroup: own?.[2] ?? DEFAULT_RESOURCE_GROUP,
    type,
    name,
  };
}

export async function runApply(files: string | readonly string[], opts: ApplyCliOptions): Promise<number> {
  const inputs = typeof files === 'string' ? [files] : files;
  // A deployment is named after its (first) file, as `az deployment group create` names it.
  const file = inputs[0] === '-' ? 'stdin' : (inputs[0] ?? 'sluice-apply');
  const chosen = clientToken(opts);
  if ('error' in chosen) {
    process.stderr.write(`sluice apply: ${chosen.error}\n`);
    return EXIT_USAGE;
  }
  const parsed = await readInputs(inputs);
  if (!parsed.ok) {
    process.stderr.write(`${formatDiagnostic(parsed.diagnostic)}\n`);
    return EXIT_USAGE;
  }
  const { document } = normalizeDocument(parsed.json);
  const items: { address: ResourceAddress; body: Record<string, unknown> }[] = [];
  for (const [i, r] of document.resources.entries()) {
    if (!isRecord(r)) {
      process.stderr.write(`resource ${i}: not an object\n`);
      return EXIT_INVALID;
    }
    const address = addressOf(r, i);
    if (typeof address === 'string') {
      process.stderr.write(`warning: ${address}; skipped\n`);
      continue;
    }
    items.push({ address, body: r });
  }
  const client = new SluiceClient({
    base: opts.api ?? DEFAULT_API,
    token: chosen.token,
  });
  const scope = items[0]?.address ?? {
    subscription: DEFAULT_SUBSCRIPTION,
    resourceGroup: DEFAULT_RESOURCE_GROUP,
  };
  const name = deploymentName(file);
  let answer: DeploymentView;
  try {
    answer = await client.deploy(
      { subscription: scope.subscription, resourceGroup: scope.resourceGroup, name },
      // Each resource carries the id it goes to, so the deployment's own scope decides nothing.
      items.map(({ address, body }) => ({ ...body, id: idOf(address) })),
    );
  } catch (err) {
    if (!(err instanceof ApiClientError)) {
      process.stderr.write(`sluice apply: ${client.base}: ${(err as Error).message}\n`);
      return EXIT_INVALID;
    }
    const e = err.body?.error;
    process.stderr.write(`deployment ${name}: ${err.message}${e ? ` [${e.code}]` : ''}\n`);
    for (const d of e?.details ?? [])
      process.stderr.write(
        `  ${d.target === undefined || d.target === '' ? '(resource)' : d.target}: ${d.message} [${d.code}]\n`,
      );
    process.stderr.write('nothing changed\n');
    return EXIT_INVALID;
  }
  for (const c of answer.properties.changes) {
    const what = c.changedProperties.length > 0 ? `: ${c.changedProperties.join(', ')}` : '';
    process.stdout.write(`${c.change} ${c.id} (${c.etag})${what}\n`);
  }
  const changed = answer.properties.changes.filter((c) => c.change !== 'unchanged').length;
  process.stdout.write(
    changed === 0
      ? `nothing changed (generation ${answer.properties.generation})\n`
      : `applied as generation ${answer.properties.generation}\n`,
  );
  return EXIT_OK;
}

export function registerApply(program: Command): void {
  program
    .command('apply')
    .description(
      'apply every load balancer, public IP, NAT gateway and NIC of a document to a running Sluice, all or nothing',
    )
    .argument(
      '<files...>',
      'ARM JSON: one resource, an array of resources, or {"resources": [...]}; several files are one document (- is standard input)',
    )
    .option('--api <ADDR:PORT>', 'where the API listens', DEFAULT_API)
    .option('--token <TOKEN>', 'bearer token (or SLUICE_API_TOKEN)')
    .option(
      '--token-file <PATH>',
      'read the bearer token from the first line of PATH (or SLUICE_API_TOKEN_FILE)',
    )
    .exitOverride((err) => {
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    })
    .action(async (files: string[], opts: ApplyCliOptions) => {
      process.exitCode = await runApply(files, opts);
    });
}
