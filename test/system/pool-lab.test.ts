import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pickAll } from '../../src/lab/ecmp-moves.js';
import { routerNextHops } from '../../src/lab/network.js';
import { alive, startTimeOf } from '../../src/lab/processes.js';
import { cliPath, repoRoot } from '../helpers/cli.js';
import {
  Lab,
  PoolClient,
  nsExec,
  poolTest,
  poolUnavailable,
  sleep,
  type ConnResult,
  type LabJson,
} from '../helpers/pool-lab.js';

/**
 * A pool of three instances behind the lab's FRR router (resilient ECMP), one lab for the whole
 * file: what `lab up --json` prints, the 3-way route, flows spread over the instances, kill -9
 * of one (its route gone within about a second, the others' connections untouched), a graceful
 * stop (withdrawn before the data plane stops), withdrawal when every backend is down or the
 * data plane fails, and `lab down` leaving nothing behind.
 */

const lab = new Lab();
let s: LabJson;
let client: PoolClient | undefined;
let extraBackend: ChildProcess | undefined;
/** Connection results of the client by id, and which instance carries each. */
let conns: ConnResult[] = [];
const carrier = new Map<number, string>();

before(() => {
  if (poolUnavailable() !== undefined) return;
  // Probes every 0.5 s (5 s / 10); nothing here lasts as long as an idle timeout (24 s).
  s = lab.up(['--instances', '3', '--backends', '2', '--time-scale', '10']);
  client = new PoolClient(s.client.namespace);
});

after(async () => {
  if (poolUnavailable() !== undefined) return;
  await client?.stop();
  extraBackend?.kill('SIGKILL');
  lab.down();
});

const hops = (): string[] => routerNextHops(s.router.namespace, s.frontend, s.router.resilientTable);
const mainHops = (): string[] => routerNextHops(s.router.namespace, s.frontend);
const instance = (name: string) => s.instances.find((i) => i.name === name)!;

