// Building a table from an array of pages (lib/scatterlist.c: sg_alloc_append_table_from_pages,
// sg_alloc_table_from_pages_segment, get_next_sg, sg_free_append_table), with the current rules.

import { checkInt, checkPageArray, fail, PAGE_SIZE } from '@iodesc/core';
import { chainSlot } from './entry.js';
import {
  checkTable, nextSlot, SG_APPEND_TABLE_BYTES, SG_CHAIN, SG_END, SG_LENGTH, SG_MAX_SINGLE_ALLOC, SG_OFFSET, SG_PAGE_LINK, SG_PAGE_LINK_MASK,
  SG_TABLE_BYTES, SG_WORDS, SgTable, UINT_MAX,
} from './table.js';

/**
 * An sg_append_table: the table (`sgt`), the last entry filled (`prv`, a slot, -1 before the
 * first call) and the entries its slots can hold (`totalNents`: slots allocated less the ones
 * that became chain links, unused slots kept for later calls included).
 */
export class SgAppendTable {
  readonly sgt = new SgTable(SG_APPEND_TABLE_BYTES);
  /** Last populated slot, -1 when empty. */
  prv = -1;
  /** Entries the slots can hold (`total_nents`): chain links not counted, unused slots kept for later calls counted. */
  totalNents = 0;

  constructor() {
    this.sgt.append = this;
  }
}

// get_next_sg(): the slot after `cur`, unless it is the chunk's last and more than one entry is
// still needed: then a chunk of min(needed, 128) slots, linked through that last slot.
function getNextSg(a: SgAppendTable, cur: number, needed: number): number {
  const t = a.sgt;
  let next = -1;
  if (cur >= 0) {
    next = nextSlot(t.store.u32, cur);
    if (!(t.store.u32[next * SG_WORDS + SG_PAGE_LINK]! & SG_END) || needed === 1) return next;
  }
  const alloc = Math.min(needed, SG_MAX_SINGLE_ALLOC);
  const sg = t.allocChunk(alloc);
  if (cur >= 0) {
    a.totalNents += alloc - 1;
    chainSlot(t.store.u32, next, sg);
  } else {
    t.sgl = sg;
    a.totalNents = alloc;
  }
  return sg;
}

/**
 * @internal The unchecked body of `sgAllocAppendTableFromPages`: `maxSegment` already a whole
 * number of pages ≥ PAGE_SIZE, the arguments valid, and (when pages remain after merging into
 * `prv`) a slot after `prv`.
 */
export function appendPagesUnchecked(
  a: SgAppendTable, pages: Uint32Array, nPages: number, offset: number, size: number, maxSegment: number, leftPages: number,
): void {
  const t = a.sgt;
  t.entriesChanged();
  let p = 0;
  let prvLen = 0;
  if (a.prv >= 0) {
    // grow the last entry a page at a time while the pages continue it and it stays under maxSegment
    const u32 = t.store.u32;
    const b = a.prv * SG_WORDS;
    let len = u32[b + SG_LENGTH]!;
    prvLen = len;
    const nextPfn = Math.floor(((u32[b + SG_PAGE_LINK]! >>> 2) * PAGE_SIZE + u32[b + SG_OFFSET]! + len) / PAGE_SIZE);
    if (pages[0] === nextPfn) {
      let last = nextPfn - 1;
      while (p < nPages && pages[p] === last + 1 && len + PAGE_SIZE <= maxSegment) {
        len += PAGE_SIZE;
        last = pages[p]!;
        p++;
      }
      u32[b + SG_LENGTH] = len;
    }
    if (p === nPages) {
      if (leftPages === 0) markEnd(t, a.prv);
      return;
    }
  }

  const chunks = countChunks(pages, p, nPages, maxSegment);
  let s: number;
  try {
    t.store.reserve(t.store.used + chunks + Math.ceil(chunks / (SG_MAX_SINGLE_ALLOC - 1)) + 1);
    s = fillChunks(a, pages, p, nPages, chunks, offset, maxSegment, leftPages);
  } catch (e) {
    // get_next_sg failed: the last entry as before the call, nents and prv unchanged; entries
    // filled since lie past the list's end and chunks allocated stay for sg_free_append_table
    if (a.prv >= 0) t.store.u32[a.prv * SG_WORDS + SG_LENGTH] = prvLen;
    if (e instanceof RangeError) fail('ENOMEM', `no memory for ${chunks} more entries (${e.message})`);
    throw e;
  }
  const total = (nPages - p) * PAGE_SIZE - offset;
  // the first slot filled is the one after prv (through a chain link when a chunk was added there)
  if (size < total) clipToSize(t.store.u32, a.prv >= 0 ? nextSlot(t.store.u32, a.prv) : t.sgl, s, size, total);
  t.nents += chunks;
  t.origNents = t.nents;
  a.prv = s;
  if (leftPages === 0) markEnd(t, s);
}

