import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SluiceApp } from '../../src/app.js';
import { planBudget, type BudgetPlan } from '../../src/core/budget.js';
import { compileLb, lbDocument } from '../helpers/arm.js';
import { EchoBackend, freePort, sleep, tcpEchoes, waitUntil } from '../helpers/net.js';
import { startSluice } from '../helpers/process.js';
import { metricValue, openDescriptors, scrape } from '../helpers/scrape.js';

/**
 * UDP flows hold one descriptor each: a flood of new UDP flows takes only the UDP share of the
 * open-files limit, and a single client address only its part of that, so TCP flows, probes and
 * the API go on working while it lasts.
 */

async function udpEcho(address: string): Promise<Socket> {
  const s = createSocket('udp4');
  s.on('message', (msg, peer) => s.send(msg, peer.port, peer.address));
  s.bind(0, address);
  await once(s, 'listening');
  return s;
}

async function udpPort(address: string): Promise<number> {
  const s = createSocket('udp4');
  s.bind(0, address);
  await once(s, 'listening');
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function udpClient(address: string): Promise<Socket> {
  const s = createSocket('udp4');
  s.on('error', () => {});
  s.bind(0, address);
  await once(s, 'listening');
  return s;
}

test('a UDP spray of 100,000 datagrams from 1,000 ports under ulimit -n 1024: TCP flows, the probe and /healthz keep working', async (t) => {
  const FRONTEND = '127.0.60.10';
  const BACKEND = '127.0.60.2';
  const backend = new EchoBackend('b', BACKEND);
  const tcpBackendPort = await freePort(BACKEND);
  await backend.listen(tcpBackendPort);
  const udpBackend = await udpEcho(BACKEND);
  const tcpPort = await freePort(FRONTEND);
  const udpFrontPort = await udpPort(FRONTEND);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-budget-udp-'));
  const file = join(dir, 'lb.json');
  writeFileSync(
    file,
    JSON.stringify(
      lbDocument({
        frontend: FRONTEND,
        backends: [BACKEND],
        probes: [{ name: 'alive', port: tcpBackendPort, intervalInSeconds: 5 }],
        rules: [
          {
            name: 'web',
            frontendPort: tcpPort,
            backendPort: tcpBackendPort,
            idleTimeoutInMinutes: 30,
            probe: 'alive',
          },
          {
            name: 'dns',
            protocol: 'Udp',
            frontendPort: udpFrontPort,
            backendPort: udpBackend.address().port,
            probe: 'alive',
          },
        ],
      }),
    ),
  );
  // A probe every half second; the UDP flow timeout (4 minutes) lasts 24 s, longer than the test.
  const run = startSluice(
    ['run', file, '--time-scale', '10', '--api', '127.0.60.1:0', '--state-dir', join(dir, 'state')],
    { openFilesLimit: 1024 },
  );
  const sockets: Socket[] = [];
  const controller = new AbortController();
  try {
    const ready = await run.waitFor((l) => l.msg === 'ready', 10_000);
    const api = String(ready.api);
    const budget = ready.budget as BudgetPlan;
    assert.deepEqual(budget, {
      openFiles: 1024,
      reserve: 64,
      tcpFlows: 406,
      udpFlows: 116,
      udpFlowsPerClient: 14,
      apiConnections: 32,
      eventStreams: 8,
    });
    const probeUp = { probe: 'alive', backend: BACKEND };
    await waitUntil(5000, 'the backend to be up', async () =>
      metricValue(await scrape(api), 'sluice_probe_up_ratio', probeUp) === 1 ? true : undefined,
    );
    // Every probe transition during the flood would show on the event stream.
    const events = await fetch(`http://${api}/sluice/v1/events?types=probe.down,probe.up`, {
      signal: controller.signal,
    });
    assert.equal(events.status, 200);
    let eventText = '';
    const reading = (async () => {
      const reader = events.body!.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        eventText += new TextDecoder().decode(value);
      }
    })().catch(() => {});

    // 10 client addresses x 100 ports x 100 datagrams, 100 ports at a time, within 20 s.
    const started = Date.now();
    let sent = 0;
    let answered = 0;
    let maxDescriptors = 0;
    const payload = Buffer.from('spray');
    const spray = (async () => {
      for (let batch = 0; batch < 10 && Date.now() - started < 20_000; batch++) {
        const address = `127.0.60.${100 + batch}`;
        const group = await Promise.all(Array.from({ length: 100 }, () => udpClient(address)));
        sockets.push(...group);
        for (const s of group) s.on('message', () => answered++);
        for (let round = 0; round < 100; round++) {
          for (const s of group) {
            s.send(payload, udpFrontPort, FRONTEND);
            sent++;
          }
          // Let the kernel buffers drain a little: the flood is of flows, not of bytes.
          if (round % 10 === 9) await sleep(2);
        }
        maxDescriptors = Math.max(maxDescriptors, openDescriptors(run.child.pid!));
        await sleep(50);
        for (const s of group) s.close();
        sockets.length = 0;
      }
    })();
    // Once the UDP share is surely full, the other shares are tried while the spray goes on.
    await waitUntil(10_000, 'the UDP share to fill', async () => {
      const m = await scrape(api);
      return metricValue(m, 'sluice_flow_refused_total', { reason: 'udp-flows' }) > 0 ? true : undefined;
    });
    const [echoed, healthz] = await Promise.all([
      tcpEchoes(FRONTEND, tcpPort, 100),
      fetch(`http://${api}/healthz`).then((r) => r.status),
    ]);
    await spray;
    const sprayMs = Date.now() - started;
    assert.equal(echoed, 100, 'every TCP connection during the flood was served');
    assert.equal(healthz, 200, '/healthz answers during the flood');
    assert.equal(sent, 100_000, `all datagrams sent (in ${sprayMs} ms)`);

    const m = await scrape(api);
    const perClient = metricValue(m, 'sluice_flow_refused_total', { reason: 'udp-per-client' });
    const whole = metricValue(m, 'sluice_flow_refused_total', { reason: 'udp-flows' });
    assert.ok(perClient > 1000, `refused for a client's part of the share: ${perClient}`);
    assert.ok(whole > 100, `refused for the whole UDP share: ${whole}`);
    assert.equal(
      metricValue(m, 'sluice_flow_active_flows', { protocol: 'Udp' }),
      116,
      'the UDP share is full and no more',
    );
    assert.ok(answered > 0, 'admitted UDP flows were answered');
    t.diagnostic(
      `${sent} datagrams in ${sprayMs} ms; refused: ${perClient} udp-per-client, ${whole} udp-flows; ` +
        `${answered} answers; at most ${maxDescriptors} descriptors open`,
    );
    assert.equal(metricValue(m, 'sluice_probe_up_ratio', probeUp), 1, 'the backend stayed up');
    assert.equal(metricValue(m, 'sluice_flow_refused_total', { reason: 'tcp-descriptors' }), 0);
    assert.ok(maxDescriptors < 1024 - 20, `descriptors stayed below the limit: ${maxDescriptors}`);
    // A fresh TCP flow after the flood, and the probe still answering in the events.
    assert.equal(await tcpEchoes(FRONTEND, tcpPort, 10), 10);
    assert.doesNotMatch(eventText, /probe\.down/, 'no probe went down');
    // Refusals are logged, at most once a second per cause.
    const lines = (reason: string): number => run.lines.filter((l) => l.reason === reason).length;
    assert.ok(lines('udp-per-client') >= 1 && lines('udp-flows') >= 1, 'both causes logged');
    const seconds = Math.ceil((Date.now() - started) / 1000) + 1;
    assert.ok(lines('udp-per-client') <= seconds, `per-client log lines: ${lines('udp-per-client')}`);
    assert.ok(lines('udp-flows') <= seconds, `UDP share log lines: ${lines('udp-flows')}`);
    const logged = run.lines.find((l) => l.reason === 'udp-per-client')!;
    assert.match(String(logged.msg), /--max-udp-flows-per-client/);
    assert.equal(typeof logged.refused, 'number');
    controller.abort();
    await reading;
  } finally {
    controller.abort();
    for (const s of sockets) s.close();
    await run.stop();
    await backend.close();
    udpBackend.close();
  }
});

