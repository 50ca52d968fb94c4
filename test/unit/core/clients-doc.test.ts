import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CLIENT_LIBRARIES } from '../../../src/core/client-spec.js';

const doc = readFileSync(fileURLToPath(new URL('../../../../docs/clients.md', import.meta.url)), 'utf8');

test('docs/clients.md has a section for every library --client knows, and names each of its settings', () => {
  const headings = doc.split('\n').filter((l) => l.startsWith('### '));
  for (const lib of CLIENT_LIBRARIES) {
    assert.ok(
      headings.some((h) => h.includes(`\`${lib.name}\``)),
      `no heading names \`${lib.name}\` in docs/clients.md`,
    );
    for (const s of lib.settings)
      assert.ok(doc.includes(`\`${s.name}\``), `${lib.name}: \`${s.name}\` is not documented`);
  }
});
