// A buffer as a list of physical ranges for a scatterlist (net/core/skbuff.c: skb_to_sgvec),
// what a driver or a crypto transform hands to dma_map_sg.

import { PAGE_SIZE } from '../constants.js';
import { checkInt, checkOptions, fail } from '../errors.js';
import { checkSkb, type SkBuff } from './skbuff.js';

/** `skb_to_sgvec` recurses into frag_list members at most this deep, then gives EMSGSIZE. */
export const SKB_TO_SGVEC_MAX_RECURSION = 24;

/** A scatterlist's entries as physical ranges (`sg_set_buf` / `sg_set_page`), in order. */
export interface SkbSgvec {
  /** Physical address of each entry. */
  phys: Float64Array;
  /** Bytes of each entry. */
  lens: Float64Array;
  /** Entries filled. */
  count: number;
}

/** Options of `skbToSgvec`. */
export interface SkbToSgvecOptions {
  /** First byte of the buffer's data to describe (default 0). */
  offset?: number;
  /** Bytes to describe (default: to the end). */
  length?: number;
  /** Entries the caller's scatterlist holds: one more needed is EMSGSIZE (`sg_is_last`); default unlimited. */
  maxEntries?: number;
}

/**
 * Describes `length` bytes from `offset` of the buffer as scatterlist entries
 * (`skb_to_sgvec`): one for the linear part (`sg_set_buf`), one per fragment touched
 * (`sg_set_page(skb_frag_page(frag), copy, skb_frag_off(frag) + …)`: a fragment of a large
 * folio stays one entry), then the frag_list members the same way. Entries are never merged:
 * that is the DMA layer's business. A `length` of 0 gives, as in the kernel, one zero-length
 * entry at `offset` when bytes follow it (none at the end of the buffer); `dmaMapSegments`
 * refuses such an entry. EINVAL for a buffer without memory or a net_iov fragment
 * (`skb_frag_page` has no page to give), EMSGSIZE past `maxEntries` or 24 levels of frag_list.
 * Cost: O(entries).
 */
export function skbToSgvec(skb: SkBuff, opts?: SkbToSgvecOptions): SkbSgvec {
  checkSkb(skb);
  const o = checkOptions('skbToSgvec options', opts);
  const offset = o.offset === undefined ? 0 : checkInt('offset', o.offset, 0, skb.len);
  const length = o.length === undefined ? skb.len - offset : checkInt('length', o.length, 0, skb.len - offset);
  const maxEntries = o.maxEntries === undefined ? Infinity : checkInt('maxEntries', o.maxEntries, 1);
  if (skb.memory === null) fail('EINVAL', `skb #${skb.id} has no memory: nothing has a physical address`);
  const out: SkbSgvec = { phys: new Float64Array(skb.nrFrags + 1), lens: new Float64Array(skb.nrFrags + 1), count: 0 };
  toSgvec(skb, offset, length, 0, out, maxEntries);
  out.phys = out.phys.slice(0, out.count);
  out.lens = out.lens.slice(0, out.count);
  return out;
}

function push(out: SkbSgvec, phys: number, len: number, maxEntries: number): void {
  if (out.count >= maxEntries) fail('EMSGSIZE', `the buffer needs more than the scatterlist's ${maxEntries} entries`);
  if (out.count === out.phys.length) {
    const p = new Float64Array(out.count * 2);
    const l = new Float64Array(out.count * 2);
    p.set(out.phys);
    l.set(out.lens);
    out.phys = p;
    out.lens = l;
  }
  out.phys[out.count] = phys;
  out.lens[out.count++] = len;
}

// __skb_to_sgvec(): offsets count from the buffer's data.
function toSgvec(skb: SkBuff, offset: number, len: number, level: number, out: SkbSgvec, maxEntries: number): void {
  if (level >= SKB_TO_SGVEC_MAX_RECURSION) fail('EMSGSIZE', `frag_list nested ${level} deep`);
  let start = skb.headlen;
  let copy = start - offset;
  if (copy > 0) {
    if (copy > len) copy = len;
    push(out, skb.dataPhys + offset, copy, maxEntries);
    if ((len -= copy) === 0) return;
    offset += copy;
  }
  const arr = skb.fragArray;
  for (let k = 0; k < skb.nrFrags; k++) {
    const j = skb.fragBase + k;
    const end = start + arr.length(j);
    if ((copy = end - offset) > 0) {
      if (copy > len) copy = len;
      const page = arr.pfn(j);
      push(out, page * PAGE_SIZE + arr.offset(j) + offset - start, copy, maxEntries);
      if ((len -= copy) === 0) return;
      offset += copy;
    }
    start = end;
  }
  for (let m = skb.fragList; m !== null; m = m.next) {
    const end = start + m.len;
    if ((copy = end - offset) > 0) {
      if (copy > len) copy = len;
      toSgvec(m, offset - start, copy, level + 1, out, maxEntries);
      if ((len -= copy) === 0) return;
      offset += copy;
    }
    start = end;
  }
  if (len > 0) fail('EINVAL', `skb #${skb.id}: ${len} bytes of len are in no fragment (len and dataLen disagree with the fragments)`);
}
