import type { Command } from 'commander';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { SluiceApp, logOptions } from '../../app.js';
import type { RuntimeSnapshot } from '../../core/snapshot.js';
import { DemoBackend } from '../../demo/backends.js';
import { SluiceError } from '../../core/errors.js';
import { dataPlaneModule } from '../../dataplane/registry.js';
import { loadInitialState, planControl, refuseUnsupported, startApi } from '../control-setup.js';
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE } from '../options.js';
import { prettyDestination } from '../pretty-log.js';
import { stopOnSignal } from '../shutdown.js';
import { SystemClock } from '../../time/system-clock.js';

/** `sluice demo`: the quickstart load balancer with demo backends, ready to poke at. */

const QUICKSTART = fileURLToPath(new URL('../../../../examples/quickstart.json', import.meta.url));

interface DemoPlan {
  readonly backends: { name: string; address: string; tcpPorts: number[]; udpPorts: number[] }[];
}

/** The backend servers a snapshot needs: every member address, on every backend port it is sent to. */
export function demoPlan(snapshot: RuntimeSnapshot): DemoPlan {
  const byAddress = new Map<string, { name: string; tcp: Set<number>; udp: Set<number> }>();
  const at = (address: string): { tcp: Set<number>; udp: Set<number> } => {
    let e = byAddress.get(address);
    if (!e)
      byAddress.set(address, (e = { name: `backend${byAddress.size + 1}`, tcp: new Set(), udp: new Set() }));
    return e;
  };
  // Backends take their members' names, so the demo's answers match the configuration.
  for (const lb of snapshot.loadBalancers) {
    for (const pool of lb.pools) for (const m of pool.members) if (!byAddress.has(m.address)) at(m.address);
    for (const pool of lb.pools) for (const m of pool.members) byAddress.get(m.address)!.name = m.name;
  }
  for (const lb of snapshot.loadBalancers) {
    for (const r of lb.loadBalancingRules) {
      for (const m of r.pool.members) {
        for (const p of r.protocols) (p === 'Tcp' ? at(m.address).tcp : at(m.address).udp).add(r.backendPort);
      }
      if (r.probe && r.probe.protocol !== 'Https')
        for (const m of r.pool.members) at(m.address).tcp.add(r.probe.port);
    }
    for (const r of lb.inboundNatRules) {
      for (const map of r.mappings) {
        for (const p of r.protocols)
          (p === 'Tcp' ? at(map.member.address).tcp : at(map.member.address).udp).add(map.backendPort);
      }
    }
  }
  return {
    backends: [...byAddress].map(([address, e]) => ({
      name: e.name,
      address,
      tcpPorts: [...e.tcp].sort((a, b) => a - b),
      udpPorts: [...e.udp].sort((a, b) => a - b),
    })),
  };
}

function minutes(ms: number): string {
  const m = ms / 60_000;
  return `${m} minute${m === 1 ? '' : 's'}`;
}

function scaled(ms: number, scale: number): string {
  const s = ms / scale / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}

/** `page`: where the API serves the live page, when it serves one. */
export function demoGuide(
  snapshot: RuntimeSnapshot,
  plan: DemoPlan,
  scale: number,
  udpMs: number,
  page?: string,
): string {
  const out: string[] = [];
  const names = new Map(plan.backends.map((b) => [b.address, b.name]));
  out.push(
    `Sluice demo: every timer runs ${scale}x faster (--time-scale ${scale}): one minute of the configuration lasts ${scaled(60_000, scale)}.`,
    `Backends: ${plan.backends.map((b) => `${b.name} on ${b.address}`).join(', ')}.`,
    ...(page === undefined
      ? []
      : ['', `Live view: ${page} (every flow's idle countdown, backends, events, in your browser)`]),
    '',
    'Try, in another terminal:',
  );
  for (const lb of snapshot.loadBalancers) {
    for (const r of lb.loadBalancingRules) {
      const fe = `${r.frontend.address} ${r.frontendPort}`;
      const t = r.idleTimeout.ms;
      if (r.protocols.includes('Tcp')) {
        out.push(`  curl http://${r.frontend.address}:${r.frontendPort}/`);
        out.push(`      rule '${r.name}': HTTP answered by one backend; repeat it to see the others.`);
        out.push(`  nc ${fe}`);
        out.push(
          r.enableTcpReset
            ? `      type a line and it comes back from a backend. Then stay quiet for ${scaled(t, scale)} (${minutes(t)}): ` +
                `Sluice resets both sides; nc exits, and the backend logs ECONNRESET.`
            : `      type a line and it comes back. Stay quiet for ${scaled(t, scale)} (${minutes(t)}): the flow is dropped ` +
                `silently; nc stays open, but your next line is never answered (no reset on this rule).`,
        );
      }
      if (r.protocols.includes('Udp')) {
        out.push(`  nc -u ${fe}`);
        out.push(
          `      rule '${r.name}' (UDP): no TCP idle timeout; a quiet UDP flow is forgotten after ${scaled(udpMs, scale)} ` +
            `(${minutes(udpMs)}) and the next datagram starts a new one.`,
        );
      }
    }
    for (const r of lb.inboundNatRules) {
      for (const m of r.mappings) {
        out.push(`  nc ${r.frontend.address} ${m.frontendPort}`);
        out.push(
          `      inbound NAT rule '${r.name}': always ${names.get(m.member.address) ?? m.member.address}.`,
        );
      }
    }
  }
  out.push('', 'The log below shows every idle timeout as it happens. Ctrl-C stops the demo.', '');
  return out.join('\n');
}

