import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:http';
import fc from 'fast-check';
import { armView } from '../../src/control/arm.js';
import type { StoredResource } from '../../src/control/state.js';
import { isErrorCode } from '../../src/core/errors.js';
import { lbDocument } from '../helpers/arm.js';
import { serveApi, type ServedApi } from '../helpers/api-server.js';
import { httpRequest, type HttpAnswer } from '../helpers/http.js';
import { allPaths, applyMutation, bodyMutation, bodyText, depthOf, type Json } from '../helpers/mutation.js';

/**
 * The API under 10,000 mutated PUT bodies, over one keep-alive connection to a real socket,
 * with a real ResourceStore writing the real state file: no answer is a 5xx, and after every
 * answer the stored state (GET, and the state file) is the last document the API accepted (a
 * 200 or 201), never anything a refused request sent. Seeds are fixed, so a failure repeats.
 */

const HOST = '127.0.51.1';
const SUB = '00000000-0000-0000-0000-000000000000';
const PATH = `/subscriptions/${SUB}/resourceGroups/test/providers/Microsoft.Network/loadBalancers/test-lb?api-version=2024-05-01`;
const SEEDS = [0x51ce, 0x0a11, 0xbeef, 0x2024];
const RUNS_PER_SEED = 2500;
/** The deepest a generated body may nest; a depth limit elsewhere is 64. */
const MAX_DEPTH = 40;

const bases: Json[] = [
  lbDocument({
    frontend: '127.0.51.10',
    backends: ['127.0.51.11', '127.0.51.12'],
    rules: [
      { name: 'web', frontendPort: 8080, backendPort: 80, enableTcpReset: true, probe: 'http' },
      { name: 'dns', protocol: 'Udp', frontendPort: 53, backendPort: 53 },
    ],
    probes: [{ name: 'http', protocol: 'Http', port: 80, requestPath: '/healthz' }],
    natRanges: [{ name: 'ssh', start: 50000, end: 50009, backendPort: 22, idleTimeoutInMinutes: 30 }],
  }) as Json,
  lbDocument({
    sku: 'Basic',
    frontend: '127.0.51.20',
    backends: ['127.0.51.21'],
    rules: [{ name: 'web', frontendPort: 80, backendPort: 8080, idleTimeoutInMinutes: 30 }],
  }) as Json,
  lbDocument({
    frontend: '127.0.51.30',
    backends: ['127.0.51.31', '127.0.51.32'],
    adminDown: ['127.0.51.32'],
    rules: [{ name: 'all', frontendPort: 443, backendPort: 443, loadDistribution: 'SourceIP' }],
  }) as Json,
];

/** How a body goes out: mostly as JSON, sometimes in a form the API must refuse without harm. */
type Envelope = 'json' | 'json-charset' | 'text/plain' | 'untyped' | 'truncated' | 'empty' | 'not-object';

const envelope: fc.Arbitrary<Envelope> = fc.oneof(
  { arbitrary: fc.constant<Envelope>('json'), weight: 40 },
  {
    arbitrary: fc.constantFrom<Envelope>(
      'json-charset',
      'text/plain',
      'untyped',
      'truncated',
      'empty',
      'not-object',
    ),
    weight: 3,
  },
);

function requestOf(doc: Json, env: Envelope, cut: number): { body: string; headers: Record<string, string> } {
  const text = bodyText(doc);
  const json = { 'content-type': 'application/json' };
  switch (env) {
    case 'json':
      return { body: text, headers: json };
    case 'json-charset':
      return { body: text, headers: { 'content-type': 'application/json; charset=utf-8' } };
    case 'text/plain':
      return { body: text, headers: { 'content-type': 'text/plain' } };
    case 'untyped':
      return { body: text, headers: {} };
    case 'truncated':
      return {
        body: text.slice(0, Math.max(0, Math.min(text.length - 1, cut % text.length))),
        headers: json,
      };
    case 'empty':
      return { body: '', headers: json };
    case 'not-object':
      return { body: `[${text}]`, headers: json };
  }
}

interface Model {
  /** The last answer to a PUT the API accepted, as JSON. */
  accepted: unknown;
  /** The state file's text right after it. */
  file: string | undefined;
  acceptedCount: number;
  statuses: Map<number, number>;
  /** The deepest body sent, and the deepest accepted. */
  deepestSent: number;
  deepestAccepted: number;
}

function parse(a: HttpAnswer, what: string): unknown {
  try {
    return JSON.parse(a.text) as unknown;
  } catch {
    assert.fail(`${what}: not JSON: ${a.status} ${a.text.slice(0, 200)}`);
  }
}

