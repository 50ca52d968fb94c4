import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planControl, type ControlPlan } from '../../../src/cli/control-setup.js';
import { chooseToken, clientToken, type TokenChoice } from '../../../src/cli/token.js';

/** Where the API token comes from, and that "given but empty" is always an error, never "none". */

const dir = mkdtempSync(join(tmpdir(), 'sluice-token-'));

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

function run(flags: { token?: string; file?: string }, env: NodeJS.ProcessEnv = {}): TokenChoice {
  return chooseToken({
    token: flags.token,
    tokenFlag: '--api-token',
    file: flags.file,
    fileFlag: '--api-token-file',
    env,
  });
}

function error(choice: TokenChoice): string {
  assert.ok('error' in choice, `expected an error, got ${JSON.stringify(choice)}`);
  return choice.error;
}

test('a flag wins over the environment, even an empty flag, which is an error and no fall-back', () => {
  assert.deepEqual(run({ token: 'flag' }, { SLUICE_API_TOKEN: 'env' }), { token: 'flag' });
  const e = error(run({ token: '' }, { SLUICE_API_TOKEN: 'env' }));
  assert.match(
    e,
    /^--api-token: the API token is empty; give a token, or leave out --api-token for none \[SLUICE_API_TOKEN_INVALID\]$/,
  );
  assert.match(error(run({ token: '   ' })), /only whitespace/);
  assert.match(error(run({ token: '\u00a0\u00a0' })), /only whitespace/);
  assert.match(error(run({ token: ' tok' })), /begins or ends with whitespace/);
  assert.deepEqual(run({}, {}), { token: undefined });
});

test('the environment: SLUICE_API_TOKEN set but empty or blank is an error; SLUICE_API_TOKEN_FILE names a file', () => {
  assert.match(error(run({}, { SLUICE_API_TOKEN: '' })), /^SLUICE_API_TOKEN: the API token is empty/);
  assert.match(error(run({}, { SLUICE_API_TOKEN: ' \t ' })), /^SLUICE_API_TOKEN: .*only whitespace/);
  const f = file('env-token', 'from-env-file\n');
  assert.deepEqual(run({}, { SLUICE_API_TOKEN_FILE: f }), { token: 'from-env-file' });
  assert.match(error(run({}, { SLUICE_API_TOKEN_FILE: '' })), /SLUICE_API_TOKEN_FILE is empty/);
  assert.match(error(run({}, { SLUICE_API_TOKEN: 'a', SLUICE_API_TOKEN_FILE: f })), /both set/);
  // A flag still wins over both variables.
  assert.deepEqual(run({ file: f }, { SLUICE_API_TOKEN: 'a', SLUICE_API_TOKEN_FILE: f }), {
    token: 'from-env-file',
  });
});

test('a token file: its first line without the line ending, and nothing else trimmed', () => {
  assert.deepEqual(run({ file: file('lf', 'tok-1\nsecond line\n') }), { token: 'tok-1' });
  assert.deepEqual(run({ file: file('crlf', 'tok-2\r\n') }), { token: 'tok-2' });
  assert.deepEqual(run({ file: file('bare', 'tok-3') }), { token: 'tok-3' });
  assert.deepEqual(run({ file: file('utf8', 'clé-ü\n') }), { token: 'clé-ü' });
  assert.match(error(run({ file: file('spaced', ' tok\n') })), /begins or ends with whitespace/);
  assert.match(error(run({ file: file('tab', 'tok\t\n') })), /begins or ends with whitespace/);
});

test('an empty, blank, unreadable or overlong token file is an error naming the file', () => {
  for (const [name, content, why] of [
    ['empty', '', /is empty/],
    ['newline', '\n', /is empty/],
    ['blank', '   \nsecret\n', /only whitespace/],
    ['long', 'x'.repeat(5000), /longer than 4096 bytes/],
  ] as const) {
    const path = file(name, content);
    const e = error(run({ file: path }));
    assert.ok(e.startsWith(`--api-token-file ${path} (its first line): the API token `), e);
    assert.match(e, why);
    assert.match(e, /\[SLUICE_API_TOKEN_INVALID\]$/);
  }
  const missing = join(dir, 'missing');
  assert.match(
    error(run({ file: missing })),
    new RegExp(
      `^--api-token-file ${missing}: cannot read the token file: .*ENOENT.*\\[SLUICE_API_TOKEN_FILE_UNREADABLE\\]$`,
    ),
  );
  assert.match(
    error(run({ file: dir })),
    /cannot read the token file: .*EISDIR.*\[SLUICE_API_TOKEN_FILE_UNREADABLE\]/,
  );
  assert.match(error(run({ file: '' })), /--api-token-file is empty/);
});

test('both flags are a usage error', () => {
  assert.match(
    error(run({ token: 'a', file: file('both', 'b\n') })),
    /give --api-token or --api-token-file, not both/,
  );
});

test('the commands that call the API take --token and --token-file by the same rules', () => {
  const saved = { ...process.env };
  try {
    delete process.env['SLUICE_API_TOKEN'];
    delete process.env['SLUICE_API_TOKEN_FILE'];
    assert.deepEqual(clientToken({ token: 'abc' }), { token: 'abc' });
    assert.match(error(clientToken({ token: '' })), /^--token: the API token is empty/);
    assert.match(error(clientToken({ tokenFile: file('client-empty', '') })), /^--token-file .* is empty/);
    assert.deepEqual(clientToken({ tokenFile: file('client', 'zz\n') }), { token: 'zz' });
  } finally {
    process.env = saved;
  }
});

test('planControl: an empty token is refused on a wildcard and on loopback alike; the token file serves off loopback', () => {
  for (const api of ['0.0.0.0:19191', '127.0.0.1:0', '[::1]:0'])
    for (const opts of [{ apiToken: '' }, { apiToken: '  ' }, { apiTokenFile: file('plan-empty', '') }]) {
      const plan = planControl({ api, ...opts }, {});
      assert.equal(typeof plan, 'string', `${api} ${JSON.stringify(opts)}`);
      assert.match(plan as string, /SLUICE_API_TOKEN_INVALID/);
    }
  assert.match(
    planControl({ api: '0.0.0.0:19191' }, { SLUICE_API_TOKEN: '' }) as string,
    /SLUICE_API_TOKEN_INVALID/,
  );
  assert.match(planControl({ api: '0.0.0.0:19191' }, {}) as string, /SLUICE_API_TOKEN_REQUIRED/);
  const plan = planControl({ api: '0.0.0.0:19191', apiTokenFile: file('plan', 'tok\n') }, {});
  assert.equal(typeof plan, 'object');
  assert.equal((plan as { token: string }).token, 'tok');
});

test('planControl: --api-allow-host values are checked; the name given in --api is allowed too', () => {
  assert.match(
    planControl({ apiAllowHost: ['ok.test', 'bad host'] }, {}) as string,
    /--api-allow-host expects/,
  );
  assert.match(planControl({ apiAllowHost: ['ok.test:80'] }, {}) as string, /without a port/);
  const plan = planControl({ api: 'localhost:0', apiAllowHost: ['ok.test', '::1'] }, {});
  assert.deepEqual((plan as ControlPlan).allowedHosts, ['ok.test', '::1', 'localhost']);
  const byAddress = planControl({ api: '127.0.0.1:0' }, {});
  assert.deepEqual((byAddress as ControlPlan).allowedHosts, []);
});
