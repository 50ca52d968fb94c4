import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  defaultAllocatedOutboundPorts,
  validateDocument,
  validateFile,
  validateText,
  type ValidationResult,
} from '../../../src/config/index.js';
import type { LoadBalancerSnapshot } from '../../../src/core/snapshot.js';
import { at, fixture, quickstart, type Json } from './helpers.js';

function lbOf(r: ValidationResult, i = 0): LoadBalancerSnapshot {
  assert.deepEqual(r.errors, [], JSON.stringify(r.errors, null, 1));
  const lb = r.snapshot?.loadBalancers[i];
  assert.ok(lb);
  return lb;
}

function codes(r: ValidationResult): string[] {
  return r.errors.map((e) => `${e.code} ${e.path}`);
}

const RULE0 = ['properties', 'loadBalancingRules', 0, 'properties'] as const;

// --- input forms and paths

test('the three input forms compile to the same snapshot', () => {
  const one = validateDocument(quickstart());
  const arr = validateDocument([quickstart()]);
  const wrapped = validateDocument({ resources: [quickstart()] });
  assert.equal(one.form, 'resource');
  assert.equal(arr.form, 'array');
  assert.equal(wrapped.form, 'resources');
  assert.deepEqual(arr.snapshot, one.snapshot);
  assert.deepEqual(wrapped.snapshot, one.snapshot);
});

test('error paths point into the document as the user wrote it, in each input form', () => {
  const bad = (): Record<string, Json> => {
    const d = quickstart();
    at(d, ...RULE0)['idleTimeoutInMinutes'] = 200;
    return d;
  };
  const tail = '/properties/loadBalancingRules/0/properties/idleTimeoutInMinutes';
  assert.deepEqual(codes(validateDocument(bad())), [`SLUICE_CONFIG_IDLE_TIMEOUT_RANGE ${tail}`]);
  assert.deepEqual(codes(validateDocument([bad()])), [`SLUICE_CONFIG_IDLE_TIMEOUT_RANGE /0${tail}`]);
  assert.deepEqual(codes(validateDocument({ resources: [bad()] })), [
    `SLUICE_CONFIG_IDLE_TIMEOUT_RANGE /resources/0${tail}`,
  ]);
});

test('the flattened shape az prints: same snapshot as the nested one, paths without /properties', () => {
  const nested = quickstart();
  const flat = (o: Json): Json => {
    if (Array.isArray(o)) return o.map(flat);
    if (o === null || typeof o !== 'object') return o;
    const out: Record<string, Json> = {};
    for (const [k, v] of Object.entries(o)) {
      if (k === 'properties' && v !== null && typeof v === 'object' && !Array.isArray(v))
        for (const [pk, pv] of Object.entries(v)) out[pk] = flat(pv);
      else out[k] = flat(v);
    }
    return out;
  };
  const flattened = flat(nested) as Record<string, Json>;
  assert.deepEqual(validateDocument(flattened).snapshot, validateDocument(nested).snapshot);
  at(flattened, 'loadBalancingRules', 1)['idleTimeoutInMinutes'] = 101;
  at(flattened, 'probes', 0)['requestPath'] = '/';
  assert.deepEqual(codes(validateDocument(flattened)).sort(), [
    'SLUICE_CONFIG_IDLE_TIMEOUT_RANGE /loadBalancingRules/1/idleTimeoutInMinutes',
    'SLUICE_CONFIG_PROBE_PATH /probes/0/requestPath',
  ]);
});

test('null for an optional property means absent, as in ARM output', () => {
  const d = quickstart();
  at(d, ...RULE0)['idleTimeoutInMinutes'] = null;
  at(d, ...RULE0)['probe'] = null;
  d['tags'] = null;
  const rule = lbOf(validateDocument(d)).loadBalancingRules[0]!;
  assert.equal(rule.idleTimeout.minutes, 4);
  assert.equal(rule.probe, undefined);
});

