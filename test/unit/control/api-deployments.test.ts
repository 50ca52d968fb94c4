import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { DeploymentView } from '../../../src/control/server.js';
import { changedProperties } from '../../../src/control/store.js';
import type { RuntimeSnapshot } from '../../../src/core/snapshot.js';
import { lbDocument } from '../../helpers/arm.js';
import { API_VERSION as V, apiHarness, resourceUrl, type ApiHarness } from '../../helpers/api.js';

/**
 * PUT .../providers/Microsoft.Resources/deployments/NAME: every resource of a template applied
 * as one change, or on any error none of them (fastify inject, no sockets).
 */

const SUB = '00000000-0000-0000-0000-000000000000';
const DEPLOY_URL = `/subscriptions/${SUB}/resourceGroups/test/providers/Microsoft.Resources/deployments/web`;
const LB_URL = resourceUrl('loadBalancers', 'test-lb');
const IP_URL = resourceUrl('publicIPAddresses', 'lb-pip');

interface ArmError {
  error: { code: string; message: string; target?: string; details: { code: string; target?: string }[] };
}

/** The API over an in-memory store (test/helpers/api.ts). */
function harness(token?: string): Promise<ApiHarness> {
  return apiHarness(token === undefined ? {} : { token });
}

/** A public IP and the load balancer it fronts, in ARM's nested shape. */
function pair(opts: { pipIdle?: number; ruleIdle?: number; port?: number; lbName?: string } = {}): unknown[] {
  const name = opts.lbName ?? 'test-lb';
  const lb = lbDocument({
    name,
    frontend: '127.0.7.1',
    backends: ['127.0.7.2'],
    rules: [
      {
        name: 'web',
        frontendPort: opts.port ?? 8080,
        backendPort: 80,
        idleTimeoutInMinutes: opts.ruleIdle ?? 4,
      },
    ],
  });
  const props = lb['properties'] as { frontendIPConfigurations: { properties: Record<string, unknown> }[] };
  props.frontendIPConfigurations[0]!.properties = { publicIPAddress: { id: IP_URL } };
  const pip = {
    type: 'Microsoft.Network/publicIPAddresses',
    name: 'lb-pip',
    apiVersion: '2024-05-01',
    sku: { name: 'Standard' },
    properties: { ipAddress: '127.0.7.9', idleTimeoutInMinutes: opts.pipIdle ?? 10 },
  };
  return [lb, pip];
}

function deployment(resources: unknown, extra: Record<string, unknown> = {}): unknown {
  return { properties: { mode: 'Incremental', template: { resources }, ...extra } };
}

async function deploy(h: ApiHarness, resources: unknown, url = DEPLOY_URL) {
  return h.api.inject({ method: 'PUT', url: url + V, payload: deployment(resources) as object });
}

async function get(
  h: ApiHarness,
  url: string,
): Promise<{ etag: string; properties: Record<string, unknown> }> {
  const res = await h.api.inject({ method: 'GET', url: url + V });
  assert.equal(res.statusCode, 200, res.body);
  return res.json();
}

function ruleTimeout(s: RuntimeSnapshot): number {
  return s.loadBalancers[0]!.loadBalancingRules[0]!.idleTimeout.minutes;
}

test('a deployment adds every resource as one generation, stored once; its answer says what changed', async () => {
  const h = await harness();
  try {
    const res = await deploy(h, pair());
    assert.equal(res.statusCode, 200, res.body);
    const view = res.json() as DeploymentView;
    assert.equal(view.id, DEPLOY_URL);
    assert.equal(view.type, 'Microsoft.Resources/deployments');
    assert.equal(view.properties.provisioningState, 'Succeeded');
    assert.equal(view.properties.generation, 1);
    assert.deepEqual(
      view.properties.changes.map((c) => [c.id, c.change, c.changedProperties]),
      [
        [LB_URL, 'added', []],
        [IP_URL, 'added', []],
      ],
    );
    assert.deepEqual(
      view.properties.outputResources.map((r) => r.id),
      [LB_URL, IP_URL],
    );
    assert.equal(h.applied.length, 1);
    assert.equal(h.persisted.length, 1);
    assert.equal(h.persisted[0]!.generation, 1);
    assert.equal(h.persisted[0]!.resources.length, 2);
    assert.equal(ruleTimeout(h.applied[0]!), 10, 'B9: the public IP decides');
    const ip = await get(h, IP_URL);
    assert.equal(ip.etag, view.properties.changes[1]!.etag);
    // apiVersion is an instruction to ARM, not part of the resource.
    assert.equal('apiVersion' in (ip as Record<string, unknown>), false);
    assert.equal(ip.properties['idleTimeoutInMinutes'], 10);
  } finally {
    await h.api.close();
  }
});

