import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lbDocument } from '../helpers/arm.js';
import { cliPath, fixturesPath, repoRoot, sluice, type CliRun } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';
import { startSluice } from '../helpers/process.js';

/**
 * Several inputs read as one document, as users have them: `az network lb show > lb.json`,
 * `az network public-ip show > pip.json`, then `sluice validate lb.json pip.json`.
 */

const dir = mkdtempSync(join(tmpdir(), 'sluice-inputs-'));

/** The resources of the boundaries fixture, one file each, as `az ... show` prints one resource. */
function splitFixture(): string[] {
  const doc = JSON.parse(readFileSync(join(fixturesPath, 'valid/boundaries.json'), 'utf8')) as {
    resources: { type: string; name: string }[];
  };
  return doc.resources.map((r, i) => {
    const file = join(dir, `${i}-${r.name}.json`);
    writeFileSync(file, JSON.stringify(r, null, 2));
    return file;
  });
}

function withStdin(input: string, ...args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [cliPath, ...args],
      { cwd: repoRoot, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin!.end(input);
  });
}

test('several files are one document: the load balancer and its public IPs and NAT gateways in files of their own', async () => {
  const files = splitFixture();
  const whole = await sluice('validate', join(fixturesPath, 'valid/boundaries.json'));
  assert.equal(whole.code, 0, whole.stderr);
  const split = await sluice('validate', ...files);
  assert.equal(split.code, 0, split.stderr);
  assert.match(split.stdout, / \+ .*: valid \(/);
  // The same summary as the one document.
  assert.equal(split.stdout.replace(/^.*: valid/, ''), whole.stdout.replace(/^.*: valid/, ''));
  const explained = await sluice('explain', ...files);
  assert.equal(explained.code, 0, explained.stderr);
  assert.equal(
    explained.stdout,
    (await sluice('explain', join(fixturesPath, 'valid/boundaries.json'))).stdout,
  );
});

test('an error in one of several files names that file and the place in it', async () => {
  const files = splitFixture();
  // The fixture's third resource is the load balancer.
  const lbFile = files[2]!;
  assert.match(readFileSync(lbFile, 'utf8'), /Microsoft\.Network\/loadBalancers/);
  const lb = JSON.parse(readFileSync(lbFile, 'utf8')) as {
    properties: { loadBalancingRules: { properties: Record<string, unknown> }[] };
  };
  lb.properties.loadBalancingRules[0]!.properties['idleTimeoutInMinutes'] = 101;
  writeFileSync(lbFile, JSON.stringify(lb));
  const r = await sluice('validate', ...files);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(
    r.stderr.includes(`${lbFile}#/properties/loadBalancingRules/0/properties/idleTimeoutInMinutes: `),
    r.stderr,
  );
  assert.match(r.stderr, /\[SLUICE_CONFIG_IDLE_TIMEOUT_RANGE\]/);
});

test('a JSON syntax error names the file and its line:column; two documents in one input say what to do', async () => {
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{\n  "name": "lb",\n  "properties": {,}\n}\n');
  const r = await sluice('validate', bad);
  assert.equal(r.code, 2, r.stderr);
  assert.ok(r.stderr.includes(`${bad}:3:18: not valid JSON`), r.stderr);
  assert.match(r.stderr, /\[SLUICE_CONFIG_NOT_JSON\]/);
  // What `cat lb.json pip.json | sluice validate -` gives.
  const files = splitFixture();
  const cat = files.map((f) => readFileSync(f, 'utf8')).join('\n');
  const c = await withStdin(cat, 'validate', '-');
  assert.equal(c.code, 2, c.stderr);
  assert.match(
    c.stderr,
    /^\(document\): \(standard input\):\d+:\d+: not valid JSON: .*give each file as an argument of its own \[SLUICE_CONFIG_NOT_JSON\]$/m,
  );
});

test('- reads the document from standard input, alone or beside files', async () => {
  const files = splitFixture();
  const lbText = readFileSync(files[2]!, 'utf8');
  const others = files.filter((_, i) => i !== 2);
  const r = await withStdin(lbText, 'validate', '-', ...others);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\(standard input\) \+ /);
  const twice = await withStdin(lbText, 'validate', '-', '-');
  assert.equal(twice.code, 2);
  assert.match(twice.stderr, /standard input \(-\) can be given only once/);
});

const PIP_ID =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/test/providers/Microsoft.Network/publicIPAddresses/lb-pip';

/** A load balancer as `az network lb show` prints it: its public frontend's IP by id only. */
function lbAlone(port: number): Record<string, unknown> {
  const lb = lbDocument({
    frontend: '127.0.14.10',
    backends: ['127.0.14.2'],
    rules: [
      { name: 'web', frontendPort: port, backendPort: 80, idleTimeoutInMinutes: 10, enableTcpReset: true },
    ],
  });
  const props = lb['properties'] as { frontendIPConfigurations: { properties: Record<string, unknown> }[] };
  props.frontendIPConfigurations[0]!.properties = { publicIPAddress: { id: PIP_ID } };
  return lb;
}

