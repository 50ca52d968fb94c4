/**
 * Internet checksum arithmetic (RFC 1071) and incremental updates (RFC 1624), on 16-bit
 * one's-complement sums held in plain numbers.
 */

/** Folds carries into 16 bits. */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** One's-complement sum of `length` bytes at `offset`, added to `initial`, unfolded. */
export function sumBytes(buf: Buffer, offset: number, length: number, initial = 0): number {
  let sum = initial;
  const end = offset + length - 1;
  let i = offset;
  for (; i < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i === end) sum += buf[i]! << 8;
  return sum;
}

/**
 * A complete checksum field after a 32-bit value it covers changed from `oldV` to `newV`
 * (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
 */
export function updateFull32(check: number, oldV: number, newV: number): number {
  const sum =
    (~check & 0xffff) + ((~oldV >>> 16) & 0xffff) + (~oldV & 0xffff) + (newV >>> 16) + (newV & 0xffff);
  return ~fold(sum) & 0xffff;
}

/** As updateFull32 for a 16-bit value. */
export function updateFull16(check: number, oldV: number, newV: number): number {
  return ~fold((~check & 0xffff) + (~oldV & 0xffff) + newV) & 0xffff;
}

/**
 * A partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM: the field holds the pseudo-header sum, not
 * inverted, and the device completes it) after an address in the pseudo-header changed.
 */
export function updatePartial32(partial: number, oldV: number, newV: number): number {
  return fold(partial + ((~oldV >>> 16) & 0xffff) + (~oldV & 0xffff) + (newV >>> 16) + (newV & 0xffff));
}
