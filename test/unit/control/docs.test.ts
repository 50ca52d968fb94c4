import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { ROUTES } from '../../../src/control/server.js';
import { httpStatusOf } from '../../../src/control/status.js';
import { ERRORS, type ErrorCode } from '../../../src/core/errors.js';
import { SERIES } from '../../../src/metrics/metrics.js';
import { idleMetrics } from '../../helpers/metrics.js';

/** docs/api.md and docs/metrics.md stay true to what the code declares. */

const doc = (name: string): string =>
  readFileSync(fileURLToPath(new URL(`../../../../docs/${name}`, import.meta.url)), 'utf8');

test('docs/api.md lists every route the API declares, and no other', () => {
  const documented = new Set<string>();
  for (const line of doc('api.md').split('\n')) {
    const m = /^\|\s*`(GET|PUT|DELETE|POST|PATCH)`\s*\|\s*`([^`]+)`\s*\|/.exec(line);
    if (m) documented.add(`${m[1]} ${m[2]}`);
  }
  const declared = new Set(ROUTES.map(([method, path]) => `${method} ${path}`));
  assert.deepEqual([...documented].sort(), [...declared].sort());
});

test('docs/metrics.md lists every series with its type and labels, and no other', () => {
  const documented = new Map<string, { type: string; labels: string }>();
  for (const line of doc('metrics.md').split('\n')) {
    const m = /^\|\s*`(sluice_[a-z_]+)`\s*\|\s*(\w+)\s*\|([^|]*)\|/.exec(line);
    if (m) documented.set(m[1]!, { type: m[2]!, labels: m[3]!.trim() });
  }
  assert.deepEqual([...documented.keys()].sort(), Object.keys(SERIES).sort());
  for (const [name, s] of Object.entries(SERIES)) {
    assert.equal(documented.get(name)?.type, s.type, `${name}: type`);
    assert.equal(documented.get(name)?.labels, s.labels.join(', '), `${name}: labels`);
  }
});

test('the registry holds exactly the declared series, named sluice_<subsystem>_<name>_<unit|total>', async () => {
  const registry = new Registry();
  idleMetrics(registry);
  const registered = (await registry.getMetricsAsJSON()).map((m) => m.name);
  assert.deepEqual(registered.sort(), Object.keys(SERIES).sort());
  for (const name of registered)
    assert.match(name, /^sluice_[a-z]+_[a-z_]+_(total|flows|ratio|ports|number)$/, name);
});

test('docs/api.md names every API and state error code, and its error table has the registry status', () => {
  const text = doc('api.md');
  const table = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^\|\s*`(SLUICE_[A-Z_]+)`\s*\|\s*(\d{3})\s*\|/.exec(line);
    if (m) table.set(m[1]!, Number(m[2]));
  }
  for (const code of Object.keys(ERRORS) as ErrorCode[]) {
    if (!/^SLUICE_(API|STATE)_/.test(code)) continue;
    assert.ok(text.includes(`\`${code}\``), `${code} is not in docs/api.md`);
    const status = table.get(code);
    if (status !== undefined) assert.equal(status, httpStatusOf(code), `${code}: status in docs/api.md`);
  }
  for (const code of table.keys()) assert.ok(code in ERRORS, `${code} is in docs/api.md but not registered`);
});
