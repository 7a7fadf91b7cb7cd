// get_user_pages and its pinning variants (mm/gup.c, Documentation/core-api/pin_user_pages.rst):
// walk an address range, fault pages in, take a reference or a pin on each, fill a PFN array.

import {
  FOLL_ANON, FOLL_FAST_MASK, FOLL_FORCE, FOLL_GET, FOLL_LONGTERM, FOLL_NOFAULT, FOLL_PIN, FOLL_TOUCH, FOLL_VALID_MASK, FOLL_WRITE,
  HPAGE_PMD_NR, INT32_MAX, PAGE_SIZE, TASK_SIZE_MAX,
} from '../constants.js';
import { checkInt, checkOptions, checkPageArray, fail, hex, IodescError, type Errno } from '../errors.js';
import { FAULT_READ, FAULT_UNSHARE, FAULT_WRITE, handleFault } from './fault.js';
import type { PhysicalMemory } from './memory.js';
import { vmaNeedsDirtyTracking } from './file.js';
import { checkMm, type AddressSpace } from './mm.js';
import { PG_ANON, PG_ANON_EXCL, PG_ANY_ZERO, PG_DIRTY, PG_PAGECACHE, PG_ZERO } from './page-flags.js';
import { PTE_DIRTY, PTE_PMD, PTE_WRITE, VM_READ, VM_WRITE, type Vma } from './vma.js';

/** Options every acquiring call takes. */
export interface GupOptions {
  /** Tag recorded with the pages this call takes, named by the leak report. */
  owner?: string;
}

/**
 * Takes a reference (FOLL_GET, the default) or, with FOLL_PIN, a pin on each of `nrPages` pages
 * from `start` (rounded down to a page) and stores their PFNs in `pages` (`get_user_pages`).
 *
 * Returns how many were taken: fewer than asked when the range leaves the mappings or a later
 * page cannot be had; the caller owns those and releases them with `putPage` (or
 * `unpinUserPages` for FOLL_PIN). Throws only when the first page fails: EFAULT (no mapping,
 * forbidden access), ENOMEM (out of memory, refcount overflow); EINVAL for bad arguments
 * or contradictory flags (FOLL_GET with FOLL_PIN, FOLL_LONGTERM without FOLL_PIN).
 * Cost: O(nrPages), one store per page; a 2 MiB folio is grabbed once.
 */
export function getUserPages(mm: AddressSpace, start: number, nrPages: number, gupFlags: number, pages: Uint32Array, opts?: GupOptions): number {
  const flags = checkGupArgs(mm, start, nrPages, gupFlags, pages, gupFlags & FOLL_PIN ? FOLL_TOUCH : FOLL_GET | FOLL_TOUCH);
  return gupSlow(mm, pageAlign(start), nrPages, flags, pages, 0, ownerOf(mm, opts));
}

/**
 * Pins `nrPages` pages for DMA (`pin_user_pages`): as `getUserPages` with FOLL_PIN. Release
 * with `unpinUserPages` / `unpinUserPagesDirtyLock`. FOLL_GET in `gupFlags` is EINVAL.
 */
export function pinUserPages(mm: AddressSpace, start: number, nrPages: number, gupFlags: number, pages: Uint32Array, opts?: GupOptions): number {
  const flags = checkGupArgs(mm, start, nrPages, gupFlags, pages, FOLL_PIN);
  return gupSlow(mm, pageAlign(start), nrPages, flags, pages, 0, ownerOf(mm, opts));
}

/**
 * Pins as `pinUserPages`, first walking the page tables without faulting (`pin_user_pages_fast`,
 * gup_fast_fallback): present pages with the needed access are pinned at once, the rest by the
 * slow path. Returns the count, short as `pinUserPages`; EFAULT when the range runs past the
 * top of user space.
 */
export function pinUserPagesFast(mm: AddressSpace, start: number, nrPages: number, gupFlags: number, pages: Uint32Array, opts?: GupOptions): number {
  const flags = checkGupArgs(mm, start, nrPages, gupFlags, pages, FOLL_PIN, FOLL_FAST_MASK);
  return gupFast(mm, start, nrPages, flags, pages, ownerOf(mm, opts));
}

