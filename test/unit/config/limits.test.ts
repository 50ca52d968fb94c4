import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BOUNDS,
  MAX_DEPTH,
  MAX_TIMER_MS,
  nameProblem,
  normalizeDocument,
  parseConfigText,
  validateDocument,
  validateText,
  type ValidationResult,
} from '../../../src/config/index.js';
import { checkResourceDepth, findTooDeep } from '../../../src/config/limits.js';
import { lbDocument } from '../../helpers/arm.js';
import { at, fixture, quickstart, type Json } from './helpers.js';

/** Document limits (depth, names, counts), timer bounds and frontend conflicts across load balancers. */

function codes(r: ValidationResult): string[] {
  return r.errors.map((e) => `${e.code} ${e.path}`);
}

/** `levels` nested objects, the outermost included: `{ a: { a: ... {} } }`. */
function nested(levels: number): Json {
  let v: Json = {};
  for (let i = 1; i < levels; i++) v = { a: v };
  return v;
}

// --- depth

test('a 10,000-deep document is refused with SLUICE_CONFIG_TOO_DEEP and a path, never a stack overflow', () => {
  for (const key of ['tags', 'extendedLocation']) {
    const d = quickstart();
    d[key] = nested(10_000);
    const r = validateDocument(d);
    assert.equal(r.valid, false);
    assert.deepEqual(
      r.errors.map((e) => e.code),
      ['SLUICE_CONFIG_TOO_DEEP'],
    );
    // The resource is level 1 and `key` level 2: level 65 begins 63 keys below it.
    assert.equal(r.errors[0]!.path, `/${key}${'/a'.repeat(MAX_DEPTH - 1)}`);
    assert.match(r.errors[0]!.message, /more than 64 levels/);
  }
  // From text, as `sluice validate` and `sluice run` read a file: refused before anything else.
  const text = `{"name":"lb","tags":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`;
  const parsed = parseConfigText(text);
  assert.equal(parsed.ok, false);
  assert.equal(parsed.ok ? '' : parsed.diagnostic.code, 'SLUICE_CONFIG_TOO_DEEP');
  assert.deepEqual(
    validateText(text).errors.map((e) => e.code),
    ['SLUICE_CONFIG_TOO_DEEP'],
  );
  // Arrays count as objects do.
  const arrays = quickstart();
  at(arrays, 'properties')['inboundNatPools'] = JSON.parse('['.repeat(100_000) + ']'.repeat(100_000)) as Json;
  assert.deepEqual(
    validateDocument(arrays).errors.map((e) => e.code),
    ['SLUICE_CONFIG_TOO_DEEP'],
  );
});

test('64 levels below a resource are read, 65 are not, in every input form', () => {
  const withTags = (levels: number): Record<string, Json> => {
    const d = quickstart();
    d['tags'] = nested(levels - 1); // the resource is level 1
    return d;
  };
  for (const wrap of [
    (d: Json): Json => d,
    (d: Json): Json => [d],
    (d: Json): Json => ({ resources: [d] }),
  ]) {
    const inside = validateDocument(wrap(withTags(MAX_DEPTH)));
    assert.deepEqual(inside.errors, [], JSON.stringify(inside.errors));
    const over = validateDocument(wrap(withTags(MAX_DEPTH + 1)));
    assert.deepEqual(
      over.errors.map((e) => e.code),
      ['SLUICE_CONFIG_TOO_DEEP'],
    );
    assert.match(over.errors[0]!.path, /^(\/0|\/resources\/0)?\/tags(\/a){63}$/);
    // The normalized document is empty: no later pass sees any of it.
    assert.deepEqual(normalizeDocument(wrap(withTags(MAX_DEPTH + 1))).document.resources, []);
  }
});