// Chunks pages[from..n) fall into: a chunk ends at a PFN discontinuity or once it reaches maxSegment.
function countChunks(pages: Uint32Array, from: number, n: number, maxSegment: number): number {
  const page = PAGE_SIZE; // see fillChunks
  let chunks = 1;
  for (let i = from + 1, seg = 0; i < n; i++) {
    seg += page;
    if (seg >= maxSegment || pages[i] !== pages[i - 1]! + 1) {
      chunks++;
      seg = 0;
    }
  }
  return chunks;
}

// Last slot of the newest chunk when slot `s` lies in it, else -1 (an older chunk's slot).
function newestChunkLast(t: SgTable, s: number): number {
  const k = t.chunkStart.length - 1;
  const start = t.chunkStart[k]!;
  return s >= start ? start + t.chunkSlots[k]! - 1 : -1;
}

// Fills one whole entry per chunk of pages[from..n) (sg_set_page), the first from `offset`,
// in the slots after a.prv; returns the last slot filled.
function fillChunks(
  a: SgAppendTable, pages: Uint32Array, from: number, n: number, chunks: number, offset: number, maxSegment: number, leftPages: number,
): number {
  // module and imported constants copied into locals: V8 reloads those bindings on every use
  const page = PAGE_SIZE;
  const words = SG_WORDS;
  const link = SG_PAGE_LINK;
  const offsetField = SG_OFFSET;
  const lengthField = SG_LENGTH;
  const flags = SG_PAGE_LINK_MASK;
  let s = a.prv;
  let cur = from;
  // last slot of the chunk holding s, once known: below it, the next slot is simply s + 1
  let chunkLast = -1;
  let u32 = a.sgt.store.u32;
  for (let i = 0; i < chunks; i++) {
    let j = cur + 1;
    for (let seg = page; j < n; j++, seg += page) {
      if (seg >= maxSegment || pages[j] !== pages[j - 1]! + 1) break;
    }
    if (s + 1 < chunkLast) {
      s++;
    } else {
      // the slow step, once a chunk: get_next_sg, then where the chunk holding the slot ends
      s = getNextSg(a, s, chunks - i + leftPages);
      chunkLast = newestChunkLast(a.sgt, s);
      u32 = a.sgt.store.u32;
    }
    const chunkSize = (j - cur) * page - offset;
    const b = s * words;
    // sg_set_page keeps the slot's chain and end bits
    u32[b + link] = ((u32[b + link]! & flags) | (pages[cur]! << 2)) >>> 0;
    u32[b + offsetField] = offset;
    u32[b + lengthField] = chunkSize;
    offset = 0;
    cur = j;
  }
  return s;
}

// Clips the entries first..last, holding `total` bytes, to `size` as the kernel's fill loop
// does: an entry takes min(size left, its bytes); `size` is an unsigned long, so once it runs
// out it wraps and later entries stay whole (an entry met with exactly 0 left gets length 0).
function clipToSize(u32: Uint32Array, first: number, last: number, size: number, total: number): void {
  const over = total - size;
  const lastLen = u32[last * SG_WORDS + SG_LENGTH]!;
  // the usual case: size runs out inside the last entry
  if (over < lastLen) {
    u32[last * SG_WORDS + SG_LENGTH] = lastLen - over;
    return;
  }
  let left = size;
  for (let s = first; ; s = nextSlot(u32, s)) {
    const len = u32[s * SG_WORDS + SG_LENGTH]!;
    if (left < len) {
      u32[s * SG_WORDS + SG_LENGTH] = left;
      return;
    }
    left -= len;
  }
}

function markEnd(t: SgTable, slot: number): void {
  const w = slot * SG_WORDS + SG_PAGE_LINK;
  t.store.u32[w] = (t.store.u32[w]! | SG_END) & ~SG_CHAIN;
}