/** `get_user_pages_fast`: as `pinUserPagesFast` with FOLL_GET references. */
export function getUserPagesFast(mm: AddressSpace, start: number, nrPages: number, gupFlags: number, pages: Uint32Array, opts?: GupOptions): number {
  const flags = checkGupArgs(mm, start, nrPages, gupFlags, pages, FOLL_GET, FOLL_FAST_MASK);
  return gupFast(mm, start, nrPages, flags, pages, ownerOf(mm, opts));
}

// is_valid_gup_args(): known bits only, FOLL_GET xor FOLL_PIN, FOLL_LONGTERM only when pinning.
function checkGupArgs(mm: unknown, start: number, nrPages: number, gupFlags: number, pages: unknown, toSet: number, allowed = FOLL_VALID_MASK): number {
  checkMm(mm);
  checkInt('start', start);
  checkInt('nrPages', nrPages, 0, INT32_MAX);
  checkInt('gupFlags', gupFlags, 0, INT32_MAX);
  checkPageArray('pages', pages, nrPages);
  if (gupFlags & ~allowed) fail('EINVAL', `gup flag bits ${hex(gupFlags & ~allowed)} are not accepted here`);
  const flags = gupFlags | toSet;
  if ((flags & (FOLL_GET | FOLL_PIN)) === (FOLL_GET | FOLL_PIN)) fail('EINVAL', 'FOLL_GET and FOLL_PIN are mutually exclusive');
  if (flags & FOLL_LONGTERM && !(flags & FOLL_PIN)) fail('EINVAL', 'FOLL_LONGTERM is only valid with FOLL_PIN');
  return flags;
}

function ownerOf(mm: AddressSpace, opts: GupOptions | undefined): number {
  const tag = checkOptions('opts', opts).owner;
  if (tag !== undefined && typeof tag !== 'string') fail('EINVAL', `owner must be a string, got ${String(tag)}`);
  return mm.memory.ownerId(tag);
}

function pageAlign(addr: number): number {
  return Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
}

// gup_fast_fallback(): pin what the page tables already allow, then the slow path for the rest.
function gupFast(mm: AddressSpace, start: number, nrPages: number, flags: number, pages: Uint32Array, owner: number): number {
  const addr = pageAlign(start);
  const end = addr + nrPages * PAGE_SIZE;
  // no start below 2^53 wraps 64 bits, so the kernel's -EOVERFLOW cannot arise: only -EFAULT
  if (end > TASK_SIZE_MAX) fail('EFAULT', `range ends at ${hex(end)}, past the top of user space`);
  if (nrPages === 0) return 0;
  const done = walk(mm, addr, nrPages, flags, pages, 0, owner, true);
  if (done === nrPages) return done;
  try {
    return done + gupSlow(mm, addr + done * PAGE_SIZE, nrPages - done, flags | FOLL_TOUCH, pages, done, owner);
  } catch (e) {
    if (done > 0 && e instanceof IodescError) return done;
    throw e;
  }
}

// __get_user_pages(): the count taken, or the error of the first page.
function gupSlow(mm: AddressSpace, addr: number, nrPages: number, flags: number, pages: Uint32Array, at: number, owner: number): number {
  if (nrPages === 0) return 0;
  return walk(mm, addr, nrPages, flags, pages, at, owner, false);
}

/**
 * The page walk shared by the slow and fast paths. `fastOnly` never faults and never fails:
 * it stops at the first page it cannot take as the page table stands.
 */