interface DemoCliOptions {
  timeScale?: string;
  config?: string;
  api?: string;
}

export async function runDemo(opts: DemoCliOptions): Promise<number> {
  const scale = Number(opts.timeScale ?? '60');
  if (!(scale > 0)) {
    process.stderr.write(`--time-scale expects a number > 0, got '${opts.timeScale}'\n`);
    return EXIT_USAGE;
  }
  const file = opts.config ?? QUICKSTART;
  // The demo keeps no state: what its API changes is gone when it stops. No token: loopback only.
  const stateDir = mkdtempSync(join(tmpdir(), 'sluice-demo-'));
  try {
    return await demo(file, scale, opts.api, stateDir);
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}

async function demo(
  file: string,
  scale: number,
  apiAddress: string | undefined,
  stateDir: string,
): Promise<number> {
  const control = planControl({ ...(apiAddress !== undefined ? { api: apiAddress } : {}), stateDir }, {});
  if (typeof control === 'string') {
    process.stderr.write(`sluice demo: ${control}\n`);
    return EXIT_USAGE;
  }
  // The demo runs anywhere, without privileges: the proxy plane.
  const plane = dataPlaneModule('proxy')!;
  const initial = await loadInitialState(file, control, refuseUnsupported(plane.unsupported));
  const { result, exit } = initial;
  if (exit !== EXIT_OK || !result.snapshot) return exit;
  const snapshot = result.snapshot;
  const clock = new SystemClock(scale);
  const logger = pino({ level: 'info', base: {}, ...logOptions(clock) }, prettyDestination(process.stdout));
  const plan = demoPlan(snapshot);
  const backends = plan.backends.map(
    (b) =>
      new DemoBackend({
        ...b,
        onEvent: (e) => {
          if (e.type === 'closed' && e.error) {
            logger.info(
              { peer: e.peer, error: e.error },
              `${e.backend} (${b.address}:${e.port}): connection ended by ${e.error}`,
            );
          }
        },
      }),
  );
  let app: SluiceApp<ReturnType<typeof plane.create>> | undefined;
  let api: Awaited<ReturnType<typeof startApi>>;
  try {
    for (const b of backends) await b.start();
    const udpFlowTimeoutMs = 240_000;
    app = await SluiceApp.start(snapshot, {
      plane,
      logger,
      clock,
      timeScale: scale,
      udpFlowTimeoutMs,
      holdMs: 15 * 60_000,
    });
    api = await startApi(control, initial, app, logger);
    if (typeof api === 'string') {
      process.stderr.write(`sluice demo: ${api}\n`);
      await app.stop();
      for (const b of backends) await b.stop();
      return EXIT_INVALID;
    }
    const page = api === undefined ? undefined : `http://${api.address}/`;
    process.stdout.write(demoGuide(snapshot, plan, scale, udpFlowTimeoutMs, page));
    logger.info({ listeners: app.plane.listening().length, api: api?.address ?? 'off' }, 'ready');
  } catch (err) {
    await app?.stop();
    for (const b of backends) await b.stop();
    // The demo's own addresses are fixed: taken, they most likely are another demo's.
    const inUse =
      (err as { errno?: unknown }).errno === 'EADDRINUSE' ||
      (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
    const hint = inUse
      ? '\nsluice demo: another sluice demo seems to be running (its addresses are taken); stop it with Ctrl-C, or try --config with other addresses\n'
      : '\n';
    if (err instanceof SluiceError) {
      process.stderr.write(`sluice demo: ${err.message} [${err.code}]${hint}`);
      return EXIT_INVALID;
    }
    // A demo backend that cannot listen (its address is taken).
    if ((err as NodeJS.ErrnoException).code !== undefined) {
      process.stderr.write(`sluice demo: ${(err as Error).message}${hint}`);
      return EXIT_INVALID;
    }
    throw err;
  }
  const running = app;
  const served = api;
  const how = await stopOnSignal(logger, {
    stop: async () => {
      await served?.close();
      await running.stop();
      for (const b of backends) await b.stop();
    },
    abort: () => running.abort(),
  });
  logger.info({ forced: how === 'forced' }, 'stopped');
  if (how === 'forced') {
    rmSync(stateDir, { recursive: true, force: true });
    process.exit(EXIT_OK);
  }
  return EXIT_OK;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the quickstart load balancer with its own demo backends on 127.0.0.2 and 127.0.0.3')
    .option('--time-scale <N>', 'divide every timer by N', '60')
    .option('--config <FILE>', 'another document to demonstrate (its members get demo backends)')
    .option(
      '--api <ADDR:PORT|off>',
      'serve the API and the live page here, on loopback (default 127.0.0.1:9180; off: none)',
    )
    .exitOverride((err) => {
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    })
    .action(async (opts: DemoCliOptions) => {
      process.exitCode = await runDemo(opts);
    });
}
