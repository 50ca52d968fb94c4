import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { lbDocument } from '../helpers/arm.js';
import { browserSkip, launchBrowser, openPage, screenshotFolder } from '../helpers/browser.js';
import { httpRequest } from '../helpers/http.js';
import { EchoBackend, freePort, sleep, tcpClient, waitUntil, within } from '../helpers/net.js';
import { startSluice, type RunningSluice } from '../helpers/process.js';

/**
 * The live page of a real `sluice run` (proxy plane, loopback sockets, 127.0.85.0/24), at
 * --time-scale 240 so that a 4-minute idle timeout passes in one second: in headless Chromium
 * it loads with no console error, shows a flow with its countdown, marks it reset on a reset
 * rule and dropped on a drop rule, shows a backend whose probe went down, and with a token it
 * gives nothing before sign-in.
 */

const FRONTEND = '127.0.85.10';
const B1 = '127.0.85.2';
const B2 = '127.0.85.3';
const CLIENT = '127.0.85.100';
const API_HOST = '127.0.85.1';
const SKIP = browserSkip();

interface Setup {
  readonly run: RunningSluice;
  readonly api: string;
  readonly ports: { readonly reset: number; readonly drop: number };
  readonly backends: EchoBackend[];
  readonly probes: Server[];
  close(): Promise<void>;
}

function listen(address: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer((c) => c.destroy());
    s.once('error', reject);
    s.listen(port, address, () => resolve(s));
  });
}

/** `sluice run` with a reset rule and a drop rule over two echo backends probed on their own port. */
async function setup(extra: string[] = []): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ui-'));
  const backendPort = await freePort(B1);
  const probePort = await freePort(B1);
  const ports = { reset: await freePort(FRONTEND), drop: 0 };
  ports.drop = await freePort(FRONTEND);
  const backends = [new EchoBackend('member1', B1), new EchoBackend('member2', B2)];
  for (const b of backends) await b.listen(backendPort);
  const probes = [await listen(B1, probePort), await listen(B2, probePort)];
  const file = join(dir, 'lb.json');
  writeFileSync(
    file,
    JSON.stringify(
      lbDocument({
        frontend: FRONTEND,
        backends: [B1, B2],
        probes: [{ name: 'probe', port: probePort }],
        rules: [
          { name: 'web-reset', frontendPort: ports.reset, backendPort, enableTcpReset: true, probe: 'probe' },
          { name: 'web-drop', frontendPort: ports.drop, backendPort, probe: 'probe' },
        ],
      }),
    ),
  );
  const run = startSluice([
    'run',
    file,
    '--time-scale',
    '240',
    '--api',
    `${API_HOST}:0`,
    '--state-dir',
    join(dir, 'state'),
    ...extra,
  ]);
  const ready = await run.waitFor((l) => l.msg === 'ready', 10_000);
  return {
    run,
    api: `http://${String(ready['api'])}`,
    ports,
    backends,
    probes,
    close: async () => {
      assert.equal(await run.stop('SIGINT'), 0);
      for (const b of backends) await b.close();
      for (const p of probes) await new Promise((r) => p.close(r));
    },
  };
}

/** The id the API gives the flow of `client`'s connection. */
async function flowIdOf(api: string, client: ReturnType<typeof tcpClient>, headers = {}): Promise<number> {
  const u = new URL(api);
  const local = `${CLIENT}:${client.socket.localPort}`;
  return waitUntil(3000, `the flow of ${local}`, async () => {
    const a = await httpRequest({
      host: u.hostname,
      port: Number(u.port),
      method: 'GET',
      path: '/sluice/v1/flows',
      headers,
    });
    const flows = (JSON.parse(a.text) as { flows: { id: number; client: string }[] }).flows;
    return flows.find((f) => f.client === local)?.id;
  });
}

/** The text of one row of the flow list, once it shows. */
async function rowText(page: Page, id: number): Promise<string> {
  return page.locator(`#flows .flow-row[data-id="${id}"]:not([hidden])`).innerText();
}

async function barShare(page: Page, id: number): Promise<number> {
  return page
    .locator(`#flows .flow-row[data-id="${id}"]:not([hidden]) .bar > i`)
    .evaluate((el) => el.getBoundingClientRect().width / el.parentElement!.getBoundingClientRect().width);
}