test('unreadable file, non-JSON text and a byte order mark', async () => {
  const missing = await validateFile('/nonexistent/sluice/lb.json');
  assert.deepEqual(
    missing.errors.map((e) => e.code),
    ['SLUICE_CONFIG_UNREADABLE'],
  );
  const notJson = validateText('{"name": "lb",');
  assert.deepEqual(
    notJson.errors.map((e) => [e.code, e.path]),
    [['SLUICE_CONFIG_NOT_JSON', '']],
  );
  assert.equal(notJson.valid, false);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-config-'));
  const file = join(dir, 'bom.json');
  writeFileSync(file, '\ufeff' + JSON.stringify(quickstart()));
  assert.equal((await validateFile(file)).valid, true);
});

test('a document that is not a load balancer', () => {
  for (const doc of [
    42,
    'lb',
    [],
    { resources: [] },
    [{ type: 'Microsoft.Network/publicIPAddresses', name: 'p' }],
  ]) {
    const r = validateDocument(doc);
    assert.equal(r.valid, false);
    assert.ok(
      r.errors.some((e) => e.code === 'SLUICE_CONFIG_NO_LOAD_BALANCER'),
      JSON.stringify(doc),
    );
  }
});

// --- B2: idle timeout ranges by resource and SKU

test('B2: out-of-range message names the resource, the property, the value and the range', () => {
  const d = quickstart();
  at(d, ...RULE0)['idleTimeoutInMinutes'] = 120;
  at(d, 'properties', 'loadBalancingRules', 0)['name'] = 'web';
  const r = validateDocument(d);
  assert.equal(
    r.errors.find((e) => e.code === 'SLUICE_CONFIG_IDLE_TIMEOUT_RANGE')?.message,
    "loadBalancingRules 'web' idleTimeoutInMinutes 120 is out of range: Standard SKU allows 4-100",
  );
});

interface RangeCase {
  readonly what: string;
  readonly file: string;
  readonly edit: (doc: Json, v: number) => void;
  readonly ok: readonly number[];
  readonly bad: readonly number[];
}

const lbProps = (doc: Json, lbIndex?: number): Record<string, Json> =>
  lbIndex === undefined ? at(doc, 'properties') : at(doc, 'resources', lbIndex, 'properties');

const RANGE_CASES: readonly RangeCase[] = [
  {
    what: 'Standard load-balancing rule',
    file: 'quickstart',
    edit: (d, v) => (at(lbProps(d), 'loadBalancingRules', 0, 'properties')['idleTimeoutInMinutes'] = v),
    ok: [4, 100],
    bad: [3, 101, 0],
  },
  {
    what: 'Standard inbound NAT rule',
    file: 'quickstart',
    edit: (d, v) => (at(lbProps(d), 'inboundNatRules', 0, 'properties')['idleTimeoutInMinutes'] = v),
    ok: [4, 100],
    bad: [3, 101],
  },
  {
    what: 'Standard outbound rule',
    file: 'boundaries.json',
    edit: (d, v) => (at(lbProps(d, 2), 'outboundRules', 0, 'properties')['idleTimeoutInMinutes'] = v),
    ok: [4, 101, 120],
    bad: [3, 121],
  },
  {
    what: 'public IP address',
    file: 'boundaries.json',
    edit: (d, v) => (at(d, 'resources', 0, 'properties')['idleTimeoutInMinutes'] = v),
    ok: [4, 30],
    bad: [3, 31],
  },
  {
    what: 'NAT gateway',
    file: 'boundaries.json',
    edit: (d, v) => (at(d, 'resources', 3, 'properties')['idleTimeoutInMinutes'] = v),
    ok: [4, 120],
    bad: [3, 121],
  },
  {
    what: 'Basic load-balancing rule',
    file: 'basic-array.json',
    edit: (d, v) =>
      (at(d, 1, 'properties', 'loadBalancingRules', 0, 'properties')['idleTimeoutInMinutes'] = v),
    ok: [4, 30],
    bad: [3, 31],
  },
  {
    what: 'Basic inbound NAT rule',
    file: 'basic-array.json',
    edit: (d, v) => (at(d, 1, 'properties', 'inboundNatRules', 0, 'properties')['idleTimeoutInMinutes'] = v),
    ok: [4, 30],
    bad: [3, 31],
  },
];

