// The reverse map of page-cache pages through their file's i_mmap (mm/rmap.c: folio_mkclean,
// try_to_unmap), done VMA by VMA over a whole file, so that the cost is the pages the VMAs map
// rather than pages × VMAs (the kernel's i_mmap interval tree gets the same by other means).

import type { CachedFile } from './file.js';
import { PG_DIRTY, PG_WRITEBACK } from './page-flags.js';
import { PTE_DIRTY, PTE_WRITE, type Vma } from './vma.js';

// Calls `visit(vma, i, pfn)` for every entry of every VMA of `file` that maps the file's own
// page-cache page at its index (a private VMA's copy-on-write copies are not the cache's).
function forEachCacheEntry(file: CachedFile, sharedOnly: boolean, visit: (vma: Vma, i: number, pfn: number) => void): void {
  const cache = file.cache;
  for (const vma of file.mmaps) {
    if (sharedOnly && !vma.shared) continue;
    const n = Math.min(vma.nrPages, file.nrPages - vma.pgoff);
    const pt = vma.pt;
    for (let i = 0; i < n; i++) {
      const e = pt[i]!;
      if (e !== 0 && e === cache[vma.pgoff + i]) visit(vma, i, e - 1);
    }
  }
}

/**
 * `folio_mkclean` of every dirty page-cache page of `file`: each shared entry mapping one is
 * write-protected and cleaned, so the next CPU write faults and dirties the folio again
 * (private mappings map page-cache pages read-only already). The folios' own dirty flags are
 * the caller's to clear. Cost: O(pages the shared VMAs span).
 */
export function mkcleanDirtyFolios(file: CachedFile): void {
  const flags = file.memory.flags;
  forEachCacheEntry(file, true, (vma, i, pfn) => {
    if (flags[pfn]! & PG_DIRTY) vma.pte[i] = vma.pte[i]! & ~(PTE_WRITE | PTE_DIRTY);
  });
}

/**
 * `try_to_unmap` of every page-cache page of `file` not under writeback: each entry, shared or
 * private, is removed; a dirty one hands its dirt to the folio; each drops its mapcount and
 * reference. The cache's own reference keeps the folios. Returns the pages that were mapped.
 * Cost: O(pages the VMAs span).
 */
export function unmapFileFolios(file: CachedFile): number {
  const mem = file.memory;
  let pages = 0;
  for (let index = 0; index < file.nrPages; index++) {
    const e = file.cache[index]!;
    if (e !== 0 && mem.mapcount[e - 1]! > 0 && !(mem.flags[e - 1]! & PG_WRITEBACK)) pages++;
  }
  forEachCacheEntry(file, false, (vma, i, pfn) => {
    if (mem.flags[pfn]! & PG_WRITEBACK) return;
    if (vma.pte[i]! & PTE_DIRTY) mem.flags[pfn] = mem.flags[pfn]! | PG_DIRTY;
    vma.pt[i] = 0;
    vma.pte[i] = 0;
    mem.mapcount[pfn]!--;
    mem.putRefsUnchecked(pfn, 1);
  });
  return pages;
}
