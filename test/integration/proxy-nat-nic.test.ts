import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateDocument } from '../../src/config/index.js';
import { SluiceApp } from '../../src/app.js';
import { EchoBackend, freePort, tcpClient, within } from '../helpers/net.js';

/**
 * A single-port inbound NAT rule whose target is a NIC's ip configuration, the shape Azure
 * prints for a VM's SSH rule, through the proxy plane.
 */

const SUB =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/nat-test/providers/Microsoft.Network';
const LB = `${SUB}/loadBalancers/nat-lb`;
const NIC = `${SUB}/networkInterfaces/vm1-nic`;

function document(frontendPort: number, backendPort: number): unknown {
  return {
    resources: [
      {
        name: 'vm1-nic',
        id: NIC,
        type: 'Microsoft.Network/networkInterfaces',
        properties: {
          ipConfigurations: [
            {
              name: 'ipconfig1',
              id: `${NIC}/ipConfigurations/ipconfig1`,
              properties: {
                privateIPAddress: '127.0.11.2',
                loadBalancerInboundNatRules: [{ id: `${LB}/inboundNatRules/ssh` }],
              },
            },
          ],
        },
      },
      {
        name: 'nat-lb',
        id: LB,
        type: 'Microsoft.Network/loadBalancers',
        sku: { name: 'Standard' },
        properties: {
          frontendIPConfigurations: [
            {
              name: 'fe',
              id: `${LB}/frontendIPConfigurations/fe`,
              properties: { privateIPAddress: '127.0.11.10' },
            },
          ],
          inboundNatRules: [
            {
              name: 'ssh',
              id: `${LB}/inboundNatRules/ssh`,
              properties: {
                frontendIPConfiguration: { id: `${LB}/frontendIPConfigurations/fe` },
                backendIPConfiguration: { id: `${NIC}/ipConfigurations/ipconfig1` },
                protocol: 'Tcp',
                frontendPort,
                backendPort,
                idleTimeoutInMinutes: 4,
                enableTcpReset: true,
              },
            },
          ],
        },
      },
    ],
  };
}

test('single-port inbound NAT rule to a NIC ip configuration: reaches that VM, reset at idle', async () => {
  const backend = new EchoBackend('vm1', '127.0.11.2');
  const backendPort = await freePort('127.0.11.2');
  await backend.listen(backendPort);
  const frontendPort = await freePort('127.0.11.10');
  const result = validateDocument(document(frontendPort, backendPort));
  assert.ok(result.valid && result.snapshot, JSON.stringify(result.errors));
  const app = await SluiceApp.start(result.snapshot, { timeScale: 240, logLevel: 'silent' });
  try {
    const c = tcpClient('127.0.11.10', frontendPort);
    assert.equal(await within(2000, 'greeting', c.greeting), 'vm1');
    assert.equal((await within(3000, 'idle reset', c.error)).code, 'ECONNRESET');
  } finally {
    await app.stop();
    await backend.close();
  }
});
