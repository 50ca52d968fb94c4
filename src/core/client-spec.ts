/**
 * `--client LIB[:SETTING=VALUE,...]`: finds the library by name in one registry, reads each
 * setting by its type, fills in the library's defaults and works out what they do on an idle
 * connection. A mistake is a result with a registered code naming what is allowed, never a throw.
 */
import { NODE_LIBRARIES } from './client-node.js';
import { PLATFORM_LIBRARIES } from './client-platform.js';
import type {
  ClientLibrary,
  ClientMechanics,
  SettingDef,
  SettingType,
  SettingValue,
  Settings,
} from './client-types.js';
import type { ErrorCode } from './errors.js';

export const CLIENT_LIBRARIES: readonly ClientLibrary[] = [...NODE_LIBRARIES, ...PLATFORM_LIBRARIES];

const BY_NAME: ReadonlyMap<string, ClientLibrary> = new Map(
  CLIENT_LIBRARIES.flatMap((lib) => [lib.name, ...(lib.aliases ?? [])].map((n) => [n.toLowerCase(), lib])),
);

export function findClientLibrary(name: string): ClientLibrary | undefined {
  return BY_NAME.get(name.trim().toLowerCase());
}

/** One `--client` argument, understood. */
export interface ClientBehaviour {
  /** The argument as given. */
  readonly spec: string;
  readonly library: ClientLibrary;
  /** Every setting of the library: given, or its default (absent: not set). */
  readonly settings: Settings;
  /** The settings the argument gave, in its order. */
  readonly given: readonly string[];
  readonly mechanics: ClientMechanics;
}

export type ClientSpecResult =
  | { readonly ok: true; readonly client: ClientBehaviour }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string };

function fail(code: ErrorCode, message: string): ClientSpecResult {
  return { ok: false, code, message };
}

export function clientLibraryNames(): string {
  return CLIENT_LIBRARIES.map((l) => l.name).join(', ');
}

function settingList(lib: ClientLibrary): string {
  return lib.settings.map((s) => s.name).join(', ');
}

/** What a type accepts, for usage errors. */
export function describeType(type: SettingType): string {
  switch (type.kind) {
    case 'boolean':
      return 'true or false';
    case 'zeroOne':
      return '0 or 1';
    case 'ms':
      return `milliseconds, an integer >= ${type.min ?? 0}${type.infinite ? ' (or -1 for never)' : ''}`;
    case 'msOrFalse':
      return 'milliseconds (an integer >= 0) or false';
    case 'seconds':
      return 'whole seconds >= 1';
    case 'count':
      return 'an integer >= 1';
    case 'timespan':
      return 'a TimeSpan: seconds (e.g. 30), [d.]hh:mm:ss[.fff] or Infinite';
    case 'choice':
      return type.values.join(' or ');
  }
}

const INTEGER = /^-?\d+$/;
const TIMESPAN = /^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2}(?:\.\d{1,7})?)$/;

