import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const doc = readFileSync(join(root, 'docs/behaviour.md'), 'utf8');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** B-numbers as the code cites them: B1-B99 standing alone ("B6", "(B9/B10)"), not "B64" in hex. */
function citedIn(text: string): Set<number> {
  return new Set([...text.matchAll(/(?<![\w-])B(\d{1,2})(?![\w-])/g)].map((m) => Number(m[1])));
}

const defined = new Set([...doc.matchAll(/^## B(\d+) /gm)].map((m) => Number(m[1])));

test('docs/behaviour.md defines B1-B12, once each and in order', () => {
  const headings = [...doc.matchAll(/^## B(\d+) /gm)].map((m) => Number(m[1]));
  assert.deepEqual(
    headings,
    Array.from({ length: 12 }, (_, i) => i + 1),
  );
});

test('every B-number cited in src/ is defined in docs/behaviour.md', () => {
  const files = sourceFiles(join(root, 'src'));
  assert.ok(files.length > 20, 'found the sources');
  let citations = 0;
  for (const file of files) {
    for (const n of citedIn(readFileSync(file, 'utf8'))) {
      citations++;
      assert.ok(
        defined.has(n),
        `${file.slice(root.length)} cites B${n}, which docs/behaviour.md does not define`,
      );
    }
  }
  assert.ok(citations >= 12, `the code cites behaviours (${citations} file-number pairs)`);
});

test('every test file docs/behaviour.md names exists', () => {
  const named = [...doc.matchAll(/`(test\/[^`]+\.ts)`/g)].map((m) => m[1]!);
  assert.ok(named.length >= 12);
  for (const path of named)
    assert.ok(existsSync(join(root, path)), `docs/behaviour.md names ${path}, which does not exist`);
});
