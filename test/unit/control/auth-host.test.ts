import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkBearer, tokenProblem } from '../../../src/control/auth.js';
import {
  canonicalAddress,
  hostAllowed,
  parseAllowedHost,
  parseHostField,
  type HostName,
} from '../../../src/control/host.js';

/** The pure rules behind the API's door: which tokens are usable, which Host names this API. */

test('tokenProblem: empty, whitespace-only, whitespace at an end, control characters and overlong tokens', () => {
  for (const bad of [
    '',
    ' ',
    '   ',
    '\t',
    '\n',
    '\u00a0\u00a0',
    '\u3000',
    ' tok',
    'tok ',
    'tok\u00a0',
    'a\tb',
    'a\u0000b',
    'a\u007fb',
    'x'.repeat(4097),
  ])
    assert.notEqual(tokenProblem(bad), undefined, JSON.stringify(bad.slice(0, 10)));
  for (const good of ['s3cret', 'a b', 'clé', 'x'.repeat(4096), 'a\u00a0b'])
    assert.equal(tokenProblem(good), undefined, good.slice(0, 10));
});

test('checkBearer: one scheme word in any case, one space, the token verbatim', () => {
  assert.equal(checkBearer('Bearer tok', 'tok'), 'ok');
  assert.equal(checkBearer('bearer tok', 'tok'), 'ok');
  assert.equal(checkBearer('BeArEr tok', 'tok'), 'ok');
  for (const wrong of [
    'Bearer  tok',
    'Bearer tok ',
    'Bearer \u00a0tok',
    'Bearer tok\u00a0',
    'Bearer tokk',
    'Bearer Tok',
    'Bearer ',
  ])
    assert.equal(checkBearer(wrong, 'tok'), 'wrong', JSON.stringify(wrong));
  for (const missing of [
    undefined,
    '',
    'Bearer',
    'Bearer\u00a0tok',
    'Bearer\ttok',
    'Basic tok',
    'tok',
    'Bearertok',
  ])
    assert.equal(checkBearer(missing, 'tok'), 'missing', JSON.stringify(missing));
  // Characters Node never hands over (it decodes bytes as latin1) cannot match by truncation.
  assert.equal(checkBearer('Bearer \u0174ok', 'tok'), 'wrong');
  assert.equal(checkBearer(`Bearer ${Buffer.from('clé', 'utf8').toString('latin1')}`, 'clé'), 'ok');
});

test('canonicalAddress: IPv6 compressed, IPv4-mapped as IPv4, zones dropped, names refused', () => {
  assert.equal(canonicalAddress('127.0.0.1'), '127.0.0.1');
  assert.equal(canonicalAddress('0:0:0:0:0:0:0:1'), '::1');
  assert.equal(canonicalAddress('::FFFF:127.0.0.1'), '127.0.0.1');
  assert.equal(canonicalAddress('::ffff:7f00:1'), '127.0.0.1');
  assert.equal(canonicalAddress('fe80::1%eth0'), 'fe80::1');
  assert.equal(canonicalAddress('2001:DB8:0::7'), '2001:db8::7');
  assert.equal(canonicalAddress('localhost'), undefined);
});

test('parseHostField: names, addresses, ports; user info, paths, spaces and bad ports are malformed', () => {
  const cases: [string, HostName | undefined][] = [
    ['localhost', { kind: 'name', name: 'localhost' }],
    ['LocalHost:9180', { kind: 'name', name: 'localhost' }],
    ['evil.example', { kind: 'name', name: 'evil.example' }],
    ['127.0.0.1:9180', { kind: 'address', address: '127.0.0.1' }],
    ['127.1', { kind: 'address', address: '127.0.0.1' }],
    ['0x7f.0.0.1', { kind: 'address', address: '127.0.0.1' }],
    ['[::1]:9180', { kind: 'address', address: '::1' }],
    ['[::ffff:127.0.0.1]', { kind: 'address', address: '127.0.0.1' }],
    ['', undefined],
    [' localhost', undefined],
    ['localhost ', undefined],
    ['evil.example@127.0.0.1', undefined],
    ['127.0.0.1/x', undefined],
    ['::1', undefined],
    ['[localhost]', undefined],
    ['[::1', undefined],
    ['localhost:99999', undefined],
    ['localhost:', undefined],
    ['local\u00a0host', undefined],
    ['%6cocalhost', undefined],
  ];
  for (const [field, expected] of cases)
    assert.deepEqual(parseHostField(field), expected, JSON.stringify(field));
});

test('parseAllowedHost: a name or an address, IPv6 with or without brackets, never a port', () => {
  assert.deepEqual(parseAllowedHost('Sluice.Test'), { kind: 'name', name: 'sluice.test' });
  assert.deepEqual(parseAllowedHost('2001:db8::7'), { kind: 'address', address: '2001:db8::7' });
  assert.deepEqual(parseAllowedHost('[2001:db8::7]'), { kind: 'address', address: '2001:db8::7' });
  assert.deepEqual(parseAllowedHost('192.0.2.7'), { kind: 'address', address: '192.0.2.7' });
  for (const bad of ['sluice.test:80', '192.0.2.7:80', '[::1]:80', '', 'a b', 'http://x'])
    assert.equal(typeof parseAllowedHost(bad), 'string', bad);
});

test('hostAllowed: the listen address, localhost, the given names; on a wildcard also own interface addresses, never a name', () => {
  const rule = {
    allowed: [parseAllowedHost('sluice.test') as HostName, parseAllowedHost('192.0.2.7') as HostName],
    interfaces: () => ['127.0.0.1', '::1', '10.1.2.3', 'fe80::1'],
  };
  const at = (h: string): HostName => parseHostField(h)!;
  const specific = { listen: '127.0.50.1', local: '127.0.50.1' };
  for (const h of ['127.0.50.1', 'localhost', 'sluice.test', '192.0.2.7'])
    assert.equal(hostAllowed(at(h), rule, specific), true, h);
  for (const h of ['127.0.0.1', '10.1.2.3', '[::1]', 'evil.example', 'sluice.test.evil.example', '0.0.0.0'])
    assert.equal(hostAllowed(at(h), rule, specific), false, h);

  for (const listen of ['0.0.0.0', '::']) {
    const wildcard = { listen, local: '::ffff:172.17.0.2' };
    for (const h of [
      '127.0.0.1',
      '[::1]',
      '10.1.2.3',
      '[fe80::1]',
      '172.17.0.2',
      listen.includes(':') ? '[::]' : '0.0.0.0',
      'localhost',
      'sluice.test',
    ])
      assert.equal(hostAllowed(at(h), rule, wildcard), true, `${listen}: ${h}`);
    // A rebound name resolves to one of those addresses; it is refused all the same.
    for (const h of ['evil.example', '10-1-2-3.nip.io', '198.51.100.1', '[2001:db8::1]'])
      assert.equal(hostAllowed(at(h), rule, wildcard), false, `${listen}: ${h}`);
  }
  // Not listening (fastify's inject): only localhost and the given names.
  assert.equal(hostAllowed(at('localhost'), rule, { listen: undefined, local: undefined }), true);
  assert.equal(hostAllowed(at('127.0.0.1'), rule, { listen: undefined, local: undefined }), false);
});
