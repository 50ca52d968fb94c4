import { diagnostic, type Diagnostic } from '../core/errors.js';
import type { RuntimeSnapshot } from '../core/snapshot.js';
import {
  applyAddressMap,
  canonicalAddress,
  mappedName,
  nameKey,
  nameOfKey,
  parseAddressMap,
  type AddressMap,
} from './address-map.js';
import { compileSnapshot } from './compile.js';
import { checkCounts } from './limits.js';
import { normalizeDocument, parseConfigText, readConfigFile, type InputForm } from './load.js';
import type { ResolvedDocument } from './model.js';
import { readInputs } from './inputs.js';
import { checkDocumentNames } from './names.js';
import { resolveDocument } from './resolve.js';
import { checkStructure } from './schema.js';

/**
 * The one entry point from a parsed document to a snapshot: structural pass (with names),
 * semantic pass (with conflicts and counts), and only when both found no error, compilation. Every problem is a Diagnostic; nothing
 * here throws on bad input.
 */

export interface ValidateOptions {
  /** `--map OLD=NEW` arguments, or a map already parsed with parseAddressMap. */
  readonly map?: readonly string[] | AddressMap;
  /** A public IP referred to but not in the document: a warning (default) or an error (the API's store). */
  readonly outsideReferences?: 'warning' | 'error';
}

export interface ValidationResult {
  readonly valid: boolean;
  readonly errors: readonly Diagnostic[];
  readonly warnings: readonly Diagnostic[];
  /** Present exactly when `valid`. Deeply frozen. */
  readonly snapshot?: RuntimeSnapshot;
  readonly form?: InputForm;
}

function result(all: readonly Diagnostic[], snapshot?: RuntimeSnapshot, form?: InputForm): ValidationResult {
  const errors = all.filter((d) => d.severity === 'error');
  const warnings = all.filter((d) => d.severity === 'warning');
  const valid = errors.length === 0 && snapshot !== undefined;
  return { valid, errors, warnings, ...(valid ? { snapshot } : {}), ...(form === undefined ? {} : { form }) };
}

function configuredAddresses(model: ResolvedDocument): Set<string> {
  const out = new Set<string>();
  const add = (a: string | undefined): void => {
    if (a !== undefined) out.add(canonicalAddress(a));
  };
  for (const p of model.publicIps) add(p.ipAddress);
  for (const n of model.mappedNames) out.add(nameKey(n));
  for (const lb of model.loadBalancers) {
    for (const f of lb.frontends) add(f.ipAddress);
    for (const p of lb.pools) for (const m of p.members) add(m.ipAddress);
    for (const r of lb.natRules) add(r.target?.ipAddress);
  }
  return out;
}

/** Keeps the first report of each (code, path, message): the passes may meet the same fault. */
function dedupe(list: readonly Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return list.filter((d) => {
    const k = `${d.code}\u0000${d.path}\u0000${d.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export function validateDocument(json: unknown, options: ValidateOptions = {}): ValidationResult {
  let map: AddressMap;
  const mapDiagnostics: Diagnostic[] = [];
  if (options.map === undefined) map = new Map();
  else if (Array.isArray(options.map)) {
    const parsed = parseAddressMap(options.map as readonly string[]);
    map = parsed.map;
    mapDiagnostics.push(...parsed.diagnostics);
  } else map = options.map as AddressMap;

  const loaded = normalizeDocument(json);
  const { toSourcePath } = loaded;
  const structural = [...checkStructure(loaded.document), ...checkDocumentNames(loaded.document)];
  const hasStructuralErrors = structural.some((d) => d.severity === 'error');
  let semantic: readonly Diagnostic[] = [];
  let model: ResolvedDocument | undefined;
  try {
    const resolved = resolveDocument(loaded.document, {
      addressOf: (a) => applyAddressMap(map, a),
      ...(options.outsideReferences !== undefined ? { outsideReferences: options.outsideReferences } : {}),
      nameAddress: (n) => mappedName(map, n),
    });
    semantic = [...resolved.diagnostics, ...checkCounts(resolved.model.loadBalancers)];
    model = resolved.model;
  } catch (err) {
    // The semantic pass reads defensively; should a structurally broken document still
    // trip it, the structural errors already say what to fix.
    if (!hasStructuralErrors) throw err;
  }

  // A template expression explains every other complaint about the same value.
  const templatePaths = new Set(loaded.diagnostics.map((d) => d.path));
  const translated = [...structural, ...semantic]
    .map((d) => ({ ...d, path: toSourcePath(d.path) }))
    .filter((d) => !templatePaths.has(d.path) && !templatePaths.has(d.path.replace(/\/id$/, '')));
  const all = dedupe([...mapDiagnostics, ...loaded.diagnostics, ...translated]);

  if (model !== undefined) {
    const used = configuredAddresses(model);
    for (const from of map.keys()) {
      if (used.has(from)) continue;
      const name = nameOfKey(from);
      all.push(
        diagnostic(
          'SLUICE_CONFIG_ADDRESS_MAP_UNUSED',
          '',
          name !== undefined
            ? `--map ${name}=...: no frontend IP configuration, public IP, NIC ip configuration (nic/ipconfig) or backend address of the document is called ${name}`
            : `--map ${from}=...: the document uses no address ${from}`,
        ),
      );
    }
  }
  if (all.some((d) => d.severity === 'error') || model === undefined)
    return result(all, undefined, loaded.form);
  return result(all, compileSnapshot(model, map), loaded.form);
}

export function validateText(text: string, options: ValidateOptions = {}): ValidationResult {
  const parsed = parseConfigText(text);
  if (!parsed.ok) return result([parsed.diagnostic]);
  return validateDocument(parsed.json, options);
}

/** What a command makes of its FILE arguments: their resources as one document, validated. */
export interface InputsValidation {
  readonly result: ValidationResult;
  /** The combined document (absent when an input could not be read or parsed). */
  readonly json?: unknown;
}

/**
 * Reads one or more files (`-`: standard input) as one document and validates it; every
 * diagnostic's path names the file it is in when there are several.
 */
export async function validateInputs(
  files: readonly string[],
  options: ValidateOptions = {},
  stdin?: () => Promise<string>,
): Promise<InputsValidation> {
  const read = await readInputs(files, stdin);
  if (!read.ok) return { result: result([read.diagnostic]) };
  const r = validateDocument(read.json, options);
  return {
    json: read.json,
    result: { ...r, errors: r.errors.map(read.locate), warnings: r.warnings.map(read.locate) },
  };
}

export async function validateFile(file: string, options: ValidateOptions = {}): Promise<ValidationResult> {
  const parsed = await readConfigFile(file);
  if (!parsed.ok) return result([parsed.diagnostic]);
  return validateDocument(parsed.json, options);
}
