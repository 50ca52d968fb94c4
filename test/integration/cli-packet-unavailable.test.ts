import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliPath, quickstartPath, repoRoot, type CliRun } from '../helpers/cli.js';

/**
 * `--dataplane packet` where it cannot run: without the TUN addon, or without CAP_NET_ADMIN,
 * `sluice run` exits 1 with one line saying why, and opens nothing.
 */

function run(command: string, args: readonly string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: repoRoot, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

function packetArgs(cli: string, stateDir: string): string[] {
  return [cli, 'run', quickstartPath, '--dataplane', 'packet', '--api', 'off', '--state-dir', stateDir];
}

test('--dataplane packet without CAP_NET_ADMIN exits 1 with a one-line reason', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-nocap-'));
  try {
    // As root, drop CAP_NET_ADMIN from the bounding set, so the process never holds it;
    // anyone else lacks it already.
    const asRoot = process.getuid?.() === 0;
    const result = asRoot
      ? await run('setpriv', ['--bounding-set=-net_admin', process.execPath, ...packetArgs(cliPath, dir)])
      : await run(process.execPath, packetArgs(cliPath, dir));
    assert.equal(result.code, 1, result.stderr);
    const lines = result.stderr.trim().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.match(
      lines[0]!,
      /^sluice: the packet data plane needs root or CAP_NET_ADMIN \[SLUICE_PLANE_UNAVAILABLE\]$/,
    );
    assert.doesNotMatch(result.stdout, /"msg":"ready"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--dataplane packet without the TUN addon exits 1 with a one-line reason', async () => {
  // A copy of the built CLI with no native/ beside it: the addon is not there to load.
  const dir = mkdtempSync(join(tmpdir(), 'sluice-noaddon-'));
  try {
    cpSync(join(repoRoot, 'dist'), join(dir, 'dist'), { recursive: true });
    cpSync(join(repoRoot, 'package.json'), join(dir, 'package.json'));
    symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'));
    const result = await run(
      process.execPath,
      packetArgs(join(dir, 'dist/src/cli/main.js'), join(dir, 'state')),
    );
    assert.equal(result.code, 1, result.stderr);
    const lines = result.stderr.trim().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0]!, /^sluice: .*addon/i);
    assert.doesNotMatch(result.stdout, /"msg":"ready"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
