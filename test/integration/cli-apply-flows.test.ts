import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lbDocument } from '../helpers/arm.js';
import { sluice } from '../helpers/cli.js';
import { EchoBackend, freePort, tcpClient, within } from '../helpers/net.js';
import { startSluice } from '../helpers/process.js';

/** `sluice apply` and `sluice flows` against a running `sluice run`, through the API client. */

test('sluice apply applies a document (exit 0) or prints its errors (exit 1); sluice flows lists the live flow', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-apply-'));
  const backend = new EchoBackend('b', '127.0.9.2');
  const bport = await freePort('127.0.9.2');
  await backend.listen(bport);
  const port = await freePort('127.0.9.1');
  const port2 = await freePort('127.0.9.1');
  const rule = { name: 'web', frontendPort: port, backendPort: bport };
  const file = join(dir, 'lb.json');
  writeFileSync(
    file,
    JSON.stringify(lbDocument({ frontend: '127.0.9.1', backends: ['127.0.9.2'], rules: [rule] })),
  );
  const run = startSluice(['run', file, '--api', '127.0.0.1:0', '--state-dir', join(dir, 'state')]);
  try {
    const api = String((await run.waitFor((l) => l.msg === 'ready', 10_000)).api);
    const next = join(dir, 'next.json');
    writeFileSync(
      next,
      JSON.stringify(
        lbDocument({
          frontend: '127.0.9.1',
          backends: ['127.0.9.2'],
          rules: [rule, { name: 'more', frontendPort: port2, backendPort: bport }],
        }),
      ),
    );
    const ok = await sluice('apply', next, '--api', api);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(
      ok.stdout,
      /^changed \/subscriptions\/.+\/loadBalancers\/test-lb \(W\/".+"\): loadBalancingRules$/m,
    );
    assert.match(ok.stdout, /^applied as generation \d+$/m);
    await run.waitFor((l) => l.msg === 'configuration applied', 2000);

    // Several files are one document and one change: the load balancer again, and a public IP.
    const pip = join(dir, 'pip.json');
    writeFileSync(
      pip,
      JSON.stringify({
        name: 'spare-pip',
        type: 'Microsoft.Network/publicIPAddresses',
        properties: { ipAddress: '127.0.9.50', idleTimeoutInMinutes: 10 },
      }),
    );
    const two = await sluice('apply', next, pip, '--api', api);
    assert.equal(two.code, 0, two.stderr);
    assert.match(two.stdout, /^unchanged \/subscriptions\/.+\/loadBalancers\/test-lb /m);
    assert.match(two.stdout, /^added \/subscriptions\/.+\/publicIPAddresses\/spare-pip /m);

    const bad = join(dir, 'bad.json');
    writeFileSync(
      bad,
      JSON.stringify(
        lbDocument({
          frontend: '127.0.9.1',
          backends: ['127.0.9.2'],
          rules: [{ ...rule, idleTimeoutInMinutes: 3 }],
        }),
      ),
    );
    const rejected = await sluice('apply', bad, '--api', api);
    assert.equal(rejected.code, 1);
    assert.match(rejected.stderr, /\[SLUICE_API_VALIDATION\]/);
    assert.match(rejected.stderr, /^nothing changed$/m);
    assert.match(
      rejected.stderr,
      /\/properties\/loadBalancingRules\/0\/properties\/idleTimeoutInMinutes: .* \[SLUICE_CONFIG_IDLE_TIMEOUT_RANGE\]/,
    );

    const c = tcpClient('127.0.9.1', port2);
    assert.equal(await within(2000, 'greeting through the applied rule', c.greeting), 'b');
    const flows = await sluice('flows', '--api', api);
    assert.equal(flows.code, 0, flows.stderr);
    const lines = flows.stdout.trim().split('\n');
    assert.match(lines[0]!, /^system clock at \S+, time scale 1$/);
    assert.match(lines[1]!, /^ID\s+PROTO\s+LB\s+RULE\s+STATE\s+CLIENT\s+BACKEND\s+AGE\s+IDLE\s+LEFT/);
    assert.match(
      lines[2]!,
      new RegExp(`Tcp\\s+test-lb\\s+more\\s+ESTABLISHED\\s+127\\.0\\.0\\.1:\\d+\\s+127\\.0\\.9\\.2:${bport}`),
    );
    assert.equal(lines.at(-1), '1 flow');
    c.socket.destroy();

    const unreachable = await sluice('flows', '--api', '127.0.0.1:1');
    assert.equal(unreachable.code, 1);
  } finally {
    await run.stop('SIGKILL');
    await backend.close();
  }
});
