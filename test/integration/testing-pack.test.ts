import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../helpers/cli.js';

/**
 * What a user of `sluice/testing` does: `npm pack` output installed into an empty project, where
 * a 10-line node:test file importing `sluice/testing` type-checks and passes. The test file is
 * test/fixtures/testing-app/reset.test.ts.txt (kept out of this project's own compilation).
 */

const run = promisify(execFile);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

test(
  'npm pack installs into an empty project where a 10-line test of sluice/testing type-checks and passes',
  { timeout: 240_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-pack-'));
    // The build is there already (npm test builds first): pack what it made.
    await run(npm, ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: repoRoot });
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack wrote a tarball');
    const app = join(dir, 'app');
    await run('mkdir', [app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          types: ['node'],
          outDir: 'out',
        },
        include: ['*.ts'],
      }),
    );
    copyFileSync(join(repoRoot, 'test/fixtures/testing-app/reset.test.ts.txt'), join(app, 'reset.test.ts'));
    // The addon is the packet plane's: the harness runs on the proxy plane, so no build is needed.
    await run(
      npm,
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        '--ignore-scripts',
        join(dir, tarball),
        '@types/node@20',
      ],
      { cwd: app, timeout: 180_000 },
    );
    const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');
    await run(process.execPath, [tsc, '-p', app], { cwd: app });
    // A test runner of its own, as the user's: not a child reporting to this one.
    const env = { ...process.env };
    delete env['NODE_TEST_CONTEXT'];
    const { stdout } = await run(process.execPath, ['--test', '--test-reporter=tap', 'out/'], {
      cwd: app,
      env,
      timeout: 60_000,
    });
    assert.match(stdout, /^# pass 1$/m);
    assert.match(stdout, /^# fail 0$/m);
  },
);
