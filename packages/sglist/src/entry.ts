// The entry helpers of include/linux/scatterlist.h and lib/scatterlist.c: walking a chained list
// (sg_next, sg_nents, sg_nents_for_len, sg_last), marking and chaining slots, sg_alloc_table.
// A "struct scatterlist *" is a slot index into its table's store.

import { checkInt, fail, PAGE_SIZE } from '@iodesc/core';
import {
  checkSlot, checkTable, nextSlot, SG_CHAIN, SG_DMA_ADDRESS, SG_DMA_LENGTH, SG_END, SG_F64_WORDS, SG_LENGTH, SG_MAX_SINGLE_ALLOC,
  SG_OFFSET, SG_PAGE_LINK, SG_PAGE_LINK_MASK, SG_WORDS, SgTable, UINT_MAX,
} from './table.js';

/** The slot after `slot` (`sg_next`), following a chain link; -1 after the entry marked last. */
export function sgNext(table: SgTable, slot: number): number {
  const t = checkTable('table', table);
  return nextSlot(t.store.u32, checkSlot(t, 'slot', slot));
}

/** Whether `slot` links to another chunk (`sg_is_chain`). */
export function sgIsChain(table: SgTable, slot: number): boolean {
  const t = checkTable('table', table);
  return (t.store.u32[checkSlot(t, 'slot', slot) * SG_WORDS + SG_PAGE_LINK]! & SG_CHAIN) !== 0;
}

/** Whether `slot` is marked last (`sg_is_last`). */
export function sgIsLast(table: SgTable, slot: number): boolean {
  const t = checkTable('table', table);
  return (t.store.u32[checkSlot(t, 'slot', slot) * SG_WORDS + SG_PAGE_LINK]! & SG_END) !== 0;
}

/** Entries from `slot` (default the list's first) up to the one marked last (`sg_nents`). Cost: O(entries). */
export function sgNents(table: SgTable, slot?: number): number {
  const t = checkTable('table', table);
  let s = slot === undefined ? t.sgl : checkSlot(t, 'slot', slot);
  let n = 0;
  for (; s >= 0; s = nextSlot(t.store.u32, s)) n++;
  return n;
}

/**
 * Entries from `slot` (default the first) needed to cover `len` bytes (`sg_nents_for_len`):
 * 0 for len 0; EINVAL when the list holds fewer bytes (the kernel returns -EINVAL).
 */
export function sgNentsForLen(table: SgTable, len: number, slot?: number): number {
  const t = checkTable('table', table);
  checkInt('len', len);
  if (len === 0) return 0;
  const u32 = t.store.u32;
  let total = 0;
  let n = 0;
  for (let s = slot === undefined ? t.sgl : checkSlot(t, 'slot', slot); s >= 0; s = nextSlot(u32, s)) {
    n++;
    total += u32[s * SG_WORDS + SG_LENGTH]!;
    if (total >= len) return n;
  }
  return fail('EINVAL', `the list holds ${total} bytes in ${n} entries, fewer than len ${len}`);
}

/** The `nents`-th entry from `slot`, which must be marked last (`sg_last`); EINVAL otherwise. */
export function sgLast(table: SgTable, slot: number, nents: number): number {
  const t = checkTable('table', table);
  let s = checkSlot(t, 'slot', slot);
  checkInt('nents', nents, 1);
  for (let i = 1; i < nents; i++) {
    s = nextSlot(t.store.u32, s);
    if (s < 0) fail('EINVAL', `the list from slot ${slot} ends after ${i} entries, before ${nents}`);
  }
  if (!(t.store.u32[s * SG_WORDS + SG_PAGE_LINK]! & SG_END)) fail('EINVAL', `entry ${nents} from slot ${slot} is not marked last (the kernel BUGs)`);
  return s;
}

/** Zeroes `nents` slots from `slot` and marks the last one the end (`sg_init_table`). */
export function sgInitTable(table: SgTable, slot: number, nents: number): void {
  const t = checkTable('table', table);
  checkSlot(t, 'slot', slot);
  checkInt('nents', nents, 1, t.store.used - slot);
  t.store.u32.fill(0, slot * SG_WORDS, (slot + nents) * SG_WORDS);
  t.store.u32[(slot + nents - 1) * SG_WORDS + SG_PAGE_LINK] = SG_END;
  t.entriesChanged();
}

/** Marks `slot` the end of the list, clearing a chain bit (`sg_mark_end`). */
export function sgMarkEnd(table: SgTable, slot: number): void {
  const t = checkTable('table', table);
  const w = checkSlot(t, 'slot', slot) * SG_WORDS + SG_PAGE_LINK;
  t.store.u32[w] = (t.store.u32[w]! | SG_END) & ~SG_CHAIN;
  t.entriesChanged();
}

/** Removes the end mark of `slot` (`sg_unmark_end`). */
export function sgUnmarkEnd(table: SgTable, slot: number): void {
  const t = checkTable('table', table);
  const w = checkSlot(t, 'slot', slot) * SG_WORDS + SG_PAGE_LINK;
  t.store.u32[w] = t.store.u32[w]! & ~SG_END;
  t.entriesChanged();
}

