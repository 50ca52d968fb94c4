import type { Command } from 'commander';
import { SluiceApp, createLogger, type LogLevel } from '../../app.js';
import { ManualClock, type Clock } from '../../core/clock.js';
import { SluiceError } from '../../core/errors.js';
import { SystemClock } from '../../time/system-clock.js';
import type { RuntimeSnapshot } from '../../core/snapshot.js';
import {
  PLANE_DEFAULTS,
  dataPlaneModule,
  dataPlaneNames,
  type DataPlane,
  type PlaneSettings,
} from '../../dataplane/registry.js';
import {
  DEFAULT_API,
  DEFAULT_STATE_DIR,
  DEFAULT_STATE_WAIT_S,
  loadInitialState,
  planControl,
  startApi,
  type ControlCliOptions,
  type PreparedSnapshot,
} from '../control-setup.js';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, collect, parsePorts } from '../options.js';
import { stopOnSignal } from '../shutdown.js';
import { planBudget, type BudgetPlan, type ShareLabels, type ShareRequest } from '../../core/budget.js';
import { openFilesLimit } from '../../host-limits.js';
import {
  BGP_DEFAULTS,
  POOL_DEFAULTS,
  bgpSettingsOf,
  speakerUnavailable,
  startAnnouncer,
  startPoolLink,
  waitTrafficGone,
  type Announcer,
  type BgpCliOptions,
  type PoolLink,
} from '../../pool/index.js';

/** `sluice run CONFIG`: serve a load balancer document until SIGINT or SIGTERM. */

const LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export interface RunCliOptions extends ControlCliOptions, BgpCliOptions {
  strict?: boolean;
  map?: string[];
  timeScale?: string;
  clock?: string;
  udpFlowTimeout?: string;
  snatPortHold?: string;
  holdTime?: string;
  logLevel?: string;
  dataplane?: string;
  tun?: string;
  inboundSnat?: string;
  instancePorts?: string;
  configureHost?: boolean;
  tcpRelay?: string;
  busyPoll?: string;
  maxTcpFlows?: string;
  maxUdpFlows?: string;
  maxUdpFlowsPerClient?: string;
  maxApiConnections?: string;
  maxEventStreams?: string;
}

/** The flag of each share, as messages about the shares name them. */
const SHARE_FLAGS: ShareLabels = {
  tcpFlows: '--max-tcp-flows',
  udpFlows: '--max-udp-flows',
  udpFlowsPerClient: '--max-udp-flows-per-client',
  apiConnections: '--max-api-connections',
  eventStreams: '--max-event-streams',
};

/** The shares of the open-files limit from the flags; a string is a usage error to print. */
function budgetOf(opts: RunCliOptions, api: boolean, flowsHoldDescriptors: boolean): BudgetPlan | string {
  const texts: Record<keyof ShareLabels, string | undefined> = {
    tcpFlows: opts.maxTcpFlows,
    udpFlows: opts.maxUdpFlows,
    udpFlowsPerClient: opts.maxUdpFlowsPerClient,
    apiConnections: opts.maxApiConnections,
    eventStreams: opts.maxEventStreams,
  };
  const request: { -readonly [K in keyof ShareRequest]: number } = {};
  for (const [name, text] of Object.entries(texts) as [keyof ShareLabels, string | undefined][]) {
    if (text === undefined) continue;
    // The API's shares mean nothing without an API; `--api off` keeps them at 0.
    if (!api && (name === 'apiConnections' || name === 'eventStreams')) continue;
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text)))
      return `${SHARE_FLAGS[name]} expects a whole number >= 0, got '${text}'`;
    request[name] = Number(text);
  }
  const r = planBudget({ openFiles: openFilesLimit(), api, flowsHoldDescriptors }, request, SHARE_FLAGS);
  return r.ok ? r.plan : `${r.problem} [SLUICE_HOST_BUDGET]`;
}

function positive(name: string, text: string | undefined, fallback: number): number | string {
  if (text === undefined) return fallback;
  const n = Number(text);
  return Number.isFinite(n) && n > 0 ? n : `${name} expects a number > 0, got '${text}'`;
}

