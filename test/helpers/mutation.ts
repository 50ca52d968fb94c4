/**
 * Mutations of valid ARM documents for property tests (fast-check): delete a key, swap a type,
 * push a number out of range, put in an odd string, nest a value thousands of levels deep.
 * `mutation` is what validation is fuzzed with; `bodyMutation` adds what only a body sent over
 * HTTP can hold (numbers JSON.stringify cannot write, values wrapped in arrays where objects
 * go, extra properties such as `__proto__`, odd strings).
 */
import fc from 'fast-check';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export type Step = (string | number)[];

/**
 * Paths to edit, the whole document's first; below `maxLength` steps nothing more is listed, so
 * a value nested deeper than anything ARM holds is edited near its top only.
 */
export function allPaths(doc: Json, maxLength = Infinity, prefix: Step = [], out: Step[] = []): Step[] {
  out.push(prefix);
  if (prefix.length >= maxLength) return out;
  if (Array.isArray(doc)) doc.forEach((v, i) => allPaths(v, maxLength, [...prefix, i], out));
  else if (doc !== null && typeof doc === 'object')
    for (const [k, v] of Object.entries(doc)) allPaths(v, maxLength, [...prefix, k], out);
  return out;
}

/** How deep `doc` nests: 0 for a scalar, 1 for `{}` or `[]` (without recursion: any depth). */
export function depthOf(doc: Json): number {
  let deepest = 0;
  const stack: [Json, number][] = [[doc, 0]];
  while (stack.length > 0) {
    const [v, above] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    deepest = Math.max(deepest, above + 1);
    for (const c of Array.isArray(v) ? v : Object.values(v)) stack.push([c, above + 1]);
  }
  return deepest;
}

export type Mutation =
  | { kind: 'delete' }
  /** The value replaced by `levels` nested containers, objects and arrays in turn. */
  | { kind: 'deep'; levels: number }
  | { kind: 'replace'; value: Json }
  | { kind: 'number'; value: number }
  | { kind: 'string'; value: string }
  /** A number literal put into the JSON text as it is (`1e400`), where the value was. */
  | { kind: 'raw'; text: string }
  /** The value wrapped `levels` times, in arrays or in objects. */
  | { kind: 'nest'; levels: number; container: 'array' | 'object' }
  /** A property added beside the value, when its parent is an object. */
  | { kind: 'extra'; key: string; value: Json };

// Containers come from factories: a shared instance could be mutated by a later edit.
export const jsonValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.string(),
  fc
    .constantFrom<() => Json>(
      () => [],
      () => ({}),
      () => [1, 'a', null],
      () => ({ id: 'not-an-id' }),
    )
    .map((make) => make()),
);

/** `levels` nested containers, objects and arrays in turn, the outermost included. */
export function deepValue(levels: number): Json {
  let v: Json = {};
  for (let i = 1; i < levels; i++) v = i % 2 === 0 ? { a: v } : [v];
  return v;
}

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.constant<Mutation>({ kind: 'delete' }),
  fc
    .oneof(fc.integer({ min: 1, max: 120 }), fc.constant(10_000))
    .map((levels): Mutation => ({ kind: 'deep', levels })),
  jsonValue.map((value): Mutation => ({ kind: 'replace', value })),
  fc
    .oneof(
      fc.constantFrom(-1, 0, 3, 5, 29, 31, 99, 101, 119, 121, 65534, 65535, 65536, 64000, 1e9, -0, 2.5),
      fc.integer({ min: -100000, max: 100000 }),
      fc.double({ noNaN: true }),
    )
    .map((value): Mutation => ({ kind: 'number', value })),
  fc
    .oneof(
      fc.string(),
      fc.constantFrom('[concat(1)]', '[[literal', 'Tcp', 'All', '', '/', '::1', '300.1.1.1'),
    )
    .map((value): Mutation => ({ kind: 'string', value })),
);

/** Strings that have broken parsers and comparisons elsewhere: NUL, U+00A0, BOM, bidi, lone surrogates. */
const oddString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '\u0000',
    'Tcp\u0000',
    '\u00a0',
    '\u00a0Tcp',
    'Tcp\u00a0',
    '\ufeffStandard',
    ' Standard',
    'standard',
    'STANDARD',
    'tcp',
    '\u202eTcp',
    '\ud800',
    '\udfff\ud800',
    '😀',
    '127.0.0.1\u0000',
    '127.000.000.001',
    '0x7f.0.0.1',
    '::ffff:127.0.0.1',
    '../../etc/passwd',
    '%00',
    '\\',
    '"',
    '__proto__',
    'x'.repeat(10_000),
  ),
  fc.string({ unit: 'binary', maxLength: 40 }),
);

