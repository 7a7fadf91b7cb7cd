// Page faults on anonymous memory (mm/memory.c: do_anonymous_page, do_wp_page,
// mm/huge_memory.c: do_huge_pmd_anonymous_page): populate an entry on first touch.

import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import { fail, hex } from '../errors.js';
import { fileFault } from './file-fault.js';
import { releaseIfUnused } from './file.js';
import type { PhysicalMemory } from './memory.js';
import { hugetlbFault, hugetlbUnmap } from './hugetlb-vma.js';
import { PG_ANON, PG_ANON_EXCL, PG_ANY_ZERO, PG_DIRTY, PG_HUGE_ZERO } from './page-flags.js';
import { PTE_DIRTY, PTE_PMD, PTE_WRITE, VM_WRITE, type Vma } from './vma.js';

/** What a fault asks for. */
export const FAULT_READ = 0;
export const FAULT_WRITE = 1;
/** Replace a shared zero-page entry with a page of our own, keeping it read-only (`FAULT_FLAG_UNSHARE`). */
export const FAULT_UNSHARE = 2;

/**
 * Resolves a fault on page `i` of `vma`. A read of an empty entry maps the shared zero page
 * (private anon), or the huge zero folio over a whole empty 2 MiB of a THP mapping; a write or
 * an unshare allocates a page of our own (a 2 MiB folio when the VMA allows THP and the aligned
 * 2 MiB around it lies in the VMA with no page of its own yet). Throws ENOMEM when memory is
 * exhausted; the entry then still reads as zeros (a huge zero PMD may have become small
 * zero-page entries).
 */
export function handleFault(memory: PhysicalMemory, vma: Vma, i: number, kind: number): void {
  if (vma.hugetlb !== undefined) return hugetlbFault(memory, vma, i, kind);
  if (vma.file !== undefined) {
    fileFault(memory, vma, i, kind);
    return;
  }
  const entry = vma.pt[i]!;
  const zeroLike = entry !== 0 && (memory.flags[entry - 1]! & PG_ANY_ZERO) !== 0;
  if (entry !== 0 && !zeroLike) {
    // present and our own (exclusive anon): a write fault on a writable VMA reuses it
    // (wp_page_reuse); under FOLL_FORCE on a read-only one the entry stays as it is
    if (kind === FAULT_WRITE && vma.vmFlags & VM_WRITE) vma.pte[i] = vma.pte[i]! | PTE_DIRTY | PTE_WRITE;
    return;
  }
  if (kind === FAULT_READ && !vma.shared) {
    if (entry === 0 && vma.thp && mapHugeZero(memory, vma, i)) return;
    vma.pt[i] = memory.zeroPfn + 1;
    vma.pte[i] = 0;
    return;
  }
  if (vma.thp && tryHugeFault(memory, vma, i, kind)) return;
  // a huge zero PMD that cannot become a THP falls back to small entries (do_huge_pmd_wp_page)
  if (zeroLike && vma.pte[i]! & PTE_PMD) splitPmdAt(memory, vma, i);
  const pfn = memory.allocFolio(0, !vma.shared);
  if (pfn < 0) fail('ENOMEM', `out of memory faulting in ${hex(vma.start + i * PAGE_SIZE)}`);
  if (!vma.shared) memory.flags[pfn] = memory.flags[pfn]! | PG_ANON_EXCL;
  // fault_dirty_shared_page(): a write fault on shared memory dirties the folio
  else if (kind === FAULT_WRITE) memory.flags[pfn] = memory.flags[pfn]! | PG_DIRTY;
  memory.mapcount[pfn] = 1;
  vma.pt[i] = pfn + 1;
  // wp_page_copy(): a write copying off the zero page makes a dirty entry even in a read-only VMA
  vma.pte[i] = zeroLike && kind === FAULT_WRITE ? PTE_DIRTY | (vma.vmFlags & VM_WRITE ? PTE_WRITE : 0) : entryBits(vma, kind);
}