function readStateFile(s: ServedApi): string | undefined {
  try {
    return readFileSync(s.statePath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Checks the answer of one PUT and what is stored after it, and moves the model on. */
/** A PUT of `body` to the fuzzed load balancer. */
function putBody(
  s: ServedApi,
  body: string,
  headers: Record<string, string> = { 'content-type': 'application/json' },
  agent?: Agent,
): Promise<HttpAnswer> {
  return httpRequest({
    host: s.host,
    port: s.port,
    method: 'PUT',
    path: PATH,
    headers,
    body,
    ...(agent ? { agent } : {}),
  });
}

async function check(s: ServedApi, agent: Agent, model: Model, put: HttpAnswer, sent: string): Promise<void> {
  const what = `PUT ${sent.slice(0, 300)}`;
  model.statuses.set(put.status, (model.statuses.get(put.status) ?? 0) + 1);
  assert.ok(put.status < 500, `${what}: answered ${put.status} ${put.text.slice(0, 500)}`);
  const answer = parse(put, what);
  const accepted = put.status === 200 || put.status === 201;
  if (accepted) {
    assert.equal(put.status, model.acceptedCount === 0 ? 201 : 200, `${what}: created or replaced`);
    model.accepted = answer;
    model.acceptedCount++;
  } else {
    assert.ok(
      [400, 413, 415].includes(put.status),
      `${what}: answered ${put.status} ${put.text.slice(0, 300)}`,
    );
    const code = (answer as { error?: { code?: unknown } }).error?.code;
    assert.ok(typeof code === 'string' && isErrorCode(code), `${what}: error code ${String(code)}`);
  }

  const get = await httpRequest({ host: s.host, port: s.port, method: 'GET', path: PATH, agent });
  if (model.acceptedCount === 0) assert.equal(get.status, 404, `${what}: GET after it`);
  else {
    assert.equal(get.status, 200, `${what}: GET after it`);
    assert.deepEqual(parse(get, 'GET'), model.accepted, `${what}: GET is not the last accepted document`);
  }

  const file = readStateFile(s);
  if (!accepted) {
    assert.equal(file, model.file, `${what}: the state file changed on a refused PUT`);
    return;
  }
  assert.ok(file !== undefined, `${what}: no state file after an accepted PUT`);
  assert.equal(file.indexOf('\n'), file.length - 1, 'the state file is one line');
  const state = JSON.parse(file) as { generation: number; resources: StoredResource[] };
  assert.equal(state.generation, model.acceptedCount, `${what}: generation`);
  assert.equal(state.resources.length, 1);
  assert.deepEqual(
    JSON.parse(JSON.stringify(armView(state.resources[0]!))),
    model.accepted,
    `${what}: the state file is not the last accepted document`,
  );
  model.file = file;
}

test(
  '10,000 mutated PUT bodies over a real socket: no 5xx, and GET and the state file always hold the last accepted document',
  { timeout: 180_000 },
  async (t) => {
    const s = await serveApi(HOST);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const model: Model = {
      accepted: undefined,
      file: undefined,
      acceptedCount: 0,
      statuses: new Map(),
      deepestSent: 0,
      deepestAccepted: 0,
    };
    const started = Date.now();
    try {
      // Every base is accepted as it is: the fuzz starts from valid documents.
      for (const base of bases) {
        const body = bodyText(base);
        const put = await putBody(s, body, undefined, agent);
        assert.ok(put.status === 200 || put.status === 201, put.text);
        await check(s, agent, model, put, body);
      }
      for (const seed of SEEDS) {
        await fc.assert(
          fc.asyncProperty(
            fc.nat({ max: bases.length - 1 }),
            fc.array(fc.tuple(fc.nat(), bodyMutation), { minLength: 1, maxLength: 4 }),
            envelope,
            fc.nat(),
            async (baseIndex, edits, env, cut) => {
              let doc: Json = structuredClone(bases[baseIndex]!);
              for (const [pick, m] of edits) {
                const paths = allPaths(doc);
                const before: Json = structuredClone(doc);
                doc = applyMutation(doc, paths[pick % paths.length]!, m);
                if (depthOf(doc) > MAX_DEPTH) doc = before;
              }
              const depth = depthOf(doc);
              assert.ok(depth <= MAX_DEPTH);
              const { body, headers } = requestOf(doc, env, cut);
              const put = await putBody(s, body, headers, agent);
              await check(s, agent, model, put, body);
              model.deepestSent = Math.max(model.deepestSent, depth);
              if (put.status < 300) model.deepestAccepted = Math.max(model.deepestAccepted, depth);
            },
          ),
          { seed, numRuns: RUNS_PER_SEED },
        );
      }
      const seconds = (Date.now() - started) / 1000;
      t.diagnostic(
        `${SEEDS.length * RUNS_PER_SEED} PUTs in ${seconds.toFixed(1)} s; answers: ${[...model.statuses]
          .sort((a, b) => a[0] - b[0])
          .map(([status, n]) => `${status}×${n}`)
          .join(', ')}; deepest body ${model.deepestSent}, deepest accepted ${model.deepestAccepted}`,
      );
      assert.ok(model.deepestSent >= MAX_DEPTH - 5, `the deepest body was ${model.deepestSent} deep`);
      assert.ok(
        model.acceptedCount > 100,
        `only ${model.acceptedCount} PUTs were accepted: the fuzz tests little`,
      );
    } finally {
      agent.destroy();
      await s.close();
    }
  },
);

test('a body nested 10,000 deep is refused with a 4xx, and nothing changes', async () => {
  // Documents may nest 64 levels (SLUICE_CONFIG_TOO_DEEP): without that limit this body ends in a 500.
  const s = await serveApi(HOST);
  try {
    // Written as text: JSON.stringify itself runs out of stack at this depth.
    const deep = `${'{"a":'.repeat(10_000)}"leaf"${'}'.repeat(10_000)}`;
    const doc = { ...(bases[0] as Record<string, Json>), tags: { deep: 'DEEP' } };
    const body = JSON.stringify(doc).replace('"DEEP"', deep);
    const put = await putBody(s, body);
    assert.ok(put.status >= 400 && put.status < 500, `answered ${put.status} ${put.text.slice(0, 300)}`);
    assert.match(put.text, /SLUICE_CONFIG_TOO_DEEP/);
    const get = await httpRequest({ host: HOST, port: s.port, method: 'GET', path: PATH });
    assert.equal(get.status, 404);
    assert.equal(readStateFile(s), undefined);
  } finally {
    await s.close();
  }
});
