import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { lbDocument } from '../../helpers/arm.js';
import { apiHarness, type ApiHarness } from '../../helpers/api.js';

/** Every route, error and auth case of the API, through fastify's inject (no sockets). */

const SUB = '00000000-0000-0000-0000-000000000000';
const LB_URL = `/subscriptions/${SUB}/resourceGroups/test/providers/Microsoft.Network/loadBalancers/test-lb`;
const V = '?api-version=2024-05-01';

function lb(idle = 4, port = 8080): Record<string, unknown> {
  return lbDocument({
    frontend: '127.0.7.1',
    backends: ['127.0.7.2'],
    rules: [{ name: 'web', frontendPort: port, backendPort: 80, idleTimeoutInMinutes: idle }],
  });
}

/** The API over an in-memory store (test/helpers/api.ts). */
function harness(token?: string): Promise<ApiHarness> {
  return apiHarness(token === undefined ? {} : { token });
}

test('PUT creates (201), GET returns the ARM shape with child ids, PUT again updates (200), list, DELETE', async () => {
  const h = await harness();
  try {
    const put = await h.api.inject({ method: 'PUT', url: LB_URL + V, payload: lb() });
    assert.equal(put.statusCode, 201, put.body);
    const body = put.json();
    assert.equal(body.id, LB_URL);
    assert.equal(body.name, 'test-lb');
    assert.equal(body.type, 'Microsoft.Network/loadBalancers');
    assert.match(body.etag, /^W\/".+"$/);
    assert.equal(body.properties.provisioningState, 'Succeeded');
    const rule = body.properties.loadBalancingRules[0];
    assert.equal(rule.id, `${LB_URL}/loadBalancingRules/web`);
    assert.equal(rule.type, 'Microsoft.Network/loadBalancers/loadBalancingRules');
    assert.equal(rule.properties.provisioningState, 'Succeeded');
    assert.equal(body.properties.frontendIPConfigurations[0].id, `${LB_URL}/frontendIPConfigurations/fe`);
    assert.equal(h.applied.length, 1);
    assert.equal(h.applied[0]!.loadBalancers[0]!.loadBalancingRules[0]!.idleTimeout.minutes, 4);
    assert.equal(h.persisted.at(-1)?.generation, 1);

    // Paths are case-insensitive, as in ARM.
    const get = await h.api.inject({ method: 'GET', url: LB_URL.toLowerCase() + V });
    assert.equal(get.statusCode, 200);
    assert.equal(get.json().etag, body.etag);

    // A GET answer can be PUT back: its ids, etags and provisioningState are accepted.
    const again = await h.api.inject({
      method: 'PUT',
      url: LB_URL + V,
      payload: get.json() as Record<string, unknown>,
    });
    assert.equal(again.statusCode, 200, again.body);
    assert.notEqual(again.json().etag, body.etag);

    const list = await h.api.inject({
      method: 'GET',
      url: `/subscriptions/${SUB}/resourceGroups/test/providers/Microsoft.Network/loadBalancers${V}`,
    });
    assert.equal(list.statusCode, 200);
    assert.deepEqual(
      list.json().value.map((r: { id: string }) => r.id),
      [LB_URL],
    );
    const subList = await h.api.inject({
      method: 'GET',
      url: `/subscriptions/${SUB}/providers/Microsoft.Network/loadBalancers${V}`,
    });
    assert.equal(subList.json().value.length, 1);
    const otherGroup = await h.api.inject({
      method: 'GET',
      url: `/subscriptions/${SUB}/resourceGroups/other/providers/Microsoft.Network/loadBalancers${V}`,
    });
    assert.deepEqual(otherGroup.json().value, []);

    const del = await h.api.inject({ method: 'DELETE', url: LB_URL + V });
    assert.equal(del.statusCode, 200);
    assert.equal(h.applied.at(-1)!.loadBalancers.length, 0);
    const gone = await h.api.inject({ method: 'GET', url: LB_URL + V });
    assert.equal(gone.statusCode, 404);
    assert.equal(gone.json().error.code, 'SLUICE_API_NOT_FOUND');
    const delAgain = await h.api.inject({ method: 'DELETE', url: LB_URL + V });
    assert.equal(delAgain.statusCode, 204);
  } finally {
    await h.api.close();
  }
});

