import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lbDocument } from '../helpers/arm.js';
import {
  EchoBackend,
  freePort,
  sleep,
  tcpClient,
  waitUntil,
  within,
  type TestClient,
} from '../helpers/net.js';
import { startSluice } from '../helpers/process.js';

/**
 * Out of file descriptors: Sluice refuses (with a reset) what its open-files limit cannot hold,
 * says so, and serves again once flows end. With a limit of 80, 64 descriptors kept in
 * reserve, no API and no UDP share, 8 flows of two descriptors each fit.
 */

test('out of descriptors: connections beyond the limit fail, Sluice keeps running and recovers', async () => {
  const backend = new EchoBackend('b', '127.0.12.2');
  const backendPort = await freePort('127.0.12.2');
  await backend.listen(backendPort);
  const port = await freePort('127.0.12.10');
  const file = join(mkdtempSync(join(tmpdir(), 'sluice-emfile-')), 'lb.json');
  writeFileSync(
    file,
    JSON.stringify(
      lbDocument({
        frontend: '127.0.12.10',
        backends: ['127.0.12.2'],
        rules: [{ name: 'web', frontendPort: port, backendPort, idleTimeoutInMinutes: 30 }],
      }),
    ),
  );
  const run = startSluice(['run', file, '--api', 'off', '--max-udp-flows', '0'], {
    openFilesLimit: 80,
  });
  const clients: TestClient[] = [];
  try {
    await run.waitFor((l) => l.msg === 'ready', 10_000);
    for (let i = 0; i < 60; i++) clients.push(tcpClient('127.0.12.10', port));
    const outcomes = await Promise.all(
      clients.map((c) =>
        within(
          5000,
          'an outcome',
          c.greeting.then(
            () => 'served',
            () => 'failed',
          ),
        ).catch(() => 'hung'),
      ),
    );
    assert.equal(outcomes.filter((o) => o === 'served').length, 8, outcomes.join(','));
    assert.equal(
      outcomes.filter((o) => o === 'failed').length,
      52,
      'the others are refused, not left hanging',
    );
    assert.equal(run.child.exitCode, null, 'still running');
    await waitUntil(2000, 'the shortage to be logged', () =>
      run.lines.some((l) => String(l.msg).startsWith('out of file descriptors: new flows refused')),
    );
    for (const c of clients) c.socket.destroy();
    await sleep(300);
    const again = tcpClient('127.0.12.10', port);
    assert.equal(await within(3000, 'a greeting after recovery', again.greeting), 'b');
    again.socket.destroy();
  } finally {
    for (const c of clients) c.socket.destroy();
    await run.stop();
    await backend.close();
  }
});