test('findTooDeep: the first offender in document order, its depth, and nothing for flat values', () => {
  assert.equal(findTooDeep(1, 0), undefined);
  assert.equal(findTooDeep('x', 0), undefined);
  assert.deepEqual(findTooDeep({}, 0), { path: '', depth: 1 });
  assert.deepEqual(findTooDeep({ a: [1, { b: {} }], c: [[]] }, 2), { path: '/a/1', depth: 3 });
  assert.deepEqual(findTooDeep({ 'x/y': { '~': {} } }, 2), { path: '/x~1y/~0', depth: 3 });
  // Wide as well as deep: a million siblings are walked without recursion.
  assert.equal(findTooDeep({ list: Array.from({ length: 1_000_000 }, () => ({})) }, 3), undefined);
});

// --- names

test('nameProblem: Azure naming rule for Microsoft.Network, at its edges', () => {
  for (const ok of ['a', '0', 'A_', 'web-1.prod', 'x'.repeat(80), `${'y'.repeat(79)}_`, 'a..b'])
    assert.equal(nameProblem(ok), undefined, ok);
  const cases: [string, RegExp][] = [
    ['', /empty/],
    ['x'.repeat(81), /81 characters/],
    ['x'.repeat(100_000), /100000 characters/],
    ['a/b', /contains "\/"/],
    ['..', /starts with "\."/],
    ['_a', /starts with "_"/],
    ['-a', /starts with "-"/],
    ['a.', /ends with "\."/],
    ['a-', /ends with "-"/],
    ['a\u0000b', /contains "\\u0000"/],
    ['a b', /contains " "/],
    ['né', /contains "é"/],
    ['a%2Fb', /contains "%"/],
  ];
  for (const [name, why] of cases) assert.match(nameProblem(name) ?? 'accepted', why, JSON.stringify(name));
});

test('names inside a document: resources and child resources, a 100,000-character name shown short', () => {
  const d = quickstart();
  d['name'] = 'x'.repeat(100_000);
  at(d, 'properties', 'probes', 0)['name'] = 'p/1';
  const r = validateDocument(d);
  assert.deepEqual(codes(r).sort(), [
    'SLUICE_CONFIG_INVALID_NAME /name',
    'SLUICE_CONFIG_INVALID_NAME /properties/probes/0/name',
  ]);
  const long = r.errors.find((e) => e.path === '/name')!;
  assert.ok(long.message.length < 300, long.message);
  assert.match(long.message, /100000 characters/);
  // The flattened shape az prints reports the same names at its own paths.
  const flat = fixture('valid', 'az-cli-flattened.json') as Record<string, Json>;
  at(flat, 'frontendIPConfigurations', 0)['name'] = 'fe/..';
  assert.ok(
    codes(validateDocument(flat)).includes('SLUICE_CONFIG_INVALID_NAME /frontendIPConfigurations/0/name'),
  );
});

// --- bounds

test('the largest interval and drain period in range compile to timers Node can hold', () => {
  const d = lbDocument({
    frontend: '10.0.0.1',
    backends: ['10.0.0.2'],
    probes: [{ name: 'slow', port: 80, intervalInSeconds: BOUNDS.intervalInSeconds.max }],
    rules: [{ name: 'web', frontendPort: 80, backendPort: 80, probe: 'slow' }],
  });
  at(d as Json, 'properties', 'backendAddressPools', 0, 'properties')['drainPeriodInSeconds'] =
    BOUNDS.drainPeriodInSeconds.max;
  const r = validateDocument(d);
  assert.deepEqual(r.errors, []);
  const lb = r.snapshot!.loadBalancers[0]!;
  assert.ok(lb.probes[0]!.intervalMs <= MAX_TIMER_MS);
  assert.ok(lb.pools[0]!.drainPeriodMs <= MAX_TIMER_MS);
  const over = lbDocument({
    frontend: '10.0.0.1',
    backends: ['10.0.0.2'],
    probes: [{ name: 'slow', port: 80, intervalInSeconds: 3_000_000 }],
  });
  assert.deepEqual(codes(validateDocument(over)), [
    'SLUICE_CONFIG_PROBE_INTERVAL /properties/probes/0/properties/intervalInSeconds',
  ]);
  assert.match(
    validateDocument(over).errors[0]!.message,
    /probes 'slow' intervalInSeconds 3000000 .* 5-2147483/,
  );
});

