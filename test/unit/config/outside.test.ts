import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateDocument, type ValidationResult } from '../../../src/config/index.js';
import { nicConfigMapName, nicShowCommand } from '../../../src/config/ids.js';
import type { LoadBalancerSnapshot } from '../../../src/core/snapshot.js';
import { lbDocument } from '../../helpers/arm.js';
import { repoRoot } from '../../helpers/cli.js';

/**
 * What the load balancer names but the document does not hold (`az network lb show` alone):
 * NIC ip configurations of pools and NAT rules, and public IPs, served at the address `--map`
 * gives by name, or listed as unserved; and a VM's instance-level public IP.
 */

const exports = join(repoRoot, 'test/fixtures/exports');
const read = (...p: string[]): unknown => JSON.parse(readFileSync(join(exports, ...p), 'utf8'));
const doc = (...files: unknown[]): unknown => ({ resources: files.flat() });

function lb(r: ValidationResult, name: string): LoadBalancerSnapshot {
  assert.deepEqual(r.errors, [], JSON.stringify(r.errors, null, 1));
  const found = r.snapshot?.loadBalancers.find((l) => l.name === name);
  assert.ok(found, `load balancer ${name}`);
  return found;
}

const WEB1 = 'web1-nic/ipconfig1';
const WEB2 = 'web2-nic/ipconfig1';
const SHOP_MAP = ['fe-public=127.0.15.10', `${WEB1}=127.0.15.2`, `${WEB2}=127.0.15.3`];

test('a NIC-based pool exported alone: one warning per NIC (listed twice by newer API versions), every rule unserved with what is missing', () => {
  const r = validateDocument(read('lb-show', 'lb.json'));
  assert.equal(r.valid, true);
  const nicWarnings = r.warnings.filter((w) => w.message.includes('names NIC ip configuration'));
  assert.deepEqual(
    nicWarnings.map((w) => `${w.code} ${w.path}`),
    [
      'SLUICE_CONFIG_REFERENCE_OUTSIDE /backendAddressPools/0/backendIPConfigurations/0/id',
      'SLUICE_CONFIG_REFERENCE_OUTSIDE /backendAddressPools/0/backendIPConfigurations/1/id',
      'SLUICE_CONFIG_REFERENCE_OUTSIDE /inboundNatRules/0/backendIPConfiguration/id',
    ],
  );
  for (const w of nicWarnings)
    assert.match(w.message, /az network nic show --ids \/subscriptions\/.*\/networkInterfaces\/web[12]-nic /);
  assert.match(nicWarnings[0]!.message, /add --map web1-nic\/ipconfig1=ADDR/);
  const shop = lb(r, 'shop-lb');
  assert.deepEqual(shop.loadBalancingRules, []);
  assert.deepEqual(
    shop.unserved?.map((u) => [u.kind, u.name, u.missing.map((m) => `${m.kind}:${m.name}`)]),
    [
      ['loadBalancingRule', 'https', ['frontend:fe-public', `member:${WEB1}`, `member:${WEB2}`]],
      ['inboundNatRule', 'ssh-web1', ['frontend:fe-public', `member:${WEB1}`]],
      ['outboundRule', 'egress', ['frontend:fe-public', `member:${WEB1}`, `member:${WEB2}`]],
    ],
  );
});

test('--map nic/ipconfig=ADDR and --map FRONTEND=ADDR serve an export alone, each use a warning; the same NIC is one member of the pool and the NAT rule', () => {
  const r = validateDocument(read('lb-show', 'lb.json'), { map: SHOP_MAP });
  const shop = lb(r, 'shop-lb');
  assert.equal(shop.unserved, undefined);
  const https = shop.loadBalancingRules[0]!;
  assert.equal(https.frontend.address, '127.0.15.10');
  assert.deepEqual(
    https.pool.members.map((m) => [m.name, m.address]),
    [
      [WEB1, '127.0.15.2'],
      [WEB2, '127.0.15.3'],
    ],
  );
  assert.deepEqual(
    shop.inboundNatRules[0]!.mappings.map((m) => [m.member.name, m.member.address, m.backendPort]),
    [[WEB1, '127.0.15.2', 22]],
  );
  assert.ok(r.warnings.every((w) => w.code !== 'SLUICE_CONFIG_ADDRESS_MAP_UNUSED'));
  assert.ok(r.warnings.some((w) => /served at 127\.0\.15\.2 as --map gives it/.test(w.message)));
});