for (const c of RANGE_CASES) {
  test(`B2: ${c.what} accepts ${c.ok.join(', ')} and rejects ${c.bad.join(', ')}`, () => {
    const load = (): Json => (c.file === 'quickstart' ? quickstart() : (fixture('valid', c.file) as Json));
    for (const v of c.ok) {
      const d = load();
      c.edit(d, v);
      const r = validateDocument(d);
      assert.deepEqual(r.errors, [], `${v} should be accepted`);
    }
    for (const v of c.bad) {
      const d = load();
      c.edit(d, v);
      const r = validateDocument(d);
      assert.deepEqual(
        r.errors.map((e) => e.code),
        ['SLUICE_CONFIG_IDLE_TIMEOUT_RANGE'],
        `${v} should be rejected`,
      );
      assert.match(
        r.errors[0]!.message,
        new RegExp(`idleTimeoutInMinutes ${v} is out of range: .*4-(30|100|120)`),
      );
      assert.match(r.errors[0]!.path, /idleTimeoutInMinutes$/);
    }
  });
}

// --- B4: no TCP reset on Basic

test('B4: enableTcpReset true on Basic is an error on each rule kind; false or absent is fine', () => {
  const d = fixture('valid', 'basic-array.json') as Json;
  at(d, 1, 'properties', 'loadBalancingRules', 0, 'properties')['enableTcpReset'] = false;
  assert.equal(validateDocument(d).valid, true);
  at(d, 1, 'properties', 'loadBalancingRules', 0, 'properties')['enableTcpReset'] = true;
  at(d, 1, 'properties', 'inboundNatRules', 0, 'properties')['enableTcpReset'] = true;
  assert.deepEqual(codes(validateDocument(d)), [
    'SLUICE_CONFIG_TCP_RESET_BASIC /1/properties/loadBalancingRules/0/properties/enableTcpReset',
    'SLUICE_CONFIG_TCP_RESET_BASIC /1/properties/inboundNatRules/0/properties/enableTcpReset',
  ]);
  const std = quickstart();
  assert.equal(lbOf(validateDocument(std)).loadBalancingRules[0]!.enableTcpReset, true);
  std['sku'] = { name: 'Basic' };
  const r = validateDocument(std);
  assert.deepEqual(
    r.errors.map((e) => e.code),
    ['SLUICE_CONFIG_TCP_RESET_BASIC', 'SLUICE_CONFIG_TCP_RESET_BASIC'],
  );
});

// --- B9: the frontend's public IP wins over the rule

test('B9: a public IP idle timeout that differs from the rule wins and records the rule it overrode', () => {
  const lb = lbOf(validateDocument(fixture('valid', 'standard-public-outbound.json')));
  const web = lb.loadBalancingRules.find((r) => r.name === 'web')!;
  assert.deepEqual(web.idleTimeout, {
    minutes: 10,
    ms: 600_000,
    decidedBy: 'frontendPublicIP',
    overridden: [{ by: 'rule', minutes: 15 }],
  });
  const nat = lb.inboundNatRules.find((r) => r.name === 'ssh-vm1')!;
  assert.equal(nat.idleTimeout.decidedBy, 'frontendPublicIP');
  assert.deepEqual(nat.idleTimeout.overridden, [{ by: 'rule', minutes: 30 }]);
  // Equal values: nothing to override.
  const tls = lb.loadBalancingRules.find((r) => r.name === 'web-tls')!;
  assert.deepEqual(tls.idleTimeout, { minutes: 10, ms: 600_000, decidedBy: 'rule', overridden: [] });
});

