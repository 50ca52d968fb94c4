import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_DEPTH, validateDocument } from '../../../src/config/index.js';
import { isErrorCode } from '../../../src/core/errors.js';
import { fixture, fixtureNames, quickstart, type Json } from './helpers.js';

/**
 * Whatever a user feeds it, validation answers with diagnostics, never an exception:
 * mutate the valid fixtures (delete keys, swap types, push numbers out of range, random
 * strings, values nested thousands of levels deep) and check each result is valid or carries
 * coded, located errors.
 */

const bases: Json[] = [quickstart(), ...fixtureNames('valid').map((n) => fixture('valid', n) as Json)];

type Step = (string | number)[];

/** Paths to edit; a value nested deeper than anything ARM holds is edited near its top only. */
function allPaths(doc: Json, prefix: Step = [], out: Step[] = []): Step[] {
  out.push(prefix);
  if (prefix.length >= 2 * MAX_DEPTH) return out;
  if (Array.isArray(doc)) doc.forEach((v, i) => allPaths(v, [...prefix, i], out));
  else if (doc !== null && typeof doc === 'object')
    for (const [k, v] of Object.entries(doc)) allPaths(v, [...prefix, k], out);
  return out;
}

type Mutation =
  | { kind: 'delete' }
  | { kind: 'deep'; levels: number }
  | { kind: 'replace'; value: Json }
  | { kind: 'number'; value: number }
  | { kind: 'string'; value: string };

// Containers come from factories: a shared instance could be mutated by a later edit.
const jsonValue: fc.Arbitrary<Json> = fc.oneof(
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
function nested(levels: number): Json {
  let v: Json = {};
  for (let i = 1; i < levels; i++) v = i % 2 === 0 ? { a: v } : [v];
  return v;
}

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
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

function valueOf(m: Exclude<Mutation, { kind: 'delete' }>): Json {
  return m.kind === 'deep' ? nested(m.levels) : m.value;
}

function apply(doc: Json, path: Step, m: Mutation): Json {
  if (path.length === 0) return m.kind === 'delete' ? null : valueOf(m);
  let parent: Json = doc;
  for (const p of path.slice(0, -1)) parent = (parent as Record<string, Json>)[p] as Json;
  const last = path[path.length - 1]!;
  if (parent === null || typeof parent !== 'object') return doc;
  if (m.kind === 'delete') {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete (parent as Record<string, Json>)[last];
  } else (parent as Record<string | number, Json>)[last] = valueOf(m);
  return doc;
}

test('1,000 mutated documents: never an exception, always valid or coded errors with a path', () => {
  fc.assert(
    fc.property(
      fc.nat({ max: bases.length - 1 }),
      fc.array(fc.tuple(fc.nat(), mutation), { minLength: 1, maxLength: 4 }),
      (baseIndex, edits) => {
        let doc: Json = structuredClone(bases[baseIndex]!);
        for (const [pick, m] of edits) {
          const paths = allPaths(doc);
          doc = apply(doc, paths[pick % paths.length]!, m);
        }
        const r = validateDocument(doc);
        if (r.valid) {
          assert.deepEqual(r.errors, []);
          assert.ok(r.snapshot && Object.isFrozen(r.snapshot));
        } else {
          assert.ok(r.errors.length >= 1);
          assert.equal(r.snapshot, undefined);
        }
        // A document nested too deep is read no further: that is its only finding.
        if (r.errors.some((e) => e.code === 'SLUICE_CONFIG_TOO_DEEP'))
          assert.deepEqual(
            [...r.errors, ...r.warnings].map((e) => e.code),
            ['SLUICE_CONFIG_TOO_DEEP'],
          );
        for (const d of [...r.errors, ...r.warnings]) {
          assert.ok(isErrorCode(d.code), d.code);
          assert.equal(typeof d.path, 'string');
          assert.ok(d.path === '' || d.path.startsWith('/'), d.path);
          assert.ok(d.message.length > 0);
        }
      },
    ),
    { numRuns: 1000 },
  );
});

/** Levels of nesting, the outermost value included (recursive: the test keeps its inputs shallow enough). */
function depthOf(v: Json): number {
  if (v === null || typeof v !== 'object') return 0;
  const children = Array.isArray(v) ? v : Object.values(v);
  return 1 + children.reduce<number>((m, c) => Math.max(m, depthOf(c)), 0);
}

test('values nested at random places: SLUICE_CONFIG_TOO_DEEP exactly when a resource nests over 64 levels', () => {
  fc.assert(
    fc.property(
      fc.nat({ max: bases.length - 1 }),
      fc.nat(),
      fc.integer({ min: 1, max: 90 }),
      (baseIndex, pick, levels) => {
        let doc: Json = structuredClone(bases[baseIndex]!);
        const paths = allPaths(doc).filter((p) => p.length > 0);
        doc = apply(doc, paths[pick % paths.length]!, { kind: 'deep', levels });
        const wrapper = Array.isArray(doc)
          ? 1
          : doc !== null && typeof doc === 'object' && Array.isArray(doc['resources'])
            ? 2
            : 0;
        const tooDeep = depthOf(doc) > MAX_DEPTH + wrapper;
        const r = validateDocument(doc);
        assert.equal(
          r.errors.some((e) => e.code === 'SLUICE_CONFIG_TOO_DEEP'),
          tooDeep,
          `depth ${depthOf(doc)}, wrapper ${wrapper}`,
        );
      },
    ),
    { numRuns: 300 },
  );
});
