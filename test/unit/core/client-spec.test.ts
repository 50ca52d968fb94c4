import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLIENT_LIBRARIES,
  findClientLibrary,
  parseClientSpec,
  parseSettingValue,
  type ClientBehaviour,
} from '../../../src/core/client-spec.js';
import type { ClientMechanics, KernelKeepalive } from '../../../src/core/client-types.js';
import { nodeKeepalive } from '../../../src/core/client-types.js';

function client(spec: string): ClientBehaviour {
  const r = parseClientSpec(spec);
  assert.ok(r.ok, `${spec}: ${r.ok ? '' : r.message}`);
  return r.client;
}

function mech(spec: string): ClientMechanics {
  return client(spec).mechanics;
}

function kernel(spec: string): [number, number, number, KernelKeepalive['origin']] | undefined {
  const k = mech(spec).kernel;
  return k ? [k.idleMs / 1000, k.intervalMs / 1000, k.probes, k.origin] : undefined;
}

const SYSTEM = [7200, 75, 9, 'system'] as const;
const LIBUV = [60, 1, 10, 'libuv'] as const;

// What Node 20 leaves on the socket, as seen in each library's setsockopt calls (docs/clients.md).
const KERNEL_CASES: [string, readonly [number, number, number, string] | undefined][] = [
  ['pg', undefined],
  ['pg:keepAlive=true', SYSTEM],
  ['pg:keepAlive=true,keepAliveInitialDelayMillis=60000', [60, 1, 10, 'setting']],
  ['pg:keepAlive=true,keepAliveInitialDelayMillis=999', SYSTEM],
  ['pg:keepAlive=true,keepAliveInitialDelayMillis=40000000', SYSTEM],
  ['pg:keepAliveInitialDelayMillis=60000', undefined],
  ['ioredis', [30, 1, 10, 'setting']],
  ['ioredis:keepAlive=false', undefined],
  ['ioredis:keepAlive=0', SYSTEM],
  ['ioredis@5', SYSTEM],
  ['redis', [30, 1, 10, 'setting']],
  ['redis:socket.keepAlive=false', undefined],
  ['redis@4', [5, 1, 10, 'setting']],
  ['redis@4:socket.keepAlive=false', undefined],
  ['mysql2', SYSTEM],
  ['mysql2:enableKeepAlive=false', undefined],
  ['mysql2:keepAliveInitialDelay=60000', [60, 1, 10, 'setting']],
  ['mysql2@2', LIBUV],
  ['mysql2@2:enableKeepAlive=false', LIBUV],
  ['mysql2@2:keepAliveInitialDelay=10000', [10, 1, 10, 'setting']],
  ['mongodb', [120, 1, 10, 'setting']],
  ['mongodb:keepAliveInitialDelay=60000', [60, 1, 10, 'setting']],
  ['mongodb:keepAliveInitialDelay=0', SYSTEM],
  ['mongodb@5', LIBUV],
  ['mongodb@4:socketTimeoutMS=600000', [120, 1, 10, 'setting']],
  ['mongodb@3:socketTimeoutMS=100000', [50, 1, 10, 'setting']],
  ['mongodb@5:keepAlive=false', undefined],
  ['undici', [60, 1, 10, 'setting']],
  ['undici:connect.keepAlive=false', undefined],
  ['undici:connect.keepAliveInitialDelay=10000', [10, 1, 10, 'setting']],
  ['undici:connect.keepAliveInitialDelay=0', LIBUV],
  ['@grpc/grpc-js', undefined],
  ['grpc-js:grpc.keepalive_time_ms=60000,grpc.keepalive_permit_without_calls=1', undefined],
  ['http.Agent:keepAlive=true', [1, 1, 10, 'setting']],
  ['http.Agent:keepAlive=true,keepAliveMsecs=30000', [30, 1, 10, 'setting']],
  ['http.Agent:keepAlive=true,keepAliveMsecs=0', [1, 1, 10, 'setting']],
  ['http.globalAgent', [1, 1, 10, 'setting']],
  ['linux', undefined],
  ['linux:SO_KEEPALIVE=true', SYSTEM],
  [
    'linux:SO_KEEPALIVE=true,tcp_keepalive_time=120,tcp_keepalive_intvl=30,tcp_keepalive_probes=8',
    [120, 30, 8, 'setting'],
  ],
  ['windows', undefined],
  ['windows:SO_KEEPALIVE=true', [7200, 1, 10, 'system']],
  ['windows:SO_KEEPALIVE=true,KeepAliveTime=120000,TcpMaxDataRetransmissions=8', [120, 1, 10, 'setting']],
  ['ServicePointManager:enabled=true,keepAliveTime=120000,keepAliveInterval=30000', [120, 30, 10, 'setting']],
  ['ServicePointManager:enabled=true,keepAliveTime=120000,keepAliveInterval=30000,runtime=core', undefined],
  ['SocketsHttpHandler', undefined],
];

