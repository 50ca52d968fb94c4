import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SluiceClient, type ResourceAddress } from '../../src/client/index.js';
import { lbDocument } from '../helpers/arm.js';
import { sluice } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';
import { startSluice } from '../helpers/process.js';
import { SEED, seeded } from '../helpers/seed.js';

/** Desired state on disk: atomic under kill -9, reloaded on restart, refused when corrupt. */

const ADDR: ResourceAddress = {
  subscription: '00000000-0000-0000-0000-000000000000',
  resourceGroup: 'test',
  type: 'loadBalancers',
  name: 'test-lb',
};

function doc(port: number, idle: number): Record<string, unknown> {
  return lbDocument({
    frontend: '127.0.8.1',
    backends: ['127.0.8.2'],
    rules: [{ name: 'web', frontendPort: port, backendPort: 80, idleTimeoutInMinutes: idle }],
  });
}

interface StateFile {
  format: string;
  generation: number;
  resources: { id: string; body: { properties: unknown } }[];
}

test('kill -9 during 100 consecutive PUTs: the state file always parses and equals a document PUT; a restart serves it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-state-'));
  const stateDir = join(dir, 'state');
  const port = await freePort('127.0.8.1');
  const file = join(dir, 'lb.json');
  writeFileSync(file, JSON.stringify(doc(port, 4)));
  const run = startSluice(['run', file, '--api', '127.0.0.1:0', '--state-dir', stateDir]);
  const sent: Record<string, unknown>[] = [];
  let acknowledged = 0;
  try {
    const ready = await run.waitFor((l) => l.msg === 'ready', 10_000);
    const client = new SluiceClient({ base: String(ready.api) });
    // The kill lands at a seeded random point between the 11th and the 90th PUT, mid-request or
    // between two: at least 10 PUTs are acknowledged, even when the 11th is the one cut.
    const random = seeded(SEED);
    const killAfter = 11 + Math.floor(random() * 80);
    for (let i = 1; i <= 100; i++) {
      const body = doc(port, 4 + (i % 97));
      sent.push(body);
      const put = client.put(ADDR, body);
      if (i === killAfter) setTimeout(() => run.child.kill('SIGKILL'), random() * 5);
      try {
        await put;
        acknowledged = i;
      } catch {
        break;
      }
    }
    await run.exited;
    assert.ok(acknowledged >= 10, `${acknowledged} PUTs acknowledged before the kill (seed ${SEED})`);
    assert.ok(acknowledged < 100, 'the kill came before the last PUT');
    const state = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as StateFile;
    assert.equal(state.format, 'sluice-state');
    assert.equal(state.resources.length, 1);
    const stored = state.resources[0]!.body.properties;
    const index = sent.findIndex((d) => JSON.stringify(d['properties']) === JSON.stringify(stored));
    assert.ok(index >= 0, 'the stored load balancer is one of the documents PUT');
    // Every acknowledged PUT is durable; at most the one in flight may be there as well.
    assert.ok(
      index + 1 === acknowledged || index + 1 === acknowledged + 1,
      `stored #${index + 1}, acknowledged ${acknowledged}`,
    );
    assert.equal(state.generation, index + 1);

    // Restart with the same state dir and no CONFIG: the stored state is served.
    const again = startSluice(['run', '--api', '127.0.0.1:0', '--state-dir', stateDir]);
    try {
      const ready2 = await again.waitFor((l) => l.msg === 'ready', 10_000);
      assert.deepEqual(ready2.listeners, [`Tcp|127.0.8.1|${port}`]);
      const c2 = new SluiceClient({ base: String(ready2.api) });
      const lb = await c2.get(ADDR);
      assert.deepEqual(
        (lb.properties['loadBalancingRules'] as { properties: { idleTimeoutInMinutes: number } }[])[0]!
          .properties.idleTimeoutInMinutes,
        4 + ((index + 1) % 97),
      );
      assert.equal((await c2.health()).generation, index + 1);
      assert.equal(ready2.desiredState, 'stored');
      assert.equal(await again.stop('SIGTERM'), 0);
    } finally {
      await again.stop('SIGKILL');
    }
  } finally {
    await run.stop('SIGKILL');
  }
});