test('the same export with its public IP and NICs beside it needs no --map: the NICs join their pool once, the public IP decides the timeout (B9)', () => {
  const r = validateDocument(
    doc(read('lb-show', 'lb.json'), read('lb-show', 'pip.json'), read('lb-show', 'nics.json')),
  );
  assert.deepEqual(r.warnings, []);
  const shop = lb(r, 'shop-lb');
  const https = shop.loadBalancingRules[0]!;
  assert.deepEqual(
    https.pool.members.map((m) => m.address),
    ['10.20.1.4', '10.20.1.5'],
  );
  assert.equal(https.idleTimeout.minutes, 4);
  assert.equal(https.idleTimeout.decidedBy, 'frontendPublicIP');
  assert.equal(shop.inboundNatRules[0]!.mappings[0]!.member.address, '10.20.1.4');
  // A name map still moves a NIC that is in the document.
  const moved = validateDocument(
    doc(read('lb-show', 'lb.json'), read('lb-show', 'pip.json'), read('lb-show', 'nics.json')),
    { map: [`${WEB2}=127.0.15.3`, 'shop-pip=127.0.15.10'] },
  );
  const m = lb(moved, 'shop-lb');
  assert.deepEqual(
    m.loadBalancingRules[0]!.pool.members.map((x) => x.address),
    ['10.20.1.4', '127.0.15.3'],
  );
  assert.equal(m.loadBalancingRules[0]!.frontend.address, '127.0.15.10');
});

test('scale-set members (AKS) are named scaleset/instance/nic/ipconfig, and `az vmss nic list` fetches them', () => {
  const aks = read('aks', 'lb.json');
  const r = validateDocument(aks);
  const vmss = r.warnings.filter((w) => w.message.includes('virtualMachineScaleSets'));
  assert.equal(vmss.length, 2);
  assert.match(
    vmss[0]!.message,
    /--map aks-nodepool1-31415926-vmss\/0\/aks-nodepool1-31415926-vmss\/ipconfig1=ADDR/,
  );
  assert.match(
    vmss[0]!.message,
    /az vmss nic list -g MC_apps_aks1_westeurope --vmss-name aks-nodepool1-31415926-vmss/,
  );
  const id =
    '/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/7/networkInterfaces/n/ipConfigurations/c';
  assert.equal(nicConfigMapName(id), 'ss/7/n/c');
  assert.equal(
    nicConfigMapName('/x/providers/Microsoft.Network/networkInterfaces/n1/ipConfigurations/c1/'),
    'n1/c1',
  );
  assert.equal(nicConfigMapName('/x/providers/Microsoft.Network/publicIPAddresses/p'), undefined);
  assert.equal(
    nicShowCommand(['/a/providers/Microsoft.Network/networkInterfaces/n1/ipConfigurations/c1']),
    'az network nic show --ids /a/providers/Microsoft.Network/networkInterfaces/n1',
  );
});

test('in the API store a NIC it does not hold is no member (membership is set from the NIC side, as in ARM): a warning, the rule served without it', () => {
  const withPip = doc(read('lb-show', 'lb.json'), read('lb-show', 'pip.json'));
  const r = validateDocument(withPip, { outsideReferences: 'error' });
  assert.equal(r.valid, true, JSON.stringify(r.errors));
  assert.ok(r.warnings.some((w) => w.code === 'SLUICE_CONFIG_UNRESOLVED_BACKEND'));
  const shop = lb(r, 'shop-lb');
  assert.equal(shop.unserved, undefined);
  assert.deepEqual(shop.loadBalancingRules[0]!.pool.members, []);
  assert.deepEqual(shop.inboundNatRules[0]!.mappings, []);
  // The public IP stays an error there.
  const alone = validateDocument(read('lb-show', 'lb.json'), { outsideReferences: 'error' });
  assert.deepEqual(
    alone.errors.map((e) => e.code),
    ['SLUICE_CONFIG_REFERENCE_NOT_FOUND'],
  );
});