/** Polls `check` every `everyMs` until it holds; returns the ms it took, or throws after `ms`. */
async function until(what: string, ms: number, check: () => boolean, everyMs = 10): Promise<number> {
  const t0 = performance.now();
  while (!check()) {
    if (performance.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(everyMs);
  }
  return Math.round(performance.now() - t0);
}

function logged(
  name: string,
  pred: (l: Record<string, unknown>) => boolean,
): Record<string, unknown> | undefined {
  return lab.instanceLog(name).find(pred);
}

poolTest(
  'lab up --json prints the frontend, its ports, the client, every instance with its PID, and etcd',
  async () => {
    assert.match(s.frontend, /^198\.1[89]\.\d{1,3}\.\d{1,3}$/);
    assert.deepEqual(s.ports, { echo: 7, http: 80, echoDrop: 8 });
    const namespaces = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    assert.ok(namespaces.includes(s.client.namespace), s.client.namespace);
    assert.equal(s.instances.length, 3);
    for (const i of s.instances) {
      assert.equal(typeof i.name, 'string');
      assert.ok(namespaces.includes(i.namespace), i.namespace);
      assert.ok(
        Number.isInteger(i.pid) && startTimeOf(i.pid) !== undefined,
        `instance ${i.name} pid ${i.pid} runs`,
      );
    }
    assert.match(s.etcd ?? '', /^http:\/\/198\.1[89]\.\d{1,3}\.\d{1,3}:2379$/);
    const health = nsExec(s.client.namespace, 'curl', '-s', '-m', '5', `${s.etcd}/health`);
    assert.match(health, /"health":\s*"true"/);
    // The HTTP port answers with the backend's name and the client's own address.
    const body = nsExec(s.client.namespace, 'curl', '-s', '-m', '5', `http://${s.frontend}:${s.ports.http}/`);
    assert.match(
      body,
      new RegExp(`^backend\\d answered GET / from ${s.client.address.replace(/\./g, '\\.')}:\\d+`),
    );
  },
);

poolTest('three instances announce the frontend and the router holds a 3-way ECMP route', async (t) => {
  const addresses = s.instances.map((i) => i.address).sort();
  assert.deepEqual(mainHops(), addresses, "FRR's route in the main table");
  assert.deepEqual(hops(), addresses, 'the resilient group the router forwards by');
  // Each instance learns the whole pool from what the router sends back.
  const ms = await until('every instance sees the three', 5000, () =>
    s.instances.every((i) =>
      lab
        .instanceLog(i.name)
        .some((l) => l.msg === 'bgp: pool changed' && (l.instances as string[]).join() === addresses.join()),
    ),
  );
  t.diagnostic(`every instance saw the 3-instance pool (${ms} ms after the check began)`);
  for (const i of s.instances) {
    const m = nsExec(i.namespace, 'curl', '-s', '-m', '5', 'http://127.0.0.1:9180/metrics');
    const router = i.address.replace(/\.2$/, '.1');
    assert.ok(m.includes(`sluice_bgp_session_up_ratio{peer="${router}"} 1`), `${i.name}: session up`);
    assert.ok(m.includes(`sluice_bgp_announced_ratio{address="${s.frontend}"} 1`), `${i.name}: announced`);
    assert.ok(
      m.includes(`sluice_bgp_pool_instances_number{address="${s.frontend}"} 3`),
      `${i.name}: 3 in the pool`,
    );
  }
});

poolTest(
  "the instances share one desired state in the lab's etcd: a change through one is served by all",
  async (t) => {
    assert.equal(s.etcdState, true, 'sluice run has --state: the lab gives every instance the etcd');
    const doc = JSON.parse(readFileSync(join(s.dir, 'lb.json'), 'utf8')) as {
      properties: { loadBalancingRules: { properties: { idleTimeoutInMinutes: number } }[] };
    };
    doc.properties.loadBalancingRules[1]!.properties.idleTimeoutInMinutes = 9;
    const file = join(s.dir, 'lb-9.json');
    writeFileSync(file, JSON.stringify(doc));
    nsExec(instance('i1').namespace, process.execPath, cliPath, 'apply', file);
    const path =
      '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/sluice-lab/providers/Microsoft.Network/loadBalancers/lab?api-version=2023-09-01';
    const idleOf = (ns: string): number =>
      (
        JSON.parse(nsExec(ns, 'curl', '-s', '-m', '5', `http://127.0.0.1:9180${path}`)) as {
          properties: {
            loadBalancingRules: { name: string; properties: { idleTimeoutInMinutes: number } }[];
          };
        }
      ).properties.loadBalancingRules.find((r) => r.name === 'http')!.properties.idleTimeoutInMinutes;
    const ms = await until(
      'i2 and i3 serve the change',
      5000,
      () => ['i2', 'i3'].every((n) => idleOf(instance(n).namespace) === 9),
      20,
    );
    t.diagnostic(`a change applied through i1 was served by i2 and i3 within ${ms} ms`);
  },
);

poolTest('connections from the client spread over the instances and every one echoes', async (t) => {
  const opened = await client!.command(
    { cmd: 'open', host: s.frontend, port: s.ports.echo, count: 60 },
    'opened',
  );
  conns = opened.results as ConnResult[];
  assert.deepEqual(
    conns.filter((c) => !c.ok),
    [],
    'every connection opened and echoed',
  );
  const echoed = (await client!.command({ cmd: 'echo' }, 'echoed')).results as ConnResult[];
  assert.deepEqual(
    echoed.filter((c) => !c.ok),
    [],
    'a second line echoes on every connection',
  );
  const counts: Record<string, number> = {};
  for (const i of s.instances) {
    const ports = lab.flowPorts(i.namespace, s.ports.echo);
    counts[i.name] = ports.length;
    for (const p of ports) carrier.set(p, i.name);
    assert.ok(lab.flowsCreated(i.namespace) >= ports.length);
  }
  t.diagnostic(`flows per instance: ${JSON.stringify(counts)}`);
  for (const i of s.instances) assert.ok(counts[i.name]! > 0, `${i.name} carries some of the 60 flows`);
  assert.equal(
    conns.filter((c) => carrier.has(c.port)).length,
    60,
    'each connection is a flow of exactly one instance',
  );
  // The router's own lookup for each 5-tuple names the instance that carries it.
  const predicted = pickAll(
    s.router.namespace,
    s.frontend,
    s.ports.echo,
    'client',
    conns.map((c) => ({ src: s.client.address, sport: c.port })),
  );
  const byAddress = new Map(s.instances.map((i) => [i.address, i.name]));
  conns.forEach((c, k) =>
    assert.equal(carrier.get(c.port), byAddress.get(predicted[k]!), `flow from port ${c.port}`),
  );
});

poolTest(
  "kill -9 of an instance: the router drops it within about a second, the others' flows go on",
  async (t) => {
    const victim = instance('i2');
    const t0 = performance.now();
    const killedAt = Date.now();
    process.kill(victim.pid, 'SIGKILL');
    const ms = await until('the router drops i2', 3000, () => !hops().includes(victim.address), 5);
    const mainMs = Math.round(performance.now() - t0);
    t.diagnostic(
      `kill -9: i2 left the router's forwarding group after ${ms} ms (FRR's route: by ${mainMs} ms)`,
    );
    assert.ok(ms <= 1500, `gone in ${ms} ms, more than 1.5 s`);
    assert.ok(!mainHops().includes(victim.address));
    assert.equal(hops().length, 2);
    // Resilient groups move no flow of a surviving instance: each of them still echoes; the
    // flows of i2 moved to a survivor, which adopts them (pool-adopt.test.ts measures more).
    const echoed = (await client!.command({ cmd: 'echo' }, 'echoed')).results as ConnResult[];
    const survivors = echoed.filter((c) => carrier.get(conns[c.id]!.port) !== 'i2');
    const broken = survivors.filter((c) => !c.ok);
    assert.deepEqual(broken, [], 'no flow of a surviving instance broke');
    const moved = echoed.filter((c) => carrier.get(conns[c.id]!.port) === 'i2');
    assert.deepEqual(
      moved.filter((c) => !c.ok),
      [],
      'every flow of i2 went on on a survivor',
    );
    t.diagnostic(
      `after the kill: ${survivors.length} flows of i1 and i3 all echo; the ${moved.length} flows of i2 moved to a survivor, which adopted them`,
    );
    // The survivors learn of it from BGP.
    const left = (n: string) =>
      logged(n, (l) => l.msg === 'bgp: pool changed' && (l.left as string[]).includes(victim.address));
    await until('i1 and i3 see i2 leave', 3000, () => left('i1') !== undefined && left('i3') !== undefined);
    const after = ['i1', 'i3'].map((n) => Date.parse(left(n)!.time as string) - killedAt);
    t.diagnostic(`i1 and i3 logged i2 leaving the pool ${after.join(' and ')} ms after the kill`);
  },
);

poolTest(
  'a graceful stop withdraws the route first and serves on until the router has dropped it',
  async (t) => {
    const i3 = instance('i3');
    const start = startTimeOf(i3.pid)!;
    const t0 = performance.now();
    process.kill(i3.pid, 'SIGTERM');
    const ms = await until('the router drops i3', 5000, () => !hops().includes(i3.address), 5);
    assert.ok(alive({ pid: i3.pid, start }), 'i3 still runs when the router drops it');
    nsExec(i3.namespace, 'ip', 'link', 'show', 'sluice0'); // its data plane still there
    const servedOn = await until('i3 exits', 10_000, () => !alive({ pid: i3.pid, start }), 20);
    t.diagnostic(
      `SIGTERM: the router dropped i3 after ${ms} ms; i3 exited ${Math.round(performance.now() - t0)} ms after the signal`,
    );
    assert.ok(
      servedOn >= 900,
      `it served on for --bgp-withdraw-wait (1 s) after the withdrawal, not ${servedOn} ms`,
    );
    const lines = lab.instanceLog('i3');
    const withdrawn = lines.findIndex((l) => l.msg === 'bgp: withdrawn' && l.reason === 'stopping');
    const stopped = lines.findIndex((l) => l.msg === 'stopped');
    assert.ok(withdrawn >= 0 && stopped > withdrawn, 'withdrawn, then stopped');
    assert.deepEqual(hops(), [instance('i1').address]);
  },
);

/** The PID of the BIRD that instance `ns`'s Sluice runs. */
function birdPid(ns: string): number {
  const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => /^\d+$/.test(l.trim()))
    .map(Number);
  const bird = pids.find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'bird';
    } catch {
      return false;
    }
  });
  assert.ok(bird !== undefined, `no BIRD in ${ns}`);
  return bird;
}