function walk(mm: AddressSpace, addr: number, nrPages: number, flags: number, pages: Uint32Array, at: number, owner: number, fastOnly: boolean): number {
  const mem = mm.memory;
  const pageFlags = mem.flags;
  // the common case, checked inline: a present page of our own whose entry allows the access
  const needWrite = flags & FOLL_WRITE ? PTE_WRITE : 0;
  const touch = (flags & (FOLL_TOUCH | FOLL_WRITE)) === (FOLL_TOUCH | FOLL_WRITE);
  // gup_must_unshare(): a long-term read-only pin looks again at a non-anonymous page behind a
  // read-only entry (the fast path, blind to the VMA, leaves every such page to the slow one)
  const unshareCheck = (flags & (FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE)) === (FOLL_PIN | FOLL_LONGTERM);
  // gup_fast_folio_allowed(): a long-term write pin of a page-cache folio goes to the slow path
  const fastFileCheck = fastOnly && (flags & (FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE)) === (FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE);
  let i = 0;
  let err: Errno | undefined;
  let why = '';
  outer: while (i < nrPages) {
    const vma = mm.findVma(addr);
    if (vma === undefined) {
      err = 'EFAULT';
      why = `no mapping at ${hex(addr)}`;
      break;
    }
    why = fastOnly ? '' : checkVmaFlags(vma, flags);
    if (why !== '') {
      err = 'EFAULT';
      break;
    }
    const { pt, pte } = vma;
    const base = vma.start / PAGE_SIZE;
    const injecting = mm.hasInjectedFaults;
    // pages one huge leaf entry maps: a THP's PMD, or a hugetlb page's PMD or PUD
    const leafNr = vma.hugetlb === undefined ? HPAGE_PMD_NR : vma.hugetlb.hstate.nrPages;
    let idx = (addr - vma.start) / PAGE_SIZE;
    const lim = Math.min(vma.nrPages, idx + (nrPages - i));
    while (idx < lim) {
      const injected = injecting ? mm.injectedFault(base + idx) : undefined;
      if (injected !== undefined) {
        err = injected;
        why = `injected fault at ${hex((base + idx) * PAGE_SIZE)}`;
        break outer;
      }
      const e = pt[idx]!;
      if (e === 0 || (pte[idx]! & needWrite) !== needWrite || pageFlags[e - 1]! & PG_ANY_ZERO || (unshareCheck && !(pte[idx]! & PTE_WRITE) && !(pageFlags[e - 1]! & PG_ANON))) {
        // gup_fast refuses what pte_access_permitted() refuses, and special (zero) entries
        if (fastOnly) break outer;
        // follow_page_mask(), faulting until the entry allows the access (faultin_page + retry)
        let tries = 0;
        for (let fault = neededFault(mem, pt[idx]!, pte[idx]!, vma, flags); fault >= 0; fault = neededFault(mem, pt[idx]!, pte[idx]!, vma, flags)) {
          // a read fault then an unshare is the longest chain; more would be a model bug looping
          if (++tries > 2) {
            err = 'EFAULT';
            why = `fault ${fault} at ${hex((base + idx) * PAGE_SIZE)} made no progress`;
            break outer;
          }
          if (flags & FOLL_NOFAULT) {
            err = 'EFAULT';
            why = `FOLL_NOFAULT and no usable entry at ${hex((base + idx) * PAGE_SIZE)}`;
            break outer;
          }
          try {
            handleFault(mem, vma, idx, fault);
          } catch (e) {
            if (!(e instanceof IodescError)) throw e;
            err = e.code;
            why = e.message;
            break outer;
          }
        }
      }
      const pfn = pt[idx]! - 1;
      const head = mem.folioHead(pfn);
      if (fastFileCheck && pageFlags[head]! & PG_PAGECACHE) break outer;
      let increm = 1;
      if (pte[idx]! & PTE_PMD) {
        // one leaf entry covers the rest of its huge page: grab those pages in one go...
        increm = Math.min(lim - idx, leafNr - ((base + idx) & (leafNr - 1)));
        // ...but stop before an injected fault inside it, so that page fails as documented
        for (let j = 1; injecting && j < increm; j++) {
          if (mm.injectedFault(base + idx + j) !== undefined) increm = j;
        }
      }
      const grabbed = tryGrabFolio(mem, head, increm, flags, owner);
      if (grabbed !== GRABBED) {
        if (fastOnly) break outer;
        err = 'ENOMEM';
        why = `${grabbed === PIN_OVERFLOW ? 'pin count' : 'refcount'} of pfn ${head} would overflow`;
        break outer;
      }
      // FOLL_TOUCH on a write through a clean entry: follow_page_pte() dirties the folio,
      // touch_pmd() only the huge entry (its dirt reaches the folio when the entry is split or zapped)
      if (touch && !(pte[idx]! & PTE_DIRTY)) {
        if (pte[idx]! & PTE_PMD) vma.dirtyLeaf(idx);
        else pageFlags[head] = pageFlags[head]! | PG_DIRTY;
      }
      if (increm === 1) pages[at + i] = pfn;
      else for (let j = 0, o = at + i; j < increm; j++) pages[o + j] = pfn + j;
      i += increm;
      idx += increm;
    }
    addr = vma.start + idx * PAGE_SIZE;
  }
  if (i === 0 && err !== undefined && !fastOnly) fail(err, why);
  return i;
}

