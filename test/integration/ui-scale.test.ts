import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import type { Browser } from 'playwright-core';
import { validateDocument } from '../../src/config/index.js';
import { EventHub } from '../../src/control/events.js';
import { staticLive } from '../../src/control/overview.js';
import { buildApi } from '../../src/control/server.js';
import { ResourceStore } from '../../src/control/store.js';
import type { FlowInfo } from '../../src/core/events.js';
import { noPlaneRuntime } from '../helpers/api.js';
import { compileLb } from '../helpers/arm.js';
import { browserSkip, launchBrowser, openPage } from '../helpers/browser.js';
import { sleep, waitUntil } from '../helpers/net.js';

/**
 * 10,000 live flows do not freeze the page: the API lists them all (from a runtime that makes
 * them up, on 127.0.85.0/24), the page keeps only the rows in view in the document, its frames
 * keep coming while it polls, and scrolling shows the flows further down.
 */

const FLOWS = 10_000;

test(
  'live page: 10,000 flows in a virtualised list, frames keep coming',
  { skip: browserSkip() },
  async () => {
    const snapshot = compileLb({
      frontend: '127.0.85.30',
      backends: ['127.0.85.31', '127.0.85.32'],
      rules: [{ name: 'web', frontendPort: 8080, backendPort: 80, enableTcpReset: true }],
    });
    const rule = snapshot.loadBalancers[0]!.loadBalancingRules[0]!;
    const started = performance.now();
    const now = (): number => (performance.now() - started) * 60;
    const flows = (): FlowInfo[] => {
      const t = now();
      return Array.from({ length: FLOWS }, (_, i) => {
        const member = rule.pool.members[i % 2]!;
        const lastSeenAt = t - (i % 240) * 1000;
        return {
          id: i,
          protocol: 'Tcp',
          state: 'ESTABLISHED',
          client: { address: '127.0.85.100', port: 10_000 + i },
          frontend: { address: '127.0.85.30', port: 8080 },
          backend: { address: member.address, port: 80 },
          memberId: member.id,
          ruleId: rule.id,
          ruleName: rule.name,
          ruleRemoved: false,
          createdAt: lastSeenAt - 5000,
          lastSeenAt,
          ageMs: t - lastSeenAt + 5000,
          idleMs: t - lastSeenAt,
          msLeft: Math.max(0, lastSeenAt + 240_000 - t),
          timeoutMs: 240_000,
          bytesToBackend: i,
          bytesToClient: 2 * i,
          packetsToBackend: 1,
          packetsToClient: 1,
        };
      });
    };
    const store = new ResourceStore({
      compile: (doc) => validateDocument(doc, { outsideReferences: 'error' }),
      apply: async () => {},
    });
    const hub = new EventHub();
    const live = staticLive(
      () => snapshot,
      () => 0,
    );
    const api = await buildApi({
      store,
      registry: new Registry(),
      runtime: {
        ...noPlaneRuntime(hub),
        flows,
        labelsOf: () => ({ lb: 'test-lb', rule: 'web' }),
        timeScale: 60,
        live: { ...live, clock: () => ({ mode: 'system', now: now() }) },
      },
    });
    await api.listen({ host: '127.0.85.1', port: 0 });
    const base = `http://127.0.85.1:${(api.server.address() as { port: number }).port}`;
    let browser: Browser | undefined;
    try {
      browser = await launchBrowser();
      const w = await openPage(browser);
      const page = w.page;
      await page.goto(`${base}/`);
      await waitUntil(
        15_000,
        'the count of 10,000 flows',
        async () => /10,000 live/.test(await page.locator('#flow-count').innerText()),
        100,
      );
      // Only the rows in view exist.
      const rows = await page.locator('#flows .flow-row').count();
      assert.ok(rows < 100, `${rows} row elements for ${FLOWS} flows`);
      assert.equal(await page.locator('#rules td[data-flows="web"]').innerText(), '10000');
      // The longest gap between two frames over three seconds, polls included.
      // Written as text: it runs in the page, whose names (requestAnimationFrame) are not Node's.
      const gap = await page.evaluate<number>(`new Promise((resolve) => {
      let last = performance.now();
      let worst = 0;
      const end = last + 3000;
      const tick = (t) => {
        worst = Math.max(worst, t - last);
        last = t;
        if (t < end) requestAnimationFrame(tick);
        else resolve(worst);
      };
      requestAnimationFrame(tick);
    })`);
      console.log(`# longest frame gap with ${FLOWS} flows: ${gap.toFixed(0)} ms`);
      assert.ok(gap < 1000, `the page froze for ${gap} ms`);
      // Scrolled halfway, the flows there are drawn, and they are others than those at the top.
      const shown = (): Promise<number[]> =>
        page
          .locator('#flows .flow-row:not([hidden])')
          .evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-id'))));
      const top = await shown();
      await page.locator('#flows').evaluate((el) => (el.scrollTop = el.scrollHeight / 2));
      await sleep(300);
      const half = await shown();
      assert.ok(half.length > 10, `${half.length} rows drawn halfway down`);
      assert.deepEqual(
        half.filter((id) => top.includes(id)),
        [],
        'halfway down shows other flows than the top',
      );
      assert.equal(await page.locator('#flows .flow-row').count(), rows, 'scrolling adds no row element');
      await w.shot('09-ten-thousand-flows');
      assert.deepEqual(w.errors, []);
    } finally {
      await browser?.close();
      await api.close();
    }
  },
);
