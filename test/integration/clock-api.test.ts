import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SluiceClient, type SluiceEvent } from '../../src/client/index.js';
import { lbDocument, type TestLb } from '../helpers/arm.js';
import { sluiceWith } from '../helpers/cli.js';
import { httpRequest } from '../helpers/http.js';
import {
  EchoBackend,
  freePort,
  sleep,
  tcpClient,
  waitUntil,
  within,
  type TestClient,
} from '../helpers/net.js';
import { startSluice, type RunningSluice } from '../helpers/process.js';

/**
 * `sluice run --clock manual` driven over HTTP, as a test suite in any language drives it: the
 * balancer's time stands still until POST /sluice/v1/clock/advance moves it, and the answer
 * comes once the flows that ended are reset or blackholed, so the client can assert at once.
 * Real sockets on 127.0.80.0/24; no test waits for a timeout to pass.
 */

const API = '127.0.80.1';
const FRONTEND = '127.0.80.10';
const BACKEND_1 = '127.0.80.2';
const BACKEND_2 = '127.0.80.3';
const dir = mkdtempSync(join(tmpdir(), 'sluice-clock-api-'));
let files = 0;

/** The environment without a token of the test's own. */
function env(): NodeJS.ProcessEnv {
  const e = { ...process.env };
  delete e['SLUICE_API_TOKEN'];
  delete e['SLUICE_API_TOKEN_FILE'];
  return e;
}

function write(name: string, content: string): string {
  const path = join(dir, `${files++}-${name}`);
  writeFileSync(path, content);
  return path;
}

interface Served {
  readonly run: RunningSluice;
  readonly api: string;
  readonly ready: Record<string, unknown>;
}

async function serve(lb: TestLb, extra: readonly string[] = []): Promise<Served> {
  const config = write('lb.json', JSON.stringify(lbDocument(lb)));
  const run = startSluice(
    ['run', config, '--api', `${API}:0`, '--state-dir', join(dir, `state-${files++}`), ...extra],
    { env: env() },
  );
  const ready = await run.waitFor((l) => l.msg === 'ready', 10_000);
  return { run, api: String(ready['api']), ready };
}

async function call(
  api: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown>; at: number }> {
  const res = await fetch(`http://${api}${path}`, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  const at = performance.now();
  return { status: res.status, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>), at };
}

function errorCode(r: { json: Record<string, unknown> }): string {
  return String((r.json['error'] as Record<string, unknown> | undefined)?.['code']);
}

interface Ended {
  flow: number;
  rule: string;
  action: string;
  state: string;
  cause: string;
  noReset?: string;
  idleMs: number;
  at: number;
}

/** When the client's socket failed, in the test's performance.now() time, and with what. */
function failure(c: TestClient): Promise<{ code: string; at: number }> {
  return c.error.then((e) => ({ code: e.code ?? e.message, at: performance.now() }));
}

/** Resolves after `ms` real milliseconds with what the client got meanwhile: for "no answer". */
async function quietFor(c: TestClient, ms: number): Promise<{ bytes: number; events: string[] }> {
  const before = Buffer.concat(c.data).length;
  await sleep(ms);
  return { bytes: Buffer.concat(c.data).length - before, events: [...c.events] };
}

