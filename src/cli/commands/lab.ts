import { Command } from 'commander';
import { SluiceError } from '../../core/errors.js';
import { LabBackend } from '../../lab/backend.js';
import { EcmpSync } from '../../lab/ecmp-sync.js';
import {
  DEFAULT_LAB_DIR,
  labDown,
  labStart,
  labStop,
  labUp,
  type LabInstanceChange,
  type LabSummary,
} from '../../lab/lab.js';
import {
  ECMP_TIMERS,
  MAX_BACKENDS,
  MAX_INSTANCES,
  RESILIENT_TABLE,
  labNameProblem,
  type EcmpMode,
} from '../../lab/plan.js';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE } from '../options.js';
import { registerRun } from './run.js';

/**
 * `sluice lab up | down`: a pool of Sluice instances on the packet plane, each announcing the
 * frontend by BGP to an FRR router that spreads the flows by ECMP, with backends, a client and
 * an etcd, in network namespaces (Linux, root). docs/scale-out.md tells what it shows.
 */

interface UpOptions {
  instances: string;
  spares: string;
  backends: string;
  ecmpIdleTimer: string;
  ecmpUnbalancedTimer: string;
  json?: boolean;
  name: string;
  dir: string;
  ecmp: string;
  bfd: string;
  timeScale: string;
  etcd: boolean;
}

function count(flag: string, text: string, max: number): number | string {
  const n = Number(text);
  return /^\d+$/.test(text) && n >= 1 && n <= max
    ? n
    : `${flag} expects a whole number from 1 to ${max}, got '${text}'`;
}

/** Whether `sluice run` takes its desired state from etcd yet (a --state flag). */
function runHasStateFlag(): boolean {
  const probe = new Command();
  registerRun(probe);
  return probe.commands[0]?.options.some((o) => o.long === '--state') ?? false;
}

function describe(s: LabSummary): string {
  const ns = (n: string): string => `ip netns exec ${n}`;
  const c = ns(s.client.namespace);
  const lines = [
    `Sluice lab '${s.name}' is up: ${s.instances.length} instance${s.instances.length === 1 ? '' : 's'} of Sluice (packet plane) behind an FRR router, ECMP ${s.router.ecmp}, ${s.backends.length} backend${s.backends.length === 1 ? '' : 's'}.`,
    '',
    `  frontend   ${s.frontend}: echo on TCP ${s.ports.echo} (reset at idle) and ${s.ports.echoDrop} (silent drop at idle), HTTP on TCP ${s.ports.http}`,
    `  client     ${s.client.namespace} (${s.client.address})`,
    `  router     ${s.router.namespace} (AS ${s.router.as}): ${s.router.vtysh} -c 'show ip bgp'`,
    ...s.instances.map(
      (i) => `  ${i.name.padEnd(10)} ${i.namespace} (${i.address}, AS ${i.as}), pid ${i.pid}, log ${i.log}`,
    ),
    ...s.spares.map(
      (i) =>
        `  ${i.name.padEnd(10)} ${i.namespace} (${i.address}), spare: sluice lab start ${i.name}${s.name === 'lab' ? '' : ` --name ${s.name}`}`,
    ),
    ...s.backends.map((b) => `  ${b.name.padEnd(10)} ${b.namespace} (${b.address})`),
    `  etcd       ${s.etcd ?? 'not started (--no-etcd)'}${s.etcd !== null && !s.etcdState ? ' (the instances keep their state on disk: sluice run has no --state yet)' : ''}`,
    '',
    'Try:',
    `  ${c} curl -s http://${s.frontend}/   # a backend answers, naming the client address it sees`,
    `  ${c} bash -c 'exec 3<>/dev/tcp/${s.frontend}/${s.ports.echo}; echo hello >&3; head -1 <&3'   # the echo port sends every byte back`,
    `  ${ns(s.router.namespace)} ip route show ${s.frontend}${s.router.resilientTable !== undefined ? ` table ${s.router.resilientTable}` : ''}   # the ECMP route, one next hop per instance`,
    `  ${ns(s.instances[0]!.namespace)} curl -s 127.0.0.1:9180/sluice/v1/flows   # the flows instance ${s.instances[0]!.name} carries`,
    `  sluice lab restart ${s.instances[0]!.name}${s.name === 'lab' ? '' : ` --name ${s.name}`}   # an upgrade: ${s.instances[0]!.name} withdraws, the others adopt its flows, it comes back and adopts them again`,
    `  sluice lab stop ${s.instances[0]!.name} --kill${s.name === 'lab' ? '' : ` --name ${s.name}`}   # a crash (kill -9): the others adopt its flows`,
    '',
    `Remove it all: sluice lab down${s.name === 'lab' ? '' : ` --name ${s.name}`}`,
  ];
  return `${lines.join('\n')}\n`;
}

