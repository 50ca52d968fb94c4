import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, sluice } from '../helpers/cli.js';
import { EchoBackend, tcpEchoes } from '../helpers/net.js';
import { startSluice } from '../helpers/process.js';

/**
 * Azure exports in the exact shapes `az` prints them, table-driven: `az network lb show` alone
 * (public frontend and NIC-based pool by id), the same with `az network public-ip show` and
 * `az network nic show` beside it, an AKS `kubernetes` load balancer (floating IP on every rule,
 * an outbound rule, TCP reset, scale-set members), and a single VM with an instance-level public
 * IP. Each is validated, explained, and run on loopback with `--map` flags and nothing else.
 * The fixtures keep Azure's own ports (443, 22, 80): the run part binds them, so it needs root.
 */

const exportsDir = join(repoRoot, 'test/fixtures/exports');
const dir = mkdtempSync(join(tmpdir(), 'sluice-exports-'));
const asRoot = process.getuid?.() === 0;
const skipRun = asRoot
  ? false
  : process.env['CI'] === 'true'
    ? false
    : 'not root: the exports keep Azure ports below 1024 (443, 80, 22)';

const AKS_SVC = 'a8c1f0e2d4b64c7e9a1b3c5d7e9f1a2b';
const AKS_OUT = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
const VMSS = 'aks-nodepool1-31415926-vmss';

interface Scenario {
  readonly name: string;
  readonly files: readonly string[];
  /** What `validate` warns of without any --map (codes, each once). */
  readonly warnings: readonly string[];
  /** What `validate` prints as the summary without --map. */
  readonly summary: RegExp;
  /** `explain` output (whitespace folded), without --map. */
  readonly explains: RegExp;
  /** `run` without --map: exits 1 naming this, or serves (undefined). */
  readonly refusal?: RegExp;
  readonly map: readonly string[];
  readonly runArgs?: readonly string[];
  /** Backends to start: address and the ports each listens on. */
  readonly backends: readonly { address: string; ports: readonly number[] }[];
  /** Frontends to connect to through Sluice once it runs. */
  readonly connect: readonly { address: string; port: number }[];
  /** Warnings the run logs (proxy plane). */
  readonly runWarns: readonly RegExp[];
}

/** The shop load balancer's backends and frontends, once mapped to loopback. */
const SHOP_TRAFFIC: Pick<Scenario, 'backends' | 'connect'> = {
  backends: [
    { address: '127.0.15.2', ports: [8443, 22] },
    { address: '127.0.15.3', ports: [8443] },
  ],
  connect: [
    { address: '127.0.15.10', port: 443 },
    { address: '127.0.15.10', port: 50001 },
  ],
};

