import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SluiceClient, type ResourceAddress } from '../../src/client/index.js';
import { lbDocument } from '../helpers/arm.js';
import { sluiceWith } from '../helpers/cli.js';
import { httpRequest } from '../helpers/http.js';
import { startSluice } from '../helpers/process.js';

/**
 * `sluice run` as users start it, with the token from a flag, a variable or a file: given but
 * empty is a usage error before anything listens; a file keeps the token off the command line;
 * the commands that call the API still get in (they name the address they connect to as Host).
 */

const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-token-'));
const API = '127.0.52.1:0';

/** The test's environment without any token of its own. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e = { ...process.env };
  delete e['SLUICE_API_TOKEN'];
  delete e['SLUICE_API_TOKEN_FILE'];
  return { ...e, ...extra };
}

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const ADDR: ResourceAddress = {
  subscription: '00000000-0000-0000-0000-000000000000',
  resourceGroup: 'test',
  type: 'loadBalancers',
  name: 'test-lb',
};

function lb(): Record<string, unknown> {
  return lbDocument({
    frontend: '127.0.52.100',
    backends: ['127.0.52.101'],
    rules: [{ name: 'web', frontendPort: 8080, backendPort: 80 }],
  });
}

test('sluice run refuses an empty or blank token from every source: exit 2, a clear message, nothing started', async () => {
  const empty = file('empty', '');
  const newline = file('newline', '\n');
  const blank = file('blank', ' \u00a0 \n');
  const missing = join(dir, 'no-such-file');
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    // The explicit empty flag is not replaced by the variable.
    [
      '--api-token ""',
      ['--api-token', ''],
      { SLUICE_API_TOKEN: 'from-env' },
      /--api-token: the API token is empty; .*\[SLUICE_API_TOKEN_INVALID\]/,
    ],
    ['--api-token "   "', ['--api-token', '   '], {}, /--api-token: the API token is only whitespace/],
    ['--api-token TAB', ['--api-token', '\t'], {}, /--api-token: the API token is only whitespace/],
    [
      '--api-token NBSP NBSP',
      ['--api-token', '\u00a0\u00a0'],
      {},
      /--api-token: the API token is only whitespace/,
    ],
    ['--api-token " tok"', ['--api-token', ' tok'], {}, /begins or ends with whitespace/],
    [
      'SLUICE_API_TOKEN=""',
      [],
      { SLUICE_API_TOKEN: '' },
      /SLUICE_API_TOKEN: the API token is empty; set a token, or unset SLUICE_API_TOKEN for none \[SLUICE_API_TOKEN_INVALID\]/,
    ],
    [
      'SLUICE_API_TOKEN="  "',
      [],
      { SLUICE_API_TOKEN: '  ' },
      /SLUICE_API_TOKEN: the API token is only whitespace/,
    ],
    [
      'an empty token file',
      ['--api-token-file', empty],
      {},
      new RegExp(
        `--api-token-file ${empty} \\(its first line\\): the API token is empty; .*\\[SLUICE_API_TOKEN_INVALID\\]`,
      ),
    ],
    ['a token file holding a newline', ['--api-token-file', newline], {}, /the API token is empty/],
    ['a token file holding blanks', ['--api-token-file', blank], {}, /the API token is only whitespace/],
    [
      'a missing token file',
      ['--api-token-file', missing],
      {},
      new RegExp(
        `--api-token-file ${missing}: cannot read the token file: .*\\[SLUICE_API_TOKEN_FILE_UNREADABLE\\]`,
      ),
    ],
    ['--api-token-file ""', ['--api-token-file', ''], {}, /--api-token-file is empty/],
    [
      'SLUICE_API_TOKEN_FILE=empty file',
      [],
      { SLUICE_API_TOKEN_FILE: empty },
      new RegExp(`SLUICE_API_TOKEN_FILE ${empty} \\(its first line\\): the API token is empty`),
    ],
    [
      'both flags',
      ['--api-token', 'a', '--api-token-file', file('both', 'b\n')],
      {},
      /give --api-token or --api-token-file, not both/,
    ],
  ];
  const results = await Promise.all(
    cases.map(([, args, extra]) =>
      sluiceWith(
        { env: env(extra) },
        'run',
        '--api',
        API,
        '--state-dir',
        join(dir, 'state-refused'),
        ...args,
      ),
    ),
  );
  results.forEach((r, i) => {
    const [what, , , message] = cases[i]!;
    assert.equal(r.code, 2, `${what}: exit ${r.code}; ${r.stderr}`);
    assert.match(r.stderr, message, what);
    assert.doesNotMatch(r.stdout, /"msg":"ready"/, `${what}: it started`);
  });
  assert.equal(existsSync(join(dir, 'state-refused')), false, 'nothing was written either');
});

test('sluice apply and sluice flows refuse an empty token the same way (exit 2)', async () => {
  const doc = file('lb.json', JSON.stringify(lb()));
  const results = await Promise.all([
    sluiceWith({ env: env() }, 'flows', '--api', '127.0.52.1:1', '--token', ''),
    sluiceWith({ env: env({ SLUICE_API_TOKEN: '' }) }, 'flows', '--api', '127.0.52.1:1'),
    sluiceWith(
      { env: env() },
      'apply',
      doc,
      '--api',
      '127.0.52.1:1',
      '--token-file',
      file('apply-empty', ''),
    ),
  ]);
  for (const r of results) {
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /SLUICE_API_TOKEN_INVALID/);
  }
});

test('a token from SLUICE_API_TOKEN_FILE or --api-token-file (not on the command line) is wanted exactly; apply and flows get in with --token-file', async () => {
  const secret = 'tok-from-file-7f3a';
  const tokenFile = file('token', `${secret}\n`);
  const run = startSluice(
    ['run', '--api', API, '--state-dir', join(dir, 'state-file'), '--api-allow-host', 'sluice.test'],
    { env: env({ SLUICE_API_TOKEN_FILE: file('env-token', 'from-the-variable\n') }) },
  );
  try {
    const ready = await run.waitFor((l) => l.msg === 'ready', 10_000);
    const api = String(ready.api);
    const port = Number(api.split(':')[1]);
    const ask = (headers: Record<string, string>) =>
      httpRequest({ host: '127.0.52.1', port, method: 'GET', path: '/healthz', headers });
    // No flag: SLUICE_API_TOKEN_FILE names the file, and its first line is the token.
    assert.equal((await ask({ authorization: 'Bearer from-the-variable' })).status, 200);
    assert.equal((await ask({ authorization: `Bearer ${secret}` })).status, 401);
  } finally {
    await run.stop('SIGKILL');
  }

  const byFlag = startSluice(
    [
      'run',
      '--api',
      API,
      '--state-dir',
      join(dir, 'state-flag'),
      '--api-token-file',
      tokenFile,
      '--api-allow-host',
      'sluice.test',
    ],
    { env: env({ SLUICE_API_TOKEN: 'not-this-either' }) },
  );
  try {
    const ready = await byFlag.waitFor((l) => l.msg === 'ready', 10_000);
    // Only the file's path is on the command line, which every user can read.
    const cmdline = `/proc/${byFlag.child.pid}/cmdline`;
    if (existsSync(cmdline)) {
      const text = readFileSync(cmdline, 'latin1');
      assert.ok(text.includes(tokenFile) && !text.includes(secret), 'the token is not in cmdline');
    }
    const api = String(ready.api);
    const port = Number(api.split(':')[1]);
    const ask = (headers: Record<string, string>, method = 'GET', body?: string) =>
      httpRequest({
        host: '127.0.52.1',
        port,
        method,
        path:
          method === 'GET'
            ? '/healthz'
            : `/subscriptions/${ADDR.subscription}/resourceGroups/test/providers/Microsoft.Network/loadBalancers/test-lb?api-version=2024-05-01`,
        headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body } : {}),
      });
    assert.equal((await ask({})).status, 401);
    assert.equal((await ask({ authorization: 'Bearer not-this-either' })).status, 401);
    assert.equal(
      (await ask({ authorization: `Bearer ${secret} ` })).status,
      200,
      'HTTP drops the trailing space',
    );
    assert.equal((await ask({ authorization: `Bearer  ${secret}` })).status, 401);
    assert.equal((await ask({ authorization: `Bearer ${secret}\u00a0` })).status, 401);
    assert.equal((await ask({ authorization: `Bearer ${secret}` })).status, 200);

    // The Host rule, in the running process: the allowed name passes, a rebound name does not.
    const auth = { authorization: `Bearer ${secret}` };
    const foreign = await ask({ ...auth, host: `evil.example:${port}` }, 'PUT', JSON.stringify(lb()));
    assert.equal(foreign.status, 421, foreign.text);
    assert.equal(JSON.parse(foreign.text).error.code, 'SLUICE_API_HOST_NOT_ALLOWED');
    const allowed = await ask({ ...auth, host: `sluice.test:${port}` }, 'GET');
    assert.equal(allowed.status, 200);

    // The CLI's own client names the address it connects to, and so gets in.
    const doc = file('apply.json', JSON.stringify(lb()));
    const applied = await sluiceWith({ env: env() }, 'apply', doc, '--api', api, '--token-file', tokenFile);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /^added \/subscriptions\/.+\/loadBalancers\/test-lb/m);
    const flows = await sluiceWith({ env: env({ SLUICE_API_TOKEN_FILE: tokenFile }) }, 'flows', '--api', api);
    assert.equal(flows.code, 0, flows.stderr);
    assert.match(flows.stdout, /0 flows/);
    const wrong = await sluiceWith({ env: env() }, 'flows', '--api', api, '--token', 'nope');
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /SLUICE_API_UNAUTHORIZED/);
    const client = new SluiceClient({ base: api, token: secret });
    assert.equal((await client.get(ADDR)).name, 'test-lb');
  } finally {
    await byFlag.stop('SIGKILL');
  }
});

test('sluice run under umask 000: the state directory it creates is 0700, the state file 0600 and one line', async (t) => {
  if (process.platform === 'win32') return t.skip('no POSIX modes');
  const stateDir = join(dir, 'umask', 'new', 'state');
  const run = startSluice(['run', '--api', '127.0.52.2:0', '--state-dir', stateDir], {
    umask: '000',
    env: env(),
  });
  try {
    const ready = await run.waitFor((l) => l.msg === 'ready', 10_000);
    const client = new SluiceClient({ base: String(ready.api) });
    assert.equal((await client.put(ADDR, lb())).created, true);
    const mode = (p: string): string => (statSync(p).mode & 0o777).toString(8);
    assert.equal(mode(join(dir, 'umask', 'new')), '700');
    assert.equal(mode(stateDir), '700');
    assert.equal(mode(join(stateDir, 'state.json')), '600');
    const text = readFileSync(join(stateDir, 'state.json'), 'utf8');
    assert.equal(text.split('\n').length, 2, 'one line and its newline');
    assert.equal(text, `${JSON.stringify(JSON.parse(text))}\n`);
  } finally {
    await run.stop('SIGKILL');
  }
});

test('sluice run with an existing world-writable state directory warns and leaves its mode alone', async (t) => {
  if (process.platform === 'win32') return t.skip('no POSIX modes');
  const stateDir = join(dir, 'open-state');
  mkdirSync(stateDir);
  chmodSync(stateDir, 0o777);
  const run = startSluice(['run', '--api', '127.0.52.3:0', '--state-dir', stateDir], { env: env() });
  try {
    const ready = await run.waitFor((l) => l.msg === 'ready', 10_000);
    assert.ok(
      run.stderr.some((l) =>
        /warning: the state directory .* can be written by every user .*\[SLUICE_STATE_DIR_WRITABLE\]/.test(
          l,
        ),
      ),
      run.stderr.join('\n'),
    );
    await new SluiceClient({ base: String(ready.api) }).put(ADDR, lb());
    assert.equal((statSync(stateDir).mode & 0o777).toString(8), '777');
    assert.equal((statSync(join(stateDir, 'state.json')).mode & 0o777).toString(8), '600');
  } finally {
    await run.stop('SIGKILL');
  }
});
