// The page cache of a file (mm/filemap.c): finding a file page's folio, reading it in from the
// store on a miss, removing it; and the folio state tests the page cache uses.

import { PAGE_SIZE } from '../constants.js';
import type { CachedFile } from './file.js';
import { checkMemory, type PhysicalMemory } from './memory.js';
import { PG_DIRTY, PG_PAGECACHE, PG_UPTODATE, PG_WRITEBACK } from './page-flags.js';

/**
 * The PFN of the order-0 page-cache folio holding file page `index`, read in from the store
 * when not cached (`filemap_fault` → `__filemap_get_folio(FGP_CREAT)` + `read_folio`): a new
 * folio starts with the cache's one reference, uptodate once its bytes are in. Returns -1 when
 * no page is free. The caller has checked that `index` is below the file's end.
 */
export function filemapGetFolio(file: CachedFile, index: number): number {
  const e = file.cache[index]!;
  if (e !== 0) return e - 1;
  const mem = file.memory;
  const pfn = mem.allocFolio(0, false);
  if (pfn < 0) return -1;
  const block = file.storeBlock(index);
  // a page never stored reads as zeros, which is what a fresh frame holds: nothing to copy
  if (block !== undefined) mem.store.copyIn(pfn, 0, block, 0, PAGE_SIZE);
  mem.flags[pfn] = mem.flags[pfn]! | PG_PAGECACHE | PG_UPTODATE;
  file.cache[index] = pfn + 1;
  return pfn;
}

/**
 * Takes file page `index` out of the page cache and drops the cache's reference
 * (`filemap_remove_folio` + `folio_put_refs`): the folio is freed unless something else still
 * holds it. The caller has checked that it may go.
 */
export function filemapRemoveFolio(file: CachedFile, index: number): void {
  const pfn = file.cache[index]! - 1;
  const mem = file.memory;
  file.cache[index] = 0;
  mem.flags[pfn] = mem.flags[pfn]! & ~PG_PAGECACHE;
  mem.putRefsUnchecked(pfn, 1);
}

/** Whether the folio holding `pfn` is dirty: its contents differ from its store (`folio_test_dirty`). EINVAL for a PFN outside memory. */
export function folioTestDirty(memory: PhysicalMemory, pfn: number): boolean {
  return testFlag(memory, pfn, PG_DIRTY);
}

/** Whether the folio holding `pfn` is being written to its store (`folio_test_writeback`); writeback here completes at once, so false between calls. */
export function folioTestWriteback(memory: PhysicalMemory, pfn: number): boolean {
  return testFlag(memory, pfn, PG_WRITEBACK);
}

/** Whether the folio holding `pfn` holds valid data (`folio_test_uptodate`). */
export function folioTestUptodate(memory: PhysicalMemory, pfn: number): boolean {
  return testFlag(memory, pfn, PG_UPTODATE);
}

function testFlag(memory: PhysicalMemory, pfn: number, bit: number): boolean {
  checkMemory(memory);
  const p = memory.checkPfn('pfn', pfn);
  return (memory.flags[memory.folioHead(p)]! & bit) !== 0;
}