test('B9: without a public IP timeout (or on an internal frontend) the rule decides', () => {
  const d = fixture('valid', 'standard-public-outbound.json') as Json;
  delete at(d, 'resources', 0, 'properties')['idleTimeoutInMinutes'];
  const web = lbOf(validateDocument(d)).loadBalancingRules.find((r) => r.name === 'web')!;
  assert.deepEqual(web.idleTimeout, { minutes: 15, ms: 900_000, decidedBy: 'rule', overridden: [] });
  const internal = lbOf(validateDocument(quickstart())).loadBalancingRules[1]!;
  assert.equal(internal.frontend.internal, true);
  assert.deepEqual(internal.idleTimeout, { minutes: 5, ms: 300_000, decidedBy: 'rule', overridden: [] });
});

// --- B10: outbound precedence

test('B10: an outbound rule wins over the public IP outbound 4 minutes; a NAT gateway wins over both', () => {
  const lb = lbOf(validateDocument(fixture('valid', 'standard-public-outbound.json')));
  const egress = lb.outboundRules.find((r) => r.name === 'egress')!;
  assert.deepEqual(egress.idleTimeout, {
    minutes: 30,
    ms: 1_800_000,
    decidedBy: 'outboundRule',
    overridden: [{ by: 'publicIPOutboundDefault', minutes: 4 }],
  });
  const path = (member: string) => lb.outboundPaths.filter((p) => p.member.name === member);
  const app1 = path('app-1');
  assert.equal(app1.length, 1);
  assert.equal(app1[0]!.via.kind, 'outboundRule');
  assert.equal(app1[0]!.idleTimeout.minutes, 30);
  assert.equal(app1[0]!.enableTcpReset, true);
  // db-1 sits in the subnet of the NAT gateway: one path, through the gateway.
  const db1 = path('db-1');
  assert.equal(db1.length, 1);
  assert.equal(db1[0]!.via.kind, 'natGateway');
  assert.deepEqual(db1[0]!.idleTimeout, {
    minutes: 20,
    ms: 1_200_000,
    decidedBy: 'natGateway',
    overridden: [
      { by: 'outboundRule', minutes: 30 },
      { by: 'publicIPOutboundDefault', minutes: 4 },
    ],
  });
  // A NIC-based member in the gateway's subnet too.
  assert.equal(path('vm2-nic/ipconfig1')[0]?.via.kind, 'natGateway');
});

test('B10: an outbound rule left at 4 minutes overrides nothing; its ports default by pool size', () => {
  const lb = lbOf(validateDocument(fixture('valid', 'standard-public-outbound.json')));
  const nic = lb.outboundRules.find((r) => r.name === 'egress-nic')!;
  assert.deepEqual(nic.idleTimeout.overridden, []);
  assert.equal(nic.allocatedOutboundPorts, 1024);
  assert.equal(nic.allocatedOutboundPortsDefaulted, true);
  assert.equal(lb.outboundRules.find((r) => r.name === 'egress')!.allocatedOutboundPortsDefaulted, false);
});

test("default SNAT ports follow Azure's table by pool size", () => {
  const table: [number, number][] = [
    [1, 1024],
    [50, 1024],
    [51, 512],
    [100, 512],
    [101, 256],
    [200, 256],
    [201, 128],
    [400, 128],
    [401, 64],
    [800, 64],
    [801, 32],
    [1000, 32],
  ];
  for (const [size, ports] of table)
    assert.equal(defaultAllocatedOutboundPorts(size), ports, `pool of ${size}`);
});

// --- B11