// Index of the first page of the aligned 2 MiB holding page `i`, or -1 when that range does
// not lie wholly inside the VMA (no PMD can map it).
function pmdRangeStart(vma: Vma, i: number): number {
  const hstart = Math.floor((vma.start + i * PAGE_SIZE) / PMD_SIZE) * PMD_SIZE;
  if (hstart < vma.start || hstart + PMD_SIZE > vma.end) return -1;
  return (hstart - vma.start) / PAGE_SIZE;
}

// do_huge_pmd_anonymous_page() on a read: an empty 2 MiB range gets the huge zero folio behind
// one read-only PMD, with no reference or mapcount taken (the folio is the kernel's own).
function mapHugeZero(memory: PhysicalMemory, vma: Vma, i: number): boolean {
  const first = pmdRangeStart(vma, i);
  if (first < 0) return false;
  for (let j = first; j < first + HPAGE_PMD_NR; j++) if (vma.pt[j] !== 0) return false;
  const hz = memory.hugeZeroFolio();
  if (hz < 0) return false;
  for (let j = 0; j < HPAGE_PMD_NR; j++) {
    vma.pt[first + j] = hz + j + 1;
    vma.pte[first + j] = PTE_PMD;
  }
  return true;
}

// do_huge_pmd_anonymous_page() / do_huge_zero_wp_pmd(): one order-9 folio behind one PMD entry,
// refcount 1, each page mapped once. Only where no page table exists yet (pmd_none: every entry
// empty) or the huge zero folio is mapped; else, or when no folio is free, small pages.
function tryHugeFault(memory: PhysicalMemory, vma: Vma, i: number, kind: number): boolean {
  const first = pmdRangeStart(vma, i);
  if (first < 0) return false;
  const e0 = vma.pt[first]!;
  const hugeZero = e0 !== 0 && vma.pte[first]! & PTE_PMD && memory.flags[e0 - 1]! & PG_HUGE_ZERO;
  if (!hugeZero) for (let j = first; j < first + HPAGE_PMD_NR; j++) if (vma.pt[j] !== 0) return false;
  const head = memory.allocFolio(HPAGE_PMD_ORDER, !vma.shared);
  if (head < 0) return false;
  if (!vma.shared) memory.flags[head] = memory.flags[head]! | PG_ANON_EXCL;
  // map_anon_folio_pmd(): a new anonymous huge entry is always dirty, and writable when the VMA
  // is; a shared one (do_set_pmd) is dirty, and its folio too, only on a write
  const dirty = !vma.shared || kind === FAULT_WRITE;
  const bits = PTE_PMD | (dirty ? PTE_DIRTY : 0) | (vma.vmFlags & VM_WRITE && (dirty || vma.shared) ? PTE_WRITE : 0);
  if (vma.shared && kind === FAULT_WRITE) memory.flags[head] = memory.flags[head]! | PG_DIRTY;
  for (let j = 0; j < HPAGE_PMD_NR; j++) {
    vma.pt[first + j] = head + j + 1;
    vma.pte[first + j] = bits;
    memory.mapcount[head + j] = 1;
  }
  return true;
}

/**
 * Removes every entry of `vma` (`zap_pte_range`): each drops its mapcount and its reference; a
 * PMD entry drops one for its 2 MiB. The caller has split any PMD straddling the VMA's edges
 * (`splitHugePmdAt`). Pinned pages stay allocated until unpinned.
 */