export async function runRun(
  file: string | readonly string[] | undefined,
  opts: RunCliOptions,
): Promise<number> {
  const timeScale = positive('--time-scale', opts.timeScale, 1);
  const udpSeconds = positive('--udp-flow-timeout', opts.udpFlowTimeout, 240);
  const holdSeconds = positive('--hold-time', opts.holdTime, 900);
  const snatHoldSeconds = positive('--snat-port-hold', opts.snatPortHold, 60);
  const busyPoll = opts.busyPoll === undefined ? PLANE_DEFAULTS.busyPollMicros : Number(opts.busyPoll);
  if (!Number.isInteger(busyPoll) || busyPoll < 0 || busyPoll > 1000) {
    process.stderr.write(`--busy-poll expects whole microseconds from 0 to 1000, got '${opts.busyPoll}'\n`);
    return EXIT_USAGE;
  }
  const level = (opts.logLevel ?? 'info') as LogLevel;
  for (const v of [timeScale, udpSeconds, holdSeconds, snatHoldSeconds]) {
    if (typeof v === 'string') {
      process.stderr.write(`${v}\n`);
      return EXIT_USAGE;
    }
  }
  const clockMode = opts.clock ?? 'system';
  if (clockMode !== 'system' && clockMode !== 'manual') {
    process.stderr.write(`--clock expects system or manual, got '${opts.clock}'\n`);
    return EXIT_USAGE;
  }
  if (clockMode === 'manual' && timeScale !== 1) {
    process.stderr.write(
      '--time-scale speeds up the system clock; with --clock manual time moves only by POST /sluice/v1/clock/advance (sluice clock advance): give one or the other\n',
    );
    return EXIT_USAGE;
  }
  if (!LEVELS.includes(level)) {
    process.stderr.write(`--log-level expects one of ${LEVELS.join(', ')}, got '${opts.logLevel}'\n`);
    return EXIT_USAGE;
  }
  const plane = dataPlaneModule(opts.dataplane ?? 'proxy');
  if (plane === undefined) {
    process.stderr.write(
      `--dataplane expects ${dataPlaneNames().join(' or ')}, got '${opts.dataplane}' [SLUICE_PLANE_UNKNOWN]\n`,
    );
    return EXIT_USAGE;
  }
  const tcpRelay = opts.tcpRelay ?? PLANE_DEFAULTS.tcpRelay;
  if (tcpRelay !== 'handles' && tcpRelay !== 'sockets') {
    process.stderr.write(`--tcp-relay expects handles or sockets, got '${tcpRelay}'\n`);
    return EXIT_USAGE;
  }
  const instancePorts = parsePorts(opts.instancePorts);
  if (typeof instancePorts === 'string') {
    process.stderr.write(`${instancePorts}\n`);
    return EXIT_USAGE;
  }
  const settings: PlaneSettings = {
    holdMs: (holdSeconds as number) * 1000,
    tcpRelay,
    tun: opts.tun ?? 'sluice0',
    configureHost: opts.configureHost === true,
    busyPollMicros: busyPoll,
    ...(opts.inboundSnat !== undefined ? { inboundSnat: opts.inboundSnat } : {}),
    ...(instancePorts.length > 0 ? { instancePorts } : {}),
  };
  const control = planControl(opts);
  if (typeof control === 'string') {
    process.stderr.write(`sluice: ${control}\n`);
    return EXIT_USAGE;
  }
  const bgp = bgpSettingsOf(opts, control.stateDir);
  if (typeof bgp === 'string') {
    process.stderr.write(`sluice: ${bgp}\n`);
    return EXIT_USAGE;
  }
  if (bgp !== undefined && plane.name !== 'packet') {
    process.stderr.write(
      'sluice: --bgp announces frontends routed into the packet plane: add --dataplane packet\n',
    );
    return EXIT_USAGE;
  }
  const budget = budgetOf(opts, control.api !== 'off', plane.flowsHoldDescriptors);
  if (typeof budget === 'string') {
    process.stderr.write(`sluice: ${budget}\n`);
    return EXIT_USAGE;
  }
  // What the plane cannot serve is refused with --strict; otherwise it serves what it can and
  // warns about the rest, at start and for every change through the API alike.
  const prepare = (given: RuntimeSnapshot): PreparedSnapshot => {
    const s = plane.adapt?.(given, settings) ?? given;
    const problems = plane.unsupported(s);
    if (problems.length === 0 || opts.strict === true || plane.partial === undefined)
      return { snapshot: s, warnings: [], problems };
    return { ...plane.partial(s), problems: [] };
  };
  const initial = await loadInitialState(file, control, prepare);
  const { result, exit } = initial;
  if (exit !== EXIT_OK || !result.snapshot) return exit;
  const why = plane.unavailable(settings);
  if (why !== undefined) {
    process.stderr.write(`sluice: ${why} [SLUICE_PLANE_UNAVAILABLE]\n`);
    await initial.close();
    return EXIT_INVALID;
  }
  const noBgp = bgp === undefined ? undefined : speakerUnavailable(bgp.daemon);
  if (noBgp !== undefined) {
    process.stderr.write(`sluice: ${noBgp} [SLUICE_HOST_BGP_DAEMON]\n`);
    await initial.close();
    return EXIT_INVALID;
  }
  const prepared = prepare(result.snapshot);
  if (prepared.problems.length > 0) {
    for (const line of prepared.problems) process.stderr.write(`${line} [SLUICE_PLANE_UNSUPPORTED]\n`);
    if (plane.partial !== undefined)
      process.stderr.write('sluice: --strict refuses these; without it the rest is served\n');
    await initial.close();
    return EXIT_INVALID;
  }
  // Nothing but a test (or a person) moves a manual clock: idle timers, probes and drains wait for it.
  const clock: Clock = clockMode === 'manual' ? new ManualClock(0) : new SystemClock(timeScale as number);
  const logger = createLogger(level, clock);
  for (const w of prepared.warnings) logger.warn(w);
  if (
    instancePorts.length > 0 &&
    !result.snapshot.loadBalancers.some((lb) => lb.instancePublicIp !== undefined)
  )
    logger.warn(
      '--instance-ports: the configuration has no instance-level public IP; the ports serve nothing',
    );
  else if (instancePorts.length > 0 && plane.adapt === undefined)
    logger.warn(
      `--instance-ports is for the proxy plane: the ${plane.name} plane serves every port of an instance-level public IP`,
    );
  // A flow can move between instances only if backends see the client's own address.
  const adopt = bgp !== undefined && bgp.pool.adopt && settings.inboundSnat === undefined;
  if (bgp !== undefined && bgp.pool.adopt && !adopt)
    logger.warn(
      '--inbound-snat: each instance has its own SNAT address, so a flow cannot move to another instance; flows moved by a change of the pool are not adopted',
    );
  let app: SluiceApp<DataPlane>;
  try {
    app = await SluiceApp.start(prepared.snapshot, {
      ...settings,
      plane,
      logger,
      clock,
      timeScale: timeScale as number,
      udpFlowTimeoutMs: (udpSeconds as number) * 1000,
      snatHoldMs: (snatHoldSeconds as number) * 1000,
      budget,
      ...(adopt ? { pool: bgp.pool } : {}),
    });
  } catch (err) {
    // Listeners, the TUN device and host routing fail with a message a user can act on.
    await initial.close();
    if (err instanceof SluiceError) {
      process.stderr.write(`sluice: ${err.message} [${err.code}]\n`);
      return EXIT_INVALID;
    }
    throw err;
  }
  const api = await startApi(control, initial, app, logger);
  if (typeof api === 'string') {
    process.stderr.write(`sluice: ${api}\n`);
    await initial.close();
    await app.stop();
    return EXIT_INVALID;
  }
  let announcer: Announcer | undefined;
  let pool: PoolLink | undefined;
  if (bgp !== undefined) {
    try {
      announcer = await startAnnouncer(app, bgp, logger, settings.tun ?? 'sluice0');
    } catch (err) {
      process.stderr.write(`sluice: ${(err as Error).message} [SLUICE_HOST_BGP_DAEMON]\n`);
      await api?.close();
      await initial.close();
      await app.stop();
      return EXIT_INVALID;
    }
    if (adopt) {
      try {
        pool = await startPoolLink(app, announcer, bgp.pool, logger);
      } catch (err) {
        process.stderr.write(`sluice: ${(err as Error).message} [SLUICE_HOST_NETWORK]\n`);
        announcer.abort();
        await api?.close();
        await initial.close();
        await app.stop();
        return EXIT_INVALID;
      }
    }
  }
  logger.info(
    {
      api: api?.address ?? 'off',
      ...(announcer !== undefined ? { bgp: announcer.describe() } : {}),
      ...(control.etcd !== undefined ? { state: control.etcd.url } : { stateDir: control.stateDir }),
      // Where what is served came from: the CONFIG files, the stored state, or nothing yet.
      desiredState: initial.source,
      ...(initial.map.length > 0 ? { map: initial.map } : {}),
      listeners: app.plane.listening(),
      // manual: nothing expires, no probe interval passes, until the clock is moved through the API.
      clock: app.clockMode,
      timeScale,
      dataplane: plane.name,
      ...plane.readyFields(app.plane),
      // The shares of the open-files limit (a share left out is not bounded).
      budget: app.budget,
      loadBalancers: result.snapshot.loadBalancers.map((lb) => lb.name),
    },
    'ready',
  );
  const how = await stopOnSignal(logger, {
    stop: async () => {
      // The other instances first hear that this one leaves, so they adopt its flows from their
      // first packet; then it withdraws, and serves on until the routers have moved the traffic
      // away and its packets stop coming.
      pool?.leaving();
      await announcer?.stop();
      if (announcer !== undefined) await waitTrafficGone(app.plane, logger);
      pool?.close();
      await api?.close();
      await initial.close();
      await app.stop();
    },
    abort: () => {
      pool?.close();
      announcer?.abort();
      app.abort();
    },
  });
  logger.info({ forced: how === 'forced' }, 'stopped');
  // A forced stop leaves API connections and sockets to the exit rather than waiting for them.
  if (how === 'forced') process.exit(EXIT_OK);
  return EXIT_OK;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run a load balancer document: listeners on its frontends, flows to its backends')
    .argument(
      '[config...]',
      'ARM JSON: one load balancer, an array of resources, or {"resources": [...]}; several files are read as one document (- is standard input); given, it replaces the state stored in --state-dir (or --state), which is served when none is given',
    )
    .option('--map <OLD=NEW>', 'rewrite an address of the document (repeatable)', collect)
    .option('--time-scale <N>', 'divide every timer (idle timeouts, probes, drains) by N', '1')
    .option(
      '--clock <CLOCK>',
      "system: the load balancer's time runs by itself (sped up by --time-scale); manual: it stands still until moved by POST /sluice/v1/clock/advance or sluice clock advance",
      'system',
    )
    .option('--udp-flow-timeout <SECONDS>', 'how long a UDP flow lives without a datagram', '240')
    .option(
      '--hold-time <SECONDS>',
      'how long the sockets of a silently dropped flow are kept (proxy plane)',
      '900',
    )
    .option(
      '--snat-port-hold <SECONDS>',
      'packet plane: how long a freed SNAT port rests before another flow may take it',
      '60',
    )
    .option('--log-level <LEVEL>', LEVELS.join(', '), 'info')
    .option(
      '--strict',
      'refuse a configuration the data plane cannot serve whole (by default the proxy plane serves what it can and warns about the rest)',
    )
    .option(
      '--dataplane <PLANE>',
      dataPlaneNames()
        .map((n) => `${n}: ${dataPlaneModule(n)!.summary}`)
        .join('; '),
      'proxy',
    )
    .option(
      '--tcp-relay <RELAY>',
      `proxy plane: handles (libuv TCP handles, reused read buffers) or sockets (net.Socket); default ${PLANE_DEFAULTS.tcpRelay}`,
    )
    .option('--tun <NAME>', 'TUN device of the packet data plane', 'sluice0')
    .option(
      '--busy-poll <MICROSECONDS>',
      'packet plane: after each batch, go on reading the TUN device this long before sleeping (0: off)',
      String(PLANE_DEFAULTS.busyPollMicros),
    )
    .option('--inbound-snat <ADDR>', 'packet plane: full NAT, backends see clients from ADDR')
    .option(
      '--instance-ports <PORTS>',
      'proxy plane: the ports (22,443,8000-8010) an instance-level public IP serves; the packet plane serves every port',
    )
    .option(
      '--configure-host',
      'packet plane: set net.ipv4.ip_forward=1 and loose rp_filter on the TUN device if needed',
    )
    .option(
      '--api <ADDR:PORT|off>',
      `serve the HTTP API here (default ${DEFAULT_API}; port 0: any free port)`,
    )
    .option(
      '--api-token <TOKEN>',
      'bearer token the API requires (or SLUICE_API_TOKEN); needed off loopback; visible to other users in the process list, prefer --api-token-file',
    )
    .option(
      '--api-token-file <PATH>',
      "read the API's bearer token from the first line of PATH (or SLUICE_API_TOKEN_FILE)",
    )
    .option(
      '--api-allow-host <NAME>',
      'a host name (or address) requests may give in Host, besides the API address and localhost (repeatable)',
      collect,
    )
    .option(
      '--state-dir <DIR>',
      `where the desired state is kept across restarts (default ${DEFAULT_STATE_DIR})`,
    )
    .option(
      '--state <etcd://HOST:PORT/PREFIX>',
      'keep the desired state in etcd, shared with every instance given the same URL, instead of --state-dir',
    )
    .option(
      '--state-wait <SECONDS>',
      `with --state: how long a start waits for etcd before it gives up (default ${DEFAULT_STATE_WAIT_S}; 0: one try)`,
    )
    .option(
      '--max-tcp-flows <N>',
      'proxy plane: TCP flows at most, held blackholed ones included (2 descriptors each); default: what the open-files limit leaves',
    )
    .option(
      '--max-udp-flows <N>',
      'proxy plane: UDP flows at most (1 descriptor each); default: an eighth of the descriptors left for flows',
    )
    .option(
      '--max-udp-flows-per-client <N>',
      'proxy plane: UDP flows one client address may hold; default: an eighth of --max-udp-flows',
    )
    .option(
      '--max-api-connections <N>',
      'open API connections at most; default: the open-files limit / 32, from 4 to 256',
    )
    .option(
      '--max-event-streams <N>',
      'open GET /sluice/v1/events streams at most (they are API connections too); default: a quarter of --max-api-connections',
    )
    .option(
      '--bgp <ROUTER>',
      'packet plane: announce the frontends it can serve to this BGP router (ADDR or ADDR:PORT, repeatable), through BIRD 2 run by Sluice',
      collect,
    )
    .option('--bgp-as <ASN>', `this instance's AS number (default ${BGP_DEFAULTS.localAs})`)
    .option('--bgp-peer-as <ASN>', `the routers' AS number (default ${BGP_DEFAULTS.peerAs})`)
    .option('--bgp-router-id <ADDR>', 'BGP router ID (default: the source address towards the first router)')
    .option('--bgp-bfd <MS>', 'BFD with the routers at this interval, down after 3 missed (default 0: off)')
    .option('--bgp-hold-time <SECONDS>', `BGP hold time, at least 3 (default ${BGP_DEFAULTS.holdSeconds})`)
    .option(
      '--bgp-withdraw-wait <SECONDS>',
      `on stop, serve on this long after the routers dropped this instance (default ${BGP_DEFAULTS.withdrawWaitMs / 1000})`,
    )
    .option('--bgp-dir <DIR>', "BIRD's configuration and control socket (default STATE_DIR/bgp)")
    .option('--bgp-daemon <PATH>', `the BIRD 2 binary (default ${BGP_DEFAULTS.daemon})`)
    .option(
      '--pool-adopt <on|off>',
      'with --bgp: adopt the flows a change of the pool (an instance lost, added, restarted) moves to this instance (default on)',
    )
    .option(
      '--pool-port <PORT>',
      `with --bgp: the UDP port the instances of a pool talk to each other on, at their router IDs (default ${POOL_DEFAULTS.port})`,
    )
    .option(
      '--pool-grace <MS>',
      `with --bgp: how late a change of the pool may be learned after the router moved flows; a stray segment is answered with a RST (B6) only when still a stray this long after (default ${POOL_DEFAULTS.graceMs})`,
    )
    .option(
      '--pool-ask-wait <MS>',
      `with --bgp: how long an idle end of a flow that may have moved waits for the other instances to say whether one carries it (default ${POOL_DEFAULTS.askMs})`,
    )
    .option(
      '--pool-settle <SECONDS>',
      'with --bgp: how long after a change the router may still move flows (a resilient next-hop group: its unbalanced timer); the adoption window is the idle timeout plus this (default 0)',
    )
    .exitOverride((err) => {
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    })
    .action(async (config: string[], opts: RunCliOptions) => {
      process.exitCode = await runRun(config.length > 0 ? config : undefined, opts);
    });
}