async function up(opts: UpOptions): Promise<number> {
  const instances = count('--instances', opts.instances, MAX_INSTANCES);
  const spares = /^\d+$/.test(opts.spares) ? Number(opts.spares) : NaN;
  const backends = count('--backends', opts.backends, MAX_BACKENDS);
  const idleTimer = Number(opts.ecmpIdleTimer);
  const unbalancedTimer = Number(opts.ecmpUnbalancedTimer);
  const bfd = Number(opts.bfd);
  const timeScale = Number(opts.timeScale);
  const problems = [
    ...[instances, backends].filter((v): v is string => typeof v === 'string'),
    ...(labNameProblem(opts.name) !== undefined ? [labNameProblem(opts.name)!] : []),
    ...(opts.ecmp === 'resilient' || opts.ecmp === 'hash-threshold'
      ? []
      : [`--ecmp expects resilient or hash-threshold, got '${opts.ecmp}'`]),
    ...(/^\d+$/.test(opts.bfd) && (bfd === 0 || (bfd >= 10 && bfd <= 10_000))
      ? []
      : [`--bfd expects 0 (off) or milliseconds from 10 to 10000, got '${opts.bfd}'`]),
    ...(Number.isFinite(timeScale) && timeScale > 0
      ? []
      : [`--time-scale expects a number > 0, got '${opts.timeScale}'`]),
    ...(Number.isInteger(spares) &&
    spares >= 0 &&
    (typeof instances !== 'number' || instances + spares <= MAX_INSTANCES)
      ? []
      : [
          `--spares expects a whole number, with --instances at most ${MAX_INSTANCES} in all, got '${opts.spares}'`,
        ]),
    ...[
      ['--ecmp-idle-timer', opts.ecmpIdleTimer, idleTimer],
      ['--ecmp-unbalanced-timer', opts.ecmpUnbalancedTimer, unbalancedTimer],
    ].flatMap(([flag, text, n]) =>
      /^\d+$/.test(String(text)) && (n as number) <= 3600
        ? []
        : [`${flag} expects whole seconds from 0 to 3600, got '${text}'`],
    ),
  ];
  if (problems.length > 0) {
    for (const p of problems) process.stderr.write(`sluice lab: ${p}\n`);
    return EXIT_USAGE;
  }
  try {
    const summary = await labUp({
      name: opts.name,
      instances: instances as number,
      spares,
      backends: backends as number,
      ecmpIdleTimerS: idleTimer,
      ecmpUnbalancedTimerS: unbalancedTimer,
      baseDir: opts.dir,
      ecmp: opts.ecmp as EcmpMode,
      bfdMs: bfd,
      timeScale,
      etcd: opts.etcd,
      etcdState: opts.etcd && runHasStateFlag(),
    });
    process.stdout.write(opts.json === true ? `${JSON.stringify(summary)}\n` : describe(summary));
    return EXIT_OK;
  } catch (err) {
    if (err instanceof SluiceError) {
      process.stderr.write(`sluice lab: ${err.message} [${err.code}]\n`);
      return EXIT_INVALID;
    }
    throw err;
  }
}

