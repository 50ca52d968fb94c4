import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { SluiceApp } from '../../src/app.js';
import { ManualClock } from '../../src/core/clock.js';
import { serveAppApi } from '../helpers/app-api.js';
import { compileLb } from '../helpers/arm.js';
import { browserSkip, launchBrowser, openPage } from '../helpers/browser.js';
import { EchoBackend, freePort, sleep, tcpClient, waitUntil, within } from '../helpers/net.js';

/**
 * The live page over the whole app on a manual clock (in-process, real sockets on
 * 127.0.85.0/24): the countdown stands still until the clock moves, shows what is left after a
 * move, is full again once data passes, and the flow is marked reset when the clock reaches
 * its idle timeout.
 */

const FRONTEND = '127.0.85.20';
const BACKEND = '127.0.85.21';
const CLIENT = '127.0.85.100';
const API_HOST = '127.0.85.1';

function row(page: Page, id: number) {
  return page.locator(`#flows .flow-row[data-id="${id}"]:not([hidden])`);
}

test(
  'live page on a manual clock: the countdown moves with the clock, fills when data passes, and the flow is marked reset',
  { skip: browserSkip() },
  async () => {
    const backendPort = await freePort(BACKEND);
    const backend = new EchoBackend('b1', BACKEND);
    await backend.listen(backendPort);
    const port = await freePort(FRONTEND);
    const clock = new ManualClock(0);
    const app = await SluiceApp.start(
      compileLb({
        frontend: FRONTEND,
        backends: [BACKEND],
        rules: [{ name: 'reset', frontendPort: port, backendPort, enableTcpReset: true }],
      }),
      { clock, logLevel: 'silent' },
    );
    const { api, base } = await serveAppApi(app, API_HOST);
    let browser: Browser | undefined;
    try {
      browser = await launchBrowser();
      const w = await openPage(browser);
      const page = w.page;
      await page.goto(`${base}/`);
      await page.locator('#clock .manual').waitFor({ timeout: 5000 });
      assert.match(
        await page.locator('#clock').innerText(),
        /manual clock at 0:00:00\.0: it moves only when advanced/,
      );

      const c = tcpClient(FRONTEND, port, CLIENT);
      await within(2000, 'greeting', c.greeting);
      const id = app.engine.flows()[0]!.id;
      await row(page, id).waitFor({ timeout: 3000 });
      assert.match(await row(page, id).innerText(), /4m left of 4m/);
      // Real time passes; the balancer's does not, and neither does the countdown.
      await sleep(600);
      assert.match(await row(page, id).innerText(), /4m left of 4m/);

      clock.advance(180_000);
      await waitUntil(5000, 'the countdown after the move', async () =>
        /1m left of 4m/.test(await row(page, id).innerText()),
      );
      const bar = row(page, id).locator('.bar > i');
      const share = async (): Promise<number> =>
        bar.evaluate(
          (el) => el.getBoundingClientRect().width / el.parentElement!.getBoundingClientRect().width,
        );
      assert.ok(Math.abs((await share()) - 0.25) < 0.02, `a quarter left: ${await share()}`);
      await w.shot('07-manual-clock');

      // Data passes: the flow's timer starts again, and its bar is full at the next poll.
      c.socket.write('ping\n');
      await waitUntil(2000, 'the echo', () => Buffer.concat(c.data).toString().includes('ping'));
      await waitUntil(5000, 'the bar full again', async () =>
        /4m left of 4m/.test(await row(page, id).innerText()),
      );
      assert.ok((await share()) > 0.98);

      clock.advance(240_000);
      assert.equal((await within(3000, 'the idle reset', c.error)).code, 'ECONNRESET');
      await waitUntil(3000, 'the row marked reset', async () =>
        /RESET/.test(await row(page, id).innerText()),
      );
      await waitUntil(5000, 'its tombstone', async () =>
        /tombstone 15m · late packets: RST/.test(await row(page, id).innerText()),
      );
      assert.match(await page.locator('#clock').innerText(), /manual clock at 0:07:00\.0/);
      await w.shot('08-manual-clock-reset');
      assert.deepEqual(w.errors, []);
    } finally {
      await browser?.close();
      await api.close();
      await app.stop();
      await backend.close();
    }
  },
);
