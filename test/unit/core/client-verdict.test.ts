import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateDocument } from '../../../src/config/index.js';
import { parseClientSpec, type ClientBehaviour } from '../../../src/core/client-spec.js';
import { clientVerdict, describeMechanics, type PathFacts } from '../../../src/core/client-verdict.js';
import { explain } from '../../../src/core/explain.js';
import { fixturesPath, quickstartPath } from '../../helpers/cli.js';

function client(spec: string): ClientBehaviour {
  const r = parseClientSpec(spec);
  assert.ok(r.ok, spec);
  return r.client;
}

const RESET_4: PathFacts = {
  onIdle: 'reset',
  idleTimeoutMinutes: 4,
  resetsLatePackets: false,
  servedByProxyPlane: true,
};
const DROP_4: PathFacts = { ...RESET_4, onIdle: 'drop' };

test('kernel keepalive below the timeout: survives the packet plane, dies on the proxy plane (probes carry no data)', () => {
  const pg = client('pg:keepAlive=true,keepAliveInitialDelayMillis=60000');
  assert.equal(clientVerdict(pg, RESET_4, 'packet').outcome, 'survives');
  const proxy = clientVerdict(pg, RESET_4, 'proxy');
  assert.equal(proxy.outcome, 'reset');
  assert.equal(proxy.afterMinutes, 4);
  assert.match(proxy.reason, /carry no data/);
  assert.match(proxy.fix ?? '', /SELECT 1/);
  const drop = clientVerdict(pg, DROP_4, 'proxy');
  assert.equal(drop.outcome, 'drop');
  assert.match(drop.reason, /answered by Sluice's host/);
  assert.match(drop.reason, /--hold-time/);
});

test('a keepalive delay equal to the timeout loses the race; the fix names the setting and its bound', () => {
  const pg = client('pg:keepAlive=true,keepAliveInitialDelayMillis=240000');
  const v = clientVerdict(pg, RESET_4, 'packet');
  assert.equal(v.outcome, 'reset');
  assert.match(v.fix ?? '', /set keepAliveInitialDelayMillis to at least 1000 and below 240000/);
  const off = clientVerdict(client('pg'), RESET_4, 'packet');
  assert.match(off.fix ?? '', /set keepAlive: true and keepAliveInitialDelayMillis/);
  assert.equal(clientVerdict(pg, { ...RESET_4, idleTimeoutMinutes: 5 }, 'packet').outcome, 'survives');
});

test('a silent drop is found by the kernel after idle + probes x interval on the packet plane', () => {
  const linux = client('linux:SO_KEEPALIVE=true');
  const v = clientVerdict(linux, DROP_4, 'packet');
  assert.equal(v.outcome, 'drop');
  assert.match(v.reason, /ETIMEDOUT after 7875s of silence/, '7200 + 9 x 75');
  assert.match(v.fix ?? '', /tcp_keepalive_time .* below 240/);
  const none = clientVerdict(client('pg'), DROP_4, 'packet');
  assert.match(none.reason, /15\.4 minutes/);
});

test('NAT gateway: the first packet after the drop is answered with a reset', () => {
  const facts: PathFacts = {
    ...DROP_4,
    idleTimeoutMinutes: 4,
    resetsLatePackets: true,
    servedByProxyPlane: false,
  };
  const v = clientVerdict(client('mongodb:keepAliveInitialDelay=300000'), facts, 'packet');
  assert.equal(v.outcome, 'drop');
  assert.match(v.reason, /after 5 minutes of silence, is answered with a TCP reset/);
  assert.equal(clientVerdict(client('pg'), facts, 'proxy').outcome, 'not-served');
});

test('application pings refresh both planes; grpc-js without permit_without_calls sends none when idle', () => {
  const grpc = client('grpc-js:grpc.keepalive_time_ms=60000,grpc.keepalive_permit_without_calls=1');
  for (const plane of ['proxy', 'packet'] as const) {
    assert.equal(clientVerdict(grpc, DROP_4, plane).outcome, 'survives', plane);
  }
  const callsOnly = client('grpc-js:grpc.keepalive_time_ms=60000');
  const v = clientVerdict(callsOnly, DROP_4, 'packet');
  assert.equal(v.outcome, 'drop');
  assert.match(v.fix ?? '', /grpc\.keepalive_permit_without_calls=1/);
  const slow = clientVerdict(
    client('grpc-js:grpc.keepalive_time_ms=300000,grpc.keepalive_permit_without_calls=1'),
    DROP_4,
    'proxy',
  );
  assert.equal(slow.outcome, 'drop');
  assert.match(slow.reason, /320s into the silence/, 'ping at 300 s, 20 s timeout');
});

test('a library that closes idle connections first leaves no dead connection; above the timeout it does not help', () => {
  assert.equal(clientVerdict(client('undici'), DROP_4, 'proxy').outcome, 'client-closes');
  assert.equal(clientVerdict(client('pg.Pool'), RESET_4, 'packet').outcome, 'client-closes');
  assert.equal(clientVerdict(client('http.Agent'), RESET_4, 'proxy').outcome, 'client-closes');
  const long = client('undici:keepAliveTimeout=600000');
  assert.equal(clientVerdict(long, DROP_4, 'packet').outcome, 'survives', '60 s kernel keepalive');
  assert.equal(clientVerdict(long, DROP_4, 'proxy').outcome, 'drop');
  // A sweep that may run a second late does not count as closing before a timeout it could miss.
  const mysql = client('mysql2:maxIdle=1,idleTimeout=239500,enableKeepAlive=false');
  assert.equal(clientVerdict(mysql, RESET_4, 'packet').outcome, 'reset');
});

test('UDP paths and paths the proxy plane does not serve get no verdict', () => {
  const pg = client('pg');
  assert.equal(clientVerdict(pg, { ...RESET_4, onIdle: 'none' }, 'packet').outcome, 'not-applicable');
  assert.equal(clientVerdict(pg, { ...RESET_4, servedByProxyPlane: false }, 'proxy').outcome, 'not-served');
  assert.equal(clientVerdict(pg, { ...RESET_4, servedByProxyPlane: false }, 'packet').outcome, 'reset');
});

test("the seeds' Windows Server user: no SO_KEEPALIVE, so the instance's idle timeout drops it whatever the registry says", () => {
  const win = client('windows:KeepAliveTime=120000');
  const v = clientVerdict(win, DROP_4, 'packet');
  assert.equal(v.outcome, 'drop');
  assert.match(v.fix ?? '', /must enable SO_KEEPALIVE/);
  assert.match(describeMechanics(win), /change nothing for a socket that does not enable SO_KEEPALIVE/);
  assert.equal(
    clientVerdict(client('windows:SO_KEEPALIVE=true,KeepAliveTime=120000'), DROP_4, 'packet').outcome,
    'survives',
  );
});

test('explain attaches one verdict per --client to every path, and marks what the proxy plane serves', () => {
  const compile = (file: string) => {
    const r = validateDocument(JSON.parse(readFileSync(file, 'utf8')));
    assert.ok(r.snapshot);
    return r.snapshot;
  };
  const clients = [client('pg:keepAlive=true,keepAliveInitialDelayMillis=60000'), client('ioredis@5')];
  const report = explain(compile(join(fixturesPath, 'valid/standard-public-outbound.json')), {
    udpFlowTimeoutMs: 240_000,
    clients,
  });
  assert.equal(report.clients?.length, 2);
  for (const p of report.paths) {
    assert.deepEqual(
      p.clients?.map((c) => c.client),
      clients.map((c) => c.spec),
    );
    assert.equal(p.servedByProxyPlane, p.kind === 'loadBalancingRule' || p.kind === 'inboundNatRule', p.name);
  }
  const gateway = report.paths.find((p) => p.kind === 'natGateway');
  assert.equal(gateway?.clients?.[1]?.packet.outcome, 'drop');
  assert.match(gateway?.clients?.[1]?.packet.reason ?? '', /answered with a TCP reset/);
  const none = explain(compile(quickstartPath), { udpFlowTimeoutMs: 240_000 });
  assert.ok(none.paths.every((p) => p.clients === undefined));
  assert.equal(none.clients, undefined);
});
