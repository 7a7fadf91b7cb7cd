// Writeback of dirty page-cache pages to their files' stores (mm/page-writeback.c:
// write_cache_pages, folio_clear_dirty_for_io; completion is synchronous here).

import { PAGE_SIZE } from '../constants.js';
import { checkFile, filesOf, type CachedFile } from './file.js';
import { checkMemory, type PhysicalMemory } from './memory.js';
import { PG_DIRTY, PG_WRITEBACK } from './page-flags.js';
import { mkcleanDirtyFolios } from './rmap.js';

const scratch = new Uint8Array(PAGE_SIZE);

/**
 * Writes every dirty page-cache page of every file in `memory` to its file's store and cleans
 * it (the flusher threads, `sync`). Per page: `folio_clear_dirty_for_io` (shared entries
 * write-protected and cleaned by `folio_mkclean`, the folio's dirty flag cleared), then
 * PG_writeback set, the bytes up to the file's end stored, PG_writeback cleared. Clean pages
 * are skipped however their bytes changed: a device's write into a pinned page is never seen
 * unless the pin is released dirty. Returns the pages written. EINVAL for a bad memory.
 * Cost: O(pages the files span).
 */
export function writeback(memory: PhysicalMemory): number {
  checkMemory(memory);
  let written = 0;
  for (const file of filesOf(memory)) written += writebackPages(file);
  return written;
}

/** `writeback` of one file (`filemap_write_and_wait`). Returns the pages written. EINVAL for a bad file. */
export function filemapWriteAndWait(file: CachedFile): number {
  checkFile(file);
  return writebackPages(file);
}

function writebackPages(file: CachedFile): number {
  const mem = file.memory;
  let written = 0;
  // folio_clear_dirty_for_io(): the entries are cleaned first, so that a write racing the I/O
  // faults and dirties the folio again (folio_mkclean, done for the whole file at once)
  mkcleanDirtyFolios(file);
  for (let index = 0; index < file.nrPages; index++) {
    const e = file.cache[index]!;
    if (e === 0) continue;
    const pfn = e - 1;
    if (!(mem.flags[pfn]! & PG_DIRTY)) continue;
    mem.flags[pfn] = (mem.flags[pfn]! & ~PG_DIRTY) | PG_WRITEBACK;
    const pos = index * PAGE_SIZE;
    mem.store.copyOut(pfn, 0, scratch, 0, PAGE_SIZE);
    file.storeIn(pos, scratch, 0, Math.min(PAGE_SIZE, file.size - pos));
    // folio_end_writeback()
    mem.flags[pfn] = mem.flags[pfn]! & ~PG_WRITEBACK;
    written++;
  }
  return written;
}
