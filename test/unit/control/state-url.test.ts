import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseStateUrl, type EtcdLocation } from '../../../src/control/state-url.js';

/** `--state etcd://HOST:PORT[,HOST:PORT...]/PREFIX`: what is taken, and what is a usage error. */

const GOOD: [string, Pick<EtcdLocation, 'endpoints' | 'prefix' | 'key' | 'url'>][] = [
  [
    'etcd://127.0.87.1:2379/sluice',
    {
      endpoints: [{ host: '127.0.87.1', port: 2379 }],
      prefix: 'sluice',
      key: 'sluice/state',
      url: 'etcd://127.0.87.1:2379/sluice',
    },
  ],
  [
    'etcd://etcd-0.example:2379,etcd-1.example:2379/sluice/prod/',
    {
      endpoints: [
        { host: 'etcd-0.example', port: 2379 },
        { host: 'etcd-1.example', port: 2379 },
      ],
      prefix: 'sluice/prod',
      key: 'sluice/prod/state',
      url: 'etcd://etcd-0.example:2379,etcd-1.example:2379/sluice/prod',
    },
  ],
  [
    'ETCD://[::1]:23790/a.b_c-d',
    {
      endpoints: [{ host: '::1', port: 23790 }],
      prefix: 'a.b_c-d',
      key: 'a.b_c-d/state',
      url: 'etcd://[::1]:23790/a.b_c-d',
    },
  ],
  [
    'etcd://localhost:1/x',
    { endpoints: [{ host: 'localhost', port: 1 }], prefix: 'x', key: 'x/state', url: 'etcd://localhost:1/x' },
  ],
];

for (const [text, expected] of GOOD) {
  test(`--state ${text} is taken`, () => {
    const parsed = parseStateUrl(text);
    assert.notEqual(typeof parsed, 'string', String(parsed));
    const { endpoints, prefix, key, url } = parsed as EtcdLocation;
    assert.deepEqual({ endpoints, prefix, key, url }, expected);
  });
}

const BAD: [string, RegExp][] = [
  ['.sluice', /not a URL/],
  ['/var/lib/sluice', /not a URL/],
  ['http://127.0.87.1:2379/sluice', /scheme 'http' is not etcd/],
  ['etcd://127.0.87.1/sluice', /'127\.0\.87\.1' is not HOST:PORT/],
  ['etcd://127.0.87.1:0/sluice', /port 0 is not 1-65535/],
  ['etcd://127.0.87.1:65536/sluice', /port 65536 is not 1-65535/],
  ['etcd://127.0.87.1:2379', /no PREFIX/],
  ['etcd://127.0.87.1:2379/', /no PREFIX/],
  ['etcd:///sluice', /no HOST:PORT/],
  ['etcd://user:pw@127.0.87.1:2379/sluice', /credentials/],
  ['etcd://127.0.87.1:2379/sluice?x=1', /query or fragment/],
  ['etcd://127.0.87.1:2379/a//b', /PREFIX segment ''/],
  ['etcd://127.0.87.1:2379/a/../b', /PREFIX segment '\.\.'/],
  ['etcd://127.0.87.1:2379/sp ace', /PREFIX segment 'sp ace'/],
  ['etcd://[127.0.87.1]:2379/x', /not an IPv6 address/],
  ['etcd://300.1.1.1:2379/x', /neither an IPv4 address nor a host name/],
  ['etcd://a_b:2379/x', /neither an IPv4 address nor a host name/],
  ['etcd://127.0.87.1:2379,/x', /'' is not HOST:PORT/],
  [`etcd://127.0.87.1:2379/${'p'.repeat(201)}`, /longer than 200/],
];

for (const [text, why] of BAD) {
  test(`--state ${text.slice(0, 60)} is a usage error naming the flag and the form`, () => {
    const parsed = parseStateUrl(text);
    assert.equal(typeof parsed, 'string');
    assert.match(parsed as string, /^--state expects etcd:\/\/HOST:PORT\/PREFIX/);
    assert.match(parsed as string, why);
  });
}
