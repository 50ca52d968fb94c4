import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fixturesPath, quickstartPath, sluice } from '../helpers/cli.js';

interface JsonPath {
  kind: string;
  name: string;
  protocol: string;
  frontend: string;
  idleTimeoutMinutes: number;
  decidedBy: string;
  overridden: { by: string; idleTimeoutMinutes: number }[];
  onIdle: string;
  keepalive?: { survives: boolean; reason: string };
}

test('sluice explain prints every rule with its timeout, the deciding setting and the idle outcome', async () => {
  const r = await sluice('explain', quickstartPath);
  assert.equal(r.code, 0, r.stderr);
  for (const name of ['web-reset', 'web-drop', 'dns-udp', 'admin-ssh'])
    assert.match(r.stdout, new RegExp(`'${name}'`));
  assert.match(r.stdout, /idle timeout\s+4 minutes, set by the rule/);
  assert.match(r.stdout, /TCP\s+reset to both the client and the backend/);
});

test('sluice explain --json has the documented shape and a verdict per path with --keepalive', async () => {
  const r = await sluice(
    'explain',
    '--json',
    '--keepalive',
    '120,30,8',
    join(fixturesPath, 'valid/standard-public-outbound.json'),
  );
  assert.equal(r.code, 0, r.stderr);
  const body = JSON.parse(r.stdout) as { paths: JsonPath[] };
  const kinds = new Set(body.paths.map((p) => p.kind));
  for (const k of ['loadBalancingRule', 'inboundNatRule', 'outboundRule', 'natGateway'])
    assert.ok(kinds.has(k), k);
  for (const p of body.paths) {
    assert.ok(['reset', 'drop', 'none'].includes(p.onIdle));
    assert.ok(
      ['rule', 'frontendPublicIP', 'outboundRule', 'publicIPOutboundDefault', 'natGateway'].includes(
        p.decidedBy,
      ),
    );
    assert.equal(typeof p.idleTimeoutMinutes, 'number');
    assert.equal(p.keepalive?.survives, true, `${p.name}: 120s is below every timeout here`);
  }
});

test('sluice explain: bad --keepalive is a usage error (2); an invalid document exits 1 with its errors', async () => {
  const usage = await sluice('explain', '--keepalive', '120,30', quickstartPath);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /TIME,INTVL,PROBES/);
  const invalid = await sluice('explain', join(fixturesPath, 'invalid/tcp-reset-basic.json'));
  assert.equal(invalid.code, 1);
  assert.match(invalid.stderr, /\[SLUICE_CONFIG_TCP_RESET_BASIC\]/);
});
