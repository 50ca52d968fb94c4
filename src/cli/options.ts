/** Pieces every command that reads a configuration shares: repeatable options and diagnostics. */
import type { Diagnostic } from '../core/errors.js';
import { RULE_KIND_LABEL, missingAddresses, missingRemedy } from '../core/explain.js';
import type { RuntimeSnapshot } from '../core/snapshot.js';
import { parseAddressMap, validateInputs, type ValidationResult } from '../config/index.js';

export const EXIT_OK = 0;
export const EXIT_INVALID = 1;
export const EXIT_USAGE = 2;

const UNUSABLE_FILE = new Set(['SLUICE_CONFIG_UNREADABLE', 'SLUICE_CONFIG_NOT_JSON']);

/** commander's accumulator for options given more than once (`--map A=B --map C=D`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.path === '' ? '(document)' : d.path}: ${d.message} [${d.code}]`;
}

export interface LoadedConfig {
  readonly result: ValidationResult;
  /** The exit code the outcome calls for: 0 usable, 1 invalid, 2 unusable file or bad arguments. */
  readonly exit: number;
  /** The document the files make together, when they could be read. */
  readonly json?: unknown;
}

/**
 * Reads one or more configuration files (`-`: standard input) as one document, validates and
 * compiles it with `--map` arguments applied.
 */
export async function loadConfig(
  files: string | readonly string[],
  mapArgs: readonly string[] = [],
): Promise<LoadedConfig> {
  const mapped = parseAddressMap(mapArgs);
  if (mapped.diagnostics.length > 0) {
    return { result: { valid: false, errors: mapped.diagnostics, warnings: [] }, exit: EXIT_USAGE };
  }
  const { result, json } = await validateInputs(typeof files === 'string' ? [files] : files, {
    map: mapped.map,
  });
  if (result.errors.some((d) => UNUSABLE_FILE.has(d.code))) return { result, exit: EXIT_USAGE };
  return { result, exit: result.valid ? EXIT_OK : EXIT_INVALID, ...(json !== undefined ? { json } : {}) };
}

/**
 * The rules a document cannot have served as it stands: their frontend's public IP is not in
 * it (a load balancer exported alone). One line each, saying what to add.
 */
export function unservedLines(snapshot: RuntimeSnapshot): string[] {
  return snapshot.loadBalancers.flatMap((lb) =>
    (lb.unserved ?? []).map(
      (u) =>
        `load balancer '${lb.name}': ${RULE_KIND_LABEL[u.kind]} '${u.name}' cannot be served: ${missingAddresses(u.missing)}: ${missingRemedy(u.missing)} [SLUICE_CONFIG_REFERENCE_OUTSIDE]`,
    ),
  );
}

/** How commands name their inputs in messages: `lb.json`, `lb.json + pip.json`, `(standard input)`. */
export function inputsLabel(files: readonly string[]): string {
  return files.map((f) => (f === '-' ? '(standard input)' : f)).join(' + ');
}

/** Prints warnings and errors on stderr, one line each. */
export function reportDiagnostics(
  result: ValidationResult,
  stream: NodeJS.WritableStream = process.stderr,
): void {
  for (const w of result.warnings) stream.write(`warning: ${formatDiagnostic(w)}\n`);
  for (const e of result.errors) stream.write(`${formatDiagnostic(e)}\n`);
}

/** `--instance-ports 22,443,8000-8010`: the ports, each once, in order; a string is a usage error. */
export function parsePorts(text: string | undefined): number[] | string {
  if (text === undefined) return [];
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^\s*(\d{1,5})(?:\s*-\s*(\d{1,5}))?\s*$/.exec(part);
    const lo = m === null ? NaN : Number(m[1]);
    const hi = m === null ? NaN : Number(m[2] ?? m[1]);
    if (!(lo >= 1 && hi <= 65535 && lo <= hi) || hi - lo >= 4096)
      return `--instance-ports expects ports 1-65535 or ranges of them (at most 4096 ports a range), separated by commas, got '${part.trim()}'`;
    for (let p = lo; p <= hi; p++) out.add(p);
  }
  if (out.size > 4096) return `--instance-ports names ${out.size} ports; at most 4096`;
  return [...out];
}