poolTest(
  'an instance that stops answering (its BGP daemon frozen) is dropped by BFD, and comes back',
  async (t) => {
    const i1 = instance('i1');
    const bird = birdPid(i1.namespace);
    process.kill(bird, 'SIGSTOP');
    let ms: number;
    try {
      // No FIN, no RST: only BFD (100 ms x 3) tells the router.
      ms = await until('the router drops i1', 5000, () => hops().length === 0, 5);
    } finally {
      process.kill(bird, 'SIGCONT');
    }
    const back = await until('i1 back in the route', 20_000, () => hops().join() === i1.address, 50);
    t.diagnostic(`BIRD frozen: the router dropped i1 after ${ms} ms (BFD); thawed, back after ${back} ms`);
    assert.ok(ms <= 1500, `dropped after ${ms} ms`);
  },
);

poolTest(
  'an instance withdraws a frontend whose backends are all down, and announces it again when one is back',
  async (t) => {
    const i1 = instance('i1');
    for (const b of s.backends) process.kill(b.pid, 'SIGTERM');
    const gone = await until('the router loses the frontend', 10_000, () => hops().length === 0, 20);
    assert.ok(
      logged('i1', (l) => l.msg === 'bgp: withdrawn' && l.reason === 'no-healthy-backend') !== undefined,
      'i1 says why',
    );
    const b1 = s.backends[0]!;
    extraBackend = spawn(
      'ip',
      ['netns', 'exec', b1.namespace, process.execPath, cliPath, 'lab', 'backend', '--name', b1.name],
      { cwd: repoRoot, stdio: 'ignore' },
    );
    const back = await until(
      'the router has the frontend again',
      10_000,
      () => hops().join() === i1.address,
      20,
    );
    t.diagnostic(
      `all backends down: withdrawn after ${gone} ms (probes every 0.5 s); one back: announced after ${back} ms`,
    );
    const body = nsExec(s.client.namespace, 'curl', '-s', '-m', '5', `http://${s.frontend}/`);
    assert.match(body, /^backend1 answered/);
  },
);

poolTest('an instance whose data plane fails withdraws', async (t) => {
  const i1 = instance('i1');
  nsExec(i1.namespace, 'ip', 'link', 'set', 'sluice0', 'down');
  const ms = await until('the router loses the frontend', 5000, () => hops().length === 0, 5);
  t.diagnostic(`TUN device down: the router dropped i1 after ${ms} ms`);
  await until(
    'i1 says why',
    3000,
    () => logged('i1', (l) => l.msg === 'bgp: withdrawn' && l.reason === 'data-plane') !== undefined,
  );
});

poolTest('lab down ends every process the lab started and removes its namespaces', async () => {
  const recorded = lab.processes();
  assert.ok(
    recorded.length >= 3 + 2 + 3 + 1,
    'the router daemons, backends, instances and etcd were recorded',
  );
  await client?.stop();
  client = undefined;
  extraBackend?.kill('SIGKILL');
  const r = lab.down();
  assert.ok(r.namespaces >= 3 + 2 + 2, `${r.namespaces} namespaces removed`);
  for (const p of recorded) assert.ok(!alive(p), `${p.role} (pid ${p.pid}) is gone`);
});
