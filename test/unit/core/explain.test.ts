import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateDocument } from '../../../src/config/index.js';
import { explain, keepaliveVerdict, parseKeepalive, type ExplainedPath } from '../../../src/core/explain.js';
import type { RuntimeSnapshot } from '../../../src/core/snapshot.js';
import { fixturesPath, quickstartPath } from '../../helpers/cli.js';

const UDP_MS = 240_000;

function compile(file: string): RuntimeSnapshot {
  const result = validateDocument(JSON.parse(readFileSync(file, 'utf8')));
  assert.ok(result.snapshot, JSON.stringify(result.errors));
  return result.snapshot;
}

function byName(paths: readonly ExplainedPath[], kind: ExplainedPath['kind'], name: string): ExplainedPath[] {
  return paths.filter((p) => p.kind === kind && p.name === name);
}

function only(paths: readonly ExplainedPath[], kind: ExplainedPath['kind'], name: string): ExplainedPath {
  const found = byName(paths, kind, name);
  assert.equal(found.length, 1, `one ${kind} '${name}'`);
  return found[0]!;
}

test('quickstart: reset rule, drop rule, UDP rule and NAT range each get their own outcome', () => {
  const { paths, notes } = explain(compile(quickstartPath), { udpFlowTimeoutMs: UDP_MS });
  const reset = only(paths, 'loadBalancingRule', 'web-reset');
  assert.equal(reset.onIdle, 'reset');
  assert.equal(reset.idleTimeoutMinutes, 4);
  assert.equal(reset.decidedBy, 'rule');
  assert.match(reset.whatHappens, /TCP reset to both the client and the backend/);
  assert.match(reset.frontend, /^127\.0\.0\.10:8080$/);

  const drop = only(paths, 'loadBalancingRule', 'web-drop');
  assert.equal(drop.onIdle, 'drop');
  assert.match(drop.whatHappens, /without telling anyone/);
  assert.match(drop.whatHappens, /ETIMEDOUT/);

  const udp = only(paths, 'loadBalancingRule', 'dns-udp');
  assert.equal(udp.onIdle, 'none');
  assert.match(udp.why, /Does not apply/);
  assert.match(udp.whatHappens, /after 4 minutes without a datagram/);

  const nat = only(paths, 'inboundNatRule', 'admin-ssh');
  assert.match(nat.frontend, /:50000-50001$/);
  assert.match(nat.backend, /127\.0\.0\.2:\d+ \(port 50000\), 127\.0\.0\.3:\d+ \(port 50001\)/);
  assert.equal(notes.length, 0, 'no keepalive note without --keepalive');
});

test('B9: a public frontend IP with a different idle timeout wins and the rule is shown as overridden', () => {
  const { paths } = explain(compile(join(fixturesPath, 'valid/standard-public-outbound.json')), {
    udpFlowTimeoutMs: UDP_MS,
  });
  const web = only(paths, 'loadBalancingRule', 'web');
  assert.equal(web.decidedBy, 'frontendPublicIP');
  assert.equal(web.idleTimeoutMinutes, 10);
  assert.deepEqual(web.overridden, [{ by: 'rule', idleTimeoutMinutes: 15 }]);
  assert.match(web.why, /takes precedence over the rule \(15 minutes\)/);
  const nat = only(paths, 'inboundNatRule', 'ssh-vm1');
  assert.equal(nat.decidedBy, 'frontendPublicIP');
  assert.deepEqual(nat.overridden, [{ by: 'rule', idleTimeoutMinutes: 30 }]);
});

test('B10: the outbound rule beats the locked 4 minutes; the NAT gateway beats both', () => {
  const { paths } = explain(compile(join(fixturesPath, 'valid/standard-public-outbound.json')), {
    udpFlowTimeoutMs: UDP_MS,
  });
  const egress = only(paths, 'outboundRule', 'egress');
  assert.equal(egress.decidedBy, 'outboundRule');
  assert.equal(egress.idleTimeoutMinutes, 30);
  assert.deepEqual(egress.overridden, [{ by: 'publicIPOutboundDefault', idleTimeoutMinutes: 4 }]);
  assert.match(egress.whatHappens, /the backend and the remote server/);
  assert.doesNotMatch(
    egress.backend,
    /10\.0\.2\.4/,
    'a member behind a NAT gateway is not on the outbound rule',
  );

  const gateway = byName(paths, 'natGateway', 'db-ngw');
  assert.ok(gateway.length >= 1);
  const covered = gateway.find((p) => p.backend.includes('10.0.2.4'));
  assert.ok(covered, 'the pool member on the gateway subnet goes out through the gateway');
  assert.equal(covered.decidedBy, 'natGateway');
  assert.equal(covered.idleTimeoutMinutes, 20);
  assert.deepEqual(
    covered.overridden.map((o) => o.by),
    ['outboundRule', 'publicIPOutboundDefault'],
  );
  assert.equal(covered.onIdle, 'drop');
  assert.match(covered.whatHappens, /reset to that side only/);
});

test('parseKeepalive reads TIME,INTVL,PROBES and refuses anything else', () => {
  assert.deepEqual(parseKeepalive('7200,75,9'), { timeSeconds: 7200, intervalSeconds: 75, probes: 9 });
  assert.deepEqual(parseKeepalive(' 120 , 30 , 8 '), { timeSeconds: 120, intervalSeconds: 30, probes: 8 });
  for (const bad of ['', '120,30', '120,30,8,1', 'a,b,c', '0,30,8', '120,0,8', '120,30,0', '120,30,1.5']) {
    assert.equal(parseKeepalive(bad), undefined, bad);
  }
});

test('keepalive verdicts: below the timeout survives; at or above it depends on reset, drop, late reset', () => {
  const ka = (t: number) => ({ timeSeconds: t, intervalSeconds: 30, probes: 8 });
  assert.equal(keepaliveVerdict(ka(239), 'reset', 4).survives, true);
  assert.equal(keepaliveVerdict(ka(239), 'drop', 4).survives, true);
  // Equal to the timeout loses the race: the flow expires as the probe leaves.
  const atReset = keepaliveVerdict(ka(240), 'reset', 4);
  assert.equal(atReset.survives, false);
  assert.match(atReset.reason, /ECONNRESET after 240s/);
  const linuxDefault = keepaliveVerdict({ timeSeconds: 7200, intervalSeconds: 75, probes: 9 }, 'drop', 4);
  assert.equal(linuxDefault.survives, false);
  assert.match(linuxDefault.reason, /ETIMEDOUT after 7875s/, '7200 + 9 x 75');
  const late = keepaliveVerdict(ka(600), 'drop', 4, true);
  assert.equal(late.survives, false);
  assert.match(late.reason, /ECONNRESET after 600s/);
  assert.equal(keepaliveVerdict(ka(7200), 'none', 4).survives, true);
});

test('with --keepalive every path carries a verdict and the proxy-plane note is added', () => {
  const { paths, notes } = explain(compile(quickstartPath), {
    udpFlowTimeoutMs: UDP_MS,
    keepalive: { timeSeconds: 290, intervalSeconds: 30, probes: 4 },
  });
  for (const p of paths) assert.ok(p.keepalive, `${p.name} has a verdict`);
  assert.equal(only(paths, 'loadBalancingRule', 'web-reset').keepalive?.survives, false, '290s > 4 min');
  assert.equal(only(paths, 'loadBalancingRule', 'web-drop').keepalive?.survives, true, '290s < 5 min');
  assert.equal(notes.length, 1);
  assert.match(notes[0]!, /proxy data plane/);
});
