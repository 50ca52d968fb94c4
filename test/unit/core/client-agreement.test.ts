import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseClientSpec } from '../../../src/core/client-spec.js';
import { clientVerdict, type ClientOutcome, type DataPlaneName } from '../../../src/core/client-verdict.js';

/**
 * `explain --client` must say what the real clients did through Sluice (docs/testing.md, "What
 * real clients do through Sluice"; test/integration/clients-*.test.ts on the proxy plane and a
 * manual clock, test/system/clients-*.test.ts on the packet plane at --time-scale 120). Each row
 * is one of those scenarios, its settings in the balancer's time (a 1 s keepalive at x120 is 2
 * minutes; on a manual clock moved a minute at a time, a PING that passes each step is one a
 * minute; a real-time client timeout that the balancer's 4 minutes never reach is longer than
 * them), and the outcome the real client showed against a 4-minute rule.
 */

interface Observed {
  readonly spec: string;
  readonly plane: DataPlaneName;
  readonly rule: 'reset' | 'drop';
  readonly outcome: ClientOutcome;
  readonly test: string;
}

const OBSERVED: readonly Observed[] = [
  {
    spec: 'pg.Pool:idleTimeoutMillis=0',
    plane: 'proxy',
    rule: 'reset',
    outcome: 'reset',
    test: 'clients-pg: pool error, next query on a new connection',
  },
  {
    spec: 'pg.Pool:idleTimeoutMillis=0',
    plane: 'proxy',
    rule: 'drop',
    outcome: 'drop',
    test: 'clients-pg: query_timeout',
  },
  {
    spec: 'pg:keepAlive=true,keepAliveInitialDelayMillis=1000',
    plane: 'proxy',
    rule: 'reset',
    outcome: 'reset',
    test: 'clients-pg: kernel probes do not refresh the proxy plane',
  },
  {
    spec: 'pg:keepAlive=true,keepAliveInitialDelayMillis=120000',
    plane: 'packet',
    rule: 'reset',
    outcome: 'survives',
    test: 'system clients-pg: 3x the timeout on the same backend',
  },
  {
    spec: 'pg:keepAlive=true,keepAliveInitialDelayMillis=120000',
    plane: 'packet',
    rule: 'drop',
    outcome: 'survives',
    test: 'system clients-pg: 3x the timeout on the same backend',
  },
  {
    spec: 'pg',
    plane: 'packet',
    rule: 'reset',
    outcome: 'reset',
    test: 'system clients-pg: reset at the timeout',
  },
  {
    spec: 'pg',
    plane: 'packet',
    rule: 'drop',
    outcome: 'drop',
    test: 'system clients-pg: the next query hangs until query_timeout',
  },
  {
    spec: 'http.Agent:keepAlive=true',
    plane: 'proxy',
    rule: 'reset',
    outcome: 'reset',
    test: 'clients-http: a new connection after the reset',
  },
  {
    spec: 'http.Agent:keepAlive=true',
    plane: 'proxy',
    rule: 'drop',
    outcome: 'drop',
    test: 'clients-http: the reused socket hangs until the timeout',
  },
  {
    spec: 'undici:keepAliveTimeout=600000',
    plane: 'proxy',
    rule: 'drop',
    outcome: 'drop',
    test: 'clients-http: UND_ERR_HEADERS_TIMEOUT',
  },
  {
    spec: 'undici:keepAliveTimeout=600000',
    plane: 'proxy',
    rule: 'reset',
    outcome: 'reset',
    test: 'clients-http: a new connection after the reset',
  },
  {
    spec: '@grpc/grpc-js:grpc.keepalive_time_ms=60000,grpc.keepalive_permit_without_calls=1',
    plane: 'proxy',
    rule: 'drop',
    outcome: 'survives',
    test: 'clients-grpc: 6 minutes on one connection',
  },
  {
    spec: '@grpc/grpc-js:grpc.keepalive_time_ms=60000,grpc.keepalive_permit_without_calls=1',
    plane: 'packet',
    rule: 'drop',
    outcome: 'survives',
    test: 'system clients-grpc: 3x the timeout',
  },
  {
    spec: '@grpc/grpc-js',
    plane: 'proxy',
    rule: 'drop',
    outcome: 'drop',
    test: 'clients-grpc: DEADLINE_EXCEEDED at the deadline',
  },
  {
    spec: '@grpc/grpc-js',
    plane: 'packet',
    rule: 'drop',
    outcome: 'drop',
    test: 'system clients-grpc: DEADLINE_EXCEEDED at the deadline',
  },
];

for (const o of OBSERVED) {
  test(`${o.spec} on the ${o.plane} plane, ${o.rule} rule: ${o.outcome}, as ${o.test}`, () => {
    const parsed = parseClientSpec(o.spec);
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.message);
    const verdict = clientVerdict(
      parsed.client,
      { onIdle: o.rule, idleTimeoutMinutes: 4, resetsLatePackets: false, servedByProxyPlane: true },
      o.plane,
    );
    assert.equal(verdict.outcome, o.outcome, verdict.reason);
  });
}
