/**
 * The API's bearer token: which tokens Sluice can be given, and whether a request's
 * `Authorization` header carries the token. A token is compared exactly, byte for byte: no
 * trimming, no second chance for a header that only looks like the token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** The longest token Sluice takes; a request's headers, the token among them, must fit in 16 KiB. */
export const MAX_TOKEN_BYTES = 4096;

function isControl(code: number): boolean {
  return code < 0x20 || code === 0x7f;
}

/**
 * Why `token` cannot be the API's token, or undefined when it can. An empty token would let in
 * anyone who sends `Bearer` and nothing; whitespace at either end, or a control character,
 * cannot reach Sluice intact in an HTTP header, so such a token would lock everybody out.
 */
export function tokenProblem(token: string): string | undefined {
  if (token === '') return 'is empty';
  if (token.trim() === '') return 'is only whitespace';
  if (/^\s|\s$/u.test(token)) return 'begins or ends with whitespace, which HTTP drops from a header';
  for (const ch of token)
    if (isControl(ch.codePointAt(0)!))
      return 'holds a control character (tab, newline, NUL...), which a header cannot carry';
  if (Buffer.byteLength(token, 'utf8') > MAX_TOKEN_BYTES) return `is longer than ${MAX_TOKEN_BYTES} bytes`;
  return undefined;
}

/** Compares digests, so neither the time taken nor an early length check tells how much of a guess was right. */
function sameBytes(given: Buffer, expected: Buffer): boolean {
  const digest = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** One auth-scheme word (RFC 9110 token characters), one space, then the credentials verbatim. */
const CREDENTIALS = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (.*)$/s;

export type BearerCheck = 'ok' | 'missing' | 'wrong';

/**
 * Whether `authorization` (the header as Node hands it over) is `Bearer <token>`: the scheme in
 * any case (RFC 9110 §11.1), exactly one space, then exactly the token. `missing` when there is
 * no Bearer credential at all, `wrong` when there is one and it is not the token.
 */
export function checkBearer(authorization: string | undefined, token: string): BearerCheck {
  const m = authorization === undefined ? null : CREDENTIALS.exec(authorization);
  if (m === null || m[1]!.toLowerCase() !== 'bearer') return 'missing';
  const given = m[2]!;
  // Node decodes header bytes as latin1: anything above U+00FF did not come off the wire.
  for (let i = 0; i < given.length; i++) if (given.charCodeAt(i) > 0xff) return 'wrong';
  // The bytes the client sent against the token's UTF-8, so a non-ASCII token works as typed.
  return sameBytes(Buffer.from(given, 'latin1'), Buffer.from(token, 'utf8')) ? 'ok' : 'wrong';
}