test('public IPs feed precedence: a PUT of the IP changes the load balancer it fronts', async () => {
  const h = await harness();
  const ipUrl = `/subscriptions/${SUB}/resourceGroups/test/providers/Microsoft.Network/publicIPAddresses/pip`;
  const doc = lb();
  const props = doc['properties'] as { frontendIPConfigurations: { properties: Record<string, unknown> }[] };
  props.frontendIPConfigurations[0]!.properties = { publicIPAddress: { id: ipUrl } };
  try {
    const ip = await h.api.inject({
      method: 'PUT',
      url: ipUrl + V,
      payload: {
        sku: { name: 'Standard' },
        properties: { ipAddress: '127.0.7.9', idleTimeoutInMinutes: 10 },
      },
    });
    assert.equal(ip.statusCode, 201, ip.body);
    const put = await h.api.inject({ method: 'PUT', url: LB_URL + V, payload: doc });
    assert.equal(put.statusCode, 201, put.body);
    assert.equal(h.applied.at(-1)!.loadBalancers[0]!.loadBalancingRules[0]!.idleTimeout.minutes, 10);
    const ip2 = await h.api.inject({
      method: 'PUT',
      url: ipUrl + V,
      payload: {
        sku: { name: 'Standard' },
        properties: { ipAddress: '127.0.7.9', idleTimeoutInMinutes: 20 },
      },
    });
    assert.equal(ip2.statusCode, 200);
    assert.equal(h.applied.at(-1)!.loadBalancers[0]!.loadBalancingRules[0]!.idleTimeout.minutes, 20);
    // Deleting the IP would leave the load balancer pointing nowhere: rejected, named in details.
    const del = await h.api.inject({ method: 'DELETE', url: ipUrl + V });
    assert.equal(del.statusCode, 400, del.body);
    const err = del.json().error;
    assert.equal(err.code, 'SLUICE_API_VALIDATION');
    assert.ok(
      err.details.some(
        (d: { code: string; target: string }) =>
          d.code === 'SLUICE_CONFIG_REFERENCE_NOT_FOUND' && d.target.startsWith(`${LB_URL}#/properties/`),
      ),
      JSON.stringify(err),
    );
    assert.equal((await h.api.inject({ method: 'GET', url: ipUrl + V })).statusCode, 200);
  } finally {
    await h.api.close();
  }
});

test('an invalid PUT is a 400 with the validation codes in details, and changes nothing', async () => {
  const h = await harness();
  try {
    const ok = await h.api.inject({ method: 'PUT', url: LB_URL + V, payload: lb(4) });
    const etag = ok.json().etag;
    const bad = await h.api.inject({ method: 'PUT', url: LB_URL + V, payload: lb(101) });
    assert.equal(bad.statusCode, 400);
    const err = bad.json().error;
    assert.equal(err.code, 'SLUICE_API_VALIDATION');
    assert.equal(err.target, LB_URL);
    assert.deepEqual(
      err.details.map((d: { code: string; target: string }) => [d.code, d.target]),
      [
        [
          'SLUICE_CONFIG_IDLE_TIMEOUT_RANGE',
          '/properties/loadBalancingRules/0/properties/idleTimeoutInMinutes',
        ],
      ],
    );
    assert.equal(h.applied.length, 1, 'nothing applied');
    assert.equal(h.persisted.length, 1, 'nothing written');
    assert.equal((await h.api.inject({ method: 'GET', url: LB_URL + V })).json().etag, etag);
  } finally {
    await h.api.close();
  }
});

test('a valid PUT the data plane cannot serve is a 409 and changes nothing', async () => {
  const h = await harness();
  try {
    const ok = await h.api.inject({ method: 'PUT', url: LB_URL + V, payload: lb(4) });
    h.failApply.next = true;
    const r = await h.api.inject({ method: 'PUT', url: LB_URL + V, payload: lb(5) });
    assert.equal(r.statusCode, 409);
    assert.equal(r.json().error.code, 'SLUICE_API_APPLY_FAILED');
    assert.match(r.json().error.message, /already in use/);
    assert.equal((await h.api.inject({ method: 'GET', url: LB_URL + V })).json().etag, ok.json().etag);
    assert.equal(h.persisted.length, 1);
  } finally {
    await h.api.close();
  }
});