test('the same template again changes nothing: no apply, no write, the etags stay', async () => {
  const h = await harness();
  try {
    const first = (await deploy(h, pair())).json() as DeploymentView;
    const again = await deploy(h, pair());
    assert.equal(again.statusCode, 200, again.body);
    const view = again.json() as DeploymentView;
    assert.deepEqual(
      view.properties.changes.map((c) => c.change),
      ['unchanged', 'unchanged'],
    );
    assert.deepEqual(
      view.properties.changes.map((c) => c.etag),
      first.properties.changes.map((c) => c.etag),
    );
    assert.equal(view.properties.generation, 1);
    assert.equal(h.applied.length, 1);
    assert.equal(h.persisted.length, 1);
  } finally {
    await h.api.close();
  }
});

test('a changed resource names its changed top-level properties; an unchanged one keeps its etag', async () => {
  const h = await harness();
  try {
    const first = (await deploy(h, pair())).json() as DeploymentView;
    const res = await deploy(h, pair({ pipIdle: 20 }));
    assert.equal(res.statusCode, 200, res.body);
    const view = res.json() as DeploymentView;
    assert.deepEqual(
      view.properties.changes.map((c) => [c.change, c.changedProperties]),
      [
        ['unchanged', []],
        ['changed', ['idleTimeoutInMinutes']],
      ],
    );
    assert.equal(view.properties.changes[0]!.etag, first.properties.changes[0]!.etag);
    assert.notEqual(view.properties.changes[1]!.etag, first.properties.changes[1]!.etag);
    assert.equal(view.properties.generation, 2);
    assert.equal(ruleTimeout(h.applied.at(-1)!), 20);
    const both = await deploy(h, [...pair({ pipIdle: 20, port: 8081 }).slice(0, 1)]);
    assert.deepEqual(
      (both.json() as DeploymentView).properties.changes.map((c) => [c.change, c.changedProperties]),
      [['changed', ['loadBalancingRules']]],
    );
  } finally {
    await h.api.close();
  }
});

test('changedProperties compares by content, properties by name and the rest by key', () => {
  assert.deepEqual(
    changedProperties(
      { sku: { name: 'Standard' }, properties: { a: 1, b: { x: 1, y: 2 } } },
      { sku: { name: 'Basic' }, properties: { b: { y: 2, x: 1 }, c: 3 } },
    ),
    ['a', 'c', 'sku'],
  );
  assert.deepEqual(changedProperties({ properties: { a: [1, 2] } }, { properties: { a: [1, 2] } }), []);
});

test('a valid public IP change with an invalid load balancer: 400, and neither resource, the rules nor the file change', async () => {
  const h = await harness();
  try {
    await deploy(h, pair());
    const ipBefore = await get(h, IP_URL);
    const lbBefore = await get(h, LB_URL);
    const res = await deploy(h, pair({ pipIdle: 20, ruleIdle: 3 }));
    assert.equal(res.statusCode, 400, res.body);
    const err = (res.json() as ArmError).error;
    assert.equal(err.code, 'SLUICE_API_VALIDATION');
    assert.match(err.message, /^this deployment would leave an invalid configuration/);
    assert.ok(
      err.details.some(
        (d) =>
          d.code === 'SLUICE_CONFIG_IDLE_TIMEOUT_RANGE' &&
          d.target === `${LB_URL}#/properties/loadBalancingRules/0/properties/idleTimeoutInMinutes`,
      ),
      JSON.stringify(err),
    );
    assert.deepEqual(await get(h, IP_URL), ipBefore);
    assert.deepEqual(await get(h, LB_URL), lbBefore);
    assert.equal(h.applied.length, 1);
    assert.equal(h.persisted.length, 1);
    assert.equal(ruleTimeout(h.applied[0]!), 10);
  } finally {
    await h.api.close();
  }
});