// What both entry points check before anything changes.
function checkPagesArgs(pages: unknown, nPages: unknown, offset: unknown, size: unknown, maxSegment: unknown): number {
  const n = checkInt('nPages', nPages, 1, UINT_MAX);
  checkPageArray('pages', pages, n);
  checkInt('offset', offset, 0, PAGE_SIZE - 1);
  checkInt('size', size, 1);
  if ((size as number) > n * PAGE_SIZE - (offset as number)) {
    fail('EINVAL', `size ${size} is more than the ${n} pages hold from offset ${offset} (${n * PAGE_SIZE - (offset as number)} bytes)`);
  }
  // page_link holds pfn << 2 in 32 bits (RAM here ends below 2^26 pages)
  const pfns = pages as Uint32Array;
  let any = 0;
  for (let i = 0; i < n; i++) any |= pfns[i]!;
  if (any >>> 30 !== 0) {
    const i = pfns.findIndex((p, k) => k < n && p >= 2 ** 30);
    fail('EINVAL', `pages[${i}] = ${pfns[i]} is not a PFN below 2^30`);
  }
  checkInt('maxSegment', maxSegment, 0, UINT_MAX);
  // the algorithm needs whole pages, else it can overshoot
  const max = Math.floor((maxSegment as number) / PAGE_SIZE) * PAGE_SIZE;
  if (max < PAGE_SIZE) fail('EINVAL', `maxSegment ${maxSegment} is less than one page (${PAGE_SIZE}) once rounded down to whole pages`);
  return max;
}

// How many of pages[0..nPages) would merge into a.prv, without changing anything.
function mergeablePages(a: SgAppendTable, pages: Uint32Array, nPages: number, maxSegment: number): number {
  const u32 = a.sgt.store.u32;
  const b = a.prv * SG_WORDS;
  let len = u32[b + SG_LENGTH]!;
  const nextPfn = Math.floor(((u32[b + SG_PAGE_LINK]! >>> 2) * PAGE_SIZE + u32[b + SG_OFFSET]! + len) / PAGE_SIZE);
  let p = 0;
  if (pages[0] !== nextPfn) return 0;
  while (p < nPages && pages[p] === nextPfn + p && len + PAGE_SIZE <= maxSegment) {
    len += PAGE_SIZE;
    p++;
  }
  return p;
}

/**
 * Adds `nPages` pages to an append table (`sg_alloc_append_table_from_pages`): the first page
 * from byte `offset`, `size` bytes in all. On a later call the last entry first grows a page at
 * a time while the pages continue it and it stays within `maxSegment` (an offset is then
 * EINVAL); then PFN-adjacent pages merge into entries of at most `maxSegment` (rounded down to
 * whole pages; EINVAL below one page) bytes; only the first entry carries the offset and only the last
 * is clipped to `size`. Chunks are allocated with `leftPages` still to come in mind, so
 * `totalNents` may exceed `nents`; with `leftPages` 0 the last entry is marked the end.
 *
 * `pages` is a Uint32Array of PFNs (PFN 0 is a page like any other); `size` may be less than
 * the pages hold (as in the kernel, entries after the one that uses it up are then whole).
 * Returns 0. Cost: O(nPages), one allocation per 127 entries. Release with `sgFreeAppendTable`.
 * EINVAL for bad arguments, a table already marked ended (the kernel dereferences NULL there),
 * or a freed one; nothing changes then. ENOMEM when the slots cannot be allocated: as in the
 * kernel the last entry gets its length back and `nents` and `prv` stay, so the entries are
 * those before the call (chunks already allocated stay until `sgFreeAppendTable`).
 */
export function sgAllocAppendTableFromPages(
  append: SgAppendTable, pages: Uint32Array, nPages: number, offset: number, size: number, maxSegment: number, leftPages: number,
): 0 {
  if (!(append instanceof SgAppendTable)) fail('EINVAL', 'append must be an SgAppendTable');
  checkTable('append.sgt', append.sgt);
  const max = checkPagesArgs(pages, nPages, offset, size, maxSegment);
  checkInt('leftPages', leftPages, 0, UINT_MAX);
  if (append.prv >= 0) {
    if (offset !== 0) fail('EINVAL', `offset ${offset} on a later append: only the first call may start inside a page`);
    if (append.sgt.mapping !== null) fail('EBUSY', 'the table is DMA-mapped: unmap it before appending');
    if (mergeablePages(append, pages, nPages, max) < nPages && nextSlot(append.sgt.store.u32, append.prv) < 0) {
      fail('EINVAL', 'the table was ended (leftPages 0, or its last slot used): no slot follows its last entry');
    }
  }
  appendPagesUnchecked(append, pages, nPages, offset, size, max, leftPages);
  return 0;
}

/**
 * A table for `size` bytes of `nPages` pages from byte `offset` of the first
 * (`sg_alloc_table_from_pages_segment`): PFN-adjacent pages merged into entries of at most
 * `maxSegment` bytes, rounded down to whole pages. Needs no PhysicalMemory. Cost: O(nPages).
 * Release with `sgFreeTable`. EINVAL for maxSegment below a page, offset ≥ PAGE_SIZE, size 0 or
 * more than the pages hold, nPages 0 or beyond the array.
 */
