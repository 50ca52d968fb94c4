/**
 * Many idle connections through `sluice run`, all expiring at the same moment: memory per
 * flow, and how late the resets land (reset on) or how many flows are blackholed (reset off).
 *
 *   bash -c 'ulimit -n 20000; node dist/bench/proxy/idle-expiry.js [--connections N] [--idle-seconds S] [--no-reset]'
 *   npm run bench:idle -- --connections 9900
 *
 * Processes: this one (clients), a C echo backend and Sluice, each with its own descriptors:
 * a proxied flow holds two in Sluice, so the hard open-files limit of 20,000 allows ~9,900.
 * Traffic stays on loopback; every wait is bounded.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const CONNECTIONS = arg('--connections', 2000);
/** Real seconds the 4-minute idle timeout lasts: sets --time-scale. */
const IDLE_SECONDS = arg('--idle-seconds', 10);
const RESET = !process.argv.includes('--no-reset');
const FRONTEND = '127.0.0.24';
const BACKEND = '127.0.0.2';
const PORT = 17100;
const SCALE = 240 / IDLE_SECONDS;

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(ms: number, what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function config(): object {
  const base =
    '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/bench/providers/Microsoft.Network/loadBalancers/idle-lb';
  return {
    name: 'idle-lb',
    id: base,
    sku: { name: 'Standard' },
    properties: {
      frontendIPConfigurations: [{ name: 'fe', properties: { privateIPAddress: FRONTEND } }],
      backendAddressPools: [
        {
          name: 'pool',
          properties: { loadBalancerBackendAddresses: [{ name: 'b1', properties: { ipAddress: BACKEND } }] },
        },
      ],
      loadBalancingRules: [
        {
          name: 'idle',
          properties: {
            frontendIPConfiguration: { id: `${base}/frontendIPConfigurations/fe` },
            backendAddressPool: { id: `${base}/backendAddressPools/pool` },
            protocol: 'Tcp',
            frontendPort: PORT,
            backendPort: PORT,
            idleTimeoutInMinutes: 4,
            enableTcpReset: RESET,
          },
        },
      ],
    },
  };
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'sluice-idle-'));
  execFileSync('gcc', ['-O2', '-o', join(work, 'echo-server'), join(repo, 'bench/proxy/echo-server.c')]);
  const children: ChildProcess[] = [];
  const cleanup = (): void => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  };
  process.on('exit', cleanup);
  try {
    const echo = spawn(join(work, 'echo-server'), [BACKEND, String(PORT)], { stdio: 'ignore' });
    children.push(echo);
    const cfg = join(work, 'idle-lb.json');
    writeFileSync(cfg, JSON.stringify(config()));
    const sluice = spawn(
      process.execPath,
      [
        join(repo, 'dist/src/cli/main.js'),
        'run',
        cfg,
        '--time-scale',
        String(SCALE),
        '--log-level',
        'info',
        '--api',
        'off',
        // TCP only: every descriptor but the reserve goes to TCP flows (~9,900 at 20,000).
        '--max-udp-flows',
        '0',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(sluice);
    let ready = false;
    // Sluice's own view of each expiry: how long the flow had been idle when it ended (idleMs,
    // load-balancer time), so lateness is measured without the clients' event-loop delay.
    const idleAtExpiry: number[] = [];
    createInterface({ input: sluice.stdout! }).on('line', (l) => {
      if (l.includes('"msg":"ready"')) ready = true;
      else if (l.includes('"msg":"idle timeout')) {
        const idle = (JSON.parse(l) as { idleMs?: number }).idleMs;
        if (typeof idle === 'number') idleAtExpiry.push(idle);
      }
    });
    await until(10_000, 'sluice to be ready', () => ready);
    const before = rssKb(sluice.pid!);

    const sockets: Socket[] = [];
    const lastEcho = new Float64Array(CONNECTIONS);
    const failedAt = new Float64Array(CONNECTIONS);
    const codes = new Map<string, number>();
    let connected = 0;
    for (let i = 0; i < CONNECTIONS; i++) {
      const s = connect({ host: FRONTEND, port: PORT });
      s.setNoDelay(true);
      s.on('connect', () => connected++);
      s.on('data', () => (lastEcho[i] = performance.now()));
      s.on('error', (e: NodeJS.ErrnoException) => {
        failedAt[i] = performance.now();
        codes.set(e.code ?? e.message, (codes.get(e.code ?? e.message) ?? 0) + 1);
      });
      sockets.push(s);
      if (i % 200 === 199) await until(10_000, 'connections', () => connected >= i + 1 - 50);
    }
    await until(30_000, 'all connections', () => connected === CONNECTIONS);
    // One byte on every connection in one burst, so that every flow's idle timer starts together.
    for (const s of sockets) s.write('x');
    await until(30_000, 'every echo', () => lastEcho.every((t) => t > 0));
    const after = rssKb(sluice.pid!);
    const burst = Math.max(...lastEcho) - Math.min(...lastEcho);
    const timeoutMs = IDLE_SECONDS * 1000;

    let summary: string;
    if (RESET) {
      await until(timeoutMs * 3 + 30_000, 'every reset', () => failedAt.every((t) => t > 0));
      const late = Array.from(failedAt, (t, i) => t - lastEcho[i]! - timeoutMs).sort((a, b) => a - b);
      summary =
        `resets: ${[...codes].map(([c, n]) => `${c} x${n}`).join(', ')}; lateness after the timeout (ms): ` +
        `min ${late[0]!.toFixed(1)}, p50 ${percentile(late, 50).toFixed(1)}, p99 ${percentile(late, 99).toFixed(1)}, ` +
        `max ${late[late.length - 1]!.toFixed(1)}; all resets landed within ` +
        `${(Math.max(...failedAt) - Math.min(...failedAt)).toFixed(1)} ms of each other`;
    } else {
      await sleep(timeoutMs * 1.5);
      summary = `silent drop: ${failedAt.filter((t) => t > 0).length} of ${CONNECTIONS} clients saw an error (expected 0)`;
    }
    await until(5_000, "Sluice's log of every expiry", () => idleAtExpiry.length >= CONNECTIONS);
    const sluiceLate = idleAtExpiry.map((idle) => (idle - 4 * 60_000) / SCALE).sort((a, b) => a - b);
    const rows = [
      `connections: ${CONNECTIONS}; idle timeout 4 min at --time-scale ${SCALE} = ${IDLE_SECONDS} s; reset ${RESET ? 'on' : 'off'}`,
      `as Sluice saw it: ${sluiceLate.length} expiries, lateness after each flow's deadline (real ms): ` +
        `p50 ${percentile(sluiceLate, 50).toFixed(1)}, p99 ${percentile(sluiceLate, 99).toFixed(1)}, ` +
        `max ${sluiceLate[sluiceLate.length - 1]!.toFixed(1)}`,
      `Sluice RSS: ${before} -> ${after} KB, ${((after - before) / CONNECTIONS).toFixed(2)} KB per idle flow`,
      `activity burst spread: ${burst.toFixed(1)} ms`,
      summary,
    ];
    console.log(rows.join('\n'));
    for (const s of sockets) s.destroy();
  } finally {
    cleanup();
  }
}

await main();
