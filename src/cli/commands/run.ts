import type { Command } from 'commander';
import { SluiceApp, createLogger, type LogLevel } from '../../app.js';
import { ListenError, proxyUnsupported } from '../../dataplane/proxy/listeners.js';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, collect, loadConfig, reportDiagnostics } from '../options.js';

/** `sluice run CONFIG`: serve a load balancer document until SIGINT or SIGTERM. */

const LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export interface RunCliOptions {
  map?: string[];
  timeScale?: string;
  udpFlowTimeout?: string;
  holdTime?: string;
  logLevel?: string;
  dataplane?: string;
}

function positive(name: string, text: string | undefined, fallback: number): number | string {
  if (text === undefined) return fallback;
  const n = Number(text);
  return Number.isFinite(n) && n > 0 ? n : `${name} expects a number > 0, got '${text}'`;
}

export async function runRun(file: string, opts: RunCliOptions): Promise<number> {
  const timeScale = positive('--time-scale', opts.timeScale, 1);
  const udpSeconds = positive('--udp-flow-timeout', opts.udpFlowTimeout, 240);
  const holdSeconds = positive('--hold-time', opts.holdTime, 900);
  const level = (opts.logLevel ?? 'info') as LogLevel;
  for (const v of [timeScale, udpSeconds, holdSeconds]) {
    if (typeof v === 'string') {
      process.stderr.write(`${v}\n`);
      return EXIT_USAGE;
    }
  }
  if (!LEVELS.includes(level)) {
    process.stderr.write(`--log-level expects one of ${LEVELS.join(', ')}, got '${opts.logLevel}'\n`);
    return EXIT_USAGE;
  }
  const dataplane = opts.dataplane ?? 'proxy';
  if (dataplane !== 'proxy' && dataplane !== 'packet') {
    process.stderr.write(`--dataplane expects proxy or packet, got '${dataplane}'\n`);
    return EXIT_USAGE;
  }
  const { result, exit } = await loadConfig(file, opts.map ?? []);
  reportDiagnostics(result);
  if (exit !== EXIT_OK || !result.snapshot) return exit;
  if (dataplane === 'packet') {
    process.stderr.write(
      'sluice: the packet data plane (--dataplane packet) is not part of this build yet\n',
    );
    return EXIT_INVALID;
  }
  const unsupported = proxyUnsupported(result.snapshot);
  if (unsupported.length > 0) {
    for (const line of unsupported) {
      process.stderr.write(`${line}: not possible in the proxy data plane; use --dataplane packet\n`);
    }
    return EXIT_INVALID;
  }
  const logger = createLogger(level);
  let app: SluiceApp;
  try {
    app = await SluiceApp.start(result.snapshot, {
      logger,
      timeScale: timeScale as number,
      udpFlowTimeoutMs: (udpSeconds as number) * 1000,
      holdMs: (holdSeconds as number) * 1000,
    });
  } catch (err) {
    if (err instanceof ListenError) {
      process.stderr.write(`sluice: ${err.message}\n`);
      return EXIT_INVALID;
    }
    throw err;
  }
  logger.info(
    {
      listeners: app.plane.listening(),
      timeScale,
      dataplane,
      loadBalancers: result.snapshot.loadBalancers.map((lb) => lb.name),
    },
    'ready',
  );
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      logger.info({ signal }, 'stopping');
      void app.stop().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  logger.info('stopped');
  return EXIT_OK;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run a load balancer document: listeners on its frontends, flows to its backends')
    .argument('<config>', 'ARM JSON: one load balancer, an array of resources, or {"resources": [...]}')
    .option('--map <OLD=NEW>', 'rewrite an address of the document (repeatable)', collect)
    .option('--time-scale <N>', 'divide every timer (idle timeouts, probes, drains) by N', '1')
    .option('--udp-flow-timeout <SECONDS>', 'how long a UDP flow lives without a datagram', '240')
    .option(
      '--hold-time <SECONDS>',
      'how long the sockets of a silently dropped flow are kept (proxy plane)',
      '900',
    )
    .option('--log-level <LEVEL>', LEVELS.join(', '), 'info')
    .option('--dataplane <PLANE>', 'proxy (sockets, any OS) or packet (TUN, Linux, root)', 'proxy')
    .exitOverride((err) => {
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    })
    .action(async (config: string, opts: RunCliOptions) => {
      process.exitCode = await runRun(config, opts);
    });
}
