import { test } from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { sluice } from '../helpers/cli.js';
import { startSluice } from '../helpers/process.js';
import { tcpClient, waitUntil, within } from '../helpers/net.js';

/** `sluice demo` (what `npm start` runs): its backends answer, and idle flows are reset or dropped. */

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

test('demo: HTTP answers name both backends; a quiet nc-style connection on the reset rule is reset', async () => {
  const demo = startSluice(['demo', '--time-scale', '240', '--api', '127.0.0.1:0']);
  try {
    await waitUntil(10_000, 'the demo to start', () => {
      if (demo.child.exitCode !== null) throw new Error(`demo exited: ${demo.stderr.join('\n')}`);
      return demo.lines.some((l) => / ready \(/.test(` ${String(l.raw)}`));
    });
    const guide = demo.lines.map((l) => String(l.raw ?? '')).join('\n');
    assert.match(guide, /curl http:\/\/127\.0\.0\.10:8080\//);
    // The demo serves its API, and prints where the live page is.
    const page = /Live view: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(guide)?.[1];
    assert.ok(page !== undefined, guide);
    assert.match(await httpGet(page), /<title>Sluice live view<\/title>/);
    // Members come up with their first probe; then both answer over a few requests.
    const seen = new Set<string>();
    await waitUntil(5000, 'both backends answering', async () => {
      try {
        seen.add((await httpGet('http://127.0.0.10:8080/')).split(' ')[0]!);
      } catch {
        // Members take no flows until their first probe answers: the connection is reset.
      }
      return seen.size >= 2;
    });
    assert.deepEqual([...seen].sort(), ['backend-1', 'backend-2']);

    const c = tcpClient('127.0.0.10', 8080);
    c.socket.write('hello\n');
    const echoed = await waitUntil(2000, 'echo', () => {
      const text = Buffer.concat(c.data).toString();
      return text.includes('hello') && text;
    });
    assert.match(echoed, /^backend-\d: hello\n$/);
    // 4 minutes at x240 is one second.
    const err = await within(3000, 'idle reset', c.error);
    assert.equal(err.code, 'ECONNRESET');
    await waitUntil(2000, 'the narration of the reset', () =>
      demo.lines.some((l) => /idle timeout: TCP reset/.test(String(l.raw))),
    );
    // A second demo finds the addresses taken and says a demo seems to be running.
    const second = await sluice('demo');
    assert.equal(second.code, 1, second.stderr);
    assert.match(second.stderr, /another sluice demo seems to be running/);
  } finally {
    assert.equal(await demo.stop('SIGINT'), 0);
  }
});
