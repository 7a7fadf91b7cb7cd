// hugetlb mappings (mm/hugetlb.c: hugetlb_reserve_pages, hugetlb_no_page, hugetlb_wp,
// __unmap_hugepage_range, hugetlb_vm_op_close/split; fs/hugetlbfs/inode.c for MAP_SHARED):
// pages reserved at mmap, each fault maps one whole huge page, unmapping returns them to the pool.

import { PAGE_SIZE } from '../constants.js';
import { fail, hex } from '../errors.js';
import { allocHugetlbFolio, type Hstate } from './hugetlb.js';
import { FAULT_WRITE } from './fault.js';
import type { PhysicalMemory } from './memory.js';
import { PG_ANON_EXCL, PG_DIRTY } from './page-flags.js';
import { PTE_DIRTY, PTE_PMD, PTE_WRITE, VM_WRITE, type Vma } from './vma.js';

/**
 * The object behind one MAP_HUGETLB mmap, shared by the VMAs it is split into: for a private
 * mapping its reservation map (HPAGE_RESV_OWNER), for a shared one the anonymous hugetlbfs file
 * (its reservations and page cache), which lives until its last VMA goes.
 */
export class HugetlbMapping {
  /** 1 where huge page `k` holds a reservation not yet consumed by a fault. */
  readonly resv: Uint8Array;
  /** Shared: the page-cache folio (head PFN) of huge page `k`, -1 for none. */
  readonly cache: Int32Array | undefined;
  /** VMAs mapping it. */
  vmas = 1;

  constructor(
    readonly hstate: Hstate,
    readonly shared: boolean,
    nrHuge: number,
  ) {
    this.resv = new Uint8Array(nrHuge);
    this.cache = shared ? new Int32Array(nrHuge).fill(-1) : undefined;
  }
}

/**
 * Reserves `nrHuge` pages of `h` for a new mapping (`hugetlb_reserve_pages`, then
 * hugetlb_acct_memory): ENOMEM when the free pages not yet promised cannot cover it, since no
 * surplus pages may be made (`nr_overcommit_hugepages` is 0). `noreserve` (MAP_NORESERVE)
 * reserves nothing: its faults then take what is free, or fail.
 */
export function hugetlbReservePages(h: Hstate, nrHuge: number, shared: boolean, noreserve: boolean): HugetlbMapping {
  if (!noreserve && nrHuge > h.available) {
    fail('ENOMEM', `hugetlb: ${nrHuge} ${h.name} page(s) to reserve, ${h.available} free and unreserved (HugePages_Free ${h.freeHugePages}, HugePages_Rsvd ${h.resvHugePages})`);
  }
  const m = new HugetlbMapping(h, shared, nrHuge);
  if (!noreserve) {
    m.resv.fill(1);
    h.resvHugePages += nrHuge;
  }
  return m;
}

/**
 * Resolves a fault on page `i` of the hugetlb VMA `vma` (`hugetlb_fault`): an empty huge
 * entry gets a zeroed huge page (hugetlb_no_page) — the page-cache one of a shared mapping if
 * there is one — mapped whole; a write to a private entry still write-protected makes it
 * writable (hugetlb_wp reuses the exclusive page). EFAULT (the kernel's SIGBUS) when no huge
 * page can be had: no reservation and nothing free in the pool.
 */