test('a deployment the data plane cannot serve is 409 SLUICE_API_APPLY_FAILED and changes nothing', async () => {
  const h = await harness();
  try {
    await deploy(h, pair());
    const ipBefore = await get(h, IP_URL);
    h.failApply.next = true;
    const res = await deploy(h, pair({ pipIdle: 20, port: 9090 }));
    assert.equal(res.statusCode, 409, res.body);
    assert.equal((res.json() as ArmError).error.code, 'SLUICE_API_APPLY_FAILED');
    assert.deepEqual(await get(h, IP_URL), ipBefore);
    assert.equal(h.persisted.length, 1);
  } finally {
    await h.api.close();
  }
});

test('two load balancers of one deployment on one frontend: 409 SLUICE_API_CONFLICT, nothing added', async () => {
  const h = await harness();
  try {
    const mk = (name: string): Record<string, unknown> =>
      lbDocument({
        name,
        frontend: '127.0.7.1',
        backends: ['127.0.7.2'],
        rules: [{ name: 'web', frontendPort: 8080, backendPort: 80 }],
      });
    const res = await deploy(h, [mk('one'), mk('two')]);
    assert.equal(res.statusCode, 409, res.body);
    const err = (res.json() as ArmError).error;
    assert.equal(err.code, 'SLUICE_API_CONFLICT');
    assert.ok(
      err.details.some((d) => d.code === 'SLUICE_CONFIG_FRONTEND_CONFLICT'),
      JSON.stringify(err),
    );
    const one = await h.api.inject({ method: 'GET', url: resourceUrl('loadBalancers', 'one') + V });
    assert.equal(one.statusCode, 404);
    assert.equal(h.persisted.length, 0);
  } finally {
    await h.api.close();
  }
});

test('a resource as `az network lb show` prints it is stored as a single PUT stores it', async () => {
  const h = await harness();
  try {
    const file = fileURLToPath(
      new URL('../../../../test/fixtures/configs/valid/az-cli-flattened.json', import.meta.url),
    );
    const az = JSON.parse(readFileSync(file, 'utf8')) as { id: string };
    const url = az.id;
    const put = await h.api.inject({ method: 'PUT', url: url + V, payload: az });
    assert.equal(put.statusCode, 201, put.body);
    const res = await deploy(h, [az]);
    assert.equal(res.statusCode, 200, res.body);
    const view = res.json() as DeploymentView;
    assert.deepEqual(
      view.properties.changes.map((c) => [c.id, c.change]),
      [[url, 'unchanged']],
    );
  } finally {
    await h.api.close();
  }
});

test('dependsOn is ignored; a template expression elsewhere is a validation error at its resource', async () => {
  const h = await harness();
  try {
    const [lb, pip] = pair() as Record<string, unknown>[];
    const ordered = await deploy(h, [
      { ...lb, dependsOn: ["[resourceId('Microsoft.Network/publicIPAddresses', 'lb-pip')]"] },
      pip,
    ]);
    assert.equal(ordered.statusCode, 200, ordered.body);
    const withExpression = {
      ...pip,
      properties: { ipAddress: "[parameters('ip')]", idleTimeoutInMinutes: 10 },
    };
    const res = await deploy(h, [lb, withExpression]);
    assert.equal(res.statusCode, 400, res.body);
    const err = (res.json() as ArmError).error;
    assert.equal(err.code, 'SLUICE_API_VALIDATION');
    assert.ok(
      err.details.some(
        (d) =>
          d.code === 'SLUICE_CONFIG_TEMPLATE_EXPRESSION' && d.target === `${IP_URL}#/properties/ipAddress`,
      ),
      JSON.stringify(err),
    );
    assert.equal(h.persisted.length, 1);
  } finally {
    await h.api.close();
  }
});

