import type { Command } from 'commander';
import { ApiClientError, SluiceClient, type ClockView, type EndedFlow } from '../../client/index.js';
import { NO_RESET_TEXT } from '../../control/events.js';
import { DURATION_FORMS, formatDuration, parseDuration } from '../../core/duration.js';
import { DEFAULT_API } from '../control-setup.js';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE } from '../options.js';
import { clientToken } from '../token.js';

/**
 * `sluice clock`: the clock of a running Sluice; `sluice clock advance 4m`: moves a manual clock
 * (`sluice run --clock manual`) and prints every flow that ended on the way.
 */

export interface ClockCliOptions {
  api?: string;
  token?: string;
  tokenFile?: string;
  json?: boolean;
}

export function clockText(c: ClockView): string {
  const at = `${formatDuration(c.now)} (${c.now} ms)`;
  return c.mode === 'manual'
    ? `manual clock at ${at}: stands still until moved (sluice clock advance DURATION)\n`
    : `system clock at ${at}, time scale ${c.timeScale}: it moves by itself\n`;
}

/** One line for a flow that ended: what it was, what happened to it, and why no RST when none. */
export function endedLine(f: EndedFlow): string {
  const what =
    f.action === 'reset'
      ? 'reset (RST to client and backend)'
      : `dropped silently: ${NO_RESET_TEXT[f.noReset ?? 'terminated'](f.state)}`;
  return `flow ${f.flow} ${f.protocol} ${f.lb}/${f.rule} ${f.client} -> ${f.backend} ${f.state}, idle ${formatDuration(f.idleMs)}, ${f.cause}: ${what}`;
}

function clientOf(opts: ClockCliOptions, command: string): SluiceClient | number {
  const chosen = clientToken(opts);
  if ('error' in chosen) {
    process.stderr.write(`sluice ${command}: ${chosen.error}\n`);
    return EXIT_USAGE;
  }
  return new SluiceClient({ base: opts.api ?? DEFAULT_API, token: chosen.token });
}

function failed(command: string, client: SluiceClient, err: unknown): number {
  const code = err instanceof ApiClientError && err.code ? ` [${err.code}]` : '';
  process.stderr.write(`sluice ${command}: ${client.base}: ${(err as Error).message}${code}\n`);
  return EXIT_INVALID;
}

export async function runClockShow(opts: ClockCliOptions): Promise<number> {
  const client = clientOf(opts, 'clock');
  if (typeof client === 'number') return client;
  try {
    const c = await client.clock();
    process.stdout.write(opts.json ? `${JSON.stringify(c, null, 2)}\n` : clockText(c));
    return EXIT_OK;
  } catch (err) {
    return failed('clock', client, err);
  }
}

export async function runClockAdvance(by: string, opts: ClockCliOptions): Promise<number> {
  // Checked here too, so that a typo is a usage error before anything is asked of the API.
  const ms = parseDuration(by);
  if (typeof ms !== 'number') {
    process.stderr.write(
      `sluice clock advance: ${ms.error}; give ${DURATION_FORMS} [SLUICE_CLOCK_INVALID_DURATION]\n`,
    );
    return EXIT_USAGE;
  }
  const client = clientOf(opts, 'clock advance');
  if (typeof client === 'number') return client;
  try {
    const r = await client.advance(ms);
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      return EXIT_OK;
    }
    const lines = [
      `moved by ${formatDuration(r.advancedMs)}: ${clockText(r).trimEnd()}`,
      `${r.ended.length} flow${r.ended.length === 1 ? '' : 's'} ended${r.ended.length > 0 ? ':' : ''}`,
      ...r.ended.map((f) => `  ${endedLine(f)}`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return EXIT_OK;
  } catch (err) {
    return failed('clock advance', client, err);
  }
}

function apiOptions(c: Command): Command {
  return c
    .option('--api <ADDR:PORT>', 'where the API listens', DEFAULT_API)
    .option('--token <TOKEN>', 'bearer token (or SLUICE_API_TOKEN)')
    .option(
      '--token-file <PATH>',
      'read the bearer token from the first line of PATH (or SLUICE_API_TOKEN_FILE)',
    )
    .option('--json', 'the API answer as JSON')
    .exitOverride((err) => {
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    });
}

export function registerClock(program: Command): void {
  const clock = apiOptions(
    program
      .command('clock')
      .description("the load balancer's clock of a running Sluice: manual or system, and where it is"),
  ).action(async (opts: ClockCliOptions) => {
    process.exitCode = await runClockShow(opts);
  });
  // The options are the clock command's, before or after `advance DURATION`.
  clock
    .command('advance')
    .description(
      'move a manual clock (sluice run --clock manual) and run every expiry due on the way; prints the flows that ended',
    )
    .argument('<DURATION>', `how far: ${DURATION_FORMS}`)
    .configureHelp({ showGlobalOptions: true })
    .exitOverride((err) => {
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    })
    .action(async (by: string, _opts: unknown, command: Command) => {
      process.exitCode = await runClockAdvance(by, command.optsWithGlobals<ClockCliOptions>());
    });
}
