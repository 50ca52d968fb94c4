import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixturesPath as fixtures, quickstartPath as quickstart, repoRoot, sluice } from '../helpers/cli.js';

/** The built CLI, run as users run it: exit codes and output shapes of `sluice validate`. */

interface JsonReport {
  valid: boolean;
  errors: { code: string; path: string; message: string }[];
  warnings: { code: string; path: string; message: string }[];
}

test('valid document: exit 0, a one-line summary on stdout', async () => {
  const r = await sluice('validate', quickstart);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /quickstart\.json: valid \(1 load balancer, 3 load-balancing rules, 1 inbound NAT rule/,
  );
  assert.equal(r.stderr, '');
});

test('valid document with warnings: exit 0, warnings on stderr', async () => {
  const r = await sluice('validate', join(fixtures, 'valid/ha-ports-reset.json'));
  assert.equal(r.code, 0);
  assert.match(
    r.stderr,
    /^warning: \/properties\/loadBalancingRules\/0\/properties\/enableTcpReset: .* \[SLUICE_CONFIG_HA_PORTS_TCP_RESET\]$/m,
  );
});

test('invalid document: exit 1 and every error as PATH: MESSAGE [CODE]', async () => {
  const r = await sluice('validate', join(fixtures, 'invalid/idle-timeout-standard.json'));
  assert.equal(r.code, 1);
  const lines = r.stderr.trim().split('\n');
  const errors = lines.filter((l) => /^\/\S*: .+ \[SLUICE_[A-Z_]+\]$/.test(l));
  assert.equal(errors.length, 4, r.stderr);
  assert.ok(
    lines.includes(
      "/resources/1/properties/loadBalancingRules/0/properties/idleTimeoutInMinutes: loadBalancingRules 'web' idleTimeoutInMinutes 120 is out of range: Standard SKU allows 4-100 [SLUICE_CONFIG_IDLE_TIMEOUT_RANGE]",
    ),
    r.stderr,
  );
  assert.match(r.stderr, /invalid, 4 errors/);
});

test('--json: {valid, errors, warnings} on stdout with the same exit codes', async () => {
  const bad = await sluice('validate', '--json', join(fixtures, 'invalid/probes.json'));
  assert.equal(bad.code, 1);
  const report = JSON.parse(bad.stdout) as JsonReport;
  assert.equal(report.valid, false);
  assert.equal(report.errors.length, 4);
  for (const e of report.errors) assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'path']);
  assert.deepEqual(report.warnings, []);

  const good = await sluice('validate', '--json', quickstart);
  assert.equal(good.code, 0);
  assert.deepEqual(JSON.parse(good.stdout), {
    valid: true,
    errors: [],
    warnings: [],
    dataplane: { name: 'proxy', leftOut: [], refused: [] },
  });
});

test('--map is repeatable; an unused mapping warns, a malformed one is a usage error', async () => {
  const ok = await sluice(
    'validate',
    '--json',
    '--map',
    '127.0.0.10=127.0.0.20',
    '--map',
    '10.9.9.9=127.0.0.1',
    quickstart,
  );
  assert.equal(ok.code, 0);
  const report = JSON.parse(ok.stdout) as JsonReport;
  assert.deepEqual(
    report.warnings.map((w) => w.code),
    ['SLUICE_CONFIG_ADDRESS_MAP_UNUSED'],
  );
  // NEW must be an address (OLD may be an address or a name, --map NAME=ADDR).
  const bad = await sluice('validate', '--map', '127.0.0.1=localhost', quickstart);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /\[SLUICE_CONFIG_ADDRESS_MAP\]/);
});

test('exit 2: unreadable file, non-JSON file, missing argument, unknown option', async () => {
  const missing = await sluice('validate', join(repoRoot, 'no/such/file.json'));
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /\[SLUICE_CONFIG_UNREADABLE\]/);

  const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
  const broken = join(dir, 'broken.json');
  writeFileSync(broken, '{ "name": "lb", ');
  const notJson = await sluice('validate', '--json', broken);
  assert.equal(notJson.code, 2);
  assert.equal((JSON.parse(notJson.stdout) as JsonReport).errors[0]?.code, 'SLUICE_CONFIG_NOT_JSON');

  assert.equal((await sluice('validate')).code, 2);
  assert.equal((await sluice('validate', '--frobnicate', quickstart)).code, 2);
});

test('an unknown command is a usage error (exit 2), like an unknown flag', async () => {
  const r = await sluice('frobnicate');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /unknown command 'frobnicate'/);
  assert.equal((await sluice('validate', '--no-such-flag', quickstart)).code, 2);
});
