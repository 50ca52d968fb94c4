import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  addressNumber,
  numberAddress,
  renderBirdConfig,
  type BirdConfigInput,
} from '../../../src/pool/bird-config.js';
import { parseReply } from '../../../src/pool/bird-control.js';
import { parseProtocols, parseRoutes, poolView } from '../../../src/pool/bird-routes.js';

const INPUT: BirdConfigInput = {
  routerId: '198.18.11.2',
  localAs: 65001,
  peerAs: 65000,
  peers: [{ address: '198.18.11.1', port: 179, source: '198.18.11.2' }],
  holdSeconds: 3,
  bfdMs: 100,
  tun: 'sluice0',
  announce: ['198.18.100.10'],
  watch: ['198.18.100.10', '198.18.100.11'],
};

test('BIRD configuration: each announced frontend is a static route via the TUN device, exported with the instance mark', () => {
  const text = renderBirdConfig(INPUT);
  assert.match(text, /router id 198\.18\.11\.2;/);
  assert.match(text, /route 198\.18\.100\.10\/32 via "sluice0";/);
  assert.doesNotMatch(text, /route 198\.18\.100\.11/);
  assert.match(text, /local 198\.18\.11\.2 as 65001;/);
  assert.match(text, /neighbor 198\.18\.11\.1 port 179 as 65000;/);
  assert.match(text, /hold time 3;/);
  assert.match(text, /keepalive time 1;/);
  assert.match(text, /graceful restart off;/);
  assert.match(text, /bfd on;/);
  assert.match(text, /min rx interval 100 ms;/);
  assert.match(
    text,
    new RegExp(`bgp_large_community\\.add\\(\\(65001, 1, ${addressNumber('198.18.11.2')}\\)\\)`),
  );
  assert.match(text, /import where net ~ \[ 198\.18\.100\.10\/32, 198\.18\.100\.11\/32 \];/);
  assert.match(text, /if proto != "sluice_frontends" then reject;/);
});

test('BIRD configuration: nothing announced, nothing watched, no BFD', () => {
  const text = renderBirdConfig({ ...INPUT, announce: [], watch: [], bfdMs: 0 });
  assert.doesNotMatch(text, /route /);
  assert.match(text, /import none;/);
  assert.doesNotMatch(text, /bfd/);
  assert.throws(() => renderBirdConfig({ ...INPUT, tun: 'tun"; x' }), /unsafe/);
});

test('addresses as large-community numbers and back', () => {
  assert.equal(addressNumber('198.18.11.2'), 3323071234);
  assert.equal(numberAddress(3323071234), '198.18.11.2');
  assert.equal(numberAddress(addressNumber('255.255.255.255')), '255.255.255.255');
});

test("BIRD's control protocol: codes, continuations and the last line", () => {
  const partial = parseReply('1007-Table master4:\n 198.18.100.10/32 unicast [router1 ...]\n');
  assert.equal(partial.done, false);
  const whole = parseReply('0002-Reading configuration from /x\n0003 Reconfigured\n');
  assert.equal(whole.done, true);
  assert.equal(whole.reply.code, 3);
  assert.deepEqual(whole.reply.lines, ['Reading configuration from /x', 'Reconfigured']);
  const error = parseReply(
    '0002-Reading configuration from /nonexist\n8002 /nonexist: No such file or directory\n',
  );
  assert.equal(error.reply.code, 8002);
});

// As BIRD 2.0.12 answers `show route where source = RTS_BGP all` with add-path from the router.
const ROUTES = parseReply(
  [
    '1007-Table master4:',
    ' 198.18.100.10/32     unicast [router1 2026-12-01 10:32:26.141] (100) [AS65001i]',
    ' \tvia 198.18.11.1 on up0',
    '1008-\tType: BGP univ',
    '1012-\tBGP.origin: IGP',
    ' \tBGP.as_path: 65000 65001',
    ' \tBGP.next_hop: 198.18.11.1',
    ' \tBGP.local_pref: 100',
    ` \tBGP.large_community: (65001, 1, ${addressNumber('198.18.12.2')})`,
    '1007-                     unicast [router1 2026-12-01 10:32:49.225] (100) [AS65001i]',
    ' \tvia 198.18.11.1 on up0',
    '1008-\tType: BGP univ',
    '1012-\tBGP.origin: IGP',
    ` \tBGP.large_community: (64512, 7, 9) (65001, 1, ${addressNumber('198.18.13.2')})`,
    '1007- 198.18.100.11/32     unicast [router1 2026-12-01 10:33:00.000] (100) [AS65001i]',
    ' \tvia 198.18.11.1 on up0',
    '1008-\tType: BGP univ',
    '0000 ',
    '',
  ].join('\n'),
).reply.lines;

test('paths the router sent back, each with the instance that announced it', () => {
  const paths = parseRoutes(ROUTES);
  assert.deepEqual(paths, [
    { prefix: '198.18.100.10', via: 'router1', instance: '198.18.12.2' },
    { prefix: '198.18.100.10', via: 'router1', instance: '198.18.13.2' },
    { prefix: '198.18.100.11', via: 'router1' },
  ]);
  const view = poolView(paths, ['198.18.100.10', '198.18.100.11', '198.18.100.12']);
  assert.deepEqual(view.get('198.18.100.10'), ['198.18.12.2', '198.18.13.2']);
  assert.deepEqual(view.get('198.18.100.11'), ['unmarked@router1']);
  assert.deepEqual(view.get('198.18.100.12'), []);
});

test('BGP sessions from show protocols', () => {
  const lines = parseReply(
    [
      '2002-Name       Proto      Table      State  Since         Info',
      '1002-device1    Device     ---        up     2026-12-01 10:32:21.230  ',
      ' sluice_frontends Static     master4    up     2026-12-01 10:32:21.230  ',
      ' router1    BGP        ---        up     2026-12-01 10:32:25.674  Established   ',
      ' router2    BGP        ---        start  2026-12-01 10:32:25.674  Active        Socket: Connection refused',
      ' router3    BGP        ---        down   2026-12-01 10:32:25.674  ',
      '0000 ',
      '',
    ].join('\n'),
  ).reply.lines;
  assert.deepEqual(parseProtocols(lines), [
    { name: 'router1', state: 'Established', up: true },
    { name: 'router2', state: 'Active', up: false },
    { name: 'router3', state: 'Down', up: false },
  ]);
});

test('BIRD configuration: one BGP session per router', () => {
  const text = renderBirdConfig({
    ...INPUT,
    peers: [
      { address: '198.18.11.1', port: 179, source: '198.18.11.2' },
      { address: '198.18.21.1', port: 1179, source: '198.18.21.2' },
    ],
  });
  assert.match(
    text,
    /protocol bgp router1 \{\n {2}local 198\.18\.11\.2 as 65001;\n {2}neighbor 198\.18\.11\.1 port 179/,
  );
  assert.match(
    text,
    /protocol bgp router2 \{\n {2}local 198\.18\.21\.2 as 65001;\n {2}neighbor 198\.18\.21\.1 port 1179/,
  );
});
