import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Runs the built CLI as users run it. */

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const cliPath = join(repoRoot, 'dist/src/cli/main.js');
export const quickstartPath = join(repoRoot, 'examples/quickstart.json');
export const fixturesPath = join(repoRoot, 'test/fixtures/configs');

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function sluice(...args: string[]): Promise<CliRun> {
  return sluiceWith({}, ...args);
}

/** As `sluice`, with the environment given (instead of the test's own). */
export function sluiceWith(options: { env?: NodeJS.ProcessEnv }, ...args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliPath, ...args],
      { cwd: repoRoot, timeout: 30_000, ...(options.env ? { env: options.env } : {}) },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