test("one client address cannot take more than its part of the UDP share; another client's flow gets through", async () => {
  const FRONTEND = '127.0.61.10';
  const BACKEND = '127.0.61.2';
  const udpBackend = await udpEcho(BACKEND);
  const frontPort = await udpPort(FRONTEND);
  const r = planBudget(
    { openFiles: 1024, api: false, flowsHoldDescriptors: true },
    { udpFlows: 20, udpFlowsPerClient: 5 },
  );
  assert.ok(r.ok);
  // UDP flows last 2 s here (120 s at --time-scale 60).
  const app = await SluiceApp.start(
    compileLb({
      frontend: FRONTEND,
      backends: [BACKEND],
      rules: [
        { name: 'dns', protocol: 'Udp', frontendPort: frontPort, backendPort: udpBackend.address().port },
      ],
    }),
    { logLevel: 'silent', budget: r.plan, timeScale: 60, udpFlowTimeoutMs: 120_000 },
  );
  const greedy = await Promise.all(Array.from({ length: 10 }, () => udpClient('127.0.61.100')));
  const other = await udpClient('127.0.61.101');
  const answers = (sockets: Socket[], ms: number): Promise<number> =>
    new Promise((resolve) => {
      let n = 0;
      for (const s of sockets) {
        s.once('message', () => n++);
        s.send('hello', frontPort, FRONTEND);
      }
      setTimeout(() => resolve(n), ms);
    });
  try {
    assert.equal(await answers(greedy, 500), 5, 'five flows for the greedy client, no more');
    assert.equal(await answers([other], 500), 1, "the other client's flow gets through");
    const m = await app.metrics.registry.metrics();
    assert.equal(metricValue(m, 'sluice_flow_refused_total', { reason: 'udp-per-client' }), 5);
    assert.equal(metricValue(m, 'sluice_flow_refused_total', { reason: 'udp-flows' }), 0);
    assert.equal(app.engine.flows().length, 6);
    assert.equal(app.plane.stats.udpRefusedShare, 5);
    // Once its flows have timed out, the greedy client's part is given back.
    await waitUntil(5000, 'the UDP flows to time out', () => app.engine.flows().length === 0);
    await sleep(50);
    assert.equal(await answers(greedy.slice(5), 500), 5, 'its part again, from other ports');
  } finally {
    for (const s of [...greedy, other]) s.close();
    await app.stop();
    udpBackend.close();
  }
});