const bigNumber: fc.Arbitrary<number> = fc.constantFrom(
  1e308,
  -1e308,
  Number.MAX_SAFE_INTEGER + 2,
  -Number.MAX_SAFE_INTEGER - 2,
  2 ** 64,
  5e-324,
  -5e-324,
  4.000000000000001,
  99.99999999999999,
  -2147483649,
  4294967296,
);

const bodyValue: fc.Arbitrary<Json> = fc.oneof(
  jsonValue,
  oddString,
  bigNumber,
  fc.array(fc.oneof(fc.integer(), oddString), { maxLength: 5 }),
  fc.dictionary(oddString, jsonValue, { maxKeys: 4 }),
);

/** The deepest `bodyMutation` nests a value: bodies stay inside the 64 levels documents may have. */
export const BODY_MAX_LEVELS = 40;

export const bodyMutation: fc.Arbitrary<Mutation> = fc.oneof(
  {
    arbitrary: mutation.filter((m) => m.kind !== 'deep' || m.levels <= BODY_MAX_LEVELS),
    weight: 4,
  },
  { arbitrary: bodyValue.map((value): Mutation => ({ kind: 'replace', value })), weight: 2 },
  { arbitrary: bigNumber.map((value): Mutation => ({ kind: 'number', value })), weight: 1 },
  { arbitrary: oddString.map((value): Mutation => ({ kind: 'string', value })), weight: 2 },
  {
    arbitrary: fc
      .constantFrom(
        '1e400',
        '-1e400',
        '1e-400',
        '123456789012345678901234567890',
        '-0.0',
        '4.0',
        '4e0',
        '0.4e1',
        '1E2',
        '100000000000000000000000000000000000000000000000000000000000',
      )
      .map((text): Mutation => ({ kind: 'raw', text })),
    weight: 1,
  },
  {
    arbitrary: fc
      .record({
        levels: fc.integer({ min: 1, max: BODY_MAX_LEVELS }),
        container: fc.constantFrom('array', 'object'),
      })
      .map((r): Mutation => ({ kind: 'nest', ...r })),
    weight: 1,
  },
  {
    arbitrary: fc
      .record({
        key: fc.oneof(
          fc.constantFrom(
            'unknownProperty',
            '__proto__',
            'constructor',
            'prototype',
            'etag',
            'id',
            'name',
            'type',
            'provisioningState',
            'properties',
            '',
            '\u0000',
            '\u00a0',
          ),
          fc.string({ maxLength: 12 }),
        ),
        value: bodyValue,
      })
      .map((r): Mutation => ({ kind: 'extra', ...r })),
    weight: 2,
  },
);

/** What a `raw` mutation leaves in the document until the JSON text is written. */
export const RAW_MARK = '\u0000sluice-raw\u0000';

function nested(value: Json, levels: number, container: 'array' | 'object'): Json {
  let v = value;
  for (let i = 0; i < levels; i++) v = container === 'array' ? [v] : { a: v };
  return v;
}

/** Applies `m` at `path` in `doc` (in place where it can) and returns the document. */
export function applyMutation(doc: Json, path: Step, m: Mutation): Json {
  const valueOf = (old: Json): Json =>
    m.kind === 'replace' || m.kind === 'number' || m.kind === 'string'
      ? m.value
      : m.kind === 'raw'
        ? `${RAW_MARK}${m.text}${RAW_MARK}`
        : m.kind === 'nest'
          ? nested(old, m.levels, m.container)
          : m.kind === 'deep'
            ? deepValue(m.levels)
            : old;
  if (path.length === 0) {
    if (m.kind === 'delete') return null;
    if (m.kind === 'extra') {
      if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return doc;
      Object.defineProperty(doc, m.key, {
        value: m.value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      return doc;
    }
    return valueOf(doc);
  }
  let parent: Json = doc;
  for (const p of path.slice(0, -1)) parent = (parent as Record<string, Json>)[p] as Json;
  const last = path[path.length - 1]!;
  if (parent === null || typeof parent !== 'object') return doc;
  if (m.kind === 'delete') {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete (parent as Record<string, Json>)[last];
  } else if (m.kind === 'extra') {
    if (!Array.isArray(parent))
      // defineProperty, so that `__proto__` becomes a key of the JSON and not the object's prototype.
      Object.defineProperty(parent, m.key, {
        value: m.value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
  } else {
    const container = parent as Record<string | number, Json>;
    container[last] = valueOf(container[last] as Json);
  }
  return doc;
}

/** The JSON text of a mutated document, with `raw` number literals written in as they are. */
export function bodyText(doc: Json): string {
  const mark = JSON.stringify(RAW_MARK).slice(1, -1);
  return JSON.stringify(doc).replace(
    new RegExp(
      `"${mark.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}(.*?)${mark.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}"`,
      'g',
    ),
    '$1',
  );
}