test(
  'live page: a flow with its countdown, reset on the reset rule, dropped on the drop rule, a probe down on its backend, no console error',
  { skip: SKIP },
  async () => {
    console.log(`# screenshots in ${screenshotFolder()}`);
    const s = await setup();
    let browser: Browser | undefined;
    try {
      // Both members are up once their probe answered.
      await waitUntil(5000, 'members up', () =>
        s.run.lines.filter((l) => /is up/.test(String(l.msg))).length >= 2 ? true : undefined,
      );
      browser = await launchBrowser();
      const w = await openPage(browser);
      const page = w.page;
      const answer = await page.goto(`${s.api}/`);
      assert.equal(answer?.status(), 200);
      await page.locator('#link.up').waitFor({ timeout: 5000 });
      await page.locator('#rules tr[data-rule="web-reset"]').waitFor({ timeout: 5000 });
      const rules = await page.locator('#rules').innerText();
      assert.match(rules, /web-reset[\s\S]*4 min[\s\S]*by the rule[\s\S]*RESET/);
      assert.match(rules, /web-drop[\s\S]*DROP/);
      assert.match(await page.locator('#clock').innerText(), /time scale ×240/);
      assert.match(await page.locator('#backends').innerText(), /member1[\s\S]*up[\s\S]*member2[\s\S]*up/);

      // A flow on the reset rule, kept busy: it shows with its countdown.
      const reset = tcpClient(FRONTEND, s.ports.reset, CLIENT);
      await within(2000, 'greeting', reset.greeting);
      const resetId = await flowIdOf(s.api, reset);
      const busy = setInterval(() => reset.socket.write('.'), 150);
      try {
        await page.locator(`#flows .flow-row[data-id="${resetId}"]`).waitFor({ timeout: 3000 });
        assert.match(await rowText(page, resetId), /web-reset[\s\S]*ESTABLISHED[\s\S]*left of 4m/);
        await w.shot('01-flow-countdown');
      } finally {
        clearInterval(busy);
      }
      // Quiet now: the bar counts down (a poll may move it back up once, to the last write it
      // did not know of yet), then the idle timeout resets both ends.
      const shares: number[] = [];
      for (let i = 0; i < 5 && !(shares.length >= 2 && shares.at(-1)! < shares.at(-2)!); i++) {
        shares.push(await barShare(page, resetId).catch(() => 0));
        await sleep(120);
      }
      assert.ok(shares.at(-1)! < shares.at(-2)!, `the bar counts down: ${shares.join(', ')}`);
      assert.equal((await within(3000, 'the idle reset', reset.error)).code, 'ECONNRESET');
      await waitUntil(3000, 'the row marked reset', async () => /RESET/.test(await rowText(page, resetId)));
      await waitUntil(3000, 'its tombstone', async () =>
        /tombstone .* late packets: RST/.test(await rowText(page, resetId)),
      );
      await w.shot('02-reset');
      const events = await page.locator('#events').innerText();
      assert.match(events, /flow\.created[\s\S]*web-reset/);
      assert.match(events, new RegExp(`flow\\.expired\\s+#${resetId} web-reset: idle .*, TCP reset sent`));
      assert.match(events, /\d\d:\d\d:\d\d\.\d{3}/, 'events carry their wall-clock time');

      // A flow on the drop rule: dropped silently, the client is told nothing.
      const drop = tcpClient(FRONTEND, s.ports.drop, CLIENT);
      await within(2000, 'greeting', drop.greeting);
      const dropId = await flowIdOf(s.api, drop);
      await page.locator(`#flows .flow-row[data-id="${dropId}"]`).waitFor({ timeout: 3000 });
      await waitUntil(4000, 'the row marked dropped', async () =>
        /DROPPED/.test(await rowText(page, dropId)),
      );
      await waitUntil(3000, 'its tombstone', async () =>
        /tombstone .* late packets: dropped/.test(await rowText(page, dropId)),
      );
      assert.deepEqual(drop.events, [], 'a silent drop sends nothing to the client');
      await w.shot('03-dropped');
      drop.socket.destroy();

      // member2's probe port closes: its probe goes down, and the page says so.
      await new Promise((r) => s.probes[1]!.close(r));
      const probeCell = page.locator('#backends tr[data-member="member2"] [data-probe="probe"]');
      await waitUntil(5000, 'member2 down on the page', async () => (await probeCell.innerText()) === 'down');
      assert.match(await page.locator('#backends tr[data-member="member2"]').innerText(), /no new flows/);
      assert.equal(
        await page.locator('#backends tr[data-member="member1"] [data-probe="probe"]').innerText(),
        'up',
      );
      assert.match(await page.locator('#events').innerText(), /probe\.down\s+member2 127\.0\.85\.3/);
      await w.shot('04-probe-down');
      assert.deepEqual(w.errors, [], 'no console error');
    } finally {
      await browser?.close();
      await s.close();
    }
  },
);