const SCENARIOS: readonly Scenario[] = [
  {
    name: '`az network lb show` alone',
    files: ['lb-show/lb.json'],
    warnings: ['SLUICE_CONFIG_REFERENCE_OUTSIDE'],
    summary: /valid \(1 load balancer, 0 load-balancing rules, .*3 rules not served as the document stands/,
    explains:
      /load-balancing rule 'https' \(load balancer 'shop-lb'\): frontend 'fe-public' has no address.*backend 'web1-nic\/ipconfig1' has no address.*not served\. Its own idle timeout is 15 minutes.*wins \(B9\)/,
    refusal:
      /load-balancing rule 'https' cannot be served: .*add --map fe-public=ADDR --map web1-nic\/ipconfig1=ADDR --map web2-nic\/ipconfig1=ADDR .*az network nic show --ids \S+web1-nic \S+web2-nic > nics\.json/,
    map: ['fe-public=127.0.15.10', 'web1-nic/ipconfig1=127.0.15.2', 'web2-nic/ipconfig1=127.0.15.3'],
    ...SHOP_TRAFFIC,
    runWarns: [
      /outbound rule 'egress' .*not served by the proxy data plane \(--dataplane packet serves it\)/,
    ],
  },
  {
    name: 'the same with `az network public-ip show` and `az network nic show --ids A B` beside it',
    files: ['lb-show/lb.json', 'lb-show/pip.json', 'lb-show/nics.json'],
    warnings: [],
    summary: /valid \(1 load balancer, 1 load-balancing rule, 1 inbound NAT rule, 1 outbound rule\)$/m,
    explains:
      /load-balancing rule 'https' \(Tcp\) route 20\.71\.3\.50:443 -> pool 'web-pool' \(10\.20\.1\.4, 10\.20\.1\.5\), port 8443 idle timeout 4 minutes, set by the frontend's public IP address; it takes precedence over the rule \(15 minutes\)/,
    map: ['shop-pip=127.0.15.10', '10.20.1.4=127.0.15.2', '10.20.1.5=127.0.15.3'],
    ...SHOP_TRAFFIC,
    runWarns: [/outbound rule 'egress'/],
  },
  {
    name: 'an AKS export: floating IP on every rule, an outbound rule, TCP reset, scale-set members',
    files: ['aks/lb.json'],
    warnings: ['SLUICE_CONFIG_REFERENCE_OUTSIDE'],
    summary:
      /valid \(1 load balancer, 0 load-balancing rules, 0 inbound NAT rules, 0 outbound rules, 3 rules not served/,
    explains: new RegExp(
      `backend '${VMSS}/0/${VMSS}/ipconfig1' has no address.*az vmss nic list -g MC_apps_aks1_westeurope --vmss-name ${VMSS}`,
    ),
    refusal: new RegExp(`add --map ${AKS_SVC}=ADDR --map ${VMSS}/0/${VMSS}/ipconfig1=ADDR`),
    map: [
      `${AKS_OUT}=127.0.15.20`,
      `${AKS_SVC}=127.0.15.21`,
      `${VMSS}/0/${VMSS}/ipconfig1=127.0.15.22`,
      `${VMSS}/1/${VMSS}/ipconfig1=127.0.15.23`,
    ],
    // The Tcp probes ask the node ports, as AKS sets them.
    backends: [
      { address: '127.0.15.22', ports: [80, 443, 31380, 31443] },
      { address: '127.0.15.23', ports: [80, 443, 31380, 31443] },
    ],
    connect: [
      { address: '127.0.15.21', port: 80 },
      { address: '127.0.15.21', port: 443 },
    ],
    runWarns: [
      new RegExp(
        `load-balancing rule '${AKS_SVC}-TCP-80' enables floating IP: served by connecting to each member at port 80, so the backend sees Sluice's address`,
      ),
      /outbound rule 'aksOutboundRule' .*--dataplane packet serves it/,
    ],
  },
  {
    name: 'a single VM with an instance-level public IP (NIC and public IP, no load balancer)',
    files: ['single-vm/nic.json', 'single-vm/pip.json'],
    warnings: [],
    summary: /valid \(0 load balancers, .*1 instance-level public IP\)/,
    explains:
      /Public IP 'vm1-ip' instance-level public IP path 'vm1-nic\/ipconfig1' \(All\) route 20\.61\.14\.7:\* -> 10\.0\.0\.4, the same port \(1:1 NAT, no load balancer\) idle timeout 4 minutes, set by the instance's public IP address\. at idle After 4 minutes .* the public IP's NAT forgets the connection without telling anyone.* keepalive DOES NOT SURVIVE/,
    map: ['20.61.14.7=127.0.15.40', '10.0.0.4=127.0.15.41'],
    runArgs: ['--instance-ports', '22,5432'],
    backends: [{ address: '127.0.15.41', ports: [22, 5432] }],
    connect: [
      { address: '127.0.15.40', port: 22 },
      { address: '127.0.15.40', port: 5432 },
    ],
    runWarns: [],
  },
];

const filesOf = (s: Scenario): string[] => s.files.map((f) => join(exportsDir, f));
const codesOf = (stderr: string): string[] => [
  ...new Set([...stderr.matchAll(/^warning: .*\[(SLUICE_[A-Z_]+)\]$/gm)].map((m) => m[1]!)),
];

for (const s of SCENARIOS) {
  test(`${s.name}: validated and explained as it is`, async () => {
    const v = await sluice('validate', ...filesOf(s));
    assert.equal(v.code, 0, v.stderr);
    assert.deepEqual(codesOf(v.stderr), s.warnings, v.stderr);
    assert.match(v.stdout, s.summary);
    const e = await sluice('explain', '--keepalive', '7200,75,9', ...filesOf(s));
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stdout.replace(/\s+/g, ' '), s.explains);
  });

  test(
    `${s.name}: run with --map flags and nothing else serves it on loopback`,
    { skip: skipRun },
    async () => {
      if (s.refusal !== undefined) {
        const refused = await sluice(
          'run',
          ...filesOf(s),
          '--api',
          'off',
          '--state-dir',
          join(dir, 'refused'),
        );
        assert.equal(refused.code, 1, refused.stderr);
        assert.match(refused.stderr.replace(/\s+/g, ' '), s.refusal);
      }
      const backends = s.backends.flatMap((b) => b.ports.map(() => new EchoBackend(b.address, b.address)));
      let i = 0;
      for (const b of s.backends) for (const port of b.ports) await backends[i++]!.listen(port);
      const run = startSluice([
        'run',
        ...filesOf(s),
        ...s.map.flatMap((m) => ['--map', m]),
        ...(s.runArgs ?? []),
        '--api',
        'off',
        '--state-dir',
        join(dir, `state-${SCENARIOS.indexOf(s)}`),
      ]);
      try {
        const ready = await run.waitFor((l) => l.msg === 'ready', 15_000);
        const listeners = ready['listeners'] as string[];
        for (const c of s.connect)
          assert.ok(listeners.includes(`Tcp|${c.address}|${c.port}`), listeners.join());
        for (const c of s.connect)
          assert.equal(await tcpEchoes(c.address, c.port, 3), 3, `${c.address}:${c.port}`);
        const warned = run.lines.filter((l) => l['level'] === 40).map((l) => String(l['msg']));
        for (const w of s.runWarns)
          assert.ok(
            warned.some((m) => w.test(m)),
            `${w} in ${warned.join(' | ')}`,
          );
      } finally {
        await run.stop('SIGTERM');
        await Promise.all(backends.map((b) => b.close()));
      }
    },
  );
}

test('validate --dataplane packet says what the packet plane would refuse; --dataplane proxy (the default) what run leaves out', async () => {
  const aks = join(exportsDir, 'aks/lb.json');
  const members = [`${VMSS}/0/${VMSS}/ipconfig1=198.18.15.22`, `${VMSS}/1/${VMSS}/ipconfig1=198.18.15.23`];
  const map = [`${AKS_OUT}=198.18.15.20`, `${AKS_SVC}=198.18.15.21`, ...members].flatMap((m) => ['--map', m]);
  const proxy = await sluice('validate', aks, ...map);
  assert.equal(proxy.code, 0, proxy.stderr);
  assert.match(proxy.stderr, /^note: sluice run --dataplane proxy: .*floating IP/m);
  const json = await sluice('validate', '--json', '--dataplane', 'proxy', aks, ...map);
  const body = JSON.parse(json.stdout) as {
    dataplane: { name: string; leftOut: string[]; refused: string[] };
  };
  assert.equal(body.dataplane.name, 'proxy');
  assert.equal(body.dataplane.leftOut.length, 3, body.dataplane.leftOut.join('\n'));
  assert.deepEqual(body.dataplane.refused, []);
  // A local frontend on the packet plane is refused, and validate says so first.
  const local = await sluice(
    'validate',
    '--dataplane',
    'packet',
    aks,
    ...[`${AKS_OUT}=198.18.15.20`, `${AKS_SVC}=127.0.15.21`, ...members].flatMap((m) => ['--map', m]),
  );
  assert.equal(local.code, 0, local.stderr);
  assert.match(
    local.stderr,
    /^note: sluice run --dataplane packet would refuse this document: frontend 'a8c1.*127\.0\.15\.21, an address of this host.*\[SLUICE_PLANE_UNSUPPORTED\]$/m,
  );
  const unknown = await sluice('validate', '--dataplane', 'dpdk', aks);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /--dataplane expects proxy or packet, got 'dpdk' \[SLUICE_PLANE_UNKNOWN\]/);
});

