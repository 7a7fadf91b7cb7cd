// One virtual memory area (struct vm_area_struct) and its slice of the page table.

import { HPAGE_PMD_NR, PAGE_SIZE } from '../constants.js';
import type { CachedFile } from './file.js';
import type { HugetlbMapping } from './hugetlb-vma.js';

/** VMA permission bits (`VM_READ`, `VM_WRITE`, `VM_EXEC`). */
export const VM_READ = 1;
export const VM_WRITE = 2;
export const VM_EXEC = 4;

/** Page-table entry bits kept beside each PFN. */
/** The entry permits writes (`pte_write`). */
export const PTE_WRITE = 1;
/**
 * The page is mapped as part of one PMD entry over a 2 MiB folio (`pmd_trans_huge`), or of one
 * hugetlb leaf entry (a PMD, or a PUD for a 1 GiB page) in a hugetlb VMA.
 */
export const PTE_PMD = 2;
/** The CPU wrote through this entry (`pte_dirty`). */
export const PTE_DIRTY = 4;

/** Protection strings accepted by `mmap`. */
export type Prot = 'r' | 'rw' | 'rx' | 'rwx';

/** How a VMA is backed. */
export type Backing = 'anon' | 'file';

/**
 * A mapped range [start, end) of one address space.
 * `pt[i]` is PFN + 1 of page i (0: no entry), `pte[i]` its PTE_* bits. One entry per page,
 * so a lookup is one index; a PMD mapping sets PTE_PMD on its 512 entries.
 */
export class Vma {
  pt: Uint32Array;
  pte: Uint8Array;
  /** The file mapped (`vm_file`), for `backing: 'file'`. */
  file: CachedFile | undefined = undefined;
  /** File page index of `start` (`vm_pgoff`). */
  pgoff = 0;
  /** The pool and reservations behind a MAP_HUGETLB mapping (`is_vm_hugetlb_page`); undefined otherwise. */
  hugetlb: HugetlbMapping | undefined = undefined;
  /** Huge page index of `start` within `hugetlb` (`vma_hugecache_offset`). */
  hugetlbIndex = 0;
  constructor(
    public start: number,
    public end: number,
    readonly vmFlags: number,
    readonly backing: Backing,
    readonly shared: boolean,
    readonly thp: boolean,
    tables?: { pt: Uint32Array; pte: Uint8Array },
  ) {
    const n = (end - start) / PAGE_SIZE;
    this.pt = tables?.pt ?? new Uint32Array(n);
    this.pte = tables?.pte ?? new Uint8Array(n);
  }

  get nrPages(): number {
    return (this.end - this.start) / PAGE_SIZE;
  }

  /** A private mapping (anon mmap always sets VM_MAYWRITE): writes break copy-on-write (`is_cow_mapping`). */
  get isCow(): boolean {
    return !this.shared;
  }

  get prot(): Prot {
    return ((this.vmFlags & VM_WRITE ? 'rw' : 'r') + (this.vmFlags & VM_EXEC ? 'x' : '')) as Prot;
  }

  /**
   * Marks the whole huge leaf entry holding page `i` dirty, as the MMU sets the one dirty bit of
   * a PMD (or hugetlb) entry whichever of its pages is written; the model keeps that bit on each
   * 4 KiB slot of the leaf, so a later split finds it on every one.
   */
  dirtyLeaf(i: number): void {
    const leafPages = this.hugetlb === undefined ? HPAGE_PMD_NR : this.hugetlb.hstate.nrPages;
    const addr = this.start + i * PAGE_SIZE;
    const leafStart = addr - (addr % (leafPages * PAGE_SIZE));
    const from = Math.max(0, (leafStart - this.start) / PAGE_SIZE);
    const to = Math.min(this.nrPages, (leafStart - this.start) / PAGE_SIZE + leafPages);
    for (let k = from; k < to; k++) this.pte[k] = this.pte[k]! | PTE_DIRTY;
  }

  /**
   * Splits off [at, end) as a new VMA, keeping [start, at) here. The halves' page tables are
   * views of the old arrays, so a split costs O(1) whatever the size, as the kernel copies no
   * page table either.
   */
  splitAt(at: number): Vma {
    const i = (at - this.start) / PAGE_SIZE;
    const tail = new Vma(at, this.end, this.vmFlags, this.backing, this.shared, this.thp, { pt: this.pt.subarray(i), pte: this.pte.subarray(i) });
    this.pt = this.pt.subarray(0, i);
    this.pte = this.pte.subarray(0, i);
    this.end = at;
    // __split_vma(): the tail maps the file from further on, and joins i_mmap
    if (this.file !== undefined) {
      tail.file = this.file;
      tail.pgoff = this.pgoff + i;
      this.file.mmaps.add(tail);
    }
    if (this.hugetlb !== undefined) {
      // hugetlb_vm_op_open(): the new VMA shares the mapping's reservations and pages
      tail.hugetlb = this.hugetlb;
      tail.hugetlbIndex = this.hugetlbIndex + i / this.hugetlb.hstate.nrPages;
      this.hugetlb.vmas++;
    }
    return tail;
  }
}
