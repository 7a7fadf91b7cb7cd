// Dropping clean page-cache pages: drop_caches (fs/drop_caches.c → mm/truncate.c:
// mapping_evict_folio) and reclaim of the file LRU (mm/vmscan.c: shrink_folio_list).

import { GUP_PIN_COUNTING_BIAS } from '../constants.js';
import { filesOf } from './file.js';
import { filemapRemoveFolio } from './filemap.js';
import { checkMemory, type PhysicalMemory } from './memory.js';
import { PG_DIRTY, PG_WRITEBACK } from './page-flags.js';
import { unmapFileFolios } from './rmap.js';

/**
 * Drops every clean page-cache page that nothing maps, pins or references (`echo 1 >
 * /proc/sys/vm/drop_caches`: `mapping_evict_folio` on each): dirty or writeback folios, and
 * any with a reference beyond the cache's own, stay. Dropped pages are freed; the next access
 * reads the store again. Returns the pages dropped. EINVAL for a bad memory.
 * Cost: O(pages the files span).
 */
export function dropCaches(memory: PhysicalMemory): number {
  checkMemory(memory);
  let dropped = 0;
  for (const file of filesOf(memory)) {
    for (let index = 0; index < file.nrPages; index++) {
      const e = file.cache[index]!;
      if (e === 0) continue;
      const pfn = e - 1;
      if (memory.flags[pfn]! & (PG_DIRTY | PG_WRITEBACK)) continue;
      // the refcount is above the cache's one reference when the page is mapped, pinned or got
      if (memory.refcount[pfn]! > 1) continue;
      filemapRemoveFolio(file, index);
      dropped++;
    }
  }
  return dropped;
}

/** What `reclaimPageCache` did with the page-cache pages it scanned. */
export interface ReclaimResult {
  scanned: number;
  /** Pages unmapped from every process (`try_to_unmap`). */
  unmapped: number;
  /** Pages freed. */
  reclaimed: number;
  /** Kept because pinned (`folio_maybe_dma_pinned`), activated. */
  keptPinned: number;
  /** Kept because dirty: reclaim never writes a file page, the flusher does (activated). */
  keptDirty: number;
  /** Kept because under writeback, or referenced beyond the cache (the refcount freeze fails). */
  keptBusy: number;
}

/**
 * Reclaims page-cache pages as `shrink_folio_list` does for the file LRU, every cached page in
 * one pass: under writeback, kept; mapped, unmapped (`try_to_unmap`, a dirty entry dirtying the
 * folio); then pinned, kept; dirty, kept for the flusher; a reference beyond the cache's
 * (FOLL_GET), kept when the refcount freeze fails; else removed and freed. Accessed bits and
 * the active/inactive lists are not modelled: every page is scanned once. EINVAL for a bad
 * memory. Cost: O(pages the files span + pages their VMAs span).
 */
export function reclaimPageCache(memory: PhysicalMemory): ReclaimResult {
  checkMemory(memory);
  const r: ReclaimResult = { scanned: 0, unmapped: 0, reclaimed: 0, keptPinned: 0, keptDirty: 0, keptBusy: 0 };
  for (const file of filesOf(memory)) {
    // try_to_unmap() of every mapped page not under writeback, VMA by VMA
    r.unmapped += unmapFileFolios(file);
    for (let index = 0; index < file.nrPages; index++) {
      const e = file.cache[index]!;
      if (e === 0) continue;
      const pfn = e - 1;
      r.scanned++;
      if (memory.flags[pfn]! & PG_WRITEBACK) {
        r.keptBusy++;
        continue;
      }
      // folio_maybe_dma_pinned() of an order-0 folio: the pin bias shows in the refcount
      if (memory.refcount[pfn]! >= GUP_PIN_COUNTING_BIAS) {
        r.keptPinned++;
        continue;
      }
      if (memory.flags[pfn]! & PG_DIRTY) {
        r.keptDirty++;
        continue;
      }
      // __remove_mapping(): the refcount freeze expects the cache's reference alone
      if (memory.refcount[pfn]! !== 1) {
        r.keptBusy++;
        continue;
      }
      filemapRemoveFolio(file, index);
      r.reclaimed++;
    }
  }
  return r;
}
