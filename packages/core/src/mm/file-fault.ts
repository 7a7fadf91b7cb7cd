// Page faults on file mappings (mm/memory.c: do_read_fault, do_cow_fault, do_shared_fault,
// do_wp_page → wp_page_shared / wp_page_copy) and filemap_fault's SIGBUS past end of file.

import { PAGE_SIZE } from '../constants.js';
import { fail, hex } from '../errors.js';
import { FAULT_READ, FAULT_UNSHARE, FAULT_WRITE } from './fault.js';
import { filemapGetFolio } from './filemap.js';
import type { PhysicalMemory } from './memory.js';
import { PG_ANON, PG_ANON_EXCL, PG_DIRTY } from './page-flags.js';
import { PTE_DIRTY, PTE_WRITE, VM_WRITE, type Vma } from './vma.js';

/** One page of scratch for copy-on-write copies (no allocation per fault). */
const scratch = new Uint8Array(PAGE_SIZE);

/**
 * Resolves a fault of kind `kind` (FAULT_*) on page `i` of the file mapping `vma`.
 * - Empty entry: a read maps the page-cache page read-only (a dirty-tracked shared mapping is
 *   write-protected until its first write; a private one always is); a write in a shared
 *   mapping maps it writable and dirty and dirties the folio (`do_shared_fault`); a write in a
 *   private mapping maps an anonymous copy (`do_cow_fault`).
 * - Present entry: a write in a shared mapping makes it writable and dirties the folio
 *   (`wp_page_shared`); a write or an unshare of a page-cache page in a private mapping
 *   replaces it with an anonymous copy (`wp_page_copy`), writable and dirty for a write,
 *   read-only and clean for an unshare; our own copy is reused.
 * Throws EFAULT (SIGBUS) past end of file, ENOMEM when no page is free; nothing changes then
 * (a page read into the cache stays there, as in the kernel).
 */
export function fileFault(memory: PhysicalMemory, vma: Vma, i: number, kind: number): void {
  const file = vma.file!;
  const e = vma.pt[i]!;
  const writable = (vma.vmFlags & VM_WRITE) !== 0;
  if (e === 0) {
    const index = vma.pgoff + i;
    if (index >= file.nrPages) sigbus(vma, vma.start + i * PAGE_SIZE);
    if (kind !== FAULT_READ && !vma.shared) {
      doCowFault(memory, vma, i, index);
      return;
    }
    const pfn = filemapGetFolio(file, index);
    if (pfn < 0) outOfMemory(vma, i);
    if (!memory.tryRefAdd(pfn, 1)) fail('ENOMEM', `refcount of pfn ${pfn} would overflow`);
    memory.mapcount[pfn]!++;
    vma.pt[i] = pfn + 1;
    if (kind === FAULT_WRITE && writable) {
      // finish_fault() maps a write fault writable and dirty; fault_dirty_shared_page()
      vma.pte[i] = PTE_WRITE | PTE_DIRTY;
      memory.flags[pfn] = memory.flags[pfn]! | PG_DIRTY;
    } else {
      vma.pte[i] = 0;
    }
    return;
  }
  const pfn = e - 1;
  if (kind === FAULT_READ) return;
  if (vma.shared) {
    // wp_page_shared(): no copy in a shared mapping; the write notifies and dirties
    if (kind === FAULT_WRITE && writable) {
      vma.pte[i] = vma.pte[i]! | PTE_WRITE | PTE_DIRTY;
      memory.flags[pfn] = memory.flags[pfn]! | PG_DIRTY;
    }
    return;
  }
  if (memory.flags[pfn]! & PG_ANON) {
    // our own exclusive copy: wp_page_reuse() on a write, nothing to do for an unshare
    if (kind === FAULT_WRITE && writable) vma.pte[i] = vma.pte[i]! | PTE_WRITE | PTE_DIRTY;
    return;
  }
  wpPageCopy(memory, vma, i, pfn, kind === FAULT_UNSHARE);
}

/**
 * EFAULT with SIGBUS's reason when [from, to) of the file mapping `vma` reaches a page past the
 * end of its file (`filemap_fault`: index ≥ DIV_ROUND_UP(i_size, PAGE_SIZE)). CPU access checks
 * this before touching anything.
 */
export function checkWithinFile(vma: Vma, from: number, to: number): void {
  const file = vma.file;
  if (file === undefined || to <= from) return;
  const lastIndex = vma.pgoff + Math.floor((to - 1 - vma.start) / PAGE_SIZE);
  if (lastIndex < file.nrPages) return;
  sigbus(vma, Math.max(from, vma.start + (file.nrPages - vma.pgoff) * PAGE_SIZE));
}

function sigbus(vma: Vma, addr: number): never {
  const file = vma.file!;
  const index = vma.pgoff + Math.floor((addr - vma.start) / PAGE_SIZE);
  return fail('EFAULT', `SIGBUS: ${hex(addr)} maps file page ${index}, past the end of the file (${file.size} bytes, ${file.nrPages} page(s))`);
}

function outOfMemory(vma: Vma, i: number): never {
  return fail('ENOMEM', `out of memory faulting in ${hex(vma.start + i * PAGE_SIZE)}`);
}

// do_cow_fault(): a write to an empty entry of a private file mapping maps an anonymous copy of
// the file page, writable (when the VMA is) and dirty; the page-cache page is read in but not
// mapped.
function doCowFault(memory: PhysicalMemory, vma: Vma, i: number, index: number): void {
  const copy = memory.allocFolio(0, true);
  if (copy < 0) outOfMemory(vma, i);
  const src = filemapGetFolio(vma.file!, index);
  if (src < 0) {
    memory.putRefsUnchecked(copy, 1);
    outOfMemory(vma, i);
  }
  mapCopy(memory, vma, i, src, copy, false);
}

// wp_page_copy(): replaces the page-cache page mapped at `i` with an anonymous copy; the old
// entry's reference and mapcount go, the page stays in the cache.
function wpPageCopy(memory: PhysicalMemory, vma: Vma, i: number, old: number, unshare: boolean): void {
  const copy = memory.allocFolio(0, true);
  if (copy < 0) outOfMemory(vma, i);
  memory.mapcount[old]!--;
  mapCopy(memory, vma, i, old, copy, unshare);
  memory.putRefsUnchecked(memory.folioHead(old), 1);
}

function mapCopy(memory: PhysicalMemory, vma: Vma, i: number, src: number, copy: number, unshare: boolean): void {
  memory.store.copyOut(src, 0, scratch, 0, PAGE_SIZE);
  memory.store.copyIn(copy, 0, scratch, 0, PAGE_SIZE);
  memory.flags[copy] = memory.flags[copy]! | PG_ANON_EXCL;
  memory.mapcount[copy] = 1;
  vma.pt[i] = copy + 1;
  // an unshare maps the copy read-only and clean; a write maps it dirty, writable if the VMA is
  vma.pte[i] = unshare ? 0 : PTE_DIRTY | (vma.vmFlags & VM_WRITE ? PTE_WRITE : 0);
}
