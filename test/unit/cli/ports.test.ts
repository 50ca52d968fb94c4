import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePorts } from '../../../src/cli/options.js';

test('--instance-ports: ports and ranges, each once in order; anything else is a usage error naming the part', () => {
  assert.deepEqual(parsePorts(undefined), []);
  assert.deepEqual(parsePorts('22, 443,8000-8002,22'), [22, 443, 8000, 8001, 8002]);
  assert.deepEqual(parsePorts('65535'), [65535]);
  for (const bad of ['0', '65536', '80-79', 'ssh', '1-5000', '22,,80', '-1']) {
    const r = parsePorts(bad);
    assert.equal(typeof r, 'string', bad);
    assert.match(r as string, /^--instance-ports expects ports 1-65535/);
  }
  const tooMany = parsePorts('1-4096,5000-8999');
  assert.match(tooMany as string, /names 8096 ports; at most 4096/);
});
