// A buffer's bytes (include/linux/skbuff.h: skb_push, skb_pull, skb_put; net/core/skbuff.c:
// skb_copy_bits, skb_store_bits): the head through `data`, then fragments, then the frag_list.

import { PAGE_SIZE } from '../constants.js';
import { checkInt, fail } from '../errors.js';
import { checkSkb, SKB_LEN_MAX, type SkBuff } from './skbuff.js';

/** Moves `data` back by `n` bytes over the headroom, adding them to `len` (`skb_push`). EINVAL past the head. */
export function skbPush(skb: SkBuff, n: number): void {
  checkSkb(skb);
  checkInt('n', n, 0, skb.dataOff);
  skb.dataOff -= n;
  skb.len += n;
}

/** Moves `data` forward by `n` linear bytes, taking them off `len` (`skb_pull`). EINVAL past the linear data. */
export function skbPull(skb: SkBuff, n: number): void {
  checkSkb(skb);
  checkInt('n', n, 0, skb.headlen);
  skb.dataOff += n;
  skb.len -= n;
}

/** Makes the MAC header start at `data` (`skb_reset_mac_header`). */
export function skbResetMacHeader(skb: SkBuff): void {
  checkSkb(skb);
  skb.macHeader = skb.dataOff;
}

/** Makes the network header start at `data` (`skb_reset_network_header`). */
export function skbResetNetworkHeader(skb: SkBuff): void {
  checkSkb(skb);
  skb.networkHeader = skb.dataOff;
}

/** Adds `n` bytes of linear data at the tail (`skb_put`); returns their offset from `data`. EINVAL past the tailroom. */
export function skbPut(skb: SkBuff, n: number): number {
  checkSkb(skb);
  checkInt('n', n, 0, skb.tailroom);
  if (skb.nrFrags > 0 || skb.fragList !== null) fail('EINVAL', 'skb_put on a buffer with paged data (skb_put would BUG on a nonlinear buffer)');
  const at = skb.headlen;
  skb.len += n;
  return at;
}

/**
 * Writes `bytes` into the head at `offset` from `data` (negative reaches the headroom, as
 * `skb_copy_to_linear_data_offset` may). EINVAL outside the head or without memory.
 */
export function skbWriteHead(skb: SkBuff, offset: number, bytes: Uint8Array): void {
  checkSkb(skb);
  if (skb.memory === null) fail('EINVAL', `skb #${skb.id} has no memory: its head holds lengths only`);
  if (!(bytes instanceof Uint8Array)) fail('EINVAL', 'bytes must be a Uint8Array');
  checkInt('offset', offset, -skb.dataOff, skb.endOffset - skb.dataOff);
  if (skb.dataOff + offset + bytes.length > skb.endOffset) fail('EINVAL', `${bytes.length} bytes at ${offset} run past the head (${skb.endOffset - skb.dataOff} bytes from data)`);
  skb.memory.copyToPhys(skb.headPfn * PAGE_SIZE + skb.dataOff + offset, bytes, 0, bytes.length);
}

/** Reads `length` head bytes at `offset` from `data` (negative reaches the headroom). Fails as `skbWriteHead`. */
export function skbReadHead(skb: SkBuff, offset: number, length: number): Uint8Array {
  checkSkb(skb);
  if (skb.memory === null) fail('EINVAL', `skb #${skb.id} has no memory: its head holds lengths only`);
  checkInt('offset', offset, -skb.dataOff, skb.endOffset - skb.dataOff);
  checkInt('length', length, 0, skb.endOffset - skb.dataOff - offset);
  const out = new Uint8Array(length);
  skb.memory.copyFromPhys(skb.headPfn * PAGE_SIZE + skb.dataOff + offset, out, 0, length);
  return out;
}

/**
 * Copies `length` bytes from `offset` of the buffer's data (linear part, then fragments, then
 * the frag_list members in order) into a new array (`skb_copy_bits`). EFAULT when the range
 * passes `len` or the bytes cannot be read (a net_iov fragment); EINVAL without memory.
 * Cost: O(bytes + fragments).
 */
export function skbCopyBits(skb: SkBuff, offset: number, length: number): Uint8Array {
  checkSkb(skb);
  if (skb.memory === null) fail('EINVAL', `skb #${skb.id} has no memory: there are no bytes to copy`);
  checkInt('offset', offset, 0, SKB_LEN_MAX);
  checkInt('length', length, 0, SKB_LEN_MAX);
  if (offset + length > skb.len) fail('EFAULT', `skb_copy_bits of [${offset}, ${offset + length}) past len ${skb.len}`);
  const out = new Uint8Array(length);
  walkBytes(skb, offset, length, (phys, at, n) => skb.memory!.copyFromPhys(phys, out, at, n));
  return out;
}

/**
 * @internal `skbCopyBits` into `out` at `at`, for a caller that checked the buffer has memory and
 * `offset + length` ≤ `len`, and that `out` has room (no allocation).
 */
export function skbCopyBitsInto(skb: SkBuff, offset: number, length: number, out: Uint8Array, at: number): void {
  walkBytes(skb, offset, length, (phys, pos, n) => skb.memory!.copyFromPhys(phys, out, at + pos, n));
}

/** Writes `bytes` at `offset` of the buffer's data, across head, fragments and frag_list (`skb_store_bits`). Fails as `skbCopyBits`. */
export function skbStoreBits(skb: SkBuff, offset: number, bytes: Uint8Array): void {
  checkSkb(skb);
  if (skb.memory === null) fail('EINVAL', `skb #${skb.id} has no memory: there are no bytes to store`);
  if (!(bytes instanceof Uint8Array)) fail('EINVAL', 'bytes must be a Uint8Array');
  checkInt('offset', offset, 0, SKB_LEN_MAX);
  if (offset + bytes.length > skb.len) fail('EFAULT', `skb_store_bits of [${offset}, ${offset + bytes.length}) past len ${skb.len}`);
  walkBytes(skb, offset, bytes.length, (phys, at, n) => skb.memory!.copyToPhys(phys, bytes, at, n));
}

// Visits the physical runs holding bytes [offset, offset + length) of the buffer's data, in order:
// each call gets a physical address, the position in the caller's array, and a byte count.
function walkBytes(skb: SkBuff, offset: number, length: number, visit: (phys: number, at: number, n: number) => void): number {
  let at = 0;
  let start = 0;
  const headlen = skb.headlen;
  const take = (lo: number, hi: number, phys: number): void => {
    const a = Math.max(lo, offset);
    const b = Math.min(hi, offset + length);
    if (a < b) {
      visit(phys + (a - lo), at, b - a);
      at += b - a;
    }
  };
  take(0, headlen, skb.dataPhys);
  start = headlen;
  const arr = skb.fragArray;
  for (let k = 0; k < skb.nrFrags && start < offset + length; k++) {
    const j = skb.fragBase + k;
    const n = arr.length(j);
    if (start + n > offset && arr.isNetIov(j)) fail('EFAULT', `fragment ${k} of skb #${skb.id} is a net_iov: its bytes are unreadable`);
    take(start, start + n, (arr.netmem(j) >>> 1) * PAGE_SIZE + arr.offset(j));
    start += n;
  }
  for (let m = skb.fragList; m !== null && start < offset + length; m = m.next) {
    const a = Math.max(offset, start);
    const b = Math.min(offset + length, start + m.len);
    if (a < b) {
      const before = at;
      walkBytes(m, a - start, b - a, (phys, pos, n) => visit(phys, before + pos, n));
      at += b - a;
    }
    start += m.len;
  }
  return at;
}
