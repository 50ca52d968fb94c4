import type { Command } from 'commander';
import type { Diagnostic } from '../../core/errors.js';
import type { ValidationResult } from '../../config/index.js';
import { EXIT_INVALID, EXIT_USAGE, collect, inputsLabel, loadConfig, reportDiagnostics } from '../options.js';

/** `sluice validate FILE`: exit 0 valid, 1 invalid, 2 usage error or a file that is not JSON. */

function plain(d: Diagnostic): { code: string; path: string; message: string } {
  return { code: d.code, path: d.path, message: d.message };
}

function summary(r: ValidationResult): string {
  const lbs = r.snapshot?.loadBalancers ?? [];
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
  ].join(', ');
}

export async function runValidate(
  files: string | readonly string[],
  opts: { json?: boolean; map?: string[] },
): Promise<number> {
  const inputs = typeof files === 'string' ? [files] : files;
  const file = inputsLabel(inputs);
  const { result, exit } = await loadConfig(inputs, opts.map ?? []);
  if (opts.json === true) {
    const body = {
      valid: result.valid,
      errors: result.errors.map(plain),
      warnings: result.warnings.map(plain),
    };
    process.stdout.write(JSON.stringify(body, null, 2) + '\n');
    return exit;
  }
  reportDiagnostics(result);
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
    .exitOverride((err) => {
      // Help and version exit 0; every other parse failure is a usage error.
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    })
    .action(async (files: string[], opts: { json?: boolean; map?: string[] }) => {
      process.exitCode = await runValidate(files, opts);
    });
}