test(
  'live page with a token: the page, its files and its data answer 401 without it; signed in with it, the page works',
  { skip: SKIP },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-ui-token-'));
    const token = 'ui-Tok3n-for-the-page';
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${token}\n`);
    const s = await setup(['--api-token-file', tokenFile]);
    let browser: Browser | undefined;
    try {
      const u = new URL(s.api);
      const get = (path: string, headers: Record<string, string> = {}) =>
        httpRequest({
          host: u.hostname,
          port: Number(u.port),
          method: 'GET',
          path,
          headers,
          headersOnly: path.endsWith('/events'),
        });
      for (const path of [
        '/',
        '/ui',
        '/ui/app.js',
        '/ui/app.css',
        '/sluice/v1/overview',
        '/sluice/v1/flows',
        '/sluice/v1/events',
      ]) {
        const a = await get(path);
        assert.equal(a.status, 401, path);
        assert.equal(JSON.parse(a.text).error.code, 'SLUICE_API_UNAUTHORIZED', path);
      }
      // A browser asking for the page gets the sign-in form, and nothing of the balancer.
      const form = await get('/', { accept: 'text/html' });
      assert.equal(form.status, 401);
      assert.match(form.text, /API token/);
      assert.doesNotMatch(form.text, /web-reset|127\.0\.85|app\.js/);
      const wrongCookie = await get('/sluice/v1/overview', { cookie: `sluice_session_${u.port}=guess` });
      assert.equal(wrongCookie.status, 401);

      browser = await launchBrowser();
      const w = await openPage(browser);
      const page = w.page;
      const first = await page.goto(`${s.api}/`);
      assert.equal(first?.status(), 401);
      await page.locator('#token').waitFor({ timeout: 5000 });
      assert.equal(await page.locator('#rules').count(), 0, 'no live view before sign-in');
      await page.fill('#token', 'not-the-token');
      await page.click('button[type=submit]');
      await page.locator('#problem', { hasText: 'That is not the token.' }).waitFor({ timeout: 5000 });
      await w.shot('05-sign-in');

      w.errors.length = 0;
      await page.fill('#token', token);
      await Promise.all([page.waitForEvent('load'), page.click('button[type=submit]')]);
      await page.locator('#rules tr[data-rule="web-reset"]').waitFor({ timeout: 5000 });
      await page.locator('#link.up').waitFor({ timeout: 5000 });
      assert.doesNotMatch(page.url(), /Tok3n/, 'the token is in no URL');
      const cookies = await page.context().cookies();
      assert.equal(cookies.length, 1);
      assert.equal(cookies[0]!.name, `sluice_session_${u.port}`);
      assert.equal(cookies[0]!.httpOnly, true);
      assert.equal(cookies[0]!.sameSite, 'Strict');
      assert.doesNotMatch(cookies[0]!.value, /Tok3n/);
      const client = tcpClient(FRONTEND, s.ports.reset, CLIENT);
      await within(2000, 'greeting', client.greeting);
      const id = await flowIdOf(s.api, client, { authorization: `Bearer ${token}` });
      await page.locator(`#flows .flow-row[data-id="${id}"]`).waitFor({ timeout: 3000 });
      assert.equal(await page.locator('#sign-out').isVisible(), true);
      await w.shot('06-signed-in');
      assert.deepEqual(w.errors, [], 'no console error once signed in');

      // The cookie reads what the page reads, and changes nothing.
      const cookie = `${cookies[0]!.name}=${cookies[0]!.value}`;
      assert.equal((await get('/sluice/v1/overview', { cookie })).status, 200);
      const put = await httpRequest({
        host: u.hostname,
        port: Number(u.port),
        method: 'DELETE',
        path: '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/test/providers/Microsoft.Network/loadBalancers/test-lb?api-version=2024-05-01',
        headers: { cookie },
      });
      assert.equal(put.status, 401, 'a cookie does not delete');
      assert.equal((await get('/metrics', { cookie })).status, 401, 'nor read what the page does not');
      const again = await httpRequest({
        host: u.hostname,
        port: Number(u.port),
        method: 'POST',
        path: '/ui/session',
        headers: { cookie },
      });
      assert.equal(again.status, 401, 'nor make another session');
      // Signing out ends the session at once.
      await Promise.all([page.waitForEvent('load'), page.click('#sign-out')]);
      await page.locator('#token').waitFor({ timeout: 5000 });
      assert.equal((await get('/sluice/v1/overview', { cookie })).status, 401);
      client.socket.destroy();
    } finally {
      await browser?.close();
      await s.close();
    }
  },
);
