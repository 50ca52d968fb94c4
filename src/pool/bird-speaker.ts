/**
 * The BGP daemon of one instance: BIRD 2, started, configured and supervised by Sluice.
 *
 * BIRD runs in the foreground as a child of Sluice, with a parent-death signal (util-linux
 * `setpriv --pdeathsig KILL`), so it dies with Sluice however Sluice dies, kill -9 included:
 * its BGP sessions then close at once and the routers drop the instance's routes. Should BIRD
 * outlive Sluice anyway (no setpriv), the routes still go, because each is a static route via
 * the TUN device, which vanishes with the Sluice process (bird-config.ts).
 *
 * When BIRD exits on its own, the speaker says so and starts it again with the configuration
 * in force, after 1 s, then 2, 4... up to 30 s while it keeps failing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync, existsSync, accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { SluiceError } from '../core/errors.js';
import { birdCommand, type BirdReply } from './bird-control.js';

export type SpeakerEvent =
  | { readonly type: 'started'; readonly pid: number }
  | { readonly type: 'exited'; readonly code: number | null; readonly signal: string | null }
  | { readonly type: 'restarting'; readonly inMs: number };

export interface SpeakerOptions {
  /** The BIRD binary, a path or a name looked up in PATH. */
  readonly daemon: string;
  /** Its configuration, control socket and pid file. */
  readonly dir: string;
  readonly log: Logger;
  readonly events?: (e: SpeakerEvent) => void;
}

