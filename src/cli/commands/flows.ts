import type { Command } from 'commander';
import { ApiClientError, SluiceClient, type FlowView, type FlowsResponse } from '../../client/index.js';
import { formatDuration } from '../../core/duration.js';
import { DEFAULT_API } from '../control-setup.js';
import { clientToken } from '../token.js';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE } from '../options.js';

/** `sluice flows`: the live flows of a running Sluice, once or as a table that counts down. */

export interface FlowsCliOptions {
  api?: string;
  token?: string;
  tokenFile?: string;
  lb?: string;
  rule?: string;
  state?: string;
  limit?: string;
  watch?: boolean;
  json?: boolean;
  interval?: string;
}

/**
 * How the load balancer's time moves, for the head of the table: a manual clock stands still
 * between moves, a system clock runs `timeScale` times faster than real time.
 */
export function clockLine(r: Pick<FlowsResponse, 'clock' | 'timeScale'>, elapsedRealMs = 0): string {
  if (r.clock.mode === 'manual')
    return `manual clock at ${formatDuration(r.clock.now)}: stands still until moved (sluice clock advance)`;
  const now = formatDuration(r.clock.now + elapsedRealMs * r.timeScale);
  return r.timeScale === 1
    ? `system clock at ${now}, time scale 1`
    : `system clock at ${now}, time scale ${r.timeScale} (1s of real time is ${formatDuration(1000 * r.timeScale)})`;
}

/**
 * The table, with idle and time left moved on by the real time since the listing was taken, so
 * the countdown runs between two listings (`timeScale` load-balancer ms per real ms; none on a
 * manual clock, which moves only when told). `withClock`: first a line saying how time moves.
 */
export function flowTable(r: FlowsResponse, elapsedRealMs = 0, withClock = true): string {
  const passed = r.clock.mode === 'manual' ? 0 : elapsedRealMs * r.timeScale;
  const header = [
    'ID',
    'PROTO',
    'LB',
    'RULE',
    'STATE',
    'CLIENT',
    'BACKEND',
    'AGE',
    'IDLE',
    'LEFT',
    'TO BACKEND',
    'TO CLIENT',
  ];
  const rows = r.flows.map((f: FlowView) => [
    String(f.id),
    f.protocol,
    f.lb,
    f.ruleRemoved ? `${f.rule} (removed)` : f.rule,
    f.state,
    f.client,
    f.backend,
    formatDuration(f.ageMs + passed),
    formatDuration(f.idleMs + passed),
    formatDuration(Math.max(0, f.msLeft - passed)),
    `${f.bytesToBackend}B`,
    `${f.bytesToClient}B`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const more = r.total > r.flows.length ? `\n(${r.total - r.flows.length} more not shown; --limit)` : '';
  return (
    [...(withClock ? [clockLine(r, elapsedRealMs)] : []), line(header), ...rows.map(line)].join('\n') +
    `\n${r.total} flow${r.total === 1 ? '' : 's'}${more}\n`
  );
}

export async function runFlows(opts: FlowsCliOptions): Promise<number> {
  const chosen = clientToken(opts);
  if ('error' in chosen) {
    process.stderr.write(`sluice flows: ${chosen.error}\n`);
    return EXIT_USAGE;
  }
  const limit = opts.limit === undefined ? undefined : Number(opts.limit);
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0)) {
    process.stderr.write(`--limit expects a whole number, got '${opts.limit}'\n`);
    return EXIT_USAGE;
  }
  const client = new SluiceClient({
    base: opts.api ?? DEFAULT_API,
    token: chosen.token,
  });
  const query = {
    ...(opts.lb ? { lb: opts.lb } : {}),
    ...(opts.rule ? { rule: opts.rule } : {}),
    ...(opts.state ? { state: opts.state } : {}),
    ...(limit !== undefined ? { limit } : {}),
  };
  const fetchFlows = async (): Promise<FlowsResponse | number> => {
    try {
      return await client.flows(query);
    } catch (err) {
      const code = err instanceof ApiClientError && err.code ? ` [${err.code}]` : '';
      process.stderr.write(`sluice flows: ${client.base}: ${(err as Error).message}${code}\n`);
      return EXIT_INVALID;
    }
  };
  const first = await fetchFlows();
  if (typeof first === 'number') return first;
  if (!opts.watch) {
    process.stdout.write(opts.json ? `${JSON.stringify(first, null, 2)}\n` : flowTable(first));
    return EXIT_OK;
  }
  const refreshMs = Math.max(200, Number(opts.interval ?? '1') * 1000 || 1000);
  let current = first;
  let fetchedAt = Date.now();
  const draw = (): void => {
    const clear = process.stdout.isTTY ? '\x1b[H\x1b[2J' : '';
    const elapsed = Date.now() - fetchedAt;
    process.stdout.write(
      `${clear}${new Date().toISOString()}  ${client.base}  ${clockLine(current, elapsed)}\n${flowTable(current, elapsed, false)}`,
    );
  };
  draw();
  return new Promise<number>((resolve) => {
    const redraw = setInterval(draw, 250);
    const refresh = setInterval(() => {
      void fetchFlows().then((r) => {
        if (typeof r === 'number') return;
        current = r;
        fetchedAt = Date.now();
      });
    }, refreshMs);
    const stop = (): void => {
      clearInterval(redraw);
      clearInterval(refresh);
      resolve(EXIT_OK);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

export function registerFlows(program: Command): void {
  program
    .command('flows')
    .description('list the live flows of a running Sluice (idle time and time left before the idle timeout)')
    .option('--api <ADDR:PORT>', 'where the API listens', DEFAULT_API)
    .option('--token <TOKEN>', 'bearer token (or SLUICE_API_TOKEN)')
    .option(
      '--token-file <PATH>',
      'read the bearer token from the first line of PATH (or SLUICE_API_TOKEN_FILE)',
    )
    .option('--lb <NAME>', 'only this load balancer')
    .option('--rule <NAME>', 'only this rule')
    .option('--state <STATE>', 'only flows in this state (ESTABLISHED, SYN_SENT, FIN_WAIT, UDP...)')
    .option('--limit <N>', 'at most N flows')
    .option('--watch', 'keep the table on screen, counting down, refreshed every --interval seconds')
    .option('--interval <SECONDS>', 'refresh period of --watch', '1')
    .option('--json', 'the API answer as JSON')
    .exitOverride((err) => {
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    })
    .action(async (opts: FlowsCliOptions) => {
      process.exitCode = await runFlows(opts);
    });
}