async function down(opts: { name: string; dir: string; json?: boolean }): Promise<number> {
  const why = labNameProblem(opts.name);
  if (why !== undefined) {
    process.stderr.write(`sluice lab: ${why}\n`);
    return EXIT_USAGE;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('sluice lab: sluice lab down needs root [SLUICE_HOST_LAB]\n');
    return EXIT_INVALID;
  }
  const r = await labDown(opts.dir, opts.name);
  if (opts.json === true) process.stdout.write(`${JSON.stringify({ name: opts.name, ...r })}\n`);
  else if (!r.found) process.stdout.write(`no lab named '${opts.name}' is up\n`);
  else
    process.stdout.write(
      `lab '${opts.name}' removed: ${r.processes} process${r.processes === 1 ? '' : 'es'} ended, ${r.namespaces} namespace${r.namespaces === 1 ? '' : 's'} deleted\n`,
    );
  return EXIT_OK;
}

/** `lab start|stop|restart INSTANCE`: one instance of a lab that is up. */
async function change(
  what: 'start' | 'stop' | 'restart',
  instance: string,
  opts: { name: string; dir: string; kill?: boolean; json?: boolean },
): Promise<number> {
  const why = labNameProblem(opts.name);
  if (why !== undefined) {
    process.stderr.write(`sluice lab: ${why}\n`);
    return EXIT_USAGE;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write(`sluice lab: sluice lab ${what} needs root [SLUICE_HOST_LAB]\n`);
    return EXIT_INVALID;
  }
  try {
    let r: LabInstanceChange;
    if (what === 'start') r = await labStart(opts.dir, opts.name, instance);
    else if (what === 'stop') r = await labStop(opts.dir, opts.name, instance, opts.kill === true);
    else {
      const stopped = await labStop(opts.dir, opts.name, instance, opts.kill === true);
      r = { ...stopped, ...(await labStart(opts.dir, opts.name, instance)) };
    }
    if (opts.json === true) process.stdout.write(`${JSON.stringify(r)}\n`);
    else {
      const parts = [
        ...(r.stoppedMs !== undefined
          ? [`stopped in ${r.stoppedMs} ms${opts.kill === true ? ' (killed)' : ''}`]
          : []),
        ...(r.startedMs !== undefined
          ? [`started (pid ${r.pid}), in the route after ${r.startedMs} ms`]
          : []),
      ];
      process.stdout.write(`${instance}: ${parts.join('; ')}\n`);
    }
    return EXIT_OK;
  } catch (err) {
    if (err instanceof SluiceError) {
      process.stderr.write(`sluice lab: ${err.message} [${err.code}]\n`);
      return EXIT_INVALID;
    }
    throw err;
  }
}

