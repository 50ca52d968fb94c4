/** JSON pointers (RFC 6901): every diagnostic names its place in the user's document this way. */

export function escapeSegment(segment: string | number): string {
  return String(segment).replace(/~/g, '~0').replace(/\//g, '~1');
}

export function join(base: string, ...segments: (string | number)[]): string {
  let out = base;
  for (const s of segments) out += '/' + escapeSegment(s);
  return out;
}

/** The parent of a pointer; the root is its own parent. */
export function parent(pointer: string): string {
  const i = pointer.lastIndexOf('/');
  return i <= 0 ? '' : pointer.slice(0, i);
}
