// The reverse map of page-cache pages through their file's i_mmap (mm/rmap.c: folio_mkclean,
// try_to_unmap): every VMA of the file whose window holds the page, and whose entry maps it.

import type { CachedFile } from './file.js';
import { PG_DIRTY } from './page-flags.js';
import { PTE_DIRTY, PTE_WRITE } from './vma.js';

/**
 * Write-protects and cleans every shared entry mapping file page `index` (held in `pfn`), so the
 * next CPU write faults and dirties the folio again (`folio_mkclean`; private mappings map
 * page-cache pages read-only already and are skipped). Returns how many entries were writable
 * or dirty: the folio's dirt those held is the caller's to keep.
 */
export function folioMkclean(file: CachedFile, index: number, pfn: number): number {
  let cleaned = 0;
  for (const vma of file.mmaps) {
    if (!vma.shared) continue;
    const i = index - vma.pgoff;
    if (i < 0 || i >= vma.nrPages || vma.pt[i] !== pfn + 1) continue;
    const bits = vma.pte[i]!;
    if (!(bits & (PTE_WRITE | PTE_DIRTY))) continue;
    vma.pte[i] = bits & ~(PTE_WRITE | PTE_DIRTY);
    cleaned++;
  }
  return cleaned;
}

/**
 * Removes every entry mapping file page `index` (held in `pfn`), shared or private
 * (`try_to_unmap` of a file folio): a dirty entry hands its dirt to the folio, each entry drops
 * its mapcount and reference. The page cache's own reference keeps the folio.
 */
export function tryToUnmap(file: CachedFile, index: number, pfn: number): void {
  const mem = file.memory;
  for (const vma of file.mmaps) {
    const i = index - vma.pgoff;
    if (i < 0 || i >= vma.nrPages || vma.pt[i] !== pfn + 1) continue;
    if (vma.pte[i]! & PTE_DIRTY) mem.flags[pfn] = mem.flags[pfn]! | PG_DIRTY;
    vma.pt[i] = 0;
    vma.pte[i] = 0;
    mem.mapcount[pfn]!--;
    mem.putRefsUnchecked(pfn, 1);
  }
}
