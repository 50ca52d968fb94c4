import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { buildApi, ROUTES } from '../../src/control/server.js';
import { ResourceStore } from '../../src/control/store.js';
import { Registry } from 'prom-client';
import { EventHub } from '../../src/control/events.js';
import { noPlaneRuntime } from '../helpers/api.js';
import { lbDocument } from '../helpers/arm.js';
import { serveApi, type ServedApi } from '../helpers/api-server.js';
import { errorCode, httpRequest, type HttpAnswer } from '../helpers/http.js';
import { within } from '../helpers/net.js';

/**
 * Who gets into the API, over real loopback sockets: the Host a request names (DNS rebinding),
 * the bearer token compared exactly, and bodies that are not JSON. Each refusal has ARM's error
 * body and leaves nothing stored: not in the store, not in the state file.
 */

const HOST = '127.0.50.1';
const TOKEN = 's3cret-Tok';
const SUB = '00000000-0000-0000-0000-000000000000';
const V = '?api-version=2024-05-01';
const LB_PATH = `/subscriptions/${SUB}/resourceGroups/test/providers/Microsoft.Network/loadBalancers/test-lb`;

function lbBody(): string {
  return JSON.stringify(
    lbDocument({
      frontend: '127.0.50.100',
      backends: ['127.0.50.101'],
      rules: [{ name: 'web', frontendPort: 8080, backendPort: 80 }],
    }),
  );
}

const ORDER: Record<string, number> = { PUT: 0, GET: 1, POST: 1, DELETE: 2 };

/** The body each route takes, by its pattern in ROUTES (none when not listed). */
function bodyOf(method: string, pattern: string): string | undefined {
  if (pattern === '/sluice/v1/clock/advance') return JSON.stringify({ by: '4m' });
  if (pattern.startsWith('/sluice/v1/health/')) return method === 'PUT' ? '{"probe":"down"}' : undefined;
  if (method !== 'PUT') return undefined;
  if (pattern.includes('/Microsoft.Resources/deployments/'))
    return JSON.stringify({ properties: { template: { resources: [JSON.parse(lbBody()) as unknown] } } });
  return lbBody();
}

/**
 * Every route of the ROUTES table as a concrete request on test-lb (a body for PUT and for the
 * clock's POST): PUT first, DELETE last.
 */
const requests = [...ROUTES]
  .sort((a, b) => ORDER[a[0]]! - ORDER[b[0]]!)
  .map(([method, pattern]) => {
    const path = pattern
      .replace('{subscriptionId}', SUB)
      .replace('{resourceGroupName}', 'test')
      .replace('{resourceType}', 'loadBalancers')
      .replace('{name}', 'test-lb')
      .replace('{deploymentName}', 'test-deployment')
      .replace('{id}', '7')
      .replace('{lb}/{pool}/{member}', 'test-lb/pool/b1');
    return {
      method,
      path: path.startsWith('/subscriptions/') ? path + V : path,
      body: bodyOf(method, pattern),
      stream: path === '/sluice/v1/events',
    };
  });

/**
 * Through the door: a 2xx, or for a route about something the API without a data plane does not
 * have (a flow, a backend member) the 404 that says so, from the route itself.
 */
function passedTheGuard(a: HttpAnswer): boolean {
  if (a.status >= 200 && a.status < 300) return true;
  if (a.status !== 404) return false;
  const code = (JSON.parse(a.text) as { error: { code: string } }).error.code;
  return code === 'SLUICE_API_FLOW_NOT_FOUND' || code === 'SLUICE_API_MEMBER_NOT_FOUND';
}

interface RouteRequest {
  readonly method: string;
  readonly path: string;
  readonly body: string | undefined;
  readonly stream?: boolean;
}

