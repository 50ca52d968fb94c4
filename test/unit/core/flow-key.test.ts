import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  FlowKey,
  PROTO_TCP,
  PROTO_UDP,
  formatIp,
  normalizeIp,
  parseIp,
  parseIpv4,
} from '../../../src/core/flow-key.js';
import { RuleTable } from '../../../src/core/rule-table.js';
import { lbRule, natRule, pool, snapshot } from './snapshot-helpers.js';

test('IPv4 parsing refuses what is not a dotted quad', () => {
  assert.equal(parseIpv4('10.0.0.1'), 0x0a000001);
  assert.equal(parseIpv4('255.255.255.255'), 0xffffffff);
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1..2.3', 'a.b.c.d', '1.2.3.4 '])
    assert.equal(parseIpv4(bad), -1, bad);
});

test('IPv6 text round-trips to its RFC 5952 form; IPv4-mapped becomes IPv4', () => {
  assert.equal(normalizeIp('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
  assert.equal(normalizeIp('::1'), '::1');
  assert.equal(normalizeIp('::'), '::');
  assert.equal(normalizeIp('fe80::1%eth0'), 'fe80::1');
  assert.equal(normalizeIp('::ffff:192.0.2.1'), '192.0.2.1');
  assert.equal(normalizeIp('64:ff9b::192.0.2.1'), '64:ff9b::c000:201');
  for (const bad of ['1:2:3', ':::', '1::2::3', 'g::1', '1:2:3:4:5:6:7:8:9'])
    assert.equal(normalizeIp(bad), undefined, bad);
  fc.assert(
    fc.property(fc.ipV6(), (ip) => {
      const w = new Uint32Array(4);
      const fam = parseIp(ip, w, 0);
      assert.notEqual(fam, 0, ip);
      const text = formatIp(w, 0, fam);
      const w2 = new Uint32Array(4);
      assert.equal(parseIp(text, w2, 0), fam);
      assert.deepEqual(w2, w);
    }),
  );
});

test('a key holds the 5-tuple and prints it', () => {
  const k = new FlowKey().set(PROTO_UDP, '192.0.2.1', 5353, '10.0.0.1', 53);
  assert.deepEqual(
    [k.protocol, k.srcIp, k.srcPort, k.dstIp, k.dstPort],
    [PROTO_UDP, '192.0.2.1', 5353, '10.0.0.1', 53],
  );
  assert.equal(k.toString(), 'udp 192.0.2.1:5353 > 10.0.0.1:53');
  const v6 = new FlowKey().set(PROTO_TCP, '2001:db8::2', 65535, '2001:db8::1', 443);
  assert.equal(v6.toString(), 'tcp [2001:db8::2]:65535 > [2001:db8::1]:443');
  assert.throws(() => new FlowKey().set(PROTO_TCP, '192.0.2.1', 1, '2001:db8::1', 2), /families differ/);
  assert.throws(() => new FlowKey().set(PROTO_TCP, 'nope', 1, '10.0.0.1', 2), /not an IP address/);
});

test('rule lookup: protocol, address and port select the rule; NAT ports select their mapping', () => {
  const p = pool('p', ['10.1.0.1', '10.1.0.2']);
  const table = new RuleTable(
    snapshot(
      [
        lbRule({ name: 'web', frontendPort: 80 }),
        lbRule({ name: 'dns', frontendPort: 53, protocols: ['Udp'] }),
        lbRule({ name: 'ha', address: '10.0.9.9', haPorts: true, protocols: ['Tcp', 'Udp'] }),
      ],
      [natRule({ pool: p, portStart: 6000, backendPort: 22 })],
    ),
  );
  assert.equal(table.lookupText('Tcp', '10.0.0.1', 80)?.rule.name, 'web');
  assert.equal(table.lookupText('Udp', '10.0.0.1', 80), undefined);
  assert.equal(table.lookupText('Udp', '10.0.0.1', 53)?.rule.name, 'dns');
  assert.equal(table.lookupText('Tcp', '10.0.0.2', 80), undefined);
  assert.equal(table.lookupText('Tcp', '10.0.0.1', 6001)?.nat?.member.address, '10.1.0.2');
  assert.equal(table.lookupText('Tcp', '10.0.0.1', 6002), undefined);
  assert.equal(table.lookupText('Udp', '10.0.9.9', 12345)?.rule.name, 'ha');
  assert.equal(table.lookupText('Tcp', '10.0.9.9', 1)?.frontendPort, 0);
});