test('B11: TCP reset on an HA-ports rule warns but stays valid; without reset there is no warning', () => {
  const d = fixture('valid', 'ha-ports-reset.json') as Json;
  const r = validateDocument(d);
  assert.equal(r.valid, true);
  assert.deepEqual(
    r.warnings.map((w) => w.code),
    ['SLUICE_CONFIG_HA_PORTS_TCP_RESET'],
  );
  assert.match(r.warnings[0]!.message, /outbound rule/);
  const rule = lbOf(r).loadBalancingRules[0]!;
  assert.equal(rule.haPorts, true);
  assert.deepEqual(rule.protocols, ['Tcp', 'Udp']);
  at(d, ...RULE0)['enableTcpReset'] = false;
  assert.deepEqual(validateDocument(d).warnings, []);
});

// --- defaults, NAT mappings, snapshot

test("Azure's defaults fill what the document leaves out", () => {
  const lb = lbOf(validateDocument(fixture('valid', 'hand-written.json')));
  assert.equal(lb.sku, 'Standard');
  const rule = lb.loadBalancingRules[0]!;
  assert.equal(rule.idleTimeout.minutes, 4);
  assert.equal(rule.idleTimeout.ms, 240_000);
  assert.equal(rule.enableTcpReset, false);
  assert.equal(rule.enableFloatingIP, false);
  assert.equal(rule.distribution, 'Default');
  assert.equal(rule.backendPort, 80);
  assert.deepEqual(
    rule.pool.members.map((m) => m.adminState),
    ['None', 'None'],
  );
  const d = quickstart();
  const probe = at(d, 'properties', 'probes', 0, 'properties');
  for (const k of ['intervalInSeconds', 'probeThreshold', 'numberOfProbes', 'noHealthyBackendsBehavior'])
    delete probe[k];
  const p = lbOf(validateDocument(d)).probes[0]!;
  assert.equal(p.intervalMs, 15_000);
  assert.equal(p.threshold, 1);
  assert.equal(p.noHealthyBackendsBehavior, 'AllProbedDown');
});

test('inbound NAT port range: the i-th pool member gets port start+i; single-port rules reach their NIC', () => {
  const lb = lbOf(validateDocument(fixture('valid', 'standard-public-outbound.json')));
  const range = lb.inboundNatRules.find((r) => r.name === 'ssh-range')!;
  assert.deepEqual(
    range.mappings.map((m) => [m.frontendPort, m.member.name, m.backendPort]),
    [
      [50000, 'app-1', 22],
      [50001, 'app-2', 22],
      [50002, 'db-1', 22],
    ],
  );
  assert.equal(range.frontendPortStart, 50000);
  assert.equal(range.frontendPortEnd, 50009);
  const single = lb.inboundNatRules.find((r) => r.name === 'ssh-vm1')!;
  assert.deepEqual(
    single.mappings.map((m) => [m.frontendPort, m.member.address, m.backendPort]),
    [[2201, '10.0.1.10', 22]],
  );
  const basic = lbOf(validateDocument(fixture('valid', 'basic-array.json')));
  assert.deepEqual(
    basic.pools[0]!.members.map((m) => m.address),
    ['10.0.1.4', '10.0.1.5'],
  );
  assert.equal(basic.inboundNatRules[0]!.mappings[0]!.member.address, '10.0.1.4');
});

test('the snapshot is deeply frozen', () => {
  const r = validateDocument(quickstart());
  const lb = lbOf(r);
  assert.ok(Object.isFrozen(r.snapshot));
  assert.ok(Object.isFrozen(lb.loadBalancingRules[0]!.idleTimeout));
  assert.ok(Object.isFrozen(lb.pools[0]!.members[0]));
  assert.throws(() => {
    (lb.loadBalancingRules[0]!.idleTimeout as { minutes: number }).minutes = 99;
  }, TypeError);
});

test('ARM ids resolve case-insensitively', () => {
  const d = quickstart();
  const ref = at(d, ...RULE0, 'backendAddressPool');
  ref['id'] = String(ref['id']).toUpperCase();
  assert.equal(validateDocument(d).valid, true);
});

