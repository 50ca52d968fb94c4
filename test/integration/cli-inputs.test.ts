import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliPath, fixturesPath, repoRoot, sluice, type CliRun } from '../helpers/cli.js';

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
