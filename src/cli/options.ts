/** Pieces every command that reads a configuration shares: repeatable options and diagnostics. */
import type { Diagnostic } from '../core/errors.js';
import { RULE_KIND_LABEL } from '../core/explain.js';
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
        `load balancer '${lb.name}': ${RULE_KIND_LABEL[u.kind]} '${u.name}' cannot be served: frontend '${u.frontend}' has no address, since public IP ${u.publicIpId} is not in the document: add --map ${u.frontend}=ADDR to serve it at a local ADDR, or get it with \`az network public-ip show --ids ${u.publicIpId} > pip.json\` and give pip.json beside the load balancer [SLUICE_CONFIG_REFERENCE_OUTSIDE]`,
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
