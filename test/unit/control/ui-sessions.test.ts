import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { MAX_SESSIONS, PageSessions, SESSION_IDLE_MS, SESSION_MAX_MS } from '../../../src/control/ui.js';

/** The live page's sessions: random ids, an hour unused, twelve hours at most, a bounded number. */

test('a session lives while used, ends after an hour unused, and at the latest twelve hours after sign-in', () => {
  let now = 0;
  const sessions = new PageSessions(() => now);
  const id = sessions.issue();
  assert.match(id, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(sessions.issue(), id, 'every id is new');
  assert.equal(sessions.use('not-an-id'), undefined);
  assert.equal(sessions.use(undefined), undefined);
  now = SESSION_IDLE_MS - 1;
  assert.ok(sessions.use(id));
  assert.equal(sessions.endsAt(id), now + SESSION_IDLE_MS);
  // Used every 59 minutes, it still ends twelve hours after sign-in.
  while (now + SESSION_IDLE_MS - 60_000 < SESSION_MAX_MS) {
    now += SESSION_IDLE_MS - 60_000;
    assert.ok(sessions.use(id), `at ${now}`);
  }
  now = SESSION_MAX_MS;
  assert.equal(sessions.use(id), undefined);
  const idle = sessions.issue();
  now += SESSION_IDLE_MS;
  assert.equal(sessions.use(idle), undefined, 'an hour unused');
});

test('ending a session closes its event streams; signing in past the limit ends the oldest', () => {
  const sessions = new PageSessions(() => 0);
  const id = sessions.issue();
  const stream = new Socket();
  sessions.use(id)!.streams.add(stream);
  sessions.end(id);
  assert.equal(stream.destroyed, true);
  assert.equal(sessions.use(id), undefined);
  const first = sessions.issue();
  for (let i = 1; i < MAX_SESSIONS; i++) sessions.issue();
  assert.equal(sessions.size, MAX_SESSIONS);
  assert.ok(sessions.use(first));
  sessions.issue();
  assert.equal(sessions.size, MAX_SESSIONS);
  assert.equal(sessions.use(first), undefined, 'the oldest went');
});