test('If-Match and If-None-Match: 412 on mismatch, success on match', async () => {
  const h = await harness();
  try {
    const missing = await h.api.inject({
      method: 'PUT',
      url: LB_URL + V,
      payload: lb(),
      headers: { 'if-match': '*' },
    });
    assert.equal(missing.statusCode, 412);
    assert.equal(missing.json().error.code, 'SLUICE_API_PRECONDITION_FAILED');
    const created = await h.api.inject({
      method: 'PUT',
      url: LB_URL + V,
      payload: lb(),
      headers: { 'if-none-match': '*' },
    });
    assert.equal(created.statusCode, 201);
    const etag = created.json().etag as string;
    const exists = await h.api.inject({
      method: 'PUT',
      url: LB_URL + V,
      payload: lb(),
      headers: { 'if-none-match': '*' },
    });
    assert.equal(exists.statusCode, 412);
    const stale = await h.api.inject({
      method: 'PUT',
      url: LB_URL + V,
      payload: lb(5),
      headers: { 'if-match': 'W/"stale"' },
    });
    assert.equal(stale.statusCode, 412);
    const staleDelete = await h.api.inject({
      method: 'DELETE',
      url: LB_URL + V,
      headers: { 'if-match': 'W/"stale"' },
    });
    assert.equal(staleDelete.statusCode, 412);
    const good = await h.api.inject({
      method: 'PUT',
      url: LB_URL + V,
      payload: lb(5),
      headers: { 'if-match': etag },
    });
    assert.equal(good.statusCode, 200);
    assert.equal(h.applied.length, 2);
  } finally {
    await h.api.close();
  }
});

test('api-version: missing or malformed is a 400 as in ARM', async () => {
  const h = await harness();
  try {
    for (const method of ['GET', 'PUT', 'DELETE'] as const) {
      const r = await h.api.inject({ method, url: LB_URL, ...(method === 'PUT' ? { payload: lb() } : {}) });
      assert.equal(r.statusCode, 400, method);
      assert.equal(r.json().error.code, 'SLUICE_API_MISSING_API_VERSION');
    }
    const bad = await h.api.inject({ method: 'GET', url: `${LB_URL}?api-version=latest` });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'SLUICE_API_INVALID_API_VERSION');
    const preview = await h.api.inject({ method: 'GET', url: `${LB_URL}?api-version=2024-01-01-preview` });
    assert.equal(preview.statusCode, 404);
    assert.equal(h.applied.length, 0);
  } finally {
    await h.api.close();
  }
});