export function hugetlbFault(memory: PhysicalMemory, vma: Vma, i: number, kind: number): void {
  const m = vma.hugetlb!;
  const h = m.hstate;
  const nr = h.nrPages;
  const first = i & -nr; // the VMA starts on a huge page boundary
  const writable = vma.vmFlags & VM_WRITE ? PTE_WRITE | PTE_DIRTY : 0;
  if (vma.pt[first] !== 0) {
    if (kind === FAULT_WRITE && writable) for (let j = first; j < first + nr; j++) vma.pte[j] = vma.pte[j]! | writable;
    return;
  }
  const k = vma.hugetlbIndex + first / nr;
  let head = m.cache === undefined ? -1 : m.cache[k]!;
  if (head >= 0) {
    if (!memory.tryRefAdd(head, 1)) fail('ENOMEM', `refcount of huge page ${head} would overflow`);
  } else {
    head = allocHugetlbFolio(memory, h, m.resv[k] === 1, !m.shared);
    if (head < 0) {
      fail('EFAULT', `SIGBUS: no ${h.name} huge page for ${hex(vma.start + first * PAGE_SIZE)} (pool has ${h.freeHugePages} free, ${h.resvHugePages} reserved, and this page holds no reservation)`);
    }
    m.resv[k] = 0;
    if (m.cache !== undefined) {
      // hugetlb_add_to_page_cache(): the page cache holds a reference per page, and marks the
      // folio dirty so that nothing but hugetlbfs drops it
      m.cache[k] = head;
      memory.refcount[head] = memory.refcount[head]! + nr;
      memory.flags[head] = memory.flags[head]! | PG_DIRTY;
    } else {
      memory.flags[head] = memory.flags[head]! | PG_ANON_EXCL;
    }
  }
  // make_huge_pte(): a shared entry is writable (and dirty) when the VMA is; a private one only
  // once written (hugetlb_no_page runs hugetlb_wp straight away on a write fault)
  const bits = PTE_PMD | (m.shared || kind === FAULT_WRITE ? writable : 0);
  for (let j = 0; j < nr; j++) {
    vma.pt[first + j] = head + j + 1;
    vma.pte[first + j] = bits;
    memory.mapcount[head + j]!++;
  }
}

/**
 * Where munmap may not split `vma` in [addr, end): '' when it may, else why not. A hugetlb VMA
 * splits only on a huge page boundary (`hugetlb_vm_op_split`), so munmap is EINVAL there.
 */
export function hugetlbSplitRefused(vma: Vma, addr: number, end: number): string {
  const m = vma.hugetlb;
  if (m === undefined) return '';
  for (const at of [addr, end]) {
    if (at > vma.start && at < vma.end && at % m.hstate.size !== 0) {
      return `munmap would split a ${m.hstate.name} hugetlb mapping at ${hex(at)}, not on a huge page boundary`;
    }
  }
  return '';
}

/**
 * Removes every entry of the hugetlb VMA `vma` and closes it (`__unmap_hugepage_range`, then
 * hugetlb_vm_op_close): each huge page drops its mapcounts and its one reference, a dirty entry
 * dirties its folio, and a folio whose last reference goes returns to the pool (a pinned one at
 * its last unpin). The reservations of its pages never faulted go back; a shared mapping's page
 * cache, and its reservations, go with its last VMA.
 */
export function hugetlbUnmap(memory: PhysicalMemory, vma: Vma): void {
  const m = vma.hugetlb!;
  const h = m.hstate;
  const nr = h.nrPages;
  const count = vma.nrPages / nr;
  for (let k = 0; k < count; k++) {
    const first = k * nr;
    const e = vma.pt[first]!;
    if (e === 0) continue;
    const head = e - 1;
    if (vma.pte[first]! & PTE_DIRTY) memory.flags[head] = memory.flags[head]! | PG_DIRTY;
    for (let j = 0; j < nr; j++) memory.mapcount[head + j]!--;
    vma.pt.fill(0, first, first + nr);
    vma.pte.fill(0, first, first + nr);
    memory.putRefsUnchecked(head, 1);
  }
  m.vmas--;
  if (m.cache === undefined) {
    returnReservations(m, vma.hugetlbIndex, vma.hugetlbIndex + count);
    return;
  }
  if (m.vmas > 0) return;
  // the anonymous hugetlbfs file is released (remove_inode_hugepages, hugetlb_unreserve_pages)
  returnReservations(m, 0, m.resv.length);
  for (let k = 0; k < m.cache.length; k++) {
    const head = m.cache[k]!;
    if (head < 0) continue;
    m.cache[k] = -1;
    memory.putRefsUnchecked(head, nr);
  }
}

function returnReservations(m: HugetlbMapping, from: number, to: number): void {
  for (let k = from; k < to; k++) {
    if (m.resv[k] === 1) {
      m.resv[k] = 0;
      m.hstate.resvHugePages--;
    }
  }
}