test('a template Sluice cannot deploy is 400 SLUICE_API_INVALID_TEMPLATE naming each resource by pointer', async () => {
  const h = await harness();
  try {
    const [lb, pip] = pair();
    const cases: [unknown, string[]][] = [
      [{ properties: { template: {} } }, ['/properties/template/resources']],
      [{ properties: { mode: 'Complete', template: { resources: [] } } }, ['/properties/mode']],
      [
        deployment([
          lb,
          pip,
          7,
          { type: 'Microsoft.Network/virtualNetworks', name: 'v' },
          { ...(pip as object) },
        ]),
        [
          '/properties/template/resources/2',
          '/properties/template/resources/3',
          '/properties/template/resources/4',
        ],
      ],
      [
        deployment([{ type: 'Microsoft.Network/publicIPAddresses', name: 'lb/x' }]),
        ['/properties/template/resources/0'],
      ],
    ];
    for (const [payload, targets] of cases) {
      const res = await h.api.inject({ method: 'PUT', url: DEPLOY_URL + V, payload: payload as object });
      assert.equal(res.statusCode, 400, res.body);
      const err = (res.json() as ArmError).error;
      assert.equal(err.code, 'SLUICE_API_INVALID_TEMPLATE');
      const got = err.details.length > 0 ? err.details.map((d) => d.target) : [err.target];
      assert.deepEqual(got, targets, JSON.stringify(err));
    }
    const notObject = await h.api.inject({
      method: 'PUT',
      url: DEPLOY_URL + V,
      payload: '[1]',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(notObject.statusCode, 400);
    assert.equal((notObject.json() as ArmError).error.code, 'SLUICE_API_BAD_REQUEST');
    const noVersion = await h.api.inject({
      method: 'PUT',
      url: DEPLOY_URL,
      payload: deployment([lb]) as object,
    });
    assert.equal((noVersion.json() as ArmError).error.code, 'SLUICE_API_MISSING_API_VERSION');
    const badName = await h.api.inject({
      method: 'PUT',
      url: DEPLOY_URL.replace(/web$/, 'a%20b') + V,
      payload: deployment([lb]) as object,
    });
    assert.equal((badName.json() as ArmError).error.code, 'SLUICE_API_BAD_REQUEST');
    const getIt = await h.api.inject({ method: 'GET', url: DEPLOY_URL + V });
    assert.equal(getIt.statusCode, 405);
    assert.equal(getIt.headers['allow'], 'PUT');
    assert.equal(h.applied.length, 0);
    assert.equal(h.persisted.length, 0);
  } finally {
    await h.api.close();
  }
});

test('a resource nested too deep is 400 SLUICE_CONFIG_TOO_DEEP at its id and pointer, never 500', async () => {
  const h = await harness();
  try {
    const [lb, pip] = pair();
    const base = JSON.stringify(pip).slice(0, -1);
    const deep = `${base},"tags":{"t":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}}`;
    const payload = `{"properties":{"template":{"resources":[${JSON.stringify(lb)},${deep}]}}}`;
    const res = await h.api.inject({
      method: 'PUT',
      url: DEPLOY_URL + V,
      payload,
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(res.statusCode, 400, res.body.slice(0, 500));
    const err = (res.json() as ArmError).error;
    assert.equal(err.code, 'SLUICE_API_VALIDATION');
    assert.deepEqual(
      err.details.map((d) => d.code),
      ['SLUICE_CONFIG_TOO_DEEP'],
    );
    assert.match(err.details[0]!.target ?? '', new RegExp(`^${IP_URL}#/tags/t(/a)+$`));
    assert.equal(h.persisted.length, 0);
  } finally {
    await h.api.close();
  }
});

test('a deployment needs the token like every route, and its body is limited to 1 MiB', async () => {
  const h = await harness('s3cret');
  try {
    const none = await deploy(h, pair());
    assert.equal(none.statusCode, 401);
    assert.equal((none.json() as ArmError).error.code, 'SLUICE_API_UNAUTHORIZED');
    const big = await h.api.inject({
      method: 'PUT',
      url: DEPLOY_URL + V,
      payload: deployment([
        ...pair(),
        { type: 'Microsoft.Network/natGateways', name: 'n', tags: { x: 'y'.repeat(1024 * 1024) } },
      ]) as object,
      headers: { authorization: 'Bearer s3cret' },
    });
    assert.equal(big.statusCode, 413);
    assert.equal((big.json() as ArmError).error.code, 'SLUICE_API_BODY_TOO_LARGE');
    assert.equal(h.applied.length, 0);
    const ok = await h.api.inject({
      method: 'PUT',
      url: DEPLOY_URL + V,
      payload: deployment(pair()) as object,
      headers: { authorization: 'Bearer s3cret' },
    });
    assert.equal(ok.statusCode, 200, ok.body);
  } finally {
    await h.api.close();
  }
});
