// Releasing what get_user_pages took (mm/gup.c: unpin_user_pages*, gup_put_folio; put_page).
// Each call validates the whole batch before it frees anything: a bad entry changes nothing.

import { GUP_PIN_COUNTING_BIAS, INT32_MAX } from '../constants.js';
import { checkBool, checkInt, checkPageArray, fail } from '../errors.js';
import { checkMemory, type PhysicalMemory } from './memory.js';
import { PG_DIRTY, PG_LIVE, PG_ZERO } from './page-flags.js';

/** Drops a FOLL_GET reference on the page `pfn` (`put_page`). EINVAL when none was taken. */
export function putPage(memory: PhysicalMemory, pfn: number): void {
  checkMemory(memory);
  memory.checkLivePfn('pfn', pfn);
  const head = memory.folioHead(pfn);
  if (memory.gets[head]! <= 0) fail('EINVAL', `put_page on pfn ${pfn}: no reference taken by get_user_pages is held`);
  memory.gets[head]!--;
  memory.putRefsUnchecked(head, 1);
}

/** Releases one pinned page (`unpin_user_page`). EINVAL when it is not pinned. */
export function unpinUserPage(memory: PhysicalMemory, pfn: number): void {
  unpinUserPagesDirtyLock(memory, Uint32Array.of(checkInt('pfn', pfn)), 1, false);
}

/** Releases `n` pinned pages (`unpin_user_pages`). See `unpinUserPagesDirtyLock`. */
export function unpinUserPages(memory: PhysicalMemory, pages: Uint32Array, n: number): void {
  unpinUserPagesDirtyLock(memory, pages, n, false);
}

/**
 * Releases the first `n` pinned pages of `pages`, first marking each folio dirty when
 * `makeDirty` is set and it is clean (`unpin_user_pages_dirty_lock`). Pages of one folio that
 * stand next to each other are released in one step, as gup_folio_next() groups them; a folio
 * whose last reference goes is freed. The zero page carries no pins and is skipped.
 * EINVAL (naming the PFN) for a PFN beyond memory, a free page, or one not pinned that many
 * times (a double unpin); then nothing is released. Cost: O(n).
 */
export function unpinUserPagesDirtyLock(memory: PhysicalMemory, pages: Uint32Array, n: number, makeDirty: boolean): void {
  checkMemory(memory);
  checkInt('n', n, 0, INT32_MAX);
  checkPageArray('pages', pages, n);
  checkBool('makeDirty', makeDirty);
  releasePins(memory, pages, n, makeDirty);
}

/**
 * Releases `nrPages` pinned pages from `pfn` on, a physically contiguous range
 * (`unpin_user_page_range_dirty_lock`), dirtying each folio first when `makeDirty` is set.
 * Fails as `unpinUserPagesDirtyLock`.
 */
export function unpinUserPageRangeDirtyLock(memory: PhysicalMemory, pfn: number, nrPages: number, makeDirty: boolean): void {
  checkMemory(memory);
  memory.checkPfn('pfn', pfn);
  checkInt('nrPages', nrPages, 0, memory.nrPages - pfn);
  checkBool('makeDirty', makeDirty);
  const pages = new Uint32Array(nrPages);
  for (let i = 0; i < nrPages; i++) pages[i] = pfn + i;
  releasePins(memory, pages, nrPages, makeDirty);
}

/** Whether the folio holding `pfn` may be pinned for DMA (`folio_maybe_dma_pinned`). */
export function folioMaybeDmaPinned(memory: PhysicalMemory, pfn: number): boolean {
  checkMemory(memory);
  memory.checkPfn('pfn', pfn);
  const head = memory.folioHead(pfn);
  if (memory.order[head]! > 0) return memory.pins[head]! > 0;
  // a small folio keeps its pins in the refcount: past the bias it may be pinned
  return memory.refcount[head]! >>> 0 >= GUP_PIN_COUNTING_BIAS;
}

/** Exact pins held on the folio holding `pfn` (the kernel's `_pincount` for a large folio). */
export function folioPinCount(memory: PhysicalMemory, pfn: number): number {
  checkMemory(memory);
  return memory.pins[memory.folioHead(memory.checkPfn('pfn', pfn))]!;
}

/** The refcount of the folio holding `pfn` (`folio_ref_count`). */
export function folioRefCount(memory: PhysicalMemory, pfn: number): number {
  checkMemory(memory);
  return memory.refcount[memory.folioHead(memory.checkPfn('pfn', pfn))]!;
}