/** Where `name` is in PATH (or `name` itself when it has a slash and exists), else undefined. */
export function findExecutable(name: string): string | undefined {
  const candidates = name.includes('/')
    ? [name]
    : (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin')
        .split(delimiter)
        .concat(['/usr/sbin', '/sbin'])
        .map((d) => join(d, name));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** Why BIRD cannot be used here, or undefined when it can. */
export function speakerUnavailable(daemon: string): string | undefined {
  if (process.platform !== 'linux') return 'announcing by BGP needs Linux';
  const bird = findExecutable(daemon);
  if (bird === undefined)
    return `the BGP daemon '${daemon}' is not installed (BIRD 2: the bird2 package; or give its path with --bgp-daemon)`;
  const r = spawnSync(bird, ['--version'], { encoding: 'utf8', timeout: 5000 });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (!/BIRD version 2\./.test(text))
    return `'${bird}' is not BIRD 2 (${text.trim() || r.error?.message || `exit ${r.status}`})`;
  return undefined;
}

const BACKOFF_MS = [1000, 2000, 4000, 8000, 16000, 30000];
/** Running this long without exiting resets the backoff. */
const STABLE_MS = 30_000;
/** The longest a unix socket path may be (sun_path, with its terminating zero). */
const MAX_SOCKET_PATH = 107;

export class BirdSpeaker {
  readonly configPath: string;
  readonly socketPath: string;
  private child: ChildProcess | undefined;
  private config = '';
  private stopping = false;
  private failures = 0;
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly bird: string;
  private readonly setpriv: string | undefined;

  constructor(private readonly options: SpeakerOptions) {
    this.configPath = join(options.dir, 'bird.conf');
    this.socketPath = join(options.dir, 'bird.ctl');
    if (this.socketPath.length > MAX_SOCKET_PATH)
      throw new SluiceError(
        'SLUICE_HOST_BGP_DAEMON',
        `BIRD's control socket path ${this.socketPath} is longer than ${MAX_SOCKET_PATH} bytes: choose a shorter --bgp-dir`,
      );
    const bird = findExecutable(options.daemon);
    if (bird === undefined)
      throw new SluiceError('SLUICE_HOST_BGP_DAEMON', `the BGP daemon '${options.daemon}' is not installed`);
    this.bird = bird;
    this.setpriv = findExecutable('setpriv');
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** Writes `config`, starts BIRD with it and waits until its control socket answers. */
  async start(config: string): Promise<void> {
    mkdirSync(this.options.dir, { recursive: true, mode: 0o700 });
    if (this.setpriv === undefined)
      this.options.log.warn(
        'setpriv (util-linux) is missing: BIRD may outlive a Sluice that is killed; its routes still go with the TUN device',
      );
    this.write(config);
    this.stopping = false;
    await this.launch();
  }

  /** Serves `config` from now on: written, and read again by BIRD without resetting its sessions. */
  async configure(config: string): Promise<void> {
    if (config === this.config) return;
    this.write(config);
    if (this.child === undefined) return; // a restart will read it
    await birdCommand(this.socketPath, `configure "${this.configPath}"`);
  }

  query(command: string): Promise<BirdReply> {
    return birdCommand(this.socketPath, command, 2000);
  }

  /** Stops BIRD (its sessions end with a Cease notification); SIGKILL after 3 s. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (child === undefined) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), 3000);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }

  /** Kills BIRD at once (a second signal while stopping). */
  abort(): void {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.child?.kill('SIGKILL');
  }

  private write(config: string): void {
    const tmp = `${this.configPath}.tmp`;
    writeFileSync(tmp, config, { mode: 0o600 });
    renameSync(tmp, this.configPath);
    this.config = config;
  }

  private async launch(): Promise<void> {
    const args = ['-f', '-c', this.configPath, '-s', this.socketPath];
    const [cmd, argv] =
      this.setpriv !== undefined
        ? [this.setpriv, ['--pdeathsig', 'KILL', '--', this.bird, ...args]]
        : [this.bird, args];
    const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    this.startedAt = Date.now();
    const stderr: string[] = [];
    createInterface({ input: child.stderr! }).on('line', (line) => {
      if (stderr.length < 20) stderr.push(line);
      this.forwardLog(line);
    });
    let ready = false;
    const exited = new Promise<string>((resolve) => {
      child.once('exit', (code, signal) => {
        if (this.child === child) this.child = undefined;
        this.options.events?.({ type: 'exited', code, signal });
        resolve(stderr.join(' | ') || `exit code ${code ?? signal}`);
        // Before it was ready, the caller of launch() hears of it instead.
        if (ready) this.onExit(code, signal);
      });
      child.once('error', (err) => resolve(err.message));
    });
    // Ready once the control socket answers; BIRD refusing its configuration exits instead.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const gone = await Promise.race([exited, sleep(100).then(() => undefined)]);
      if (gone !== undefined) throw new SluiceError('SLUICE_HOST_BGP_DAEMON', `BIRD did not start: ${gone}`);
      if (existsSync(this.socketPath)) {
        try {
          await birdCommand(this.socketPath, 'show status', 1000);
          break;
        } catch {
          /* not listening yet */
        }
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new SluiceError(
          'SLUICE_HOST_BGP_DAEMON',
          'BIRD did not answer on its control socket within 10 s',
        );
      }
    }
    ready = true;
    this.options.events?.({ type: 'started', pid: child.pid! });
  }

  private onExit(code: number | null, signal: string | null): void {
    if (this.stopping) return;
    if (Date.now() - this.startedAt > STABLE_MS) this.failures = 0;
    const inMs = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)]!;
    this.failures++;
    this.options.log.error(
      { code, signal, restartInMs: inMs },
      'BGP daemon exited: nothing is announced until it is back',
    );
    this.options.events?.({ type: 'restarting', inMs });
    this.restartTimer = setTimeout(() => {
      if (this.stopping) return;
      this.launch().then(
        () => this.options.log.info({ pid: this.child?.pid }, 'BGP daemon started again'),
        (err: unknown) => {
          this.options.log.error({ err: (err as Error).message }, 'BGP daemon failed to start again');
          if (!this.stopping) this.onExit(null, null);
        },
      );
    }, inMs);
    this.restartTimer.unref();
  }

  private forwardLog(line: string): void {
    const m = /<(\w+)>\s*(.*)$/.exec(line);
    const level = m?.[1] ?? 'INFO';
    const text = m?.[2] ?? line;
    // BIRD logs its own orderly end as <FATAL> "Shutdown completed".
    if (level === 'INFO' || level === 'TRACE' || level === 'DBG' || text === 'Shutdown completed')
      this.options.log.debug({ bird: text }, 'BIRD');
    else this.options.log.warn({ bird: text, level }, 'BIRD');
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