test('the load balancer alone: its public IP is a warning with the az command, explain says what B9 would do, run names what to add', async () => {
  const port = await freePort('127.0.14.10');
  const lbFile = join(dir, 'lb-alone.json');
  writeFileSync(lbFile, JSON.stringify(lbAlone(port)));
  const v = await sluice('validate', lbFile);
  assert.equal(v.code, 0, v.stderr);
  assert.match(
    v.stderr,
    /^warning: \/properties\/frontendIPConfigurations\/0\/properties\/publicIPAddress\/id: .*not in the document.*az network public-ip show --ids \/subscriptions\/.*\/publicIPAddresses\/lb-pip.*\[SLUICE_CONFIG_REFERENCE_OUTSIDE\]$/m,
  );
  const e = await sluice('explain', lbFile);
  assert.equal(e.code, 0, e.stderr);
  assert.match(
    e.stdout.replace(/\s+/g, ' '),
    /load-balancing rule 'web' .* not served\. Its own idle timeout is 10 minutes with reset .* if the public IP's idleTimeoutInMinutes differs, that one wins \(B9\)/,
  );
  const r = await sluice('run', lbFile, '--api', 'off', '--state-dir', join(dir, 'alone-state'));
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /load-balancing rule 'web' cannot be served: frontend 'fe' has no address.*az network public-ip show --ids .*lb-pip.*\[SLUICE_CONFIG_REFERENCE_OUTSIDE\]/,
  );

  // With the public IP beside it, as `az network public-ip show` prints it: served, and its 4 minutes win (B9).
  const pipFile = join(dir, 'pip.json');
  writeFileSync(
    pipFile,
    JSON.stringify({
      id: PIP_ID,
      name: 'lb-pip',
      type: 'Microsoft.Network/publicIPAddresses',
      ipAddress: '127.0.14.10',
      idleTimeoutInMinutes: 4,
    }),
  );
  const both = await sluice('validate', lbFile, pipFile);
  assert.equal(both.code, 0, both.stderr);
  assert.doesNotMatch(both.stderr, /REFERENCE_OUTSIDE/);
  const explained = await sluice('explain', '--json', lbFile, pipFile);
  const path = (
    JSON.parse(explained.stdout) as { paths: { name: string; idleTimeoutMinutes: number }[] }
  ).paths.find((p) => p.name === 'web');
  assert.equal(path?.idleTimeoutMinutes, 4, 'the public IP decides');
  const run = startSluice(['run', lbFile, pipFile, '--api', 'off', '--state-dir', join(dir, 'both-state')]);
  try {
    const ready = await run.waitFor((l) => l.msg === 'ready', 10_000);
    assert.deepEqual(ready.listeners, [`Tcp|127.0.14.10|${port}`]);
  } finally {
    await run.stop('SIGTERM');
  }
});

test('--map NAME=ADDR serves a frontend whose public IP is not in the document; a name the document does not use is a warning', async () => {
  const port = await freePort('127.0.14.10');
  const lbFile = join(dir, 'lb-alone-mapped.json');
  writeFileSync(lbFile, JSON.stringify(lbAlone(port)));
  const refused = await sluice('run', lbFile, '--api', 'off', '--state-dir', join(dir, 'refused-state'));
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /add --map fe=ADDR to serve it at a local ADDR/);
  for (const name of ['fe', 'lb-pip']) {
    const v = await sluice('validate', lbFile, '--map', `${name}=127.0.14.10`);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stderr, /served at 127\.0\.14\.10 as --map gives it.*\[SLUICE_CONFIG_REFERENCE_OUTSIDE\]/);
    assert.doesNotMatch(v.stderr, /ADDRESS_MAP_UNUSED/);
  }
  const unused = await sluice('validate', lbFile, '--map', 'fe=127.0.14.10', '--map', 'nobody=127.0.14.11');
  assert.match(
    unused.stderr,
    /--map nobody=\.\.\.: no frontend IP configuration, public IP, NIC ip configuration .* \[SLUICE_CONFIG_ADDRESS_MAP_UNUSED\]/,
  );
  const run = startSluice([
    'run',
    lbFile,
    '--map',
    'fe=127.0.14.10',
    '--api',
    'off',
    '--state-dir',
    join(dir, 'mapped-state'),
  ]);
  try {
    const ready = await run.waitFor((l) => l.msg === 'ready', 10_000);
    assert.deepEqual(ready.listeners, [`Tcp|127.0.14.10|${port}`]);
  } finally {
    await run.stop('SIGTERM');
  }
});
