import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_DEPTH, validateDocument } from '../../../src/config/index.js';
import { isErrorCode } from '../../../src/core/errors.js';
import { allPaths, applyMutation, depthOf, mutation } from '../../helpers/mutation.js';
import { fixture, fixtureNames, quickstart, type Json } from './helpers.js';

/**
 * Whatever a user feeds it, validation answers with diagnostics, never an exception:
 * mutate the valid fixtures (delete keys, swap types, push numbers out of range, random
 * strings, values nested thousands of levels deep) and check each result is valid or carries
 * coded, located errors.
 */

const bases: Json[] = [quickstart(), ...fixtureNames('valid').map((n) => fixture('valid', n) as Json)];

test('1,000 mutated documents: never an exception, always valid or coded errors with a path', () => {
  fc.assert(
    fc.property(
      fc.nat({ max: bases.length - 1 }),
      fc.array(fc.tuple(fc.nat(), mutation), { minLength: 1, maxLength: 4 }),
      (baseIndex, edits) => {
        let doc: Json = structuredClone(bases[baseIndex]!);
        for (const [pick, m] of edits) {
          const paths = allPaths(doc, 2 * MAX_DEPTH);
          doc = applyMutation(doc, paths[pick % paths.length]!, m);
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

test('values nested at random places: SLUICE_CONFIG_TOO_DEEP exactly when a resource nests over 64 levels', () => {
  fc.assert(
    fc.property(
      fc.nat({ max: bases.length - 1 }),
      fc.nat(),
      fc.integer({ min: 1, max: 90 }),
      (baseIndex, pick, levels) => {
        let doc: Json = structuredClone(bases[baseIndex]!);
        const paths = allPaths(doc, 2 * MAX_DEPTH).filter((p) => p.length > 0);
        doc = applyMutation(doc, paths[pick % paths.length]!, { kind: 'deep', levels });
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