export function zapVma(memory: PhysicalMemory, vma: Vma): void {
  // a hugetlb VMA is unmapped and closed by its own operations (unmap_hugepage_range)
  if (vma.hugetlb !== undefined) return hugetlbUnmap(memory, vma);
  const to = vma.nrPages;
  let i = 0;
  while (i < to) {
    const e = vma.pt[i]!;
    if (e === 0) {
      i++;
      continue;
    }
    const pfn = e - 1;
    if (memory.flags[pfn]! & PG_ANY_ZERO) {
      vma.pt[i] = 0;
      vma.pte[i++] = 0;
      continue;
    }
    const head = memory.folioHead(pfn);
    if (vma.pte[i]! & PTE_PMD) {
      for (let j = 0; j < HPAGE_PMD_NR; j++) {
        memory.mapcount[head + j]!--;
        vma.pt[i + j] = 0;
        vma.pte[i + j] = 0;
      }
      memory.putRefsUnchecked(head, 1);
      i += HPAGE_PMD_NR;
      continue;
    }
    memory.mapcount[pfn]!--;
    // zap_present_folio_ptes(): a dirty entry hands its dirt to a non-anonymous folio
    if (vma.pte[i]! & PTE_DIRTY && !(memory.flags[head]! & PG_ANON)) memory.flags[head] = memory.flags[head]! | PG_DIRTY;
    vma.pt[i] = 0;
    vma.pte[i++] = 0;
    memory.putRefsUnchecked(head, 1);
  }
  // unlink_file_vma(): the VMA leaves its file's i_mmap
  if (vma.file !== undefined) {
    vma.file.mmaps.delete(vma);
    releaseIfUnused(vma.file);
  }
}

// do_anonymous_page(): a new entry is writable when the VMA is and the fault was a write (or the
// mapping is shared), and dirty when it was a write on a writable VMA. A FOLL_FORCE write into
// a read-only private mapping gets a clean, read-only, exclusive copy.
function entryBits(vma: Vma, kind: number): number {
  if (!(vma.vmFlags & VM_WRITE)) return 0;
  return (kind === FAULT_WRITE || vma.shared ? PTE_WRITE : 0) | (kind === FAULT_WRITE ? PTE_DIRTY : 0);
}

/**
 * Splits the PMD mapping that covers page `i` of `vma` when `i` falls inside it, not at its
 * start (`vma_adjust_trans_huge`): a VMA about to be split at `i` must not leave one PMD entry
 * straddling two VMAs.
 */
export function splitHugePmdAt(memory: PhysicalMemory, vma: Vma, i: number): void {
  if (i > 0 && i < vma.nrPages && vma.pte[i]! & PTE_PMD && pmdOffset(vma, i) !== 0) splitPmdAt(memory, vma, i);
}

// Splits the PMD mapping covering page `i` into page entries: the folio gains one reference
// per page entry less the one the PMD held.
function splitPmdAt(memory: PhysicalMemory, vma: Vma, i: number): void {
  const first = i - pmdOffset(vma, i);
  const head = memory.folioHead(vma.pt[first]! - 1);
  if (memory.flags[head]! & PG_HUGE_ZERO) {
    // __split_huge_zero_page_pmd(): small zero-page entries in its place
    vma.pt.fill(memory.zeroPfn + 1, first, first + HPAGE_PMD_NR);
    vma.pte.fill(0, first, first + HPAGE_PMD_NR);
    return;
  }
  // the PMD's one reference becomes one per page entry; a 2 MiB folio mapped whole cannot be
  // near INT32_MAX references, so this cannot fail
  memory.tryRefAdd(head, HPAGE_PMD_NR - 1);
  // __split_huge_pmd_locked(): a dirty PMD hands its dirty bit to the folio
  if (vma.pte[first]! & PTE_DIRTY) memory.flags[head] = memory.flags[head]! | PG_DIRTY;
  for (let j = first; j < first + HPAGE_PMD_NR; j++) vma.pte[j] = vma.pte[j]! & ~PTE_PMD;
}

/** Index of page `i` of `vma` within the 2 MiB-aligned range that holds it. */
export function pmdOffset(vma: Vma, i: number): number {
  return (vma.start / PAGE_SIZE + i) % HPAGE_PMD_NR;
}
