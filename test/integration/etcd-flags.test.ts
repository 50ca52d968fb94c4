import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sluice } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';

/** The flags of the shared state: usage errors before anything starts, and a bounded wait. */

test('--state with --state-dir is a usage error', async () => {
  const r = await sluice(
    'run',
    '--state',
    'etcd://127.0.87.1:2379/x',
    '--state-dir',
    '/tmp/sluice-x',
    '--api',
    '127.0.87.1:0',
  );
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--state etcd:\/\/127\.0\.87\.1:2379\/x and --state-dir \/tmp\/sluice-x: give one/);
});

test('a --state that is not etcd://HOST:PORT/PREFIX is a usage error naming the flag and the form', async () => {
  const bads = ['/var/lib/sluice', 'etcd://127.0.87.1/x', 'etcd://127.0.87.1:2379'];
  const runs = await Promise.all(bads.map((bad) => sluice('run', '--state', bad, '--api', '127.0.87.1:0')));
  runs.forEach((r, i) => {
    assert.equal(r.code, 2, bads[i]);
    assert.match(r.stderr, /--state expects etcd:\/\/HOST:PORT\/PREFIX/, bads[i]);
  });
});

test('--state-wait needs --state, and whole or decimal seconds', async () => {
  const [alone, bad] = await Promise.all([
    sluice('run', '--state-wait', '5', '--api', '127.0.87.1:0'),
    sluice('run', '--state', 'etcd://127.0.87.1:2379/x', '--state-wait', 'soon'),
  ]);
  assert.equal(alone.code, 2);
  assert.match(alone.stderr, /--state-wait is for a shared state store/);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--state-wait expects seconds/);
});

test('an etcd that never answers: the start waits --state-wait, saying why, then exits 1', async () => {
  // A port nothing listens on: every try is refused at once.
  const port = await freePort('127.0.87.1');
  const started = Date.now();
  const r = await sluice(
    'run',
    '--state',
    `etcd://127.0.87.1:${port}/x`,
    '--state-wait',
    '1',
    '--api',
    '127.0.87.1:0',
  );
  const took = Date.now() - started;
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /waiting for the shared state store before serving anything: .*next try in 0\.1 s.*\[SLUICE_STATE_STORE_UNAVAILABLE\]/,
  );
  assert.match(
    r.stderr,
    /gave up after .* \(--state-wait 1\); nothing is served \[SLUICE_STATE_STORE_UNAVAILABLE\]/,
  );
  assert.doesNotMatch(r.stdout, /"msg":"ready"/);
  assert.ok(took < 8000, `gave up after ${took} ms`);
});
