// Handing described memory to the network: re-describing a backend's entries as skb_frag_t
// entries (counted as a conversion), and spreading fragments over buffers of MAX_SKB_FRAGS.

import { PAGE_SIZE } from '../constants.js';
import { checkInt, checkOptions, fail } from '../errors.js';
import type { Segment } from '../descriptor/types.js';
import { checkMemory, type PhysicalMemory } from '../mm/memory.js';
import { FRAG_FIELD_MAX, FRAG_REF_NONE, FragArray, SKB_FRAG_SIZE } from './frag.js';
import { MAX_SKB_FRAGS, MAX_SKB_FRAGS_MAX, MAX_SKB_FRAGS_MIN, SkBuff } from './skbuff.js';
import { NETMEM_MAX_INDEX } from './netmem.js';
import type { ConversionCost } from './types.js';

/**
 * What re-describing memory as `n` fragments costs the kernel: one conversion, `SKB_FRAG_SIZE`
 * bytes written per fragment, and the allocations of the network buffers whose shared info
 * holds them: ⌈n / MAX_SKB_FRAGS⌉ buffers, each an `sk_buff` and a head with its shared info
 * (2 allocations, as `SkBuff.footprint` counts). `fragConversionCost(0)` is all zero.
 */
export function fragConversionCost(n: number): ConversionCost {
  checkInt('n', n, 0);
  if (n === 0) return { conversions: 0, conversionBytes: 0, allocations: 0 };
  return { conversions: 1, conversionBytes: n * SKB_FRAG_SIZE, allocations: 2 * Math.ceil(n / MAX_SKB_FRAGS) };
}

/** Options of `fragsFromSegments`. */
export interface FragsFromSegmentsOptions {
  /**
   * Split at folio ends, as `zerocopy_fill_skb_from_iter` merges a compound page's pieces;
   * without it, at page ends, as `skb_splice_from_iter` hands pages over (what the backends' `toFrags` model).
   */
  memory?: PhysicalMemory;
}

/**
 * Re-describes `segments` as fragments, a conversion: a segment spanning physically contiguous
 * pages is cut wherever a folio ends (at every page end without `memory`), since a fragment
 * names one page, or pages of one compound page, and networking merges no others. Each
 * fragment names the page holding its first byte, with an offset below PAGE_SIZE, and holds
 * no reference (the descriptor keeps its pins). Cost: O(fragments); counted by
 * `fragConversionCost`: one conversion, `SKB_FRAG_SIZE` bytes per fragment written, two
 * allocations per ⌈n / MAX_SKB_FRAGS⌉ buffers that hold them.
 * EINVAL for a segment that is not `{ pfn, offset, length }` of integers.
 */
export function fragsFromSegments(segments: Iterable<Segment>, opts?: FragsFromSegmentsOptions): { frags: FragArray; cost: ConversionCost } {
  const o = checkOptions('fragsFromSegments options', opts);
  if (o.memory !== undefined) checkMemory(o.memory);
  const mem = o.memory;
  const frags = new FragArray(MAX_SKB_FRAGS);
  for (const s of segments) {
    if (typeof s !== 'object' || s === null || !Number.isInteger(s.pfn) || !Number.isInteger(s.offset) || !Number.isInteger(s.length) || s.pfn < 0 || s.offset < 0 || s.length < 1) {
      fail('EINVAL', `segment ${JSON.stringify(s)} is not { pfn, offset, length } of non-negative integers`);
    }
    let pfn = s.pfn + Math.floor(s.offset / PAGE_SIZE);
    let off = s.offset % PAGE_SIZE;
    let left = s.length;
    if (pfn > NETMEM_MAX_INDEX || pfn + Math.ceil((off + left) / PAGE_SIZE) > NETMEM_MAX_INDEX) fail('EINVAL', `segment ${JSON.stringify(s)} names a page past ${NETMEM_MAX_INDEX}`);
    // at most one fragment per page touched: room for them all, then no check per fragment
    frags.reserve(frags.count + Math.ceil((off + left) / PAGE_SIZE));
    while (left > 0) {
      let room = PAGE_SIZE - off;
      if (mem !== undefined) {
        mem.checkLivePfn('segment pfn', pfn);
        const head = mem.folioHead(pfn);
        room = (head + mem.folioNrPages(head) - pfn) * PAGE_SIZE - off;
      }
      const n = Math.min(left, room, FRAG_FIELD_MAX - (FRAG_FIELD_MAX % PAGE_SIZE));
      frags.pushUnchecked(pfn * 2, off, n, FRAG_REF_NONE);
      left -= n;
      pfn += Math.floor((off + n) / PAGE_SIZE);
      off = (off + n) % PAGE_SIZE;
    }
  }
  return { frags, cost: fragConversionCost(frags.count) };
}

/** Options of `skbsFromFrags`. */
export interface SkbsFromFragsOptions {
  /** Fragments per buffer, `CONFIG_MAX_SKB_FRAGS` (17..45; default 17). */
  maxFrags?: number;
  /** Give each buffer a head in this memory (then free each with `kfreeSkb`); lengths only otherwise. */
  memory?: PhysicalMemory;
}

/**
 * Spreads `frags` over as few buffers as `maxFrags` allows, in order, each a view of its window
 * (no entry copied, no reference taken: the array's owner keeps the memory), linked through
 * `next`: ⌈count / maxFrags⌉ buffers, each with `len = dataLen` = its window's bytes. Release
 * buffers made with `memory` by `kfreeSkb`. EINVAL for a bad `maxFrags` or an empty array.
 */
export function skbsFromFrags(frags: FragArray, opts?: SkbsFromFragsOptions): SkBuff[] {
  if (!(frags instanceof FragArray)) fail('EINVAL', 'frags must be a FragArray');
  const o = checkOptions('skbsFromFrags options', opts);
  const maxFrags = o.maxFrags ?? MAX_SKB_FRAGS;
  if (!Number.isInteger(maxFrags) || maxFrags < MAX_SKB_FRAGS_MIN || maxFrags > MAX_SKB_FRAGS_MAX) fail('EINVAL', `maxFrags = ${String(maxFrags)} is outside [${MAX_SKB_FRAGS_MIN}, ${MAX_SKB_FRAGS_MAX}]`);
  if (frags.count === 0) fail('EINVAL', 'no fragments to spread');
  const out: SkBuff[] = [];
  for (let at = 0; at < frags.count; at += maxFrags) {
    const count = Math.min(maxFrags, frags.count - at);
    const skb = new SkBuff({ maxFrags, memory: o.memory, frags: { array: frags, offset: at, count } });
    if (out.length > 0) out[out.length - 1]!.next = skb;
    out.push(skb);
  }
  return out;
}
