/** Runs `sluice` as a child process and waits for lines of its JSON log. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { cliPath, repoRoot } from './cli.js';

export interface RunningSluice {
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[];
  readonly stderr: string[];
  /** Resolves with the first log line matching, or rejects after `ms` or when the process exits. */
  waitFor(pred: (line: Record<string, unknown>) => boolean, ms: number): Promise<Record<string, unknown>>;
  readonly exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  /** Lowers the child's open-files limit (through the shell's ulimit, then exec). */
  readonly openFilesLimit?: number;
  /** The child's umask (through the shell's umask, then exec), e.g. '000'. */
  readonly umask?: string;
  /** The child's environment, instead of the test's own. */
  readonly env?: NodeJS.ProcessEnv;
}

export function startSluice(args: string[], options: StartOptions = {}): RunningSluice {
  const shell = [
    ...(options.openFilesLimit === undefined ? [] : [`ulimit -n ${options.openFilesLimit}`]),
    ...(options.umask === undefined ? [] : [`umask ${options.umask}`]),
  ];
  const command =
    shell.length === 0
      ? { file: process.execPath, argv: [cliPath, ...args] }
      : {
          file: 'bash',
          argv: ['-c', `${shell.join(' && ')} && exec "$0" "$@"`, process.execPath, cliPath, ...args],
        };
  const child = spawn(command.file, command.argv, {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.env ? { env: options.env } : {}),
  });
  const lines: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  createInterface({ input: child.stdout! }).on('line', (l) => {
    try {
      lines.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      lines.push({ raw: l });
    }
    for (const w of waiters) w();
  });
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => {
    done = true;
    for (const w of waiters) w();
  });
  return {
    child,
    lines,
    stderr,
    exited,
    waitFor(pred, ms) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const hit = lines.find(pred);
          if (hit) finish(() => resolve(hit));
          else if (done) finish(() => reject(new Error(`sluice exited first; stderr: ${stderr.join('\n')}`)));
        };
        const timer = setTimeout(
          () => finish(() => reject(new Error(`no matching log line in ${ms} ms`))),
          ms,
        );
        const finish = (f: () => void): void => {
          clearTimeout(timer);
          waiters.delete(check);
          f();
        };
        waiters.add(check);
        check();
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