export function sgAllocTableFromPagesSegment(pages: Uint32Array, nPages: number, offset: number, size: number, maxSegment: number): SgTable {
  const max = checkPagesArgs(pages, nPages, offset, size, maxSegment);
  return fromPagesUnchecked(pages, nPages, offset, size, max);
}

/** `sgAllocTableFromPagesSegment` with maxSegment UINT_MAX (`sg_alloc_table_from_pages`). */
export function sgAllocTableFromPages(pages: Uint32Array, nPages: number, offset: number, size: number): SgTable {
  return sgAllocTableFromPagesSegment(pages, nPages, offset, size, UINT_MAX);
}

/** @internal Unchecked: a plain sg_table built through a throw-away append table. */
export function fromPagesUnchecked(pages: Uint32Array, nPages: number, offset: number, size: number, maxSegment: number): SgTable {
  const a = new SgAppendTable();
  appendPagesUnchecked(a, pages, nPages, offset, size, maxSegment, 0);
  const t = a.sgt;
  // the header is a struct sg_table: the append wrapper was local to the call
  t.headerBytes = SG_TABLE_BYTES;
  t.append = null;
  return t;
}

/**
 * Frees an append table's chunks (`sg_free_append_table`); the append table is empty again.
 * EBUSY while its table is DMA-mapped or holds getUserSg's pins.
 */
export function sgFreeAppendTable(append: SgAppendTable): void {
  if (!(append instanceof SgAppendTable)) fail('EINVAL', 'append must be an SgAppendTable');
  const t = checkTable('append.sgt', append.sgt);
  if (t.mapping !== null) fail('EBUSY', 'the table is still DMA-mapped: unmap it first');
  if (t.user !== null) fail('EBUSY', 'the table holds getUserSg pins: release it with putUserSg');
  t.release();
  append.prv = -1;
  append.totalNents = 0;
}

/**
 * @internal Rebuilds `t` in place with entries of at most `maxSegment` bytes (a whole number of
 * pages) when one is longer, as a driver builds its table with the device's limit
 * (`sg_alloc_table_from_pages_segment(..., dma_max_mapping_size(dev))`): the same bytes, the
 * same pins, re-cut. Only tables whose inner entries are whole pages (every table built from
 * pages or user memory) are re-cut, and an append table only once ended (its wrapper then
 * points at the new last entry and slots); returns whether it did.
 */
export function resegment(t: SgTable, maxSegment: number): boolean {
  const u32 = t.store.u32;
  const wrapper = t.append;
  // a wrapper that may still append keeps its slots, and the slots it reserved for what comes
  if (wrapper !== null && wrapper.prv >= 0 && !(u32[wrapper.prv * SG_WORDS + SG_PAGE_LINK]! & SG_END)) return false;
  let over = false;
  let pageCount = 0;
  for (let i = 0, s = t.sgl; i < t.origNents; i++, s = nextSlot(u32, s)) {
    const b = s * SG_WORDS;
    const off = u32[b + SG_OFFSET]!;
    const len = u32[b + SG_LENGTH]!;
    if (len > maxSegment) over = true;
    // inner edges must fall on page boundaries for the pages to describe the same bytes
    if ((i > 0 && off % PAGE_SIZE !== 0) || (i < t.origNents - 1 && (off + len) % PAGE_SIZE !== 0)) return false;
    pageCount += Math.ceil(((off % PAGE_SIZE) + len) / PAGE_SIZE);
  }
  if (!over) return false;
  const pages = new Uint32Array(pageCount);
  let k = 0;
  let firstOffset = 0;
  const size = t.length;
  for (let i = 0, s = t.sgl; i < t.origNents; i++, s = nextSlot(u32, s)) {
    const b = s * SG_WORDS;
    const off = u32[b + SG_OFFSET]!;
    const pfn = (u32[b + SG_PAGE_LINK]! >>> 2) + Math.floor(off / PAGE_SIZE);
    if (i === 0) firstOffset = off % PAGE_SIZE;
    const n = Math.ceil(((off % PAGE_SIZE) + u32[b + SG_LENGTH]!) / PAGE_SIZE);
    for (let j = 0; j < n; j++) pages[k++] = pfn + j;
  }
  const a = new SgAppendTable();
  appendPagesUnchecked(a, pages, pageCount, firstOffset, size, maxSegment, 0);
  const n = a.sgt;
  t.store.recycle();
  t.store = n.store;
  t.sgl = n.sgl;
  t.chunkStart = n.chunkStart;
  t.chunkSlots = n.chunkSlots;
  t.nents = n.nents;
  t.origNents = n.origNents;
  t.entriesChanged();
  if (wrapper !== null) {
    wrapper.prv = a.prv;
    wrapper.totalNents = a.totalNents;
  }
  return true;
}