// check_vma_flags(): '' when the access is allowed, else why not.
function checkVmaFlags(vma: Vma, flags: number): string {
  // vma_is_anonymous(): shared anonymous memory is shmem, not anonymous; hugetlb has vm_ops
  if (flags & FOLL_ANON && (vma.backing !== 'anon' || vma.shared || vma.hugetlb !== undefined)) return 'FOLL_ANON on a file, shmem or hugetlb mapping';
  if (flags & FOLL_WRITE) {
    // writable_file_mapping_allowed(): no long-term write pin of a dirty-tracked file mapping
    if (flags & FOLL_LONGTERM && vmaNeedsDirtyTracking(vma)) return `FOLL_LONGTERM | FOLL_WRITE pin of a shared file mapping at ${hex(vma.start)} (dirty-tracked: writeback would lose the device's writes)`;
    if (!(vma.vmFlags & VM_WRITE)) {
      if (!(flags & FOLL_FORCE)) return `FOLL_WRITE on a '${vma.prot}' mapping at ${hex(vma.start)}`;
      if (!vma.isCow) return 'FOLL_FORCE write to a shared read-only mapping';
    }
  } else if (!(vma.vmFlags & VM_READ) && !(flags & FOLL_FORCE)) {
    return 'read of an unreadable mapping';
  }
  return '';
}

// The fault (FAULT_*) entry `e` (PFN + 1, 0 for none) with bits `bits` needs before `flags`
// may follow it, or -1 for none.
function neededFault(mem: PhysicalMemory, e: number, bits: number, vma: Vma, flags: number): number {
  if (e === 0) return flags & FOLL_WRITE ? FAULT_WRITE : FAULT_READ;
  const zero = (mem.flags[e - 1]! & PG_ANY_ZERO) !== 0;
  if (flags & FOLL_WRITE) {
    // can_follow_write_pte(): a writable entry, or under FOLL_FORCE in a read-only private
    // mapping an exclusive anonymous page (COW already broken)
    if (bits & PTE_WRITE) return -1;
    const forced = flags & FOLL_FORCE && !vma.shared && !(vma.vmFlags & VM_WRITE) && mem.flags[mem.folioHead(e - 1)]! & PG_ANON_EXCL;
    return forced && !zero ? -1 : FAULT_WRITE;
  }
  // gup_must_unshare(): a long-term read-only pin in a COW mapping must not pin a page that is
  // not our own anonymous page (either zero page, a page-cache page) through a read-only entry
  if (flags & FOLL_PIN && flags & FOLL_LONGTERM && vma.isCow && !(bits & PTE_WRITE) && !(mem.flags[mem.folioHead(e - 1)]! & PG_ANON)) return FAULT_UNSHARE;
  return -1;
}

/** tryGrabFolio's answers: taken (or nothing to take), or which count would overflow. */
const GRABBED = 0;
const PIN_OVERFLOW = 1;
const REF_OVERFLOW = 2;

/**
 * Takes `refs` references or pins on the folio headed by `head` (`try_grab_folio`). The zero
 * page is never pinned; a small folio's pin adds GUP_PIN_COUNTING_BIAS to its refcount; a large
 * folio's adds 1 to its refcount and 1 to its pin count. On overflow nothing changes and the
 * walk turns the answer into a short count. Kept small so that the walk inlines it.
 */
function tryGrabFolio(mem: PhysicalMemory, head: number, refs: number, flags: number, owner: number): number {
  if (flags & FOLL_PIN) {
    if (mem.flags[head]! & PG_ZERO) return GRABBED;
    if (mem.pins[head]! > INT32_MAX - refs) return PIN_OVERFLOW;
    const add = mem.pinRefs(head, refs);
    if (!mem.tryRefAdd(head, add)) return REF_OVERFLOW;
    mem.pins[head] = mem.pins[head]! + refs;
    mem.stats.nrFollPinAcquired += refs;
  } else if (flags & FOLL_GET) {
    if (!mem.tryRefAdd(head, refs)) return REF_OVERFLOW;
    mem.gets[head] = mem.gets[head]! + refs;
  } else {
    return GRABBED;
  }
  if (owner !== 0) mem.owner[head] = owner;
  return GRABBED;
}
