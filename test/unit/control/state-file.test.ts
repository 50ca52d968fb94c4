import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  STATE_FILE,
  readState,
  stateDirProblem,
  writeState,
  type StateContents,
} from '../../../src/control/state.js';

/** The state file on disk: one line of JSON, and Sluice's user's alone whatever the umask. */

function deep(levels: number): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < levels; i++) v = { a: v };
  return v;
}

const state: StateContents = {
  generation: 7,
  resources: [
    {
      id: '/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/loadBalancers/lb',
      type: 'Microsoft.Network/loadBalancers',
      name: 'lb',
      etag: 'W/"1"',
      body: { tags: { nested: deep(40) as Record<string, unknown> }, properties: {} },
    },
  ],
};

const mode = (path: string): number => statSync(path).mode & 0o777;

test('under umask 000: the state directory and its missing parents are 0700, the state file 0600', async (t) => {
  if (process.platform === 'win32') return t.skip('no POSIX modes');
  const root = mkdtempSync(join(tmpdir(), 'sluice-umask-'));
  const previous = process.umask(0);
  try {
    const dir = join(root, 'a', 'b', 'state');
    await writeState(dir, state);
    assert.equal(mode(join(root, 'a')).toString(8), '700');
    assert.equal(mode(join(root, 'a', 'b')).toString(8), '700');
    assert.equal(mode(dir).toString(8), '700');
    assert.equal(mode(join(dir, STATE_FILE)).toString(8), '600');
    // A second write replaces the file with a new one, also 0600, and leaves no temporary file.
    await writeState(dir, { ...state, generation: 8 });
    assert.equal(mode(join(dir, STATE_FILE)).toString(8), '600');
    assert.deepEqual(readdirSync(dir), [STATE_FILE]);
    assert.equal(await stateDirProblem(dir), undefined);
  } finally {
    process.umask(previous);
  }
});

test("under a umask that takes the owner's bits too, Sluice can still write its state", async (t) => {
  if (process.platform === 'win32') return t.skip('no POSIX modes');
  const root = mkdtempSync(join(tmpdir(), 'sluice-umask-'));
  const previous = process.umask(0o777);
  try {
    await writeState(join(root, 'state'), state);
    await writeState(join(root, 'state'), { ...state, generation: 8 });
  } finally {
    process.umask(previous);
  }
  assert.equal(mode(join(root, 'state')).toString(8), '700');
  assert.equal(mode(join(root, 'state', STATE_FILE)).toString(8), '600');
});

test('the state file is one line of compact JSON that reads back as written', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'sluice-compact-')), 'state');
  await writeState(dir, state);
  const text = readFileSync(join(dir, STATE_FILE), 'utf8');
  assert.equal(text.indexOf('\n'), text.length - 1, 'a single line ending in a newline');
  assert.equal(text, `${JSON.stringify(JSON.parse(text))}\n`, 'no indentation or spacing');
  assert.ok(text.length < 3000, `${text.length} bytes for a 40-deep body`);
  assert.deepEqual(await readState(dir), state);
});

test('an existing state directory keeps its mode; one others can write is reported', async (t) => {
  if (process.platform === 'win32') return t.skip('no POSIX modes');
  const dir = join(mkdtempSync(join(tmpdir(), 'sluice-open-')), 'state');
  mkdirSync(dir);
  chmodSync(dir, 0o777);
  assert.match((await stateDirProblem(dir))!, /can be written by every user \(mode 0777\).*chmod 700/);
  await writeState(dir, state);
  assert.equal(mode(dir).toString(8), '777', 'a directory Sluice did not create is left alone');
  assert.equal(mode(join(dir, STATE_FILE)).toString(8), '600');
  chmodSync(dir, 0o770);
  assert.match((await stateDirProblem(dir))!, /by its group/);
  chmodSync(dir, 0o755);
  assert.equal(await stateDirProblem(dir), undefined);
  assert.equal(await stateDirProblem(join(dir, 'missing')), undefined);
});