// --- --map

test('--map rewrites frontend and backend addresses and keeps the configured ones', () => {
  const r = validateDocument(quickstart(), { map: ['127.0.0.10=127.0.0.50', '127.0.0.2=127.0.0.60'] });
  const lb = lbOf(r);
  assert.equal(lb.frontends[0]!.address, '127.0.0.50');
  assert.equal(lb.frontends[0]!.configuredAddress, '127.0.0.10');
  assert.equal(lb.loadBalancingRules[0]!.frontend.address, '127.0.0.50');
  assert.deepEqual(
    lb.pools[0]!.members.map((m) => [m.address, m.configuredAddress]),
    [
      ['127.0.0.60', '127.0.0.2'],
      ['127.0.0.3', '127.0.0.3'],
    ],
  );
  assert.deepEqual(r.warnings, []);
});

test('--map: malformed arguments are errors, unused ones warnings', () => {
  for (const arg of ['127.0.0.1', '127.0.0.1=', 'a=b', '127.0.0.1=::1', '=127.0.0.1']) {
    const r = validateDocument(quickstart(), { map: [arg] });
    assert.equal(r.valid, false, arg);
    assert.deepEqual(
      r.errors.map((e) => e.code),
      ['SLUICE_CONFIG_ADDRESS_MAP'],
      arg,
    );
  }
  const r = validateDocument(quickstart(), { map: ['13.84.190.11=127.0.0.10'] });
  assert.equal(r.valid, true);
  assert.deepEqual(
    r.warnings.map((w) => w.code),
    ['SLUICE_CONFIG_ADDRESS_MAP_UNUSED'],
  );
});

test('--map onto one local address makes rules of two frontends collide', () => {
  const d = fixture('invalid', 'port-conflicts.json') as Json;
  const rules = at(d, 'properties')['loadBalancingRules'] as Json[];
  // Keep the rules on distinct frontends only: web (fe) and other-fe (fe2), both Tcp 80.
  at(d, 'properties')['loadBalancingRules'] = [rules[0]!, rules[3]!];
  at(d, 'properties')['inboundNatRules'] = [];
  assert.equal(validateDocument(d).valid, true);
  const r = validateDocument(d, { map: ['10.0.1.100=127.0.0.10', '10.0.1.101=127.0.0.10'] });
  assert.deepEqual(
    r.errors.map((e) => e.code),
    ['SLUICE_CONFIG_PORT_CONFLICT'],
  );
  assert.match(r.errors[0]!.message, /'other-fe'.*'web'.*127\.0\.0\.10 Tcp port 80/);
});

// --- conflicts, probes, all errors at once

test('a conflict names both rules', () => {
  const r = validateDocument(fixture('invalid', 'port-conflicts.json'));
  const messages = r.errors.map((e) => e.message);
  assert.ok(
    messages.some((m) => m.includes("'web-again'") && m.includes("'web'") && m.includes('Tcp port 80')),
  );
  assert.ok(messages.some((m) => m.includes("'ssh'") && m.includes("'admin'") && m.includes('50005')));
});

test('every error is reported, structural and semantic together', () => {
  const d = quickstart();
  at(d, ...RULE0)['frontendPort'] = 'http';
  at(d, 'properties', 'loadBalancingRules', 1, 'properties')['idleTimeoutInMinutes'] = 101;
  at(d, 'properties', 'probes', 0, 'properties')['intervalInSeconds'] = 1;
  assert.deepEqual(codes(validateDocument(d)).sort(), [
    'SLUICE_CONFIG_IDLE_TIMEOUT_RANGE /properties/loadBalancingRules/1/properties/idleTimeoutInMinutes',
    'SLUICE_CONFIG_PROBE_INTERVAL /properties/probes/0/properties/intervalInSeconds',
    'SLUICE_CONFIG_TYPE /properties/loadBalancingRules/0/properties/frontendPort',
  ]);
});
