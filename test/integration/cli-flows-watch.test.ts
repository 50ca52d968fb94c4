import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lbDocument } from '../helpers/arm.js';
import { cliPath, repoRoot } from '../helpers/cli.js';
import { EchoBackend, freePort, tcpClient, waitUntil, within } from '../helpers/net.js';
import { startSluice } from '../helpers/process.js';

/** `sluice flows --watch` as a child process against a running `sluice run` with a flow open. */

/** The table's durations back in load-balancer milliseconds: 850ms, 4.2s, 3m05s, 1h02m. */
function parseDuration(text: string): number {
  let m = /^(\d+)ms$/.exec(text);
  if (m) return Number(m[1]);
  m = /^(\d+(?:\.\d+)?)s$/.exec(text);
  if (m) return Number(m[1]) * 1000;
  m = /^(\d+)m(\d\d)s$/.exec(text);
  if (m) return (Number(m[1]) * 60 + Number(m[2])) * 1000;
  m = /^(\d+)h(\d\d)m$/.exec(text);
  if (m) return (Number(m[1]) * 60 + Number(m[2])) * 60_000;
  throw new Error(`not a duration: ${text}`);
}

interface Frame {
  readonly header: string;
  readonly rows: string[][];
  readonly footer: string;
}

/** Splits the watch output into complete frames (a timestamp line, the table, the count). */
function framesOf(out: string): Frame[] {
  const frames: Frame[] = [];
  const lines = out.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^\d{4}-\d\d-\d\dT[\d:.]+Z {2}http:\/\//.test(lines[i]!)) continue;
    const end = lines.findIndex((l, j) => j > i && /^\d+ flows?$/.test(l));
    if (end < 0) break;
    frames.push({
      header: lines[i + 1]!,
      rows: lines.slice(i + 2, end).map((l) => l.split(/ {2,}/)),
      footer: lines[end]!,
    });
    i = end;
  }
  return frames;
}

test('sluice flows --watch redraws the table with the idle countdown running, and stops on SIGTERM', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-watch-'));
  const backend = new EchoBackend('b', '127.0.9.6');
  const bport = await freePort('127.0.9.6');
  await backend.listen(bport);
  const port = await freePort('127.0.9.5');
  const file = join(dir, 'lb.json');
  writeFileSync(
    file,
    JSON.stringify(
      lbDocument({
        frontend: '127.0.9.5',
        backends: ['127.0.9.6'],
        rules: [{ name: 'web', frontendPort: port, backendPort: bport, idleTimeoutInMinutes: 30 }],
      }),
    ),
  );
  // 30 minutes at --time-scale 60: 30 real seconds, far longer than the test; the countdown moves
  // 60 load-balancer seconds per real second, which the table shows.
  const run = startSluice([
    'run',
    file,
    '--api',
    '127.0.0.1:0',
    '--state-dir',
    join(dir, 'state'),
    '--time-scale',
    '60',
  ]);
  let c: ReturnType<typeof tcpClient> | undefined;
  let watch: ReturnType<typeof spawn> | undefined;
  try {
    const api = String((await run.waitFor((l) => l.msg === 'ready', 10_000)).api);
    c = tcpClient('127.0.9.5', port);
    assert.equal(await within(2000, 'greeting', c.greeting), 'b');
    watch = spawn(process.execPath, [cliPath, 'flows', '--watch', '--interval', '0.2', '--api', api], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    watch.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    watch.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = once(watch, 'exit');
    const frames = await waitUntil(
      8000,
      'four frames of sluice flows --watch',
      () => {
        const f = framesOf(out).filter((x) => x.rows.length === 1);
        return f.length >= 4 && f;
      },
      50,
    );
    assert.equal(err, '');
    for (const f of frames) {
      assert.match(f.header, /^ID\s+PROTO\s+LB\s+RULE\s+STATE\s+CLIENT\s+BACKEND\s+AGE\s+IDLE\s+LEFT/);
      assert.equal(f.footer, '1 flow');
      const row = f.rows[0]!;
      assert.deepEqual(row.slice(1, 5), ['Tcp', 'test-lb', 'web', 'ESTABLISHED']);
      assert.equal(row[6], `127.0.9.6:${bport}`);
    }
    const left = frames.map((f) => parseDuration(f.rows[0]![9]!));
    const idle = frames.map((f) => parseDuration(f.rows[0]![8]!));
    // The flow is quiet: from frame to frame time left only goes down and idle time only up.
    for (let i = 1; i < frames.length; i++) {
      assert.ok(left[i]! <= left[i - 1]!, `LEFT ${left.join(' > ')}`);
      assert.ok(idle[i]! >= idle[i - 1]!, `IDLE ${idle.join(' < ')}`);
    }
    assert.ok(left[0]! - left.at(-1)! >= 15_000, `the countdown ran: ${left.join(', ')}`);
    assert.ok(
      left.every((l) => l <= 30 * 60_000 && l > 25 * 60_000),
      `LEFT ${left.join(', ')}`,
    );

    assert.ok(watch.pid !== undefined);
    process.kill(watch.pid, 'SIGTERM');
    const [code] = await within(3000, 'sluice flows --watch to exit after SIGTERM', exited);
    assert.equal(code, 0);
  } finally {
    if (watch !== undefined && watch.exitCode === null && watch.signalCode === null) watch.kill('SIGKILL');
    c?.socket.destroy();
    await run.stop('SIGKILL');
    await backend.close();
  }
});