test('manual clock: time stands still; advance resets the reset rule within 100 ms of its answer and blackholes the drop rule', async () => {
  const backend = new EchoBackend('b1', BACKEND_1);
  const backendPort = await freePort(BACKEND_1);
  await backend.listen(backendPort);
  const resetPort = await freePort(FRONTEND);
  const dropPort = await freePort(FRONTEND);
  const s = await serve(
    {
      frontend: FRONTEND,
      backends: [BACKEND_1],
      rules: [
        { name: 'reset', frontendPort: resetPort, backendPort, enableTcpReset: true },
        { name: 'drop', frontendPort: dropPort, backendPort },
      ],
    },
    ['--clock', 'manual'],
  );
  const clients: TestClient[] = [];
  try {
    assert.equal(s.ready['clock'], 'manual', 'the ready line says the clock is manual');
    const reset = tcpClient(FRONTEND, resetPort, '127.0.80.20');
    const drop = tcpClient(FRONTEND, dropPort, '127.0.80.21');
    clients.push(reset, drop);
    assert.equal(await within(2000, 'greeting (reset rule)', reset.greeting), 'b1');
    assert.equal(await within(2000, 'greeting (drop rule)', drop.greeting), 'b1');
    const resetFailed = failure(reset);

    const listed = await call(s.api, 'GET', '/sluice/v1/flows');
    assert.deepEqual(listed.json['clock'], { mode: 'manual', now: 0 });
    const flows = listed.json['flows'] as { id: number; rule: string; msLeft: number }[];
    const idOf = (rule: string): number => flows.find((f) => f.rule === rule)!.id;
    assert.equal(flows.length, 2);

    // Real time passes; the balancer's does not.
    await sleep(300);
    const still = await call(s.api, 'GET', '/sluice/v1/flows');
    assert.deepEqual(
      (still.json['flows'] as { msLeft: number }[]).map((f) => f.msLeft),
      [240_000, 240_000],
    );
    assert.deepEqual((await call(s.api, 'GET', '/sluice/v1/clock')).json['now'], 0);

    const almost = await call(s.api, 'POST', '/sluice/v1/clock/advance', { by: '3m59.999s' });
    assert.equal(almost.status, 200, JSON.stringify(almost.json));
    assert.equal(almost.json['now'], 239_999);
    assert.deepEqual(almost.json['ended'], []);
    assert.deepEqual(reset.events, [], 'nothing happens a millisecond before the timeout');

    const due = await call(s.api, 'POST', '/sluice/v1/clock/advance', { ms: 1 });
    assert.equal(due.status, 200, JSON.stringify(due.json));
    assert.equal(due.json['mode'], 'manual');
    assert.equal(due.json['now'], 240_000);
    assert.equal(due.json['advancedMs'], 1);
    const ended = due.json['ended'] as Ended[];
    const byRule = new Map(ended.map((e) => [e.rule, e]));
    assert.equal(ended.length, 2);
    assert.deepEqual(
      { ...byRule.get('reset'), client: undefined, backend: undefined, frontend: undefined },
      {
        flow: idOf('reset'),
        protocol: 'Tcp',
        lb: 'test-lb',
        rule: 'reset',
        state: 'ESTABLISHED',
        action: 'reset',
        cause: 'idle-timeout',
        client: undefined,
        frontend: undefined,
        backend: undefined,
        idleMs: 240_000,
        at: 240_000,
      },
    );
    assert.equal(byRule.get('drop')?.flow, idOf('drop'));
    assert.equal(byRule.get('drop')?.action, 'drop');
    assert.equal(byRule.get('drop')?.noReset, 'reset-disabled');

    // The reset: the client's socket fails within 100 ms of the answer (usually before it).
    const failed = await within(2000, 'the client reset', resetFailed);
    assert.equal(failed.code, 'ECONNRESET');
    assert.ok(failed.at - due.at <= 100, `reset ${Math.round(failed.at - due.at)} ms after the answer`);

    // The drop: the next write gets no answer, and no FIN or RST either.
    const receivedBefore = backend.bytesReceived();
    drop.socket.write('anyone there?\n');
    const heard = await quietFor(drop, 300);
    assert.equal(heard.bytes, 0, 'no echo through a dropped flow');
    assert.deepEqual(heard.events, [], 'neither a FIN nor a RST');
    assert.equal(backend.bytesReceived(), receivedBefore, 'the write never reached the backend');

    // Logs: the ids the API listed, whole milliseconds, wall-clock time beside the balancer's.
    const line = await s.run.waitFor((l) => l['flow'] === idOf('reset') && l['action'] === 'reset', 2000);
    assert.match(String(line['time']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(line['at'], 240_000);
    assert.equal(line['idleMs'], 240_000);
    assert.equal(line['state'], 'ESTABLISHED');
    assert.match(String(line['msg']), /^idle timeout: TCP reset sent to client and backend$/);
    const dropLine = await s.run.waitFor((l) => l['flow'] === idOf('drop'), 2000);
    assert.equal(dropLine['noReset'], 'reset-disabled');
    assert.match(
      String(dropLine['msg']),
      /^idle timeout: flow dropped silently \(its rule has enableTcpReset off, B3\)$/,
    );

    assert.equal((await call(s.api, 'GET', '/sluice/v1/flows')).json['total'], 0);
    const table = await sluiceWith({ env: env() }, 'flows', '--api', s.api);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout.split('\n')[0]!, /^manual clock at 4m00s: stands still until moved/);
  } finally {
    for (const c of clients) c.socket.destroy();
    await s.run.stop('SIGKILL');
    await backend.close();
  }
});

test('bad input to the clock is a 400 with its code and changes nothing; the process keeps serving', async () => {
  const s = await serve(
    {
      frontend: FRONTEND,
      backends: [BACKEND_1],
      rules: [{ name: 'web', frontendPort: 18090, backendPort: 18091 }],
    },
    ['--clock', 'manual'],
  );
  try {
    const cases: [unknown, string, RegExp][] = [
      [
        { by: '4 minutes' },
        'SLUICE_CLOCK_INVALID_DURATION',
        /by: '4 minutes' is not a duration; give 250ms, 90s, 4m/,
      ],
      [{ by: '240000' }, 'SLUICE_CLOCK_INVALID_DURATION', /has no unit/],
      [{ ms: -5 }, 'SLUICE_CLOCK_INVALID_DURATION', /ms must be a whole number of milliseconds from 0/],
      [{ ms: 1e12 }, 'SLUICE_CLOCK_INVALID_DURATION', /from 0 to 2147483647/],
      [{ ms: 'soon' }, 'SLUICE_CLOCK_INVALID_DURATION', /ms must be/],
      [{ ms: 1, by: '1s' }, 'SLUICE_CLOCK_INVALID_DURATION', /either ms or by/],
      [{}, 'SLUICE_CLOCK_INVALID_DURATION', /give ms .* or by/],
      [[], 'SLUICE_API_BAD_REQUEST', /JSON object/],
      ['{"by": "4m"', 'SLUICE_API_BAD_REQUEST', /./],
    ];
    for (const [body, code, message] of cases) {
      const r = await call(s.api, 'POST', '/sluice/v1/clock/advance', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(errorCode(r), code, JSON.stringify(body));
      assert.match(String((r.json['error'] as Record<string, unknown>)['message']), message);
    }
    const text = await call(s.api, 'POST', '/sluice/v1/clock/advance', 'by=4m', {
      'content-type': 'text/plain',
    });
    assert.equal(text.status, 415);
    const none = await call(s.api, 'POST', '/sluice/v1/clock/advance');
    assert.equal(none.status, 400);
    const wrongMethod = await call(s.api, 'PUT', '/sluice/v1/clock/advance', { by: '4m' });
    assert.equal(wrongMethod.status, 405);
    assert.equal((await call(s.api, 'GET', '/sluice/v1/clock')).json['now'], 0, 'the clock did not move');
    assert.equal((await call(s.api, 'GET', '/healthz')).status, 200);
    assert.equal(s.run.child.exitCode, null, 'still running');

    const cli = await sluiceWith({ env: env() }, 'clock', 'advance', '4 minutes', '--api', s.api);
    assert.equal(cli.code, 2);
    assert.match(cli.stderr, /\[SLUICE_CLOCK_INVALID_DURATION\]/);
  } finally {
    await s.run.stop('SIGKILL');
  }
});

/** A backend that greets and never closes its side: a FIN from the client leaves the flow half-closed. */
async function halfOpenBackend(address: string, port: number): Promise<{ close(): Promise<void> }> {
  const sockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    socket.on('data', (d) => socket.write(d));
    socket.write('half\n');
  });
  server.listen(port, address);
  await once(server, 'listening');
  return {
    close: async () => {
      for (const x of sockets) x.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

test('expire one flow; sluice clock advance names the state of each flow and why a closing one got no RST (B5); events carry wall-clock time', async () => {
  const backendPort = await freePort(BACKEND_1);
  const backend = await halfOpenBackend(BACKEND_1, backendPort);
  const port = await freePort(FRONTEND);
  const s = await serve(
    {
      frontend: FRONTEND,
      backends: [BACKEND_1],
      rules: [{ name: 'reset', frontendPort: port, backendPort, enableTcpReset: true }],
    },
    ['--clock', 'manual'],
  );
  const client = new SluiceClient({ base: s.api });
  const clients: TestClient[] = [];
  const stream = new AbortController();
  try {
    const events: SluiceEvent[] = [];
    void (async () => {
      for await (const e of client.events({ signal: stream.signal, types: ['flow.expired'] })) events.push(e);
    })().catch(() => {});
    const [one, two, closing] = ['127.0.80.30', '127.0.80.31', '127.0.80.32'].map((a) => {
      const c = tcpClient(FRONTEND, port, a);
      clients.push(c);
      return c;
    }) as [TestClient, TestClient, TestClient];
    for (const c of clients) assert.equal(await within(2000, 'greeting', c.greeting), 'half');
    const idOf = async (local: string): Promise<number> =>
      (await client.flows()).flows.find((f) => f.client.startsWith(`${local}:`))!.id;

    // Expire one flow: it is reset at once, the others are untouched.
    const oneId = await idOf('127.0.80.30');
    const oneFailed = failure(one);
    const expired = await call(s.api, 'POST', `/sluice/v1/flows/${oneId}/expire`);
    assert.equal(expired.status, 200, JSON.stringify(expired.json));
    const [entry] = expired.json['ended'] as Ended[];
    assert.equal(entry?.flow, oneId);
    assert.equal(entry?.action, 'reset');
    assert.equal(entry?.cause, 'request');
    assert.equal(expired.json['now'], 0, 'expiring a flow does not move the clock');
    const failed = await within(2000, 'the expired flow reset', oneFailed);
    assert.equal(failed.code, 'ECONNRESET');
    assert.ok(
      failed.at - expired.at <= 100,
      `reset ${Math.round(failed.at - expired.at)} ms after the answer`,
    );
    two.socket.write('still here\n');
    await waitUntil(2000, 'the other flow echoes', () =>
      Buffer.concat(two.data).toString().includes('still here'),
    );
    const again = await call(s.api, 'POST', `/sluice/v1/flows/${oneId}/expire`);
    assert.equal(again.status, 404);
    assert.equal(errorCode(again), 'SLUICE_API_FLOW_NOT_FOUND');

    // A flow whose client sent its FIN is closing: at idle it is dropped silently (B5).
    const closingId = await idOf('127.0.80.32');
    closing.socket.end();
    await waitUntil(2000, 'the half-close seen', async () => {
      const f = (await client.flows()).flows.find((x) => x.id === closingId);
      return f !== undefined && f.state !== 'ESTABLISHED';
    });
    const twoId = await idOf('127.0.80.31');
    const cli = await sluiceWith({ env: env() }, 'clock', 'advance', '4m', '--api', s.api);
    assert.equal(cli.code, 0, cli.stderr);
    const out = cli.stdout.split('\n');
    assert.match(out[0]!, /^moved by 4m00s: manual clock at 4m00s \(240000 ms\)/);
    assert.equal(out[1], '2 flows ended:');
    const twoLine = out.find((l) => l.includes(`flow ${twoId} `));
    const closingLine = out.find((l) => l.includes(`flow ${closingId} `));
    assert.match(
      twoLine ?? '',
      /ESTABLISHED, idle 4m00s, idle-timeout: reset \(RST to client and backend\)$/,
    );
    assert.match(
      closingLine ?? '',
      /(FIN_WAIT|CLOSE_WAIT|LAST_ACK), idle 4m00s, idle-timeout: dropped silently: it was \1, and only an ESTABLISHED flow is reset at idle/,
    );

    await waitUntil(2000, 'two flow.expired events', () => events.length >= 3);
    for (const e of events) {
      assert.match(e.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(Number.isInteger(e.at));
    }
    const closingEvent = events.find((e) => e.type === 'flow.expired' && e.flow.id === closingId);
    assert.ok(closingEvent?.type === 'flow.expired');
    assert.equal(closingEvent.at, 240_000);
    assert.equal(closingEvent.action, 'drop');
    assert.equal(closingEvent.noReset, 'not-established');
    assert.notEqual(closingEvent.flow.state, 'ESTABLISHED');
    const oneEvent = events.find((e) => e.type === 'flow.expired' && e.flow.id === oneId);
    assert.ok(oneEvent?.type === 'flow.expired');
    assert.equal(oneEvent.at, 0);
    assert.equal(oneEvent.flow.state, 'ESTABLISHED');
  } finally {
    stream.abort();
    for (const c of clients) c.socket.destroy();
    await s.run.stop('SIGKILL');
    await backend.close();
  }
});

/** Opens `n` connections and returns which backend greeted each; closes them unless kept. */
async function greetings(port: number, n: number, first: number, keep?: TestClient[]): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    const c = tcpClient(FRONTEND, port, `127.0.80.${first + i}`);
    names.push(await within(2000, 'greeting', c.greeting));
    if (keep !== undefined) keep.push(c);
    else c.socket.destroy();
  }
  return names;
}

test('a member marked down by hand takes no new flows, keeps its established ones, and is back once cleared', async () => {
  const port = await freePort(FRONTEND);
  const backendPort = await freePort(BACKEND_1);
  const b1 = new EchoBackend('b1', BACKEND_1);
  const b2 = new EchoBackend('b2', BACKEND_2);
  await b1.listen(backendPort);
  await b2.listen(backendPort);
  const s = await serve(
    {
      frontend: FRONTEND,
      backends: [BACKEND_1, BACKEND_2],
      probes: [{ name: 'tcp', port: backendPort, intervalInSeconds: 5 }],
      rules: [{ name: 'web', frontendPort: port, backendPort, probe: 'tcp' }],
    },
    ['--clock', 'manual'],
  );
  const kept: TestClient[] = [];
  try {
    // The first probe of each member runs at start, without the clock moving.
    await waitUntil(5000, 'both members up', async () => {
      const h = await call(s.api, 'GET', '/sluice/v1/health');
      const members = h.json['members'] as { state: string }[];
      return members.length === 2 && members.every((m) => m.state === 'up');
    });
    const before = await greetings(port, 16, 100, kept);
    assert.ok(before.includes('b1') && before.includes('b2'), before.join(' '));

    const down = await call(s.api, 'PUT', '/sluice/v1/health/test-lb/pool/member1', { probe: 'down' });
    assert.equal(down.status, 200, JSON.stringify(down.json));
    const [entry] = down.json['members'] as Record<string, unknown>[];
    assert.equal(entry?.['member'], 'member1');
    assert.equal(entry?.['state'], 'down');
    assert.equal(entry?.['override'], 'down');
    const during = await greetings(port, 16, 120);
    assert.deepEqual([...new Set(during)], ['b2'], 'new flows go to the other member only');

    // Standard SKU: the marked member's established flows go on.
    const onB1 = kept[before.indexOf('b1')]!;
    onB1.socket.write('still served\n');
    await waitUntil(2000, 'an old flow on b1 echoes', () =>
      Buffer.concat(onB1.data).toString().includes('still served'),
    );

    // Moving the clock over many probe intervals does not undo it: the probes' answers count not.
    const moved = await call(s.api, 'POST', '/sluice/v1/clock/advance', { by: '1m' });
    assert.equal(moved.status, 200);
    await sleep(200);
    assert.deepEqual([...new Set(await greetings(port, 8, 140))], ['b2']);

    const cleared = await call(s.api, 'DELETE', `/sluice/v1/health/TEST-LB/Pool/${BACKEND_1}`);
    assert.equal(cleared.status, 200, JSON.stringify(cleared.json));
    assert.equal((cleared.json['members'] as Record<string, unknown>[])[0]?.['state'], 'up');
    assert.equal((cleared.json['members'] as Record<string, unknown>[])[0]?.['override'], undefined);
    const after = await greetings(port, 16, 160);
    assert.ok(after.includes('b1'), `b1 takes new flows again: ${after.join(' ')}`);

    const unknown = await call(s.api, 'PUT', '/sluice/v1/health/test-lb/pool/member9', { probe: 'down' });
    assert.equal(unknown.status, 404);
    assert.equal(errorCode(unknown), 'SLUICE_API_MEMBER_NOT_FOUND');
    assert.match(
      String((unknown.json['error'] as Record<string, unknown>)['message']),
      /member1 127\.0\.80\.2/,
    );
    const bad = await call(s.api, 'PUT', '/sluice/v1/health/test-lb/pool/member1', { probe: 'maybe' });
    assert.equal(bad.status, 400);
  } finally {
    for (const c of kept) c.socket.destroy();
    await s.run.stop('SIGKILL');
    await b1.close();
    await b2.close();
  }
});

test('on the system clock an advance is a 409; the guard applies to the new routes; sluice clock shows the clock', async () => {
  const token = 'clock-Tok3n';
  const tokenFile = write('token', `${token}\n`);
  const s = await serve(
    {
      frontend: FRONTEND,
      backends: [BACKEND_1],
      rules: [{ name: 'web', frontendPort: 18092, backendPort: 18093 }],
    },
    ['--api-token-file', tokenFile, '--time-scale', '60'],
  );
  const auth = { authorization: `Bearer ${token}` };
  try {
    assert.equal(s.ready['clock'], 'system');
    for (const [method, path, body] of [
      ['GET', '/sluice/v1/clock', undefined],
      ['POST', '/sluice/v1/clock/advance', { by: '4m' }],
      ['POST', '/sluice/v1/flows/1/expire', undefined],
      ['GET', '/sluice/v1/health', undefined],
      ['PUT', '/sluice/v1/health/test-lb/pool/member1', { probe: 'down' }],
      ['DELETE', '/sluice/v1/health/test-lb/pool/member1', undefined],
    ] as const) {
      const r = await call(s.api, method, path, body);
      assert.equal(r.status, 401, `${method} ${path} without the token`);
      const [host, port] = s.api.split(':') as [string, string];
      const foreign = await httpRequest({
        host,
        port: Number(port),
        method,
        path,
        headers: { ...auth, host: 'evil.example', ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      assert.equal(foreign.status, 421, `${method} ${path} for a foreign Host`);
    }
    const clock = await call(s.api, 'GET', '/sluice/v1/clock', undefined, auth);
    assert.equal(clock.json['mode'], 'system');
    assert.equal(clock.json['timeScale'], 60);
    const advance = await call(s.api, 'POST', '/sluice/v1/clock/advance', { by: '4m' }, auth);
    assert.equal(advance.status, 409);
    assert.equal(errorCode(advance), 'SLUICE_CLOCK_NOT_MANUAL');
    // The system clock moves by itself, 60 times faster than real time.
    await sleep(100);
    const later = await call(s.api, 'GET', '/sluice/v1/clock', undefined, auth);
    assert.ok(Number(later.json['now']) > Number(clock.json['now']) + 3000, JSON.stringify(later.json));

    const shown = await sluiceWith({ env: env() }, 'clock', '--api', s.api, '--token-file', tokenFile);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^system clock at \S+ \(\d+ ms\), time scale 60: it moves by itself\n$/);
    const refused = await sluiceWith(
      { env: env() },
      'clock',
      'advance',
      '4m',
      '--api',
      s.api,
      '--token-file',
      tokenFile,
    );
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /\[SLUICE_CLOCK_NOT_MANUAL\]/);
    const noToken = await sluiceWith({ env: env() }, 'clock', '--api', s.api);
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /\[SLUICE_API_UNAUTHORIZED\]/);
    const table = await sluiceWith({ env: env() }, 'flows', '--api', s.api, '--token-file', tokenFile);
    assert.match(
      table.stdout.split('\n')[0]!,
      /^system clock at \S+, time scale 60 \(1s of real time is 1m00s\)$/,
    );
  } finally {
    await s.run.stop('SIGKILL');
  }
});

test('--clock takes system or manual, and manual with a --time-scale is a usage error', async () => {
  const config = write('lb.json', JSON.stringify(lbDocument({ frontend: FRONTEND, backends: [BACKEND_1] })));
  const bogus = await sluiceWith({ env: env() }, 'run', config, '--clock', 'sundial', '--api', 'off');
  assert.equal(bogus.code, 2);
  assert.match(bogus.stderr, /--clock expects system or manual, got 'sundial'/);
  const both = await sluiceWith(
    { env: env() },
    'run',
    config,
    '--clock',
    'manual',
    '--time-scale',
    '60',
    '--api',
    'off',
  );
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--time-scale speeds up the system clock; with --clock manual/);
});