/** Page-table entries mapping `pfn` (`page_mapcount`). */
export function pageMapcount(memory: PhysicalMemory, pfn: number): number {
  checkMemory(memory);
  return memory.mapcount[memory.checkPfn('pfn', pfn)]!;
}


// Two passes over folio groups: the first takes the pins off (nothing is freed, so it can be
// undone when a later entry is bad) and notes each group's head, the second, needed only to
// dirty or to free, visits those heads. A folio is freed at its first group once its count is
// final, and its later groups, no longer a folio, are skipped.
function releasePins(mem: PhysicalMemory, pages: Uint32Array, n: number, makeDirty: boolean): void {
  if (groupHeads.length < n) groupHeads = new Int32Array(Math.max(n, 2 * groupHeads.length));
  const heads = groupHeads;
  const { flags, order, pins, refcount } = mem;
  const nrPages = mem.nrPages;
  let released = 0;
  let freeable = 0;
  let groups = 0;
  let i = 0;
  while (i < n) {
    // gup_folio_next(): the entries from i on that name pages of the same folio
    const pfn = pages[i]!;
    if (pfn >= nrPages || !(flags[pfn]! & PG_LIVE)) refuse(mem, pages, i, -1);
    const o = order[pfn]!;
    const head = pfn & -(1 << o);
    const end = head + (1 << o);
    let nr = 1;
    while (i + nr < n) {
      const p = pages[i + nr]!;
      if (p < head || p >= end) break;
      nr++;
    }
    if (!(flags[head]! & PG_ZERO)) {
      if (pins[head]! < nr) refuse(mem, pages, i, nr);
      pins[head] = pins[head]! - nr;
      if ((refcount[head] = refcount[head]! - (o > 0 ? nr : nr * GUP_PIN_COUNTING_BIAS)) === 0) freeable++;
      released += nr;
    }
    heads[groups++] = head;
    i += nr;
  }
  mem.stats.nrFollPinReleased += released;
  if (!makeDirty && freeable === 0) return;
  for (let g = 0; g < groups; g++) {
    const head = heads[g]!;
    if (!(flags[head]! & PG_LIVE)) continue;
    if (makeDirty) flags[head] = flags[head]! | PG_DIRTY; // folio_mark_dirty, the zero page too
    if (refcount[head] === 0) mem.freeIfUnreferenced(head);
  }
}

/** Heads of the folio groups of the batch being released, reused across calls (no allocation per call). */
let groupHeads = new Int32Array(1024);

// Undoes what the batch released before entry `i`, then throws EINVAL naming pages[i]: kept
// out of releasePins so that its loop stays small.
function refuse(mem: PhysicalMemory, pages: Uint32Array, i: number, nr: number): never {
  undoRelease(mem, pages, i);
  const pfn = pages[i]!;
  if (nr < 0) fail('EINVAL', `unpin of pfn ${pfn}: ${pfn >= mem.nrPages ? `beyond memory (${mem.nrPages} pages)` : 'a free page'}`);
  const head = mem.folioHead(pfn);
  return fail('EINVAL', `unpin of pfn ${pfn}: folio ${head} holds ${mem.pins[head]} pin(s), ${nr} released (never pinned, or unpinned twice)`);
}

// Re-adds the pins taken off for entries [0, upto).
function undoRelease(mem: PhysicalMemory, pages: Uint32Array, upto: number): void {
  for (let i = 0; i < upto; ) {
    const nr = groupAt(mem, pages, upto, i);
    const head = mem.folioHead(pages[i]!);
    i += nr;
    if (mem.flags[head]! & PG_ZERO) continue;
    mem.pins[head] = mem.pins[head]! + nr;
    mem.refcount[head] = mem.refcount[head]! + mem.pinRefs(head, nr);
  }
}

// gup_folio_next(): how many entries from `i` on name pages of the same folio; -1 when
// pages[i] is beyond memory or free.
function groupAt(mem: PhysicalMemory, pages: Uint32Array, n: number, i: number): number {
  const pfn = pages[i]!;
  if (pfn >= mem.nrPages || !(mem.flags[pfn]! & PG_LIVE)) return -1;
  const head = mem.folioHead(pfn);
  const end = head + (1 << mem.order[head]!);
  let nr = 1;
  while (i + nr < n) {
    const p = pages[i + nr]!;
    if (p < head || p >= end) break;
    nr++;
  }
  return nr;
}