function send(s: ServedApi, r: RouteRequest, headers: Record<string, string>): Promise<HttpAnswer> {
  return httpRequest({
    host: s.host,
    port: s.port,
    method: r.method,
    path: r.path,
    headers: { ...(r.body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(r.body !== undefined ? { body: r.body } : {}),
    ...(r.stream === true ? { headersOnly: true } : {}),
  });
}

function assertArmError(a: HttpAnswer, status: number, code: string, what: string): void {
  assert.equal(a.status, status, `${what}: ${a.text}`);
  assert.match(String(a.headers['content-type']), /^application\/json/, what);
  const body = JSON.parse(a.text) as { error: Record<string, unknown> };
  assert.equal(body.error['code'], code, what);
  assert.equal(typeof body.error['message'], 'string', what);
  assert.ok(Array.isArray(body.error['details']), what);
}

async function assertNothingStored(s: ServedApi, what: string): Promise<void> {
  assert.equal(s.store.generation, 0, `${what}: the store changed`);
  assert.equal(s.store.contents().resources.length, 0, `${what}: a resource was stored`);
  assert.equal(existsSync(s.statePath), false, `${what}: a state file was written`);
  const get = await httpRequest({
    host: s.host,
    port: s.port,
    method: 'GET',
    path: LB_PATH + V,
    headers: s.auth,
  });
  assert.equal(get.status, 404, `${what}: GET after it`);
}

/** Sends raw bytes and resolves with the first response once the server has answered. */
function raw(s: ServedApi, text: string): Promise<{ status: number; text: string }> {
  return within(
    5000,
    'a raw answer',
    new Promise((resolve, reject) => {
      const socket = connect({ host: s.host, port: s.port }, () => socket.write(text));
      let got = '';
      socket.on('data', (d) => {
        got += d.toString('latin1');
        const head = got.indexOf('\r\n\r\n');
        const length = /content-length: (\d+)/i.exec(got.slice(0, head));
        if (head > 0 && length && got.length >= head + 4 + Number(length[1])) {
          socket.destroy();
          resolve({ status: Number(got.slice(9, 12)), text: got.slice(head + 4) });
        }
      });
      socket.on('error', reject);
    }),
  );
}

// The header values below go out byte for byte as latin1: '\u00a0' is the single byte 0xA0.
const TRICKS: readonly (readonly [string, string])[] = [
  ['two no-break spaces (the empty-token exploit)', 'Bearer \u00a0\u00a0'],
  ['only spaces after the scheme', 'Bearer    '],
  ['the scheme alone', 'Bearer'],
  ['no-break space before the token', 'Bearer \u00a0s3cret-Tok'],
  ['no-break space after the token', 'Bearer s3cret-Tok\u00a0'],
  ['no-break space and a space after the token', 'Bearer s3cret-Tok\u00a0 '],
  ['no-break space instead of the space', 'Bearer\u00a0s3cret-Tok'],
  ['UTF-8 no-break space before the token', 'Bearer \u00c2\u00a0s3cret-Tok'],
  ['UTF-8 ideographic space before the token', 'Bearer \u00e3\u0080\u0080s3cret-Tok'],
  ['NEL before the token', 'Bearer \u0085s3cret-Tok'],
  ['a tab instead of the space', 'Bearer\ts3cret-Tok'],
  ['a space and a tab', 'Bearer \ts3cret-Tok'],
  ['a tab inside', 'Bearer s3cret-\tTok'],
  ['two spaces', 'Bearer  s3cret-Tok'],
  ['lowercase bearer and two spaces', 'bearer  s3cret-Tok'],
  ['lowercase bearer and a no-break space', 'bearer \u00a0s3cret-Tok'],
  ['a space inside', 'Bearer s3cret -Tok'],
  ['the token twice', 'Bearer s3cret-Tok s3cret-Tok'],
  ['a comma after the token', 'Bearer s3cret-Tok,'],
  ['the token in another case', 'Bearer S3CRET-TOK'],
  ['a prefix of the token', 'Bearer s3cret-To'],
  ['the token and more', 'Bearer s3cret-Tok2'],
  ['another scheme', 'Basic s3cret-Tok'],
  ['a scheme glued to the token', 'Bearers3cret-Tok'],
  ['the token without a scheme', 's3cret-Tok'],
  ['an empty header', ''],
];

test('with a token: every whitespace and near-miss trick is a 401 on every route, DELETE included, and nothing is stored', async () => {
  const s = await serveApi(HOST, { token: TOKEN });
  try {
    for (const r of requests) {
      for (const [what, authorization] of TRICKS) {
        const a = await send(s, r, { authorization });
        assertArmError(a, 401, 'SLUICE_API_UNAUTHORIZED', `${r.method} ${r.path}: ${what}`);
        assert.match(String(a.headers['www-authenticate']), /^Bearer realm="sluice"$/);
      }
      const none = await send(s, r, {});
      assertArmError(none, 401, 'SLUICE_API_UNAUTHORIZED', `${r.method} ${r.path}: no header`);
    }
    await assertNothingStored(s, 'after the tricks');
  } finally {
    await s.close();
  }
});

test('with a token: the exact token is accepted on every route, the scheme in any case', async () => {
  const s = await serveApi(HOST, { token: TOKEN, clock: 'manual' });
  try {
    for (const r of requests) {
      for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
        const a = await send(s, r, { authorization: `${scheme} ${TOKEN}` });
        assert.ok(passedTheGuard(a), `${r.method} ${r.path} (${scheme}): ${a.status} ${a.text}`);
      }
    }
    // Three PUTs of test-lb (created, then replaced twice) and the DELETE that found it; the
    // deployments of the same test-lb change nothing.
    assert.equal(s.store.generation, 4);
  } finally {
    await s.close();
  }
});

test('spaces and tabs after the whole header are not part of it (RFC 9110 §5.5), so they change nothing', async () => {
  // This is why a token may not end in whitespace: the server never sees those bytes.
  const s = await serveApi(HOST, { token: TOKEN });
  try {
    for (const tail of [' ', '  ', '\t', ' \t ']) {
      const a = await send(
        s,
        { method: 'GET', path: '/healthz', body: undefined },
        { authorization: `Bearer ${TOKEN}${tail}` },
      );
      assert.equal(a.status, 200, JSON.stringify(tail));
    }
  } finally {
    await s.close();
  }
});

test('a non-ASCII token matches when the client sends its UTF-8 bytes, and only then', async () => {
  const token = 'clé-\u00a0-ü';
  const s = await serveApi(HOST, { token });
  try {
    const utf8AsLatin1 = Buffer.from(token, 'utf8').toString('latin1');
    const ok = await send(
      s,
      { method: 'GET', path: '/healthz', body: undefined },
      { authorization: `Bearer ${utf8AsLatin1}` },
    );
    assert.equal(ok.status, 200);
    // The same characters as single latin1 bytes are other bytes.
    const latin1 = await send(
      s,
      { method: 'GET', path: '/healthz', body: undefined },
      { authorization: `Bearer ${token}` },
    );
    assert.equal(latin1.status, 401);
  } finally {
    await s.close();
  }
});

test('an empty or whitespace-only token cannot build the API at all', async () => {
  const store = new ResourceStore({
    compile: () => ({ valid: true, errors: [], warnings: [] }),
    apply: async () => {},
  });
  const runtime = noPlaneRuntime(new EventHub());
  for (const token of ['', ' ', '\u00a0\u00a0', '\t'])
    await assert.rejects(buildApi({ store, runtime, registry: new Registry(), token }), /the API token is/);
});

const FOREIGN_HOSTS = [
  'evil.example',
  'evil.example:9180',
  'EVIL.example',
  'localhost.',
  'app.localhost',
  'localhost.evil.example',
  '127.0.50.1.nip.io',
  '127.0.50.2', // loopback, but not the address the API listens on
  '[::1]',
  '0.0.0.0',
];

test('a PUT naming a foreign Host is a 421 with ARM body, and nothing is stored', async () => {
  const s = await serveApi(HOST);
  try {
    for (const host of FOREIGN_HOSTS) {
      const a = await send(s, { method: 'PUT', path: LB_PATH + V, body: lbBody() }, { host });
      assertArmError(a, 421, 'SLUICE_API_HOST_NOT_ALLOWED', host);
      assert.match(JSON.parse(a.text).error.message, /--api-allow-host/);
    }
    await assertNothingStored(s, 'after foreign hosts');
  } finally {
    await s.close();
  }
});

test('a foreign Host is refused on every route (unknown paths and methods too), before the token is even looked at', async () => {
  const s = await serveApi(HOST, { token: TOKEN });
  try {
    const all: RouteRequest[] = [
      ...requests,
      { method: 'PATCH', path: LB_PATH + V, body: '{}', stream: false },
      { method: 'GET', path: '/no/such/route', body: undefined, stream: false },
      { method: 'OPTIONS', path: LB_PATH + V, body: undefined, stream: false },
    ];
    for (const r of all) {
      for (const authorization of [undefined, `Bearer ${TOKEN}`]) {
        const a = await send(s, r, { host: 'evil.example', ...(authorization ? { authorization } : {}) });
        assertArmError(a, 421, 'SLUICE_API_HOST_NOT_ALLOWED', `${r.method} ${r.path}`);
        assert.equal(a.headers['www-authenticate'], undefined, 'the token was not looked at');
      }
    }
    await assertNothingStored(s, 'after foreign hosts with the token');
  } finally {
    await s.close();
  }
});

test('the address it listens on (any port, any spelling of it) and localhost are accepted', async () => {
  const s = await serveApi(HOST);
  try {
    for (const host of [
      HOST,
      `${HOST}:${s.port}`,
      `${HOST}:1`,
      'localhost',
      `localhost:${s.port}`,
      'LocalHost',
      '[::ffff:127.0.50.1]',
      `[::ffff:7f00:3201]:${s.port}`,
    ]) {
      const a = await send(s, { method: 'GET', path: '/healthz', body: undefined }, { host });
      assert.equal(a.status, 200, `${host}: ${a.text}`);
    }
  } finally {
    await s.close();
  }
});

test('a name given with --api-allow-host is accepted, for a PUT too; other names still are not', async () => {
  const s = await serveApi(HOST, { allowedHosts: ['sluice.test', '192.0.2.7', '2001:db8::7'] });
  try {
    const put = await send(
      s,
      { method: 'PUT', path: LB_PATH + V, body: lbBody() },
      { host: 'Sluice.Test:9180' },
    );
    assert.equal(put.status, 201, put.text);
    for (const host of ['192.0.2.7', '[2001:db8::7]:80', 'sluice.test']) {
      const a = await send(s, { method: 'GET', path: LB_PATH + V, body: undefined }, { host });
      assert.equal(a.status, 200, host);
    }
    for (const host of ['other.test', 'sluice.test.evil.example', '192.0.2.8']) {
      const a = await send(s, { method: 'DELETE', path: LB_PATH + V, body: undefined }, { host });
      assertArmError(a, 421, 'SLUICE_API_HOST_NOT_ALLOWED', host);
    }
    assert.equal(s.store.contents().resources.length, 1, 'the refused DELETEs deleted nothing');
  } finally {
    await s.close();
  }
});

test('Host on the wire: HTTP/1.0 without one is served; HTTP/1.1 without one, two of them, a malformed one, or a foreign absolute URI are refused', async () => {
  const s = await serveApi(HOST);
  try {
    const old = await raw(s, 'GET /healthz HTTP/1.0\r\n\r\n');
    assert.equal(old.status, 200, old.text);
    const cases: [string, string, number, string][] = [
      ['HTTP/1.1 without Host', 'GET /healthz HTTP/1.1\r\n\r\n', 400, 'SLUICE_API_BAD_REQUEST'],
      [
        'two Hosts',
        `GET /healthz HTTP/1.1\r\nHost: ${HOST}\r\nHost: evil.example\r\n\r\n`,
        400,
        'SLUICE_API_BAD_REQUEST',
      ],
      ['an empty Host', 'GET /healthz HTTP/1.1\r\nHost:\r\n\r\n', 400, 'SLUICE_API_BAD_REQUEST'],
      [
        'user info in Host',
        `GET /healthz HTTP/1.1\r\nHost: evil.example@${HOST}\r\n\r\n`,
        400,
        'SLUICE_API_BAD_REQUEST',
      ],
      ['a path in Host', `GET /healthz HTTP/1.1\r\nHost: ${HOST}/x\r\n\r\n`, 400, 'SLUICE_API_BAD_REQUEST'],
      [
        'a port out of range',
        `GET /healthz HTTP/1.1\r\nHost: ${HOST}:70000\r\n\r\n`,
        400,
        'SLUICE_API_BAD_REQUEST',
      ],
      [
        'a foreign absolute URI',
        `PUT http://evil.example${LB_PATH}${V} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(lbBody())}\r\n\r\n${lbBody()}`,
        421,
        'SLUICE_API_HOST_NOT_ALLOWED',
      ],
      [
        'HTTP/1.0 with a foreign Host',
        'GET /healthz HTTP/1.0\r\nHost: evil.example\r\n\r\n',
        421,
        'SLUICE_API_HOST_NOT_ALLOWED',
      ],
    ];
    for (const [what, text, status, code] of cases) {
      const a = await raw(s, text);
      assert.equal(a.status, status, `${what}: ${a.text}`);
      assert.equal(JSON.parse(a.text).error.code, code, what);
    }
    await assertNothingStored(s, 'after the raw requests');
  } finally {
    await s.close();
  }
});

test('no CORS headers: not on a preflight, not on an answer to a request with Origin', async () => {
  const s = await serveApi(HOST);
  try {
    const preflight = await send(
      s,
      { method: 'OPTIONS', path: LB_PATH + V, body: undefined },
      { origin: 'http://evil.example', 'access-control-request-method': 'PUT' },
    );
    assert.ok(preflight.status >= 400, `${preflight.status}`);
    const get = await send(
      s,
      { method: 'GET', path: '/healthz', body: undefined },
      { origin: 'http://evil.example' },
    );
    assert.equal(get.status, 200);
    for (const a of [preflight, get])
      assert.deepEqual(
        Object.keys(a.headers).filter((h) => h.startsWith('access-control-')),
        [],
      );
  } finally {
    await s.close();
  }
});

test('a PUT whose body is not JSON is a 415 (text/plain, a form, no Content-Type), after the token; JSON with a charset is fine', async () => {
  const s = await serveApi(HOST, { token: TOKEN });
  const auth = { authorization: `Bearer ${TOKEN}` };
  try {
    for (const type of [
      'text/plain',
      'text/plain; charset=utf-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/jsonx',
      'text/json',
    ]) {
      const a = await send(
        s,
        { method: 'PUT', path: LB_PATH + V, body: lbBody() },
        { ...auth, 'content-type': type },
      );
      assertArmError(a, 415, 'SLUICE_API_UNSUPPORTED_MEDIA_TYPE', type);
    }
    const untyped = await httpRequest({
      host: HOST,
      port: s.port,
      method: 'PUT',
      path: LB_PATH + V,
      headers: auth,
      body: lbBody(),
    });
    assertArmError(untyped, 415, 'SLUICE_API_UNSUPPORTED_MEDIA_TYPE', 'no Content-Type');
    const noToken = await send(
      s,
      { method: 'PUT', path: LB_PATH + V, body: lbBody() },
      { 'content-type': 'text/plain' },
    );
    assertArmError(noToken, 401, 'SLUICE_API_UNAUTHORIZED', 'text/plain without the token');
    await assertNothingStored(s, 'after the non-JSON bodies');
    const json = await send(
      s,
      { method: 'PUT', path: LB_PATH + V, body: lbBody() },
      { ...auth, 'content-type': 'application/json; charset=utf-8' },
    );
    assert.equal(json.status, 201, json.text);
    assert.equal(errorCode(json), undefined);
  } finally {
    await s.close();
  }
});