test('malformed requests: not JSON, not an object, too large, unknown type or route', async () => {
  const h = await harness();
  try {
    const notJson = await h.api.inject({
      method: 'PUT',
      url: LB_URL + V,
      payload: '{"properties":',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(notJson.statusCode, 400);
    assert.equal(notJson.json().error.code, 'SLUICE_API_BAD_REQUEST');
    const array = await h.api.inject({ method: 'PUT', url: LB_URL + V, payload: [lb()] });
    assert.equal(array.statusCode, 400);
    assert.equal(array.json().error.code, 'SLUICE_API_BAD_REQUEST');
    const big = await h.api.inject({
      method: 'PUT',
      url: LB_URL + V,
      payload: JSON.stringify({ properties: {}, tags: { pad: 'x'.repeat(1024 * 1024) } }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(big.statusCode, 413);
    assert.equal(big.json().error.code, 'SLUICE_API_BODY_TOO_LARGE');
    const type = await h.api.inject({
      method: 'GET',
      url: `/subscriptions/${SUB}/resourceGroups/test/providers/Microsoft.Network/virtualNetworks/v${V}`,
    });
    assert.equal(type.statusCode, 404);
    assert.equal(type.json().error.code, 'SLUICE_API_NOT_FOUND');
    const route = await h.api.inject({ method: 'GET', url: '/nothing/here' });
    assert.equal(route.statusCode, 404);
    assert.deepEqual(Object.keys(route.json().error).sort(), ['code', 'details', 'message']);
    const limit = await h.api.inject({ method: 'GET', url: '/sluice/v1/flows?limit=-1' });
    assert.equal(limit.statusCode, 400);
    const types = await h.api.inject({ method: 'GET', url: '/sluice/v1/events?types=flow.nope' });
    assert.equal(types.statusCode, 400);
    assert.match(types.json().error.message, /flow\.nope/);
    assert.equal(h.applied.length, 0);
  } finally {
    await h.api.close();
  }
});

test('healthz, metrics and flows answer', async () => {
  const h = await harness();
  try {
    const health = await h.api.inject({ method: 'GET', url: '/healthz' });
    assert.equal(health.statusCode, 200);
    assert.equal(health.json().status, 'ok');
    const metrics = await h.api.inject({ method: 'GET', url: '/metrics' });
    assert.equal(metrics.statusCode, 200);
    assert.match(metrics.headers['content-type'] as string, /text\/plain/);
    assert.match(metrics.body, /# TYPE sluice_flow_created_total counter/);
    const flows = await h.api.inject({ method: 'GET', url: '/sluice/v1/flows' });
    assert.deepEqual(flows.json(), { clock: { mode: 'system', now: 0 }, timeScale: 1, total: 0, flows: [] });
  } finally {
    await h.api.close();
  }
});

test('with a token, every route needs Authorization: Bearer TOKEN', async () => {
  const h = await harness('s3cret');
  try {
    for (const url of ['/healthz', '/metrics', '/sluice/v1/flows', '/sluice/v1/events', LB_URL + V]) {
      const none = await h.api.inject({ method: 'GET', url });
      assert.equal(none.statusCode, 401, url);
      assert.equal(none.json().error.code, 'SLUICE_API_UNAUTHORIZED');
      assert.match(none.headers['www-authenticate'] as string, /^Bearer/);
      const wrong = await h.api.inject({ method: 'GET', url, headers: { authorization: 'Bearer s3cre' } });
      assert.equal(wrong.statusCode, 401, url);
    }
    const put = await h.api.inject({ method: 'PUT', url: LB_URL + V, payload: lb() });
    assert.equal(put.statusCode, 401);
    assert.equal(h.applied.length, 0);
    const ok = await h.api.inject({
      method: 'GET',
      url: '/healthz',
      headers: { authorization: 'Bearer s3cret' },
    });
    assert.equal(ok.statusCode, 200);
    const okPut = await h.api.inject({
      method: 'PUT',
      url: LB_URL + V,
      payload: lb(),
      headers: { authorization: 'bearer s3cret' },
    });
    assert.equal(okPut.statusCode, 201);
  } finally {
    await h.api.close();
  }
});

test('listing in a resource group and in a subscription, for every resource type', async () => {
  const h = await harness();
  const group = (g: string, type: string): string =>
    `/subscriptions/${SUB}/resourceGroups/${g}/providers/Microsoft.Network/${type}`;
  // The load balancer's own references name it test-lb in group test.
  const nameOf = (g: string, type: string): string => (type === 'loadBalancers' ? 'test-lb' : `${g}-one`);
  const bodies: Record<string, Record<string, unknown>> = {
    publicIPAddresses: { sku: { name: 'Standard' }, properties: { ipAddress: '127.0.7.20' } },
    natGateways: { sku: { name: 'Standard' }, properties: { idleTimeoutInMinutes: 10 } },
    networkInterfaces: {
      properties: {
        ipConfigurations: [{ name: 'ipconfig1', properties: { privateIPAddress: '127.0.7.21' } }],
      },
    },
    loadBalancers: lb(),
  };
  try {
    for (const [type, body] of Object.entries(bodies)) {
      for (const g of ['test', 'other']) {
        const r = await h.api.inject({
          method: 'PUT',
          url: `${group(g, type)}/${nameOf(g, type)}${V}`,
          payload: body,
        });
        assert.equal(r.statusCode, 201, `${type} in ${g}: ${r.body}`);
        if (type === 'loadBalancers') break; // one frontend port serves one load balancer
      }
    }
    for (const type of Object.keys(bodies)) {
      const list = await h.api.inject({ method: 'GET', url: group('test', type) + V });
      assert.equal(list.statusCode, 200, type);
      const value = list.json().value as {
        id: string;
        type: string;
        etag: string;
        properties: Record<string, unknown>;
      }[];
      assert.deepEqual(
        value.map((r) => r.id),
        [`${group('test', type)}/${nameOf('test', type)}`],
        type,
      );
      assert.equal(value[0]!.type, `Microsoft.Network/${type}`);
      assert.match(value[0]!.etag, /^W\/"/);
      assert.equal(value[0]!.properties['provisioningState'], 'Succeeded');
      const all = await h.api.inject({
        method: 'GET',
        url: `/subscriptions/${SUB}/providers/Microsoft.Network/${type}${V}`,
      });
      assert.equal(all.json().value.length, type === 'loadBalancers' ? 1 : 2, type);
    }
    const noVersion = await h.api.inject({ method: 'GET', url: group('test', 'natGateways') });
    assert.equal(noVersion.statusCode, 400);
    assert.equal(noVersion.json().error.code, 'SLUICE_API_MISSING_API_VERSION');
    const unknown = await h.api.inject({ method: 'GET', url: group('test', 'virtualNetworks') + V });
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json().error.code, 'SLUICE_API_NOT_FOUND');
  } finally {
    await h.api.close();
  }
});

test('DELETE with If-Match: the current etag deletes, a stale one or a missing resource is a 412', async () => {
  const h = await harness();
  try {
    const created = await h.api.inject({ method: 'PUT', url: LB_URL + V, payload: lb() });
    const etag = created.json().etag as string;
    const updated = await h.api.inject({ method: 'PUT', url: LB_URL + V, payload: lb(5) });
    const stale = await h.api.inject({ method: 'DELETE', url: LB_URL + V, headers: { 'if-match': etag } });
    assert.equal(stale.statusCode, 412);
    assert.equal(stale.json().error.code, 'SLUICE_API_PRECONDITION_FAILED');
    assert.equal(stale.json().error.target, LB_URL);
    assert.equal((await h.api.inject({ method: 'GET', url: LB_URL + V })).statusCode, 200, 'still there');
    const current = updated.json().etag as string;
    const del = await h.api.inject({ method: 'DELETE', url: LB_URL + V, headers: { 'if-match': current } });
    assert.equal(del.statusCode, 200, del.body);
    assert.equal(h.applied.at(-1)!.loadBalancers.length, 0);
    const missing = await h.api.inject({ method: 'DELETE', url: LB_URL + V, headers: { 'if-match': '*' } });
    assert.equal(missing.statusCode, 412);
  } finally {
    await h.api.close();
  }
});

test('a body that is not JSON is a 415 in ARM shape; a body over 1 MiB sent in chunks is a 413', async () => {
  const h = await harness();
  try {
    const text = await h.api.inject({
      method: 'PUT',
      url: LB_URL + V,
      payload: 'name=test-lb',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(text.statusCode, 415);
    assert.equal(text.json().error.code, 'SLUICE_API_UNSUPPORTED_MEDIA_TYPE');
    // No Content-Length: the limit holds while the body streams in.
    const chunks = Readable.from(
      (function* () {
        yield '{"properties":{},"tags":{"pad":"';
        for (let i = 0; i < 40; i++) yield 'x'.repeat(32 * 1024);
        yield '"}}';
      })(),
    );
    const big = await h.api.inject({
      method: 'PUT',
      url: LB_URL + V,
      payload: chunks,
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(big.statusCode, 413);
    assert.equal(big.json().error.code, 'SLUICE_API_BODY_TOO_LARGE');
    assert.equal(h.applied.length, 0);
  } finally {
    await h.api.close();
  }
});

test('a token longer or shorter than the real one, or with the right prefix, is refused the same way', async () => {
  const h = await harness('s3cret');
  try {
    for (const guess of ['s', 's3cret-and-more', 's3cre', 'S3CRET', '']) {
      const r = await h.api.inject({
        method: 'GET',
        url: '/healthz',
        headers: { authorization: `Bearer ${guess}` },
      });
      assert.equal(r.statusCode, 401, guess);
      assert.equal(r.json().error.code, 'SLUICE_API_UNAUTHORIZED');
    }
  } finally {
    await h.api.close();
  }
});

test('a path that exists asked with another method is a 405 with Allow; an unknown path a 404', async () => {
  const h = await harness();
  try {
    const patch = await h.api.inject({ method: 'PATCH', url: LB_URL + V, payload: { tags: {} } });
    assert.equal(patch.statusCode, 405);
    assert.equal(patch.json().error.code, 'SLUICE_API_METHOD_NOT_ALLOWED');
    assert.equal(patch.headers['allow'], 'GET, PUT, DELETE, HEAD');
    const post = await h.api.inject({ method: 'POST', url: '/sluice/v1/flows' });
    assert.equal(post.statusCode, 405);
    assert.equal(post.headers['allow'], 'GET, HEAD');
    const list = await h.api.inject({
      method: 'DELETE',
      url: `/subscriptions/${SUB}/resourceGroups/test/providers/Microsoft.Network/loadBalancers${V}`,
    });
    assert.equal(list.statusCode, 405);
    const nowhere = await h.api.inject({ method: 'POST', url: '/sluice/v2/flows' });
    assert.equal(nowhere.statusCode, 404);
    assert.equal(nowhere.json().error.code, 'SLUICE_API_NOT_FOUND');
    assert.equal(h.applied.length, 0);
  } finally {
    await h.api.close();
  }
});