test('a corrupt state file stops the start with exit 1, its path and SLUICE_STATE_CORRUPT', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'sluice-corrupt-'));
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(join(stateDir, 'state.json'), '{"format":"sluice-state","version":1,"generation":3,"resou');
  const r = await sluice('run', '--api', 'off', '--state-dir', stateDir);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.stderr.includes(join(stateDir, 'state.json')), r.stderr);
  assert.match(r.stderr, /\[SLUICE_STATE_CORRUPT\]/);
});

test('stored resources that no longer validate stop the start with SLUICE_STATE_INVALID', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'sluice-invalid-'));
  const body = doc(80, 4);
  const props = body['properties'] as { loadBalancingRules: { properties: Record<string, unknown> }[] };
  props.loadBalancingRules[0]!.properties['idleTimeoutInMinutes'] = 500;
  writeFileSync(
    join(stateDir, 'state.json'),
    JSON.stringify({
      format: 'sluice-state',
      version: 1,
      generation: 1,
      resources: [
        {
          id: String(body['id']),
          type: 'Microsoft.Network/loadBalancers',
          name: 'test-lb',
          etag: 'W/"x"',
          body: { properties: body['properties'] },
        },
      ],
    }),
  );
  const r = await sluice('run', '--api', 'off', '--state-dir', stateDir);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /\[SLUICE_STATE_INVALID\]/);
  assert.match(r.stderr, /\[SLUICE_CONFIG_IDLE_TIMEOUT_RANGE\]/);
});

test('a non-loopback API without a token is a usage error', async () => {
  const r = await sluice(
    'run',
    '--api',
    '0.0.0.0:0',
    '--state-dir',
    mkdtempSync(join(tmpdir(), 'sluice-tok-')),
  );
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /\[SLUICE_API_TOKEN_REQUIRED\]/);
});

test('an explicit CONFIG is never set aside: unreadable, it stops the start (exit 2) whatever is stored; readable, it replaces the stored state', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-config-wins-'));
  const stateDir = join(dir, 'state');
  const port = await freePort('127.0.8.1');
  const stored = join(dir, 'stored.json');
  writeFileSync(stored, JSON.stringify(doc(port, 7)));
  // A stored state to start from: the first run's document, written at its first change.
  const first = startSluice(['run', stored, '--api', '127.0.0.1:0', '--state-dir', stateDir]);
  try {
    const ready = await first.waitFor((l) => l.msg === 'ready', 10_000);
    assert.equal(ready.desiredState, 'config');
    await new SluiceClient({ base: String(ready.api) }).put(ADDR, doc(port, 9));
    assert.equal(await first.stop('SIGTERM'), 0);
  } finally {
    await first.stop('SIGKILL');
  }
  const before = readFileSync(join(stateDir, 'state.json'), 'utf8');

  const missing = await sluice('run', join(dir, 'missing.json'), '--api', 'off', '--state-dir', stateDir);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /cannot read .*missing\.json.*\[SLUICE_CONFIG_UNREADABLE\]/);
  assert.equal(readFileSync(join(stateDir, 'state.json'), 'utf8'), before, 'the stored state is untouched');

  const replacing = join(dir, 'new.json');
  writeFileSync(replacing, JSON.stringify(doc(port, 11)));
  const second = startSluice(['run', replacing, '--api', '127.0.0.1:0', '--state-dir', stateDir]);
  try {
    const ready = await second.waitFor((l) => l.msg === 'ready', 10_000);
    assert.equal(ready.desiredState, 'config');
    assert.ok(
      second.stderr.some((l) => l.includes('replaces the state stored in')),
      second.stderr.join('\n'),
    );
    const lb = await new SluiceClient({ base: String(ready.api) }).get(ADDR);
    assert.equal(
      (lb.properties['loadBalancingRules'] as { properties: { idleTimeoutInMinutes: number } }[])[0]!
        .properties.idleTimeoutInMinutes,
      11,
    );
    const state = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as StateFile;
    assert.equal(state.generation, 2, 'one generation after the stored one');
    assert.equal(
      (
        state.resources[0]!.body.properties as {
          loadBalancingRules: { properties: { idleTimeoutInMinutes: number } }[];
        }
      ).loadBalancingRules[0]!.properties.idleTimeoutInMinutes,
      11,
      'written at once: a restart without CONFIG serves the same',
    );
    assert.equal(await second.stop('SIGTERM'), 0);
  } finally {
    await second.stop('SIGKILL');
  }
});
