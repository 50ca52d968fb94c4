import { test } from 'node:test';
import assert from 'node:assert/strict';
import { API_VERSION as V, apiHarness, resourceUrl, type ApiHarness } from '../../helpers/api.js';
import { lbDocument } from '../../helpers/arm.js';

/**
 * What the API refuses before or while it compiles: a second load balancer on a frontend
 * already served (409, nothing changed), bodies nested too deep, names ARM would refuse, and
 * timers Azure would refuse (400).
 */

interface ArmError {
  error: {
    code: string;
    message: string;
    target?: string;
    details: { code: string; message: string; target?: string }[];
  };
}

function lb(name: string, port: number, frontend = '127.0.0.10'): Record<string, unknown> {
  return lbDocument({
    name,
    frontend,
    backends: ['127.0.0.11'],
    rules: [{ name: 'web', frontendPort: port, backendPort: 80 }],
  });
}

/** A load balancer whose one frontend is the public IP `pip` (in resource group `test`). */
function publicLb(name: string, port: number, pip: string): Record<string, unknown> {
  const d = lb(name, port);
  const props = d['properties'] as { frontendIPConfigurations: { properties: Record<string, unknown> }[] };
  props.frontendIPConfigurations[0]!.properties = {
    publicIPAddress: { id: resourceUrl('publicIPAddresses', pip) },
  };
  return d;
}

async function put(h: ApiHarness, type: string, name: string, body: unknown) {
  return h.api.inject({
    method: 'PUT',
    url: resourceUrl(type, name) + V,
    payload: body as Record<string, unknown>,
  });
}

/** What a refused change must leave as it was. */
function observe(h: ApiHarness): unknown {
  return {
    generation: h.store.generation,
    snapshot: h.store.snapshot,
    applied: h.applied.length,
    persisted: h.persisted.length,
    contents: JSON.stringify(h.store.contents()),
  };
}

test('a second load balancer on the address, protocol and port of the first: 409 naming both, and nothing changed', async () => {
  const h = await apiHarness();
  try {
    assert.equal((await put(h, 'loadBalancers', 'lb-a', lb('lb-a', 8080))).statusCode, 201);
    const before = observe(h);
    const res = await put(h, 'loadBalancers', 'lb-b', lb('lb-b', 8080));
    assert.equal(res.statusCode, 409, res.body);
    const body = res.json() as ArmError;
    assert.equal(body.error.code, 'SLUICE_API_CONFLICT');
    assert.equal(body.error.target, resourceUrl('loadBalancers', 'lb-b'));
    const conflict = body.error.details.find((d) => d.code === 'SLUICE_CONFIG_FRONTEND_CONFLICT');
    assert.ok(conflict, res.body);
    assert.equal(conflict.target, '/properties/loadBalancingRules/0/properties/frontendPort');
    assert.match(
      conflict.message,
      /loadBalancers 'lb-b' .* and loadBalancers 'lb-a' .* 127\.0\.0\.10 Tcp port 8080/,
    );
    assert.deepEqual(observe(h), before);
    assert.equal(h.rejected.length, 1);
    const get = await h.api.inject({ method: 'GET', url: resourceUrl('loadBalancers', 'lb-b') + V });
    assert.equal(get.statusCode, 404);

    // Another port is no conflict; moving the first onto it then is one, and the first stays as it was.
    assert.equal((await put(h, 'loadBalancers', 'lb-b', lb('lb-b', 8081))).statusCode, 201);
    const etagA = (
      await h.api.inject({ method: 'GET', url: resourceUrl('loadBalancers', 'lb-a') + V })
    ).json().etag as string;
    const moved = await put(h, 'loadBalancers', 'lb-a', lb('lb-a', 8081));
    assert.equal(moved.statusCode, 409, moved.body);
    const conflictA = (moved.json() as ArmError).error.details.find(
      (d) => d.code === 'SLUICE_CONFIG_FRONTEND_CONFLICT',
    );
    // lb-a comes first in the store, so the conflict is reported in lb-b, a resource of its own.
    assert.equal(
      conflictA?.target,
      `${resourceUrl('loadBalancers', 'lb-b')}#/properties/loadBalancingRules/0/properties/frontendPort`,
    );
    const after = await h.api.inject({ method: 'GET', url: resourceUrl('loadBalancers', 'lb-a') + V });
    assert.equal(after.json().etag, etagA);
    assert.equal(after.json().properties.loadBalancingRules[0].properties.frontendPort, 8080);
  } finally {
    await h.api.close();
  }
});

test('frontends of two load balancers on one public IP: 409 whatever their ports', async () => {
  const h = await apiHarness();
  try {
    const pip = await put(h, 'publicIPAddresses', 'shared', { properties: { ipAddress: '20.1.2.3' } });
    assert.equal(pip.statusCode, 201, pip.body);
    assert.equal((await put(h, 'loadBalancers', 'lb-a', publicLb('lb-a', 80, 'shared'))).statusCode, 201);
    const before = observe(h);
    const res = await put(h, 'loadBalancers', 'lb-b', publicLb('lb-b', 443, 'shared'));
    assert.equal(res.statusCode, 409, res.body);
    const body = res.json() as ArmError;
    assert.equal(body.error.code, 'SLUICE_API_CONFLICT');
    assert.deepEqual(
      body.error.details.map((d) => [d.code, d.target]),
      [
        [
          'SLUICE_CONFIG_FRONTEND_CONFLICT',
          '/properties/frontendIPConfigurations/0/properties/publicIPAddress/id',
        ],
      ],
    );
    assert.match(body.error.details[0]!.message, /public IP address 'shared'/);
    assert.deepEqual(observe(h), before);
  } finally {
    await h.api.close();
  }
});

