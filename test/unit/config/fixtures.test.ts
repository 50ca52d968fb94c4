import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateDocument, validateFile } from '../../../src/config/index.js';
import { ERRORS } from '../../../src/core/errors.js';
import { fixtureNames, fixturesDir, quickstartPath, readJson } from './helpers.js';

interface Expected {
  errors?: { code: string; path: string }[];
  warnings: { code: string; path: string }[];
}

const key = (d: { code: string; path: string }): string => `${d.code} ${d.path}`;

for (const kind of ['valid', 'invalid'] as const) {
  const expected = readJson(`${fixturesDir}${kind}/expected.json`) as Record<string, Expected>;

  test(`${kind} fixtures and expected.json list the same files`, () => {
    assert.deepEqual(Object.keys(expected).sort(), fixtureNames(kind));
  });

  for (const name of fixtureNames(kind)) {
    test(`${kind}/${name}`, async () => {
      const want = expected[name];
      assert.ok(want, `${name} has no entry in expected.json`);
      const r = await validateFile(`${fixturesDir}${kind}/${name}`);
      if (kind === 'valid') {
        assert.deepEqual(r.errors, [], `unexpected errors: ${JSON.stringify(r.errors, null, 1)}`);
        assert.equal(r.valid, true);
        assert.ok(r.snapshot && Object.isFrozen(r.snapshot));
        assert.ok(r.snapshot.loadBalancers.length >= 1);
      } else {
        assert.equal(r.valid, false);
        assert.equal(r.snapshot, undefined);
        assert.deepEqual(r.errors.map(key).sort(), (want.errors ?? []).map(key).sort());
        for (const e of r.errors) assert.ok(e.message.length > 0);
      }
      assert.deepEqual(r.warnings.map(key).sort(), want.warnings.map(key).sort());
    });
  }
}

test('examples/quickstart.json is valid without warnings', () => {
  const r = validateDocument(readJson(quickstartPath));
  assert.deepEqual([...r.errors, ...r.warnings], []);
  assert.equal(r.valid, true);
});

test('every SLUICE_CONFIG_* code is produced by a fixture or named in a config test', async () => {
  const seen = new Set<string>();
  for (const kind of ['valid', 'invalid'] as const) {
    const expected = readJson(`${fixturesDir}${kind}/expected.json`) as Record<string, Expected>;
    for (const e of Object.values(expected))
      for (const d of [...(e.errors ?? []), ...e.warnings]) seen.add(d.code);
  }
  // Codes that need a file system or CLI arguments rather than a document; passes.test.ts covers them.
  for (const c of [
    'SLUICE_CONFIG_UNREADABLE',
    'SLUICE_CONFIG_NOT_JSON',
    'SLUICE_CONFIG_ADDRESS_MAP',
    'SLUICE_CONFIG_ADDRESS_MAP_UNUSED',
    // The API store's reading of a NIC outside it: outside.test.ts.
    'SLUICE_CONFIG_UNRESOLVED_BACKEND',
  ])
    seen.add(c);
  const missing = Object.keys(ERRORS).filter((c) => c.startsWith('SLUICE_CONFIG_') && !seen.has(c));
  assert.deepEqual(missing, []);
});
