/**
 * How ECMP on a Linux router moves flows when an instance goes or comes: hash-threshold (what
 * FRR installs) against resilient next-hop groups, measured with the kernel's own route lookups
 * over 10,000 TCP flows (src/lab/ecmp-moves.ts). With `--lab`, also on the lab's real FRR router
 * while an instance is killed, in both ECMP modes.
 *
 *   npm run build && node dist/bench/pool/ecmp-moves.js [--flows N] [--lab] [--json]
 *
 * Linux, root. Prints a Markdown table (or JSON).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  EcmpBench,
  compareMoves,
  movedFraction,
  pickAll,
  tuples,
  type GroupType,
} from '../../src/lab/ecmp-moves.js';

const args = process.argv.slice(2);
const flag = (name: string): boolean => args.includes(name);
const value = (name: string, fallback: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const FLOWS = value('--flows', 10_000);
const HASH: GroupType = { kind: 'hash-threshold' };
const RES = (idle: number): GroupType => ({
  kind: 'resilient',
  buckets: 256,
  idleTimerS: idle,
  unbalancedTimerS: 0,
});

interface Row {
  readonly what: string;
  readonly mode: string;
  readonly result: string;
  readonly values: number[];
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
const range = (v: number[]): string => {
  const min = Math.min(...v);
  const max = Math.max(...v);
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  return min === max ? pct(min) : `${pct(min)}-${pct(max)} (mean ${pct(mean)})`;
};

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function synthetic(rows: Row[]): Promise<void> {
  const bench = new EcmpBench(`slbench${process.pid}`, 8);
  const flows = tuples(FLOWS, '198.18.1');
  try {
    bench.build();
    for (const n of [2, 3, 4, 5, 8]) {
      const all = Array.from({ length: n }, (_, i) => i + 1);
      for (const [mode, type] of [
        ['hash-threshold', HASH],
        ['resilient, 256 buckets, idle timer 0', RES(0)],
        ['resilient, 256 buckets, idle timer 10 s', RES(10)],
      ] as const) {
        const moved: number[] = [];
        for (const gone of all) {
          const id = bench.route(all, type);
          const before = bench.picks(flows);
          bench.change(
            id,
            all.filter((k) => k !== gone),
            type,
          );
          const m = compareMoves(before, bench.picks(flows));
          moved.push(m.survivorMoved / m.survivorFlows);
          bench.reset();
        }
        rows.push({
          what: `${n} -> ${n - 1} next hops (each one removed in turn)`,
          mode,
          result: `survivors' flows moved: ${range(moved)}`,
          values: moved,
        });
      }
      if (n === 2) continue;
      const fewer = all.slice(0, -1);
      // Adding next hop n to n-1: which share of all flows moves (ideal: 1/n, all onto the new one).
      const adds: [string, GroupType, number][] = [
        ['hash-threshold', HASH, 0],
        ['resilient, idle timer 0', RES(0), 0],
        ['resilient, idle timer 2 s, right after', RES(2), 0],
        ['resilient, idle timer 2 s, 3 s later', RES(2), 3000],
      ];
      for (const [mode, type, waitMs] of adds) {
        const id = bench.route(fewer, type);
        const before = bench.picks(flows);
        bench.change(id, all, type);
        if (waitMs > 0) await sleep(waitMs);
        const after = bench.picks(flows);
        const toNew = after.filter((a) => a === `198.18.${10 + n}.2`).length / FLOWS;
        rows.push({
          what: `${n - 1} -> ${n} next hops (one added)`,
          mode,
          result: `flows moved: ${pct(movedFraction(before, after))}, onto the new one: ${pct(toNew)} (ideal ${pct(1 / n)})`,
          values: [movedFraction(before, after), toNew],
        });
        bench.reset();
      }
    }
  } finally {
    bench.destroy();
  }
}

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

interface LabJson {
  router: { namespace: string; resilientTable?: number };
  instances: { name: string; pid: number; address: string }[];
}

/** On the lab's FRR router: kill -9 one of 3 instances, compare the picks of the same flows. */
async function lab(rows: Row[]): Promise<void> {
  const flows = tuples(FLOWS, '198.18.1');
  for (const mode of ['hash-threshold', 'resilient'] as const) {
    const moved: number[] = [];
    const gone: number[] = [];
    for (const victim of [0, 1, 2]) {
      const name = `bm${process.pid % 100000}`;
      const out = execFileSync(
        process.execPath,
        [
          CLI,
          'lab',
          'up',
          '--instances',
          '3',
          '--backends',
          '1',
          '--no-etcd',
          '--json',
          '--name',
          name,
          '--ecmp',
          mode,
        ],
        { encoding: 'utf8', timeout: 120_000 },
      );
      const s = JSON.parse(out) as LabJson;
      try {
        const ns = s.router.namespace;
        const before = pickAll(ns, '198.18.100.10', 80, 'client', flows);
        const v = s.instances[victim]!;
        const t0 = Date.now();
        process.kill(v.pid, 'SIGKILL');
        // Until the router's picks no longer name it.
        let after = before;
        while (Date.now() - t0 < 10_000) {
          after = pickAll(ns, '198.18.100.10', 80, 'client', flows.slice(0, 200));
          if (!after.includes(v.address)) break;
          await sleep(20);
        }
        gone.push(Date.now() - t0);
        await sleep(300);
        after = pickAll(ns, '198.18.100.10', 80, 'client', flows);
        const m = compareMoves(before, after);
        moved.push(m.survivorMoved / m.survivorFlows);
      } finally {
        execFileSync(process.execPath, [CLI, 'lab', 'down', '--name', name], {
          stdio: 'ignore',
          timeout: 60_000,
        });
      }
    }
    rows.push({
      what: 'lab, FRR router, kill -9 one of 3 instances (each in turn)',
      mode,
      result: `survivors' flows moved: ${range(moved)}; its flows left the router's picks after ${gone.join(', ')} ms`,
      values: moved,
    });
  }
}

const rows: Row[] = [];
await synthetic(rows);
if (flag('--lab')) await lab(rows);
if (flag('--json')) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
else {
  process.stdout.write(
    `${FLOWS} TCP flows, kernel ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()}\n\n`,
  );
  process.stdout.write('| change | ECMP | result |\n|---|---|---|\n');
  for (const r of rows) process.stdout.write(`| ${r.what} | ${r.mode} | ${r.result} |\n`);
}