test('a body nested 10,000 levels deep is 400 with SLUICE_CONFIG_TOO_DEEP and its path, never 500; 64 levels are read', async () => {
  const h = await apiHarness();
  try {
    const url = resourceUrl('loadBalancers', 'deep') + V;
    const base = JSON.stringify(lb('deep', 8080)).slice(0, -1);
    for (const [open, close] of [
      ['{"a":', '}'],
      ['[', ']'],
    ] as const) {
      const payload = `${base},"tags":{"t":${open.repeat(10_000)}1${close.repeat(10_000)}}}`;
      const res = await h.api.inject({
        method: 'PUT',
        url,
        payload,
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.statusCode, 400, res.body.slice(0, 500));
      const body = res.json() as ArmError;
      assert.equal(body.error.code, 'SLUICE_API_VALIDATION');
      assert.deepEqual(
        body.error.details.map((d) => d.code),
        ['SLUICE_CONFIG_TOO_DEEP'],
      );
      assert.match(body.error.details[0]!.target ?? '', /^\/tags\/t(\/(a|0))+$/);
    }
    // The body is level 1 and tags level 2: 62 more levels fit, 63 do not.
    const tagsOf = (levels: number): unknown => {
      let v: unknown = {};
      for (let i = 1; i < levels; i++) v = { a: v };
      return v;
    };
    const fits = { ...lb('deep', 8080), tags: tagsOf(63) };
    assert.equal((await h.api.inject({ method: 'PUT', url, payload: fits })).statusCode, 201);
    const over = await h.api.inject({
      method: 'PUT',
      url,
      payload: { ...lb('deep', 8080), tags: tagsOf(64) },
    });
    assert.equal(over.statusCode, 400);
    assert.equal((over.json() as ArmError).error.details[0]!.target, `/tags${'/a'.repeat(63)}`);
    assert.equal(h.store.generation, 1);
  } finally {
    await h.api.close();
  }
});

test('a name in the path that ARM would refuse, percent-encoded "/" among them: 400 SLUICE_CONFIG_INVALID_NAME on every method', async () => {
  const h = await apiHarness();
  try {
    for (const encoded of [
      'lb%2Fbackend',
      'lb%2fprobes%2Fp',
      // ("%2E%2E" would be resolved as ".." by the client before it is sent.)
      '.lb',
      'lb%00x',
      'x'.repeat(81),
      'lb.',
      '-lb',
      'l%20b',
    ]) {
      for (const method of ['PUT', 'GET', 'DELETE'] as const) {
        const res = await h.api.inject({
          method,
          url: resourceUrl('loadBalancers', encoded) + V,
          ...(method === 'PUT' ? { payload: lb('x', 8080) } : {}),
        });
        assert.equal(res.statusCode, 400, `${method} ${encoded}: ${res.body}`);
        const body = res.json() as ArmError;
        assert.equal(body.error.code, 'SLUICE_CONFIG_INVALID_NAME', encoded);
        assert.equal(body.error.details[0]?.code, 'SLUICE_CONFIG_INVALID_NAME');
        assert.match(body.error.message, /1-80 letters, digits/);
        // The router has decoded the name: what is refused is the "/" it would put into the id.
        if (encoded.includes('%2F')) assert.match(body.error.message, /contains "\/"/);
      }
    }
    assert.equal(h.store.contents().resources.length, 0);
    const longest = 'a'.repeat(79) + '_';
    assert.equal((await put(h, 'loadBalancers', longest, lb(longest, 8080))).statusCode, 201);
  } finally {
    await h.api.close();
  }
});

test('names inside the body and timers Azure would refuse: 400 with each error located', async () => {
  const h = await apiHarness();
  try {
    const d = lbDocument({
      name: 'lb',
      frontend: '127.0.0.10',
      backends: ['127.0.0.11'],
      probes: [{ name: 'slow', port: 80, intervalInSeconds: 3_000_000 }],
      rules: [{ name: 'a/b', frontendPort: 80, backendPort: 80 }],
    });
    const pools = (d['properties'] as { backendAddressPools: { properties: Record<string, unknown> }[] })
      .backendAddressPools;
    pools[0]!.properties['drainPeriodInSeconds'] = 3_000_000;
    const res = await put(h, 'loadBalancers', 'lb', d);
    assert.equal(res.statusCode, 400, res.body);
    const body = res.json() as ArmError;
    assert.equal(body.error.code, 'SLUICE_API_VALIDATION');
    assert.deepEqual(body.error.details.map((e) => `${e.code} ${e.target}`).sort(), [
      'SLUICE_CONFIG_DRAIN_PERIOD /properties/backendAddressPools/0/properties/drainPeriodInSeconds',
      'SLUICE_CONFIG_INVALID_NAME /properties/loadBalancingRules/0/name',
      'SLUICE_CONFIG_PROBE_INTERVAL /properties/probes/0/properties/intervalInSeconds',
    ]);
    assert.equal(h.store.generation, 0);
  } finally {
    await h.api.close();
  }
});