export function registerLab(program: Command): void {
  const lab = program
    .command('lab')
    .description('a pool of Sluice instances behind a BGP/ECMP router, in network namespaces (Linux, root)');
  lab
    .command('up')
    .description(
      'build the lab: client, FRR router, instances with BIRD, backends, etcd; print what was built',
    )
    .option('--instances <N>', `Sluice instances (1-${MAX_INSTANCES})`, '3')
    .option('--spares <K>', 'instances built but not started (sluice lab start NAME)', '0')
    .option('--backends <M>', `echo/HTTP backends (1-${MAX_BACKENDS})`, '2')
    .option('--json', 'print what was built as JSON')
    .option('--name <NAME>', 'name of the lab (several can be up at once)', 'lab')
    .option('--dir <DIR>', 'where labs keep their configuration and logs', DEFAULT_LAB_DIR)
    .option(
      '--ecmp <MODE>',
      "the router's ECMP: resilient (resilient next-hop groups) or hash-threshold (FRR's own)",
      'resilient',
    )
    .option('--bfd <MS>', 'BFD interval between router and instances (0: off)', '100')
    .option(
      '--ecmp-idle-timer <S>',
      'resilient ECMP: how long a bucket must be idle before it moves to a new instance (0: at once)',
      String(ECMP_TIMERS.idleTimerS),
    )
    .option(
      '--ecmp-unbalanced-timer <S>',
      'resilient ECMP: how long the group may stay unbalanced before busy buckets move too',
      String(ECMP_TIMERS.unbalancedTimerS),
    )
    .option('--time-scale <N>', 'passed to every instance: divides its timers (idle timeouts, probes)', '1')
    .option('--no-etcd', 'start no etcd')
    .action(async (opts: UpOptions) => {
      process.exitCode = await up(opts);
    });
  lab
    .command('down')
    .description('remove the lab: every process it started (by PID), its namespaces and files')
    .option('--name <NAME>', 'name of the lab', 'lab')
    .option('--dir <DIR>', 'where labs keep their configuration and logs', DEFAULT_LAB_DIR)
    .option('--json', 'print what was removed as JSON')
    .action(async (opts: { name: string; dir: string; json?: boolean }) => {
      process.exitCode = await down(opts);
    });
  for (const what of ['start', 'stop', 'restart'] as const) {
    const c = lab
      .command(what)
      .description(
        what === 'start'
          ? 'start an instance of a lab that is up (a spare, or one stopped), as lab up would, until the router routes to it'
          : what === 'stop'
            ? 'stop an instance: gracefully (it withdraws and serves on until the traffic has moved), or --kill (SIGKILL, as a crash)'
            : 'stop an instance and start it again (an upgrade)',
      )
      .argument('<instance>', 'i1, i2...')
      .option('--name <NAME>', 'name of the lab', 'lab')
      .option('--dir <DIR>', 'where labs keep their configuration and logs', DEFAULT_LAB_DIR)
      .option('--json', 'print what was done as JSON');
    if (what !== 'start') c.option('--kill', 'SIGKILL rather than a graceful stop');
    c.action(
      async (instance: string, opts: { name: string; dir: string; kill?: boolean; json?: boolean }) => {
        process.exitCode = await change(what, instance, opts);
      },
    );
  }
  // The lab's own processes, started by `lab up` inside its namespaces.
  lab
    .command('backend', { hidden: true })
    .requiredOption('--name <NAME>')
    .option('--echo-port <PORT>', '', '7')
    .option('--http-port <PORT>', '', '80')
    .action(async (opts: { name: string; echoPort: string; httpPort: string }) => {
      const b = new LabBackend({
        name: opts.name,
        echoPort: Number(opts.echoPort),
        httpPort: Number(opts.httpPort),
        // IPv4 only: the HTTP answer then shows the client's address as the client has it.
        host: '0.0.0.0',
      });
      await b.start();
      process.stdout.write(`${JSON.stringify({ msg: 'listening', name: opts.name })}\n`);
      const stop = (): void => {
        void b.stop().then(() => process.exit(0));
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
  lab
    .command('ecmp-sync', { hidden: true })
    .option('--table <N>', '', String(RESILIENT_TABLE))
    .option('--buckets <N>', '', '256')
    .option('--idle-timer <S>', '', '10')
    .option('--unbalanced-timer <S>', '', '60')
    .action(async (opts: { table: string; buckets: string; idleTimer: string; unbalancedTimer: string }) => {
      const sync = new EcmpSync({
        table: Number(opts.table),
        buckets: Number(opts.buckets),
        idleTimerS: Number(opts.idleTimer),
        unbalancedTimerS: Number(opts.unbalancedTimer),
        log: (f) => process.stdout.write(`${JSON.stringify(f)}\n`),
      });
      await sync.start();
      const stop = (): void => {
        sync.stop();
        process.exit(0);
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
}
