import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { httpStatusOf } from '../../../src/control/status.js';
import { ERRORS, isErrorCode, type ErrorCode } from '../../../src/core/errors.js';

const docPath = fileURLToPath(new URL('../../../../docs/errors.md', import.meta.url));

function documentedCodes(): Map<string, { severity: string; http: string }> {
  const rows = new Map<string, { severity: string; http: string }>();
  for (const line of readFileSync(docPath, 'utf8').split('\n')) {
    const m = /^\|\s*`(SLUICE_[A-Z0-9_]+)`\s*\|\s*(\w+)\s*\|\s*(\d+|-)\s*\|/.exec(line);
    if (m) rows.set(m[1]!, { severity: m[2]!, http: m[3]! });
  }
  return rows;
}

test('docs/errors.md lists every registered code with its severity and HTTP status (- for codes no API answer carries)', () => {
  const documented = documentedCodes();
  for (const [code, def] of Object.entries(ERRORS) as [ErrorCode, (typeof ERRORS)[ErrorCode]][]) {
    const row = documented.get(code);
    assert.ok(row, `${code} is missing from docs/errors.md`);
    assert.equal(row.severity, def.severity, `${code}: severity in docs`);
    assert.equal(row.http, String(httpStatusOf(code) ?? '-'), `${code}: HTTP status in docs`);
  }
});

test('docs/errors.md lists no code that the registry lacks', () => {
  for (const code of documentedCodes().keys())
    assert.ok(isErrorCode(code), `${code} is documented but not registered`);
});

test('every code follows SLUICE_<AREA>_<WHAT>', () => {
  for (const code of Object.keys(ERRORS)) assert.match(code, /^SLUICE_[A-Z]+_[A-Z0-9_]+$/);
});
