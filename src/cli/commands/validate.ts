import type { Command } from 'commander';
import type { Diagnostic } from '../../core/errors.js';
import type { ValidationResult } from '../../config/index.js';
import type { RuntimeSnapshot } from '../../core/snapshot.js';
import { DEFAULT_DATA_PLANE, dataPlaneModule, dataPlaneNames } from '../../dataplane/registry.js';
import type { DataPlaneModule } from '../../dataplane/plane.js';
import {
  EXIT_INVALID,
  EXIT_USAGE,
  collect,
  inputsLabel,
  loadConfig,
  parsePorts,
  reportDiagnostics,
} from '../options.js';

/** `sluice validate FILE`: exit 0 valid, 1 invalid, 2 usage error or a file that is not JSON. */

function plain(d: Diagnostic): { code: string; path: string; message: string } {
  return { code: d.code, path: d.path, message: d.message };
}

function summary(r: ValidationResult): string {
  const all = r.snapshot?.loadBalancers ?? [];
  const lbs = all.filter((lb) => lb.instancePublicIp === undefined);
  const instances = all.length - lbs.length;
  const unserved = all.reduce((n, lb) => n + (lb.unserved?.length ?? 0), 0);
  const count = (f: (lb: (typeof lbs)[number]) => number): number => lbs.reduce((n, lb) => n + f(lb), 0);
  const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
  return [
    plural(lbs.length, 'load balancer'),
    plural(
      count((lb) => lb.loadBalancingRules.length),
      'load-balancing rule',
    ),
    plural(
      count((lb) => lb.inboundNatRules.length),
      'inbound NAT rule',
    ),
    plural(
      count((lb) => lb.outboundRules.length),
      'outbound rule',
    ),
    ...(instances > 0 ? [plural(instances, 'instance-level public IP')] : []),
    ...(unserved > 0
      ? [`${plural(unserved, 'rule')} not served as the document stands (see the warnings)`]
      : []),
  ].join(', ');
}

export interface ValidateCliOptions {
  json?: boolean;
  map?: string[];
  dataplane?: string;
  instancePorts?: string;
}

/**
 * What `sluice run` on `plane` would make of a valid document, said up front: what it leaves
 * out (with a warning each at run), or, for a plane that serves all or nothing, what it refuses.
 */
function planeVerdict(
  plane: DataPlaneModule,
  snapshot: RuntimeSnapshot,
  instancePorts: readonly number[],
): { leftOut: string[]; refused: string[] } {
  const s = plane.adapt?.(snapshot, instancePorts.length > 0 ? { instancePorts } : {}) ?? snapshot;
  const problems = plane.unsupported(s);
  if (problems.length === 0) return { leftOut: [], refused: [] };
  if (plane.partial === undefined) return { leftOut: [], refused: problems };
  return { leftOut: plane.partial(s).warnings, refused: [] };
}

export async function runValidate(
  files: string | readonly string[],
  opts: ValidateCliOptions,
): Promise<number> {
  const inputs = typeof files === 'string' ? [files] : files;
  const file = inputsLabel(inputs);
  const plane = dataPlaneModule(opts.dataplane ?? DEFAULT_DATA_PLANE.name);
  if (plane === undefined) {
    process.stderr.write(
      `--dataplane expects ${dataPlaneNames().join(' or ')}, got '${opts.dataplane}' [SLUICE_PLANE_UNKNOWN]\n`,
    );
    return EXIT_USAGE;
  }
  const instancePorts = parsePorts(opts.instancePorts);
  if (typeof instancePorts === 'string') {
    process.stderr.write(`${instancePorts}\n`);
    return EXIT_USAGE;
  }
  const { result, exit } = await loadConfig(inputs, opts.map ?? []);
  const verdict =
    result.snapshot === undefined
      ? { leftOut: [], refused: [] }
      : planeVerdict(plane, result.snapshot, instancePorts);
  if (opts.json === true) {
    const body = {
      valid: result.valid,
      errors: result.errors.map(plain),
      warnings: result.warnings.map(plain),
      ...(result.valid ? { dataplane: { name: plane.name, ...verdict } } : {}),
    };
    process.stdout.write(JSON.stringify(body, null, 2) + '\n');
    return exit;
  }
  reportDiagnostics(result);
  for (const line of verdict.leftOut)
    process.stderr.write(`note: sluice run --dataplane ${plane.name}: ${line}\n`);
  for (const line of verdict.refused)
    process.stderr.write(
      `note: sluice run --dataplane ${plane.name} would refuse this document: ${line} [SLUICE_PLANE_UNSUPPORTED]\n`,
    );
  if (result.valid) process.stdout.write(`${file}: valid (${summary(result)})\n`);
  else if (exit === EXIT_INVALID) {
    const n = result.errors.length;
    process.stderr.write(`${file}: invalid, ${n} error${n === 1 ? '' : 's'}\n`);
  }
  return exit;
}

export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('check a load balancer document (ARM JSON) and report every error')
    .argument(
      '<files...>',
      'ARM JSON: one load balancer, an array of resources, or {"resources": [...]}; several files are read as one document (- is standard input)',
    )
    .option('--json', 'print {"valid","errors","warnings"} as JSON on stdout')
    .option('--map <OLD=NEW>', 'rewrite an address of the document (repeatable)', collect)
    .option(
      '--dataplane <NAME>',
      `say what sluice run on this data plane leaves out (${dataPlaneNames().join(' or ')}; default ${DEFAULT_DATA_PLANE.name})`,
    )
    .option('--instance-ports <PORTS>', 'as for sluice run: the ports an instance-level public IP serves')
    .exitOverride((err) => {
      // Help and version exit 0; every other parse failure is a usage error.
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    })
    .action(async (files: string[], opts: ValidateCliOptions) => {
      process.exitCode = await runValidate(files, opts);
    });
}