function parseTimespan(text: string): number | undefined {
  if (/^(infinite|infinitetimespan|-1)$/i.test(text)) return Infinity;
  if (/^\d+(?:\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const m = TIMESPAN.exec(text);
  if (!m) return undefined;
  const [days, hours, mins, secs] = [Number(m[1] ?? 0), Number(m[2]), Number(m[3]), Number(m[4])];
  if (hours > 23 || mins > 59 || secs >= 60) return undefined;
  return Math.round((((days * 24 + hours) * 60 + mins) * 60 + secs) * 1000);
}

/** The value of `text` for a setting of this type, or undefined when it is not one. */
export function parseSettingValue(type: SettingType, text: string): SettingValue | undefined {
  const t = text.trim();
  switch (type.kind) {
    case 'boolean':
      return t === 'true' ? true : t === 'false' ? false : undefined;
    case 'zeroOne':
      return t === '0' ? 0 : t === '1' ? 1 : undefined;
    case 'ms': {
      if (!INTEGER.test(t)) return undefined;
      const n = Number(t);
      if (type.infinite && n === -1) return Infinity;
      return Number.isSafeInteger(n) && n >= (type.min ?? 0) ? n : undefined;
    }
    case 'msOrFalse':
      if (t === 'false') return false;
      return INTEGER.test(t) && Number.isSafeInteger(Number(t)) && Number(t) >= 0 ? Number(t) : undefined;
    case 'seconds':
    case 'count':
      return INTEGER.test(t) && Number.isSafeInteger(Number(t)) && Number(t) >= 1 ? Number(t) : undefined;
    case 'timespan':
      return parseTimespan(t);
    case 'choice':
      return type.values.find((v) => v.toLowerCase() === t.toLowerCase());
  }
}

function unknownSetting(lib: ClientLibrary, name: string): ClientSpecResult {
  const hint = lib.missingHints?.[name];
  const near = lib.settings.find((s) => s.name.toLowerCase() === name.toLowerCase());
  return fail(
    'SLUICE_EXPLAIN_CLIENT_SETTING',
    `${lib.name} has no setting '${name}'${hint ? ` (${hint})` : near ? ` (did you mean ${near.name}?)` : ''}; ` +
      `its settings are ${settingList(lib)}`,
  );
}

/** Reads `LIB[:SETTING=VALUE,...]`. */
export function parseClientSpec(spec: string): ClientSpecResult {
  const colon = spec.indexOf(':');
  const name = (colon < 0 ? spec : spec.slice(0, colon)).trim();
  const rest = colon < 0 ? '' : spec.slice(colon + 1);
  if (name === '') {
    return fail(
      'SLUICE_EXPLAIN_CLIENT_SYNTAX',
      `--client expects LIB[:SETTING=VALUE,...], got '${spec}'; libraries: ${clientLibraryNames()}`,
    );
  }
  const library = findClientLibrary(name);
  if (!library) {
    return fail(
      'SLUICE_EXPLAIN_CLIENT_UNKNOWN',
      `unknown client library '${name}' in --client '${spec}'; Sluice knows ${clientLibraryNames()}`,
    );
  }
  const defs = new Map<string, SettingDef>(library.settings.map((s) => [s.name, s]));
  const given = new Map<string, SettingValue>();
  const items = rest.trim() === '' ? [] : rest.split(',');
  for (const item of items) {
    const eq = item.indexOf('=');
    const key = (eq < 0 ? item : item.slice(0, eq)).trim();
    if (eq < 0 || key === '') {
      return fail(
        'SLUICE_EXPLAIN_CLIENT_SYNTAX',
        `'${item.trim()}' in --client '${spec}' is not SETTING=VALUE; ${library.name}'s settings are ${settingList(library)}`,
      );
    }
    const def = defs.get(key);
    if (!def) return unknownSetting(library, key);
    if (given.has(key)) {
      return fail(
        'SLUICE_EXPLAIN_CLIENT_SYNTAX',
        `${library.name}: ${key} is given twice in --client '${spec}'`,
      );
    }
    const text = item.slice(eq + 1);
    const value = parseSettingValue(def.type, text);
    if (value === undefined) {
      return fail(
        'SLUICE_EXPLAIN_CLIENT_VALUE',
        `${library.name}: ${key} expects ${describeType(def.type)}, got '${text.trim()}'` +
          (def.type.kind === 'zeroOne' && /^(true|false)$/i.test(text.trim())
            ? ' (grpc-js compares it with 1: true would leave it off)'
            : ''),
      );
    }
    given.set(key, value);
  }
  const settings: Record<string, SettingValue | undefined> = {};
  for (const def of library.settings)
    settings[def.name] = given.has(def.name) ? given.get(def.name) : def.default;
  const refused = library.refuse?.(settings);
  if (refused) return fail('SLUICE_EXPLAIN_CLIENT_VALUE', `${library.name}: ${refused}`);
  return {
    ok: true,
    client: { spec, library, settings, given: [...given.keys()], mechanics: library.mechanics(settings) },
  };
}