// --- frontend conflicts across load balancers

function twoLbs(a: { frontend: string; port: number }, b: { frontend: string; port: number }): Json[] {
  // The rules of both are named 'web': a conflict is not hidden by a shared name.
  const one = (name: string, frontend: string, port: number): Json =>
    lbDocument({
      name,
      frontend,
      backends: ['10.9.0.2'],
      rules: [{ name: 'web', frontendPort: port, backendPort: 80 }],
    }) as Json;
  return [one('lb-a', a.frontend, a.port), one('lb-b', b.frontend, b.port)];
}

test('two load balancers on one address, protocol and port: a frontend conflict naming both, also after --map', () => {
  const same = validateDocument(
    twoLbs({ frontend: '127.0.0.10', port: 8080 }, { frontend: '127.0.0.10', port: 8080 }),
  );
  assert.deepEqual(codes(same), [
    'SLUICE_CONFIG_FRONTEND_CONFLICT /1/properties/loadBalancingRules/0/properties/frontendPort',
  ]);
  assert.match(
    same.errors[0]!.message,
    /loadBalancers 'lb-b' loadBalancingRules 'web' and loadBalancers 'lb-a'/,
  );
  // Other ports, or other addresses: no conflict.
  assert.equal(
    validateDocument(twoLbs({ frontend: '127.0.0.10', port: 8080 }, { frontend: '127.0.0.10', port: 8081 }))
      .valid,
    true,
  );
  const apart = twoLbs({ frontend: '13.84.190.11', port: 8080 }, { frontend: '13.84.190.12', port: 8080 });
  assert.equal(validateDocument(apart).valid, true);
  // Mapped onto one local address, they would meet.
  const mapped = validateDocument(apart, { map: ['13.84.190.11=127.0.0.10', '13.84.190.12=127.0.0.10'] });
  assert.deepEqual(
    mapped.errors.map((e) => e.code),
    ['SLUICE_CONFIG_FRONTEND_CONFLICT'],
  );
  assert.match(mapped.errors[0]!.message, /127\.0\.0\.10 Tcp port 8080/);
});

test('within one load balancer the same overlap stays a port conflict', () => {
  const d = lbDocument({
    frontend: '10.0.0.1',
    backends: ['10.0.0.2'],
    rules: [
      { name: 'a', frontendPort: 80, backendPort: 80 },
      { name: 'b', frontendPort: 80, backendPort: 81 },
    ],
  });
  assert.deepEqual(codes(validateDocument(d)), [
    'SLUICE_CONFIG_PORT_CONFLICT /properties/loadBalancingRules/1/properties/frontendPort',
  ]);
});

test('a number too large for a double (1e400 reads as Infinity) is refused where it stands, not stored as null', () => {
  const text = JSON.stringify(quickstart()).replace('{', '{"extra":{"big":1e400},');
  const parsed = parseConfigText(text);
  assert.equal(parsed.ok, false);
  assert.ok(!parsed.ok);
  assert.equal(parsed.diagnostic.code, 'SLUICE_CONFIG_INVALID_VALUE');
  assert.equal(parsed.diagnostic.path, '/extra/big');
  assert.match(parsed.diagnostic.message, /too large/);
  // A finite large number is only a number.
  assert.equal(
    parseConfigText(JSON.stringify(quickstart()).replace('{', '{"extra":{"big":1e300},')).ok,
    true,
  );
  // As an API body, the same check answers before anything is stored.
  const d = quickstart();
  d['tags'] = { big: Infinity };
  assert.equal(checkResourceDepth(d)?.path, '/tags/big');
});

test('a resource type that names an Object property (__proto__, constructor) is an unknown type, never a crash', () => {
  for (const type of ['__proto__', 'constructor', 'toString']) {
    const r = validateDocument([{ type, name: 'x', properties: {} }]);
    assert.equal(r.valid, false, type);
    assert.ok(r.errors.length + r.warnings.length > 0, type);
  }
});
