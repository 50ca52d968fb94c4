import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ManualClock } from '../../../src/core/clock.js';
import { FlowEngine } from '../../../src/core/engine.js';
import { TCP_ACK } from '../../../src/core/tcp-state.js';
import { lbRule, snapshot } from './snapshot-helpers.js';
import { TcpConversation, advance } from './tcp-driver.js';

const MIN = 60_000;

test('property: a flow with activity more often than its idle timeout never expires', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 4, max: 100 }),
      fc.boolean(),
      fc.boolean(),
      fc.array(
        fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean(), fc.integer({ min: 0, max: 1400 })),
        {
          minLength: 1,
          maxLength: 40,
        },
      ),
      (minutes, reset, packetLevel, steps) => {
        const clock = new ManualClock(5);
        const engine = new FlowEngine({
          clock,
          snapshot: snapshot([lbRule({ reset, idleMinutes: minutes })]),
        });
        const timeout = minutes * MIN;
        let id: number;
        let conv: TcpConversation | undefined;
        if (packetLevel) {
          conv = new TcpConversation(engine);
          conv.handshake();
          id = conv.flowId;
        } else {
          const r = engine.open('Tcp', '192.0.2.1', 999, '10.0.0.1', 80);
          assert.ok(r.ok);
          id = r.flowId;
        }
        for (const [fraction, fromClient, len] of steps) {
          clock.advance(Math.max(1, Math.floor(fraction * (timeout - 1))));
          assert.deepEqual(advance(engine), []);
          if (conv !== undefined) {
            // Data, or a keepalive probe when len is 0.
            if (len === 0) conv.fromClient({ flags: TCP_ACK, seq: conv.clientNext - 1 });
            else if (fromClient) conv.clientSends(len, false);
            else conv.backendSends(len, false);
          } else {
            assert.ok(engine.activity(id, fromClient ? 'toBackend' : 'toClient', len));
          }
        }
        assert.equal(engine.flowCount, 1);
        assert.equal(engine.flow(id)!.state, 'ESTABLISHED');
      },
    ),
    { numRuns: 60 },
  );
});

test("property: every ESTABLISHED reset-enabled flow that expires yields exactly one RST per side, with the endpoints' RCV.NXT", () => {
  const flowArb = fc.record({
    clientIsn: fc.integer({ min: 0, max: 0xffffffff }),
    backendIsn: fc.integer({ min: 0, max: 0xffffffff }),
    exchanges: fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 70_000 }), fc.boolean()), {
      maxLength: 12,
    }),
    halfClose: fc.boolean(),
  });
  fc.assert(
    fc.property(fc.array(flowArb, { minLength: 1, maxLength: 12 }), (flows) => {
      const clock = new ManualClock(0);
      const engine = new FlowEngine({ clock, snapshot: snapshot([lbRule({ reset: true })]) });
      const convs = flows.map((f, i) => {
        const c = new TcpConversation(
          engine,
          '192.0.2.1',
          10_000 + i,
          '10.0.0.1',
          80,
          f.clientIsn,
          f.backendIsn,
        );
        c.handshake();
        // Like real stacks, never more than the peer's window (64 KiB here) unacknowledged.
        let inFlightFromClient = 0;
        let inFlightFromBackend = 0;
        for (const [fromClient, rawLen, ack] of f.exchanges) {
          const len = Math.min(rawLen, 60_000);
          if (fromClient) {
            if (inFlightFromClient + len > 60_000) {
              c.fromBackend({ flags: TCP_ACK });
              inFlightFromClient = 0;
            }
            c.clientSends(len, ack);
            inFlightFromClient = ack ? 0 : inFlightFromClient + len;
          } else {
            if (inFlightFromBackend + len > 60_000) {
              c.fromClient({ flags: TCP_ACK });
              inFlightFromBackend = 0;
            }
            c.backendSends(len, ack);
            inFlightFromBackend = ack ? 0 : inFlightFromBackend + len;
          }
        }
        if (f.halfClose) c.clientFin();
        return c;
      });
      clock.advance(4 * MIN);
      const actions = advance(engine);
      assert.equal(actions.length, flows.length);
      const byId = new Map(actions.map((a) => [a.flowId, a]));
      assert.equal(byId.size, flows.length, 'one action per flow');
      convs.forEach((c, i) => {
        const a = byId.get(c.flowId)!;
        if (flows[i]!.halfClose) {
          assert.equal(a.action, 'drop');
          return;
        }
        assert.equal(a.action, 'reset');
        // Everything each side sent was forwarded: that is the other side's RCV.NXT.
        assert.deepEqual(a.toClient, { seq: c.backendNext, ack: c.clientNext });
        assert.deepEqual(a.toBackend, { seq: c.clientNext, ack: c.backendNext });
      });
      clock.advance(4 * MIN);
      assert.deepEqual(advance(engine), [], 'no second action');
      assert.equal(engine.stats().expiredReset, flows.filter((f) => !f.halfClose).length);
    }),
    { numRuns: 50 },
  );
});