test('each library turns its settings into the kernel keepalive Node 20 (or the OS) really sets', () => {
  for (const [spec, expected] of KERNEL_CASES) assert.deepEqual(kernel(spec), expected, spec);
});

test('nodeKeepalive: whole seconds from 1 to 32767 reach the socket; otherwise the system or libuv values stay', () => {
  assert.deepEqual(nodeKeepalive(1999, 'connected'), {
    idleMs: 1000,
    intervalMs: 1000,
    probes: 10,
    origin: 'setting',
  });
  assert.equal(nodeKeepalive(32_767_000, 'connected').idleMs, 32_767_000);
  assert.equal(nodeKeepalive(32_768_000, 'connected').origin, 'system');
  assert.equal(nodeKeepalive(0, 'connecting').idleMs, 60_000);
});

test('application pings: only when the library sends them on an idle connection', () => {
  assert.deepEqual(
    mech('grpc-js:grpc.keepalive_time_ms=60000,grpc.keepalive_permit_without_calls=1').appPing,
    { everyMs: 60_000, timeoutMs: 20_000, what: 'an HTTP/2 PING frame' },
  );
  const withCallsOnly = mech('grpc-js:grpc.keepalive_time_ms=60000');
  assert.equal(withCallsOnly.appPing, undefined, 'permit_without_calls=0: no ping on a quiet channel');
  assert.match(withCallsOnly.notes.join(' '), /only while a call is in flight/);
  assert.equal(
    mech('grpc-js:grpc.keepalive_time_ms=0,grpc.keepalive_permit_without_calls=1').appPing,
    undefined,
  );
  assert.deepEqual(mech('redis:pingInterval=60000').appPing, { everyMs: 60_000, what: 'a PING command' });
  assert.equal(mech('redis').appPing, undefined);
  assert.equal(mech('SocketsHttpHandler:KeepAlivePingDelay=30').appPing, undefined, 'HTTP/1.1 has no PING');
  assert.equal(
    mech('SocketsHttpHandler:HttpVersion=2.0,KeepAlivePingDelay=30').appPing,
    undefined,
    'WithActiveRequests pings no idle connection',
  );
  assert.deepEqual(
    mech('SocketsHttpHandler:HttpVersion=2.0,KeepAlivePingDelay=00:00:30,KeepAlivePingPolicy=Always').appPing,
    { everyMs: 30_000, timeoutMs: 20_000, what: 'an HTTP/2 PING frame' },
  );
});

test('idle closes by the library itself, with their defaults', () => {
  const closes = (spec: string) => {
    const c = mech(spec).closesIdle;
    return c ? [c.afterMs, c.by, c.reuse] : undefined;
  };
  assert.deepEqual(closes('pg'), undefined);
  assert.deepEqual(closes('pg.Pool'), [10_000, 'idleTimeoutMillis', true]);
  assert.deepEqual(closes('pg.Pool:idleTimeoutMillis=0'), undefined);
  assert.deepEqual(closes('undici'), [4000, 'keepAliveTimeout', true]);
  assert.deepEqual(closes('http.Agent'), [0, 'keepAlive=false', false]);
  assert.deepEqual(closes('http.Agent:keepAlive=true'), undefined);
  assert.deepEqual(closes('http.globalAgent'), [5000, 'timeout', true]);
  assert.deepEqual(closes('mysql2'), undefined, 'maxIdle defaults to connectionLimit: no sweep');
  assert.deepEqual(closes('mysql2:maxIdle=2'), [60_000, 'idleTimeout', true]);
  assert.deepEqual(closes('grpc-js'), [1_800_000, 'grpc.client_idle_timeout_ms', true]);
  assert.deepEqual(closes('SocketsHttpHandler'), [60_000, 'PooledConnectionIdleTimeout', true]);
  assert.deepEqual(closes('SocketsHttpHandler:PooledConnectionIdleTimeout=Infinite'), undefined);
  assert.deepEqual(closes('ServicePointManager'), [100_000, 'MaxServicePointIdleTime', true]);
  assert.deepEqual(closes('ServicePointManager:MaxServicePointIdleTime=-1'), undefined);
  assert.deepEqual(closes('mongodb:maxIdleTimeMS=30000'), [30_000, 'maxIdleTimeMS', true]);
});

