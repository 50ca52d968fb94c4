import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fixturesPath, quickstartPath, repoRoot, sluice } from '../helpers/cli.js';

interface PlaneJson {
  outcome: string;
  afterMinutes?: number;
  reason: string;
  fix?: string;
}

interface PathJson {
  kind: string;
  name: string;
  onIdle: string;
  servedByProxyPlane: boolean;
  clients?: { client: string; proxy: PlaneJson; packet: PlaneJson }[];
}

interface ReportJson {
  paths: PathJson[];
  clients?: {
    client: string;
    library: string;
    settings: Record<string, unknown>;
    given: string[];
    kernelKeepalive: { idleMs: number; intervalMs: number; probes: number; origin: string } | null;
    appPing: { everyMs: number } | null;
    closesIdle: { afterMs: number; by: string } | null;
  }[];
}

const PG = 'pg:keepAlive=true,keepAliveInitialDelayMillis=60000';

function path(body: ReportJson, name: string): PathJson {
  const p = body.paths.find((x) => x.name === name);
  assert.ok(p, name);
  return p;
}

test('explain --client pg: kernel keepalive at 60 s survives the packet plane and dies on the proxy plane', async () => {
  const r = await sluice('explain', '--json', '--client', PG, quickstartPath);
  assert.equal(r.code, 0, r.stderr);
  const body = JSON.parse(r.stdout) as ReportJson;
  assert.deepEqual(body.clients?.[0]?.kernelKeepalive, {
    idleMs: 60_000,
    intervalMs: 1000,
    probes: 10,
    origin: 'setting',
  });
  assert.deepEqual(body.clients?.[0]?.given, ['keepAlive', 'keepAliveInitialDelayMillis']);
  assert.equal(body.clients?.[0]?.appPing, null);

  const reset = path(body, 'web-reset').clients?.[0];
  assert.equal(reset?.client, PG);
  assert.equal(reset?.packet.outcome, 'survives');
  assert.equal(reset?.proxy.outcome, 'reset');
  assert.equal(reset?.proxy.afterMinutes, 4);
  const drop = path(body, 'web-drop').clients?.[0];
  assert.equal(drop?.proxy.outcome, 'drop');
  assert.equal(drop?.proxy.afterMinutes, 5);
  assert.equal(path(body, 'dns-udp').clients?.[0]?.packet.outcome, 'not-applicable');
});

test('explain --client prints the settings, what they put on the wire and a verdict per plane', async () => {
  const r = await sluice('explain', '--client', PG, quickstartPath);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Client pg: node-postgres Client/);
  assert.match(r.stdout, /keepAlive=true, keepAliveInitialDelayMillis=60000\n/);
  assert.match(r.stdout, /first probe after 60s of silence/);
  assert.match(
    r.stdout,
    /client pg:keepAlive=true,keepAliveInitialDelayMillis=60000\n\s+packet plane\s+SURVIVES\./,
  );
  assert.match(r.stdout, /proxy plane\s+DIES after 4 minutes with a reset\./);
});

test('a delay at the timeout dies on both planes, and the fix says which setting to lower', async () => {
  const r = await sluice(
    'explain',
    '--json',
    '--client',
    'pg:keepAlive=true,keepAliveInitialDelayMillis=240000',
    quickstartPath,
  );
  assert.equal(r.code, 0, r.stderr);
  const v = path(JSON.parse(r.stdout) as ReportJson, 'web-reset').clients?.[0];
  assert.equal(v?.packet.outcome, 'reset');
  assert.match(v?.packet.fix ?? '', /set keepAliveInitialDelayMillis to at least 1000 and below 240000/);
});

test('--client repeats; outbound rules and NAT gateways are judged on the packet plane only', async () => {
  const r = await sluice(
    'explain',
    '--json',
    '--client',
    'grpc-js:grpc.keepalive_time_ms=60000,grpc.keepalive_permit_without_calls=1',
    '--client',
    'ioredis@5',
    join(fixturesPath, 'valid/standard-public-outbound.json'),
  );
  assert.equal(r.code, 0, r.stderr);
  const body = JSON.parse(r.stdout) as ReportJson;
  assert.deepEqual(
    body.clients?.map((c) => c.library),
    ['@grpc/grpc-js', 'ioredis@5'],
  );
  for (const p of body.paths) {
    const [grpc, redis] = p.clients ?? [];
    assert.equal(grpc?.packet.outcome, 'survives', `${p.name}: a PING every 60 s`);
    if (!p.servedByProxyPlane) assert.equal(grpc?.proxy.outcome, 'not-served', p.name);
    else assert.equal(grpc?.proxy.outcome, 'survives', p.name);
    // ioredis 5 enables keepalive with the system's 7200 s: every path here is shorter.
    assert.ok(['reset', 'drop'].includes(redis?.packet.outcome ?? ''), `${p.name}: ${redis?.packet.outcome}`);
  }
  assert.ok(body.paths.some((p) => p.kind === 'natGateway' && !p.servedByProxyPlane));
});

test('bad --client arguments are usage errors (exit 2) with a stable code naming what is allowed', async () => {
  const cases: [string, string, RegExp][] = [
    ['psycopg2', 'SLUICE_EXPLAIN_CLIENT_UNKNOWN', /Sluice knows pg, pg\.Pool, ioredis/],
    ['pg:keepalive=true', 'SLUICE_EXPLAIN_CLIENT_SETTING', /did you mean keepAlive\?/],
    ['pg:keepAliveInitialDelayMillis=soon', 'SLUICE_EXPLAIN_CLIENT_VALUE', /expects milliseconds/],
    ['pg:keepAlive', 'SLUICE_EXPLAIN_CLIENT_SYNTAX', /not SETTING=VALUE/],
  ];
  for (const [spec, code, message] of cases) {
    const r = await sluice('explain', '--client', spec, quickstartPath);
    assert.equal(r.code, 2, spec);
    assert.ok(r.stderr.includes(`[${code}]`), `${spec}: ${r.stderr}`);
    assert.match(r.stderr, message, spec);
    assert.equal(r.stdout, '', `${spec}: nothing explained`);
  }
});

test("the seeds' single Windows VM: without SO_KEEPALIVE its idle connections die on the instance's public IP; with it they survive", async () => {
  const vm = ['single-vm/nic.json', 'single-vm/pip.json'].map((f) =>
    join(repoRoot, 'test/fixtures/exports', f),
  );
  const r = await sluice(
    'explain',
    '--json',
    '--client',
    'windows:KeepAliveTime=120000',
    '--client',
    'windows:SO_KEEPALIVE=true,KeepAliveTime=120000',
    ...vm,
  );
  assert.equal(r.code, 0, r.stderr);
  const body = JSON.parse(r.stdout) as ReportJson;
  const inbound = body.paths.find((p) => p.kind === 'instancePublicIp');
  assert.ok(inbound, 'the instance-level public IP path');
  const [off, on] = inbound.clients ?? [];
  assert.equal(off?.packet.outcome, 'drop');
  assert.equal(off?.packet.afterMinutes, 4);
  assert.match(off?.packet.fix ?? '', /must enable SO_KEEPALIVE/);
  assert.equal(on?.packet.outcome, 'survives');
  assert.equal(on?.proxy.outcome, 'drop', 'kernel probes do not refresh the proxy plane');
  const outbound = body.paths.find((p) => p.kind === 'instanceOutbound');
  assert.equal(outbound?.clients?.[1]?.proxy.outcome, 'not-served');
  assert.equal(outbound?.clients?.[1]?.packet.outcome, 'survives');
});