test('a backend address and an internal frontend may be given another address by name; a name nobody has is a warning', () => {
  const internal = lbDocument({
    name: 'ilb',
    frontend: '10.0.0.10',
    backends: ['10.0.0.4', '10.0.0.5'],
    rules: [{ name: 'pg', frontendPort: 5432, backendPort: 5432 }],
  });
  const members = (
    internal['properties'] as {
      backendAddressPools: { properties: { loadBalancerBackendAddresses: { properties: object }[] } }[];
    }
  ).backendAddressPools[0]!.properties.loadBalancerBackendAddresses;
  members[1]!.properties = {};
  const without = validateDocument(internal);
  assert.deepEqual(
    without.errors.map((e) => [e.code, e.message.includes('--map member2=ADDR')]),
    [['SLUICE_CONFIG_REQUIRED', true]],
  );
  const r = validateDocument(internal, {
    map: ['fe=127.0.15.30', 'member1=127.0.15.31', 'member2=127.0.15.32', 'dbx=127.0.15.33'],
  });
  const ilb = lb(r, 'ilb');
  assert.equal(ilb.loadBalancingRules[0]!.frontend.address, '127.0.15.30');
  assert.deepEqual(
    ilb.pools[0]!.members.map((m) => m.address),
    ['127.0.15.31', '127.0.15.32'],
  );
  assert.deepEqual(
    r.warnings.map((w) => w.code),
    ['SLUICE_CONFIG_ADDRESS_MAP_UNUSED'],
  );
  assert.match(r.warnings[0]!.message, /--map dbx=/);
});

test("a VM's instance-level public IP is one rule: every port, TCP and UDP, to the private address, with the public IP's timeout and no reset", () => {
  const nic = read('single-vm', 'nic.json');
  const pip = read('single-vm', 'pip.json') as Record<string, unknown>;
  const r = validateDocument(doc(nic, { ...pip, idleTimeoutInMinutes: 17 }));
  assert.deepEqual(r.warnings, []);
  const vm = lb(r, 'vm1-ip');
  assert.deepEqual(vm.instancePublicIp, { publicIp: 'vm1-ip', ipConfiguration: 'vm1-nic/ipconfig1' });
  const [rule] = vm.loadBalancingRules;
  assert.ok(rule);
  assert.equal(rule.haPorts, true);
  assert.deepEqual(rule.protocols, ['Tcp', 'Udp']);
  assert.equal(rule.frontend.address, '20.61.14.7');
  assert.deepEqual(
    rule.pool.members.map((m) => m.address),
    ['10.0.0.4'],
  );
  assert.equal(rule.idleTimeout.minutes, 17);
  assert.equal(rule.idleTimeout.decidedBy, 'instancePublicIP');
  assert.equal(rule.enableTcpReset, false);
  assert.equal(rule.probe, undefined);
  // Public IPs allow 4-30 minutes.
  const tooLong = validateDocument(doc(nic, { ...pip, idleTimeoutInMinutes: 31 }));
  assert.deepEqual(
    tooLong.errors.map((e) => e.code),
    ['SLUICE_CONFIG_IDLE_TIMEOUT_RANGE'],
  );
  // The NIC alone: a warning with the az command, served only with --map.
  const alone = validateDocument(nic);
  assert.equal(alone.valid, true);
  assert.match(alone.warnings[0]!.message, /az network public-ip show --ids .*vm1-ip/);
  assert.deepEqual(lb(alone, 'vm1-ip').loadBalancingRules, []);
  assert.equal(lb(alone, 'vm1-ip').unserved?.[0]?.kind, 'instancePublicIp');
  const mapped = validateDocument(nic, { map: ['vm1-ip=127.0.15.40', 'vm1-nic/ipconfig1=127.0.15.41'] });
  const served = lb(mapped, 'vm1-ip').loadBalancingRules[0]!;
  assert.equal(served.frontend.address, '127.0.15.40');
  assert.equal(served.pool.members[0]!.address, '127.0.15.41');
  assert.equal(served.idleTimeout.minutes, 4);
});

test('a public IP is attached to one resource: on a NIC and a load balancer frontend both, a conflict', () => {
  const nic = read('single-vm', 'nic.json');
  const pip = read('single-vm', 'pip.json') as { id: string };
  const lbDoc = {
    type: 'Microsoft.Network/loadBalancers',
    name: 'lb',
    properties: {
      frontendIPConfigurations: [{ name: 'fe', properties: { publicIPAddress: { id: pip.id } } }],
      backendAddressPools: [{ name: 'pool' }],
    },
  };
  const r = validateDocument(doc(nic, pip, lbDoc));
  assert.deepEqual(
    r.errors.map((e) => e.code),
    ['SLUICE_CONFIG_FRONTEND_CONFLICT'],
  );
  assert.match(r.errors[0]!.message, /vm1-nic\/ipconfig1.*frontend 'fe' of load balancer 'lb'.*one resource/);
});