test(
  'the --map flags in force are stored with the state: a restart with neither CONFIG nor --map serves the same addresses',
  { skip: skipRun },
  async () => {
    const lbFile = join(exportsDir, 'lb-show/lb.json');
    const stateDir = join(dir, 'stored-map');
    const map = ['fe-public=127.0.15.50', 'web1-nic/ipconfig1=127.0.15.51', 'web2-nic/ipconfig1=127.0.15.52'];
    const backends = [new EchoBackend('web1', '127.0.15.51'), new EchoBackend('web2', '127.0.15.52')];
    await backends[0]!.listen(8443);
    await backends[1]!.listen(8443);
    const first = startSluice([
      'run',
      lbFile,
      ...map.flatMap((m) => ['--map', m]),
      '--api',
      '127.0.15.50:0',
      '--state-dir',
      stateDir,
    ]);
    try {
      const ready = await first.waitFor((l) => l.msg === 'ready', 15_000);
      assert.deepEqual(ready['map'], map);
      // A change through the API stores the state, with the mappings.
      const changed = JSON.parse(readFileSync(lbFile, 'utf8')) as {
        loadBalancingRules: { idleTimeoutInMinutes: number }[];
      };
      changed.loadBalancingRules[0]!.idleTimeoutInMinutes = 20;
      const file = join(dir, 'changed.json');
      writeFileSync(file, JSON.stringify(changed));
      const applied = await sluice('apply', file, '--api', String(ready['api']));
      assert.equal(applied.code, 0, applied.stderr);
    } finally {
      await first.stop('SIGTERM');
    }
    const stored = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as { map?: string[] };
    assert.deepEqual(stored.map, map);
    const second = startSluice(['run', '--api', '127.0.15.50:0', '--state-dir', stateDir]);
    try {
      const ready = await second.waitFor((l) => l.msg === 'ready', 15_000);
      assert.equal(ready['desiredState'], 'stored');
      assert.deepEqual(ready['map'], map);
      assert.ok((ready['listeners'] as string[]).includes('Tcp|127.0.15.50|443'));
      assert.equal(await tcpEchoes('127.0.15.50', 443, 4), 4);
      assert.ok(
        second.stderr.some((l) =>
          l.includes('serving the stored state with its mappings: --map fe-public=127.0.15.50'),
        ),
      );
    } finally {
      await second.stop('SIGTERM');
      await Promise.all(backends.map((b) => b.close()));
    }
  },
);