test('defaults fill what is not given, and given keeps the order of the argument', () => {
  const c = client('pg:keepAliveInitialDelayMillis=5000,keepAlive=true');
  assert.deepEqual(c.given, ['keepAliveInitialDelayMillis', 'keepAlive']);
  assert.deepEqual(c.settings, { keepAlive: true, keepAliveInitialDelayMillis: 5000 });
  assert.deepEqual(client('http.Agent').settings, {
    keepAlive: false,
    keepAliveMsecs: 1000,
    timeout: undefined,
  });
  assert.equal(client(' IORedis ').library.name, 'ioredis', 'names are matched case-insensitively');
  assert.equal(findClientLibrary('mongodb@7')?.name, 'mongodb');
  assert.equal(findClientLibrary('fetch')?.name, 'undici');
});

test('usage errors carry a registered code and name what is allowed', () => {
  const err = (spec: string) => {
    const r = parseClientSpec(spec);
    assert.ok(!r.ok, spec);
    return r;
  };
  const unknown = err('psycopg:keepalives=1');
  assert.equal(unknown.code, 'SLUICE_EXPLAIN_CLIENT_UNKNOWN');
  for (const lib of CLIENT_LIBRARIES) assert.ok(unknown.message.includes(lib.name), lib.name);

  const setting = err('pg:keepalive=true');
  assert.equal(setting.code, 'SLUICE_EXPLAIN_CLIENT_SETTING');
  assert.match(setting.message, /did you mean keepAlive\?/);
  assert.match(setting.message, /keepAlive, keepAliveInitialDelayMillis/);
  assert.match(err('mongodb:keepAlive=true').message, /removed in driver 6\.0/);

  const value = err('pg:keepAliveInitialDelayMillis=1m');
  assert.equal(value.code, 'SLUICE_EXPLAIN_CLIENT_VALUE');
  assert.match(value.message, /milliseconds, an integer >= 0, got '1m'/);
  assert.match(err('grpc-js:grpc.keepalive_permit_without_calls=true').message, /compares it with 1/);
  assert.equal(err('undici:keepAliveTimeout=0').code, 'SLUICE_EXPLAIN_CLIENT_VALUE');
  assert.match(err('ServicePointManager:enabled=true').message, /needs keepAliveTime and keepAliveInterval/);
  assert.match(err('SocketsHttpHandler:KeepAlivePingDelay=0.5').message, /at least 1 second/);

  for (const spec of ['', ':keepAlive=true', 'pg:keepAlive', 'pg:=1', 'pg:keepAlive=true,keepAlive=false']) {
    assert.equal(err(spec).code, 'SLUICE_EXPLAIN_CLIENT_SYNTAX', spec);
  }
});

test('setting values by type', () => {
  assert.equal(parseSettingValue({ kind: 'boolean' }, 'true'), true);
  assert.equal(parseSettingValue({ kind: 'boolean' }, '1'), undefined);
  assert.equal(parseSettingValue({ kind: 'ms' }, '-1'), undefined);
  assert.equal(parseSettingValue({ kind: 'ms', infinite: true }, '-1'), Infinity);
  assert.equal(parseSettingValue({ kind: 'ms' }, '1.5'), undefined);
  assert.equal(parseSettingValue({ kind: 'msOrFalse' }, 'false'), false);
  assert.equal(parseSettingValue({ kind: 'seconds' }, '0'), undefined);
  assert.equal(parseSettingValue({ kind: 'timespan' }, '00:04:00'), 240_000);
  assert.equal(parseSettingValue({ kind: 'timespan' }, '1.00:00:00'), 86_400_000);
  assert.equal(parseSettingValue({ kind: 'timespan' }, '90'), 90_000);
  assert.equal(parseSettingValue({ kind: 'timespan' }, 'Infinite'), Infinity);
  assert.equal(parseSettingValue({ kind: 'timespan' }, '00:61:00'), undefined);
  assert.equal(parseSettingValue({ kind: 'choice', values: ['Always'] }, 'always'), 'Always');
});

test('every library documents its settings and states where its facts were checked', () => {
  const names = new Set<string>();
  for (const lib of CLIENT_LIBRARIES) {
    for (const n of [lib.name, ...(lib.aliases ?? [])]) {
      assert.ok(!names.has(n.toLowerCase()), `${n} is the name of two libraries`);
      names.add(n.toLowerCase());
    }
    assert.ok(lib.checked.length > 0, lib.name);
    for (const s of lib.settings) assert.ok(s.means.length > 0, `${lib.name}.${s.name}`);
    // Every library can be judged with its defaults alone.
    assert.ok(parseClientSpec(lib.name).ok, lib.name);
  }
});