/** @internal `__sg_chain`: `chainSlot` becomes a link to `sgl`, offset and length cleared. */
export function chainSlot(u32: Uint32Array, chainSlotIndex: number, sgl: number): void {
  const b = chainSlotIndex * SG_WORDS;
  u32[b + SG_OFFSET] = 0;
  u32[b + SG_LENGTH] = 0;
  u32[b + SG_PAGE_LINK] = ((sgl << 2) | SG_CHAIN) >>> 0;
}

/** Links the chunk of `prvNents` slots at `prv` to the list at `sgl` through prv's last slot (`sg_chain`). */
export function sgChain(table: SgTable, prv: number, prvNents: number, sgl: number): void {
  const t = checkTable('table', table);
  checkSlot(t, 'prv', prv);
  checkInt('prvNents', prvNents, 1, t.store.used - prv);
  chainSlot(t.store.u32, prv + prvNents - 1, checkSlot(t, 'sgl', sgl));
  t.entriesChanged();
}

/**
 * Points `slot` at `len` bytes from byte `offset` of page `pfn`, keeping its end mark
 * (`sg_set_page`). EINVAL for a chain slot, a PFN of 2^30 or more, or a length past an unsigned int.
 */
export function sgSetPage(table: SgTable, slot: number, pfn: number, len: number, offset: number): void {
  const t = checkTable('table', table);
  const b = checkSlot(t, 'slot', slot) * SG_WORDS;
  checkInt('pfn', pfn, 0, 2 ** 30 - 1);
  checkInt('len', len, 0, UINT_MAX);
  checkInt('offset', offset, 0, UINT_MAX);
  const u32 = t.store.u32;
  if (u32[b + SG_PAGE_LINK]! & SG_CHAIN) fail('EINVAL', `slot ${slot} is a chain link, not an entry`);
  u32[b + SG_PAGE_LINK] = ((u32[b + SG_PAGE_LINK]! & SG_PAGE_LINK_MASK) | (pfn << 2)) >>> 0;
  u32[b + SG_OFFSET] = offset;
  u32[b + SG_LENGTH] = len;
  t.entriesChanged();
}

/** One entry's fields, a fresh object: `pfn` as stored (`sg_page`), `offset` and `length` raw, the DMA fields. */
export function sgEntry(table: SgTable, slot: number): { pfn: number; offset: number; length: number; dmaAddress: number; dmaLength: number; chain: boolean; end: boolean } {
  const t = checkTable('table', table);
  const s = checkSlot(t, 'slot', slot);
  const { u32, f64 } = t.store;
  const b = s * SG_WORDS;
  const link = u32[b + SG_PAGE_LINK]!;
  return {
    pfn: link >>> 2, offset: u32[b + SG_OFFSET]!, length: u32[b + SG_LENGTH]!,
    dmaAddress: f64[s * SG_F64_WORDS + SG_DMA_ADDRESS]!, dmaLength: u32[b + SG_DMA_LENGTH]!,
    chain: (link & SG_CHAIN) !== 0, end: (link & SG_END) !== 0,
  };
}

/** Physical address of an entry's first byte (`sg_phys`). */
export function sgPhys(table: SgTable, slot: number): number {
  const e = sgEntry(table, slot);
  return e.pfn * PAGE_SIZE + e.offset;
}

/**
 * A table of `nents` zeroed entries in chunks of at most SG_MAX_SINGLE_ALLOC slots, each full
 * chunk's last slot a link to the next (`sg_alloc_table` / `__sg_alloc_table` with `sg_kmalloc`);
 * fill it with `sgSetPage`. Cost: O(nents). Release with `sgFreeTable`. EINVAL for nents 0.
 */
export function sgAllocTable(nents: number): SgTable {
  checkInt('nents', nents, 1, UINT_MAX);
  const t = new SgTable();
  t.store.reserve(nents + Math.ceil(nents / (SG_MAX_SINGLE_ALLOC - 1)));
  let left = nents;
  let prv = -1;
  while (left > 0) {
    const alloc = Math.min(left, SG_MAX_SINGLE_ALLOC);
    const used = left > SG_MAX_SINGLE_ALLOC ? alloc - 1 : alloc;
    left -= used;
    const sg = t.allocChunk(alloc);
    t.origNents += used;
    if (prv >= 0) chainSlot(t.store.u32, prv + SG_MAX_SINGLE_ALLOC - 1, sg);
    else t.sgl = sg;
    if (left === 0) {
      const w = (sg + used - 1) * SG_WORDS + SG_PAGE_LINK;
      t.store.u32[w] = t.store.u32[w]! | SG_END;
    }
    prv = sg;
  }
  t.nents = t.origNents;
  return t;
}

/**
 * Frees every chunk (`sg_free_table`); the table refuses use afterwards. EBUSY while it is
 * DMA-mapped or holds getUserSg's pins (release those first: the kernel would leak them).
 */
export function sgFreeTable(table: SgTable): void {
  const t = checkTable('table', table);
  if (t.mapping !== null) fail('EBUSY', 'the table is still DMA-mapped: unmap it first');
  if (t.user !== null) fail('EBUSY', 'the table holds getUserSg pins: release it with putUserSg');
  t.release();
  t.freed = true;
}
