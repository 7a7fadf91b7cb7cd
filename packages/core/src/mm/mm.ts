// A process address space (struct mm_struct): VMAs, their page tables, CPU access that faults
// pages in on first touch, munmap, and the locked-memory counters of mainline.

import { PAGE_SIZE, PMD_SIZE, TASK_SIZE_MAX } from '../constants.js';
import { checkBool, checkErrno, checkInt, checkOptions, fail, hex, IodescError, type Errno } from '../errors.js';
import { FAULT_READ, FAULT_WRITE, handleFault, splitHugePmdAt, zapVma } from './fault.js';
import { checkWithinFile } from './file-fault.js';
import { checkFile, createFile, MAX_FILE_SIZE, type CachedFile } from './file.js';
import { hugetlbReservePages, hugetlbSplitRefused } from './hugetlb-vma.js';
import { PhysicalMemory } from './memory.js';
import { PG_ANY_ZERO } from './page-flags.js';
import { PTE_DIRTY, PTE_PMD, PTE_WRITE, VM_EXEC, VM_READ, VM_WRITE, Vma, type Backing, type Prot } from './vma.js';

/** Top of the mmap area: mappings are placed top-down below it, as x86-64's legacy layout does. */
const MMAP_BASE = 0x7f0000000000;
/** Lowest address mmap hands out (`mmap_min_addr`). */
const MMAP_MIN_ADDR = 0x10000;
/** Default RLIMIT_MEMLOCK since Linux 5.16 (`MLOCK_LIMIT`): 8 MiB. */
export const DEFAULT_RLIMIT_MEMLOCK = 8 * 2 ** 20;

/** Options of `mmap`; all optional. */
export interface MmapOptions {
  prot?: Prot;
  backing?: Backing;
  shared?: boolean;
  /** Back each aligned 2 MiB range with one order-9 folio (MADV_HUGEPAGE). */
  thp?: boolean;
  /**
   * Back the mapping with huge pages of this size from the memory's pool (MAP_HUGETLB): the
   * length is rounded up to and the address aligned on the huge page size, and every page is
   * reserved now (ENOMEM when the pool cannot cover it).
   */
  hugetlb?: '2M' | '1G';
  /** With `hugetlb`, reserve nothing (MAP_NORESERVE): a fault that then finds no free huge page is EFAULT (SIGBUS). */
  noreserve?: boolean;
  /** Fault every page in now (MAP_POPULATE): for write when the mapping is writable. */
  populate?: boolean;
  /** The file to map with `backing: 'file'` (implies it); without one, a fresh zero-filled file of `offset + length` bytes. */
  file?: CachedFile;
  /** Byte offset in the file of the mapping's first page: a multiple of PAGE_SIZE (file mappings only). */
  offset?: number;
}

/** A user (struct user_struct): `lockedVm` pages are charged here across its processes. */
export interface UserStruct {
  lockedVm: number;
}

/** Options of `new AddressSpace`. */
export interface AddressSpaceOptions {
  /** The user whose `lockedVm` this process charges; a fresh one by default. */
  user?: UserStruct;
  /** RLIMIT_MEMLOCK in bytes; Infinity is RLIM_INFINITY. Default 8 MiB. */
  rlimitMemlock?: number;
  /** The process holds CAP_IPC_LOCK. */
  capIpcLock?: boolean;
}

const PROTS: Record<Prot, number> = { r: VM_READ, rw: VM_READ | VM_WRITE, rx: VM_READ | VM_EXEC, rwx: VM_READ | VM_WRITE | VM_EXEC };

/** One process's view of memory. */
export class AddressSpace {
  readonly memory: PhysicalMemory;
  /** VMAs sorted by start, non-overlapping. */
  readonly vmas: Vma[] = [];
  readonly user: UserStruct;
  /** Pages pinned long-term and charged to this mm (`mm->pinned_vm`). */
  pinnedVm = 0;
  rlimitMemlock: number;
  capIpcLock: boolean;
  private readonly injected = new Map<number, Errno>();
  private lastVma: Vma | undefined;

  constructor(memory: PhysicalMemory, options?: AddressSpaceOptions) {
    if (!(memory instanceof PhysicalMemory)) fail('EINVAL', 'AddressSpace needs a PhysicalMemory');
    const opts = checkOptions('options', options);
    this.memory = memory;
    const user = opts.user;
    if (user !== undefined && (typeof user !== 'object' || user === null)) fail('EINVAL', 'user must be a UserStruct { lockedVm }');
    if (user !== undefined) checkInt('user.lockedVm', user.lockedVm);
    this.user = user ?? { lockedVm: 0 };
    const rl = opts.rlimitMemlock ?? DEFAULT_RLIMIT_MEMLOCK;
    if (rl !== Infinity) checkInt('rlimitMemlock', rl);
    this.rlimitMemlock = rl;
    this.capIpcLock = opts.capIpcLock === undefined ? false : checkBool('capIpcLock', opts.capIpcLock);
  }

  /**
   * Maps `length` bytes (rounded up to pages) and returns the start address (never 0).
   * Anonymous memory, or with `backing: 'file'` (or a `file`) the file from `offset` on, through
   * its page cache: shared, writes reach the file at writeback; private, writes go to
   * copy-on-write anonymous pages. Pages past the file's end fault with SIGBUS (EFAULT).
   * `hugetlb` maps huge pages from the memory's pool (see MmapOptions; `thp` has no effect there).
   * EINVAL on a bad length or option (an offset that is not page aligned, a file of another
   * memory, hugetlb over a file); EOPNOTSUPP for THP over a file; ENOMEM when the hugetlb pool
   * cannot reserve the pages, or when no gap of that size is left.
   */
  mmap(length: number, options?: MmapOptions): number {
    const opts = checkOptions('options', options);
    checkInt('length', length, 1);
    // get_unmapped_area(): a length past TASK_SIZE can never fit
    if (length > TASK_SIZE_MAX) fail('ENOMEM', `mmap of ${length} bytes exceeds the user address space`);
    const prot = opts.prot ?? 'rw';
    const vmFlags = Object.hasOwn(PROTS, prot) ? PROTS[prot] : undefined;
    if (vmFlags === undefined) fail('EINVAL', `prot must be 'r', 'rw', 'rx' or 'rwx', got ${String(prot)}`);
    const backing = opts.backing ?? 'anon';
    if (backing !== 'anon' && backing !== 'file') fail('EINVAL', `backing must be 'anon' or 'file', got ${String(backing)}`);
    if (opts.file !== undefined && opts.backing === 'anon') fail('EINVAL', "a file was given with backing: 'anon'");
    const isFile = backing === 'file' || opts.file !== undefined;
    if (opts.file !== undefined) checkFile(opts.file, this.memory);
    const offset = opts.offset === undefined ? 0 : checkInt('offset', opts.offset);
    if (offset % PAGE_SIZE !== 0) fail('EINVAL', `offset ${offset} is not a multiple of PAGE_SIZE (${PAGE_SIZE})`);
    if (offset !== 0 && !isFile) fail('EINVAL', 'offset applies to file mappings only');
    if (isFile && opts.file === undefined && offset + length > MAX_FILE_SIZE) fail('EINVAL', `a fresh file of ${offset + length} bytes is over ${MAX_FILE_SIZE}`);
    const shared = opts.shared === undefined ? false : checkBool('shared', opts.shared);
    const thp = opts.thp === undefined ? false : checkBool('thp', opts.thp);
    const populate = opts.populate === undefined ? false : checkBool('populate', opts.populate);
    if (opts.hugetlb !== undefined && opts.hugetlb !== '2M' && opts.hugetlb !== '1G') fail('EINVAL', `hugetlb must be '2M' or '1G', got ${String(opts.hugetlb)}`);
    // ksys_mmap_pgoff(): MAP_HUGETLB over a file that is not hugetlbfs
    if (opts.hugetlb !== undefined && isFile) fail('EINVAL', 'hugetlb mappings are anonymous: backing must be anon');
    // page-cache folios are order 0 here: a huge page over a file needs large folios in the cache
    if (isFile && thp) fail('EOPNOTSUPP', 'thp over a file mapping (large page-cache folios are not modelled)');
    const noreserve = opts.noreserve === undefined ? false : checkBool('noreserve', opts.noreserve);
    // ksys_mmap_pgoff(): MAP_HUGETLB rounds the length up to its huge page size
    const hstate = opts.hugetlb === undefined ? undefined : this.memory.hstate(opts.hugetlb);
    const unit = hstate === undefined ? PAGE_SIZE : hstate.size;
    const len = Math.ceil(length / unit) * unit;
    if (len > TASK_SIZE_MAX) fail('ENOMEM', `mmap of ${len} bytes exceeds the user address space`);
    const align = hstate !== undefined ? unit : thp && len >= PMD_SIZE ? PMD_SIZE : PAGE_SIZE;
    const start = this.findGap(len, align);
    let vma: Vma;
    try {
      vma = new Vma(start, start + len, vmFlags, isFile ? 'file' : backing, shared, thp);
    } catch (e) {
      // the page-table arrays could not be allocated (RangeError past the typed-array limit)
      if (e instanceof RangeError) fail('ENOMEM', `cannot allocate a page table for ${len} bytes`);
      throw e;
    }
    if (hstate !== undefined) vma.hugetlb = hugetlbReservePages(hstate, len / unit, shared, noreserve);
    if (isFile) {
      // a fresh file is made once the mapping can no longer fail
      let file = opts.file;
      if (file === undefined) {
        file = createFile(this.memory, { size: offset + length });
        file.temporary = true;
      }
      vma.file = file;
      vma.pgoff = offset / PAGE_SIZE;
      file.mmaps.add(vma);
    }
    this.insertVma(vma);
    if (populate) this.populate(vma);
    return start;
  }

  /**
   * Unmaps [addr, addr + length) (rounded up to pages); parts with no mapping are ignored, as
   * munmap(2) does. Pinned pages stay allocated until their last pin is dropped.
   * EINVAL when `addr` is unaligned or the length is 0.
   */
  munmap(addr: number, length: number): void {
    checkInt('addr', addr, 0, TASK_SIZE_MAX);
    checkInt('length', length, 1);
    if (addr % PAGE_SIZE !== 0) fail('EINVAL', `munmap address ${hex(addr)} is not page aligned`);
    // do_vmi_munmap(): a range running past TASK_SIZE is EINVAL
    if (length > TASK_SIZE_MAX - addr) fail('EINVAL', `munmap range ${hex(addr)} + ${length} runs past the top of user space`);
    const end = addr + Math.ceil(length / PAGE_SIZE) * PAGE_SIZE;
    // __split_vma() asks may_split before anything changes
    for (const v of this.vmas) {
      const why = v.end > addr && v.start < end ? hugetlbSplitRefused(v, addr, end) : '';
      if (why !== '') fail('EINVAL', why);
    }
    for (let k = 0; k < this.vmas.length; k++) {
      let vma = this.vmas[k]!;
      if (vma.end <= addr) continue;
      if (vma.start >= end) break;
      // split a PMD mapping that the VMA split would cut before splitting the VMA
      if (vma.start < addr) {
        splitHugePmdAt(this.memory, vma, (addr - vma.start) / PAGE_SIZE);
        this.vmas.splice(k + 1, 0, vma.splitAt(addr));
        continue;
      }
      if (vma.end > end) {
        splitHugePmdAt(this.memory, vma, (end - vma.start) / PAGE_SIZE);
        this.vmas.splice(k + 1, 0, vma.splitAt(end));
      }
      vma = this.vmas[k]!;
      zapVma(this.memory, vma);
      this.vmas.splice(k--, 1);
    }
    this.lastVma = undefined;
  }

  /**
   * Unmaps every mapping, as the process's exit does (`exit_mmap`): pinned pages stay allocated
   * until their last unpin, and `leakReport` names them. The locked-memory counters are the
   * pinning drivers' to return. The address space may be used again afterwards.
   */
  exit(): void {
    for (const vma of this.vmas) zapVma(this.memory, vma);
    this.vmas.length = 0;
    this.lastVma = undefined;
  }

  /** Reads `length` bytes at `addr` as the CPU would, faulting pages in. EFAULT outside a readable VMA. */
  read(addr: number, length: number): Uint8Array {
    checkInt('addr', addr, 0, TASK_SIZE_MAX);
    checkInt('length', length, 0, TASK_SIZE_MAX);
    this.checkAccess(addr, length, false);
    const out = new Uint8Array(length);
    this.access(addr, length, false, out);
    return out;
  }

  /** Writes `bytes` at `addr` as the CPU would (write faults, COW off the zero page). EFAULT outside a writable VMA. */
  write(addr: number, bytes: Uint8Array): void {
    checkInt('addr', addr, 0, TASK_SIZE_MAX);
    if (!(bytes instanceof Uint8Array)) fail('EINVAL', 'bytes must be a Uint8Array');
    this.checkAccess(addr, bytes.length, true);
    this.access(addr, bytes.length, true, bytes);
  }

  /** The VMA containing `addr`, or undefined (`vma_lookup`). */
  findVma(addr: number): Vma | undefined {
    const last = this.lastVma;
    if (last !== undefined && addr >= last.start && addr < last.end) return last;
    let lo = 0;
    let hi = this.vmas.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = this.vmas[mid]!;
      if (addr < v.start) hi = mid - 1;
      else if (addr >= v.end) lo = mid + 1;
      else return (this.lastVma = v);
    }
    return undefined;
  }

  /** PFN mapped at `addr` now, or -1 when nothing is mapped there (no fault is taken). */
  lookupPfn(addr: number): number {
    checkInt('addr', addr);
    const vma = this.findVma(addr);
    if (vma === undefined) return -1;
    return vma.pt[Math.floor((addr - vma.start) / PAGE_SIZE)]! - 1;
  }

  /**
   * Makes GUP fail with `code` at the page holding `addr` (a poisoned or unmappable page, as
   * hwpoison or fault injection would make it), until `clearInjectedFaults`.
   */
  injectFault(addr: number, code: Errno = 'EFAULT'): void {
    checkInt('addr', addr, 0, TASK_SIZE_MAX);
    this.injected.set(Math.floor(addr / PAGE_SIZE), checkErrno('code', code));
  }

  clearInjectedFaults(): void {
    this.injected.clear();
  }

  /** True while any fault is injected (the GUP walk checks this once per VMA). */
  get hasInjectedFaults(): boolean {
    return this.injected.size > 0;
  }

  /** The injected failure at page index `pageIndex` (addr >> PAGE_SHIFT), if any. */
  injectedFault(pageIndex: number): Errno | undefined {
    return this.injected.size === 0 ? undefined : this.injected.get(pageIndex);
  }

  /** Locked-memory limit in pages (`rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT`). */
  get memlockLimitPages(): number {
    return this.rlimitMemlock === Infinity ? Infinity : Math.floor(this.rlimitMemlock / PAGE_SIZE);
  }

  // The whole range is mapped with the access allowed: checked first, so a failing access
  // changes nothing, but for one case: a MAP_NORESERVE hugetlb page that finds its pool empty
  // at fault time is SIGBUS after the bytes before it were written, as in the kernel.
  private checkAccess(addr: number, length: number, write: boolean): void {
    if (addr + length > TASK_SIZE_MAX) fail('EFAULT', `range ${hex(addr)} + ${length} runs past the top of user space`);
    for (let a = addr; a < addr + length; ) {
      const vma = this.findVma(a);
      if (vma === undefined) fail('EFAULT', `no mapping at ${hex(a)}`);
      if (!(vma.vmFlags & (write ? VM_WRITE : VM_READ))) fail('EFAULT', `${write ? 'write to' : 'read of'} ${hex(a)} in a '${vma.prot}' mapping`);
      checkWithinFile(vma, a, Math.min(addr + length, vma.end));
      a = vma.end;
    }
  }

  // CPU access to a range checkAccess has passed, faulting pages in as the MMU would.
  private access(addr: number, length: number, write: boolean, buf: Uint8Array): void {
    const mem = this.memory;
    let done = 0;
    while (done < length) {
      const a = addr + done;
      const vma = this.findVma(a)!;
      const i = Math.floor((a - vma.start) / PAGE_SIZE);
      const off = a - vma.start - i * PAGE_SIZE;
      const n = Math.min(length - done, PAGE_SIZE - off);
      if (write) {
        if (vma.pt[i] === 0 || !(vma.pte[i]! & PTE_WRITE) || mem.flags[vma.pt[i]! - 1]! & PG_ANY_ZERO) handleFault(mem, vma, i, FAULT_WRITE);
        // the MMU sets the dirty bit of the entry written: for a huge leaf, the whole leaf's
        const bits = vma.pte[i]!;
        if (bits & PTE_PMD && !(bits & PTE_DIRTY)) vma.dirtyLeaf(i);
        else vma.pte[i] = bits | PTE_DIRTY;
        mem.store.copyIn(vma.pt[i]! - 1, off, buf, done, n);
      } else {
        if (vma.pt[i] === 0) handleFault(mem, vma, i, FAULT_READ);
        mem.store.copyOut(vma.pt[i]! - 1, off, buf, done, n);
      }
      done += n;
    }
  }

  // populate_vma_page_range(): write faults for a private writable mapping, read faults else;
  // like MAP_POPULATE, running out of memory leaves the rest to fault later.
  private populate(vma: Vma): void {
    const kind = vma.vmFlags & VM_WRITE && !vma.shared ? FAULT_WRITE : FAULT_READ;
    try {
      for (let i = 0; i < vma.nrPages; i++) if (vma.pt[i] === 0) handleFault(this.memory, vma, i, kind);
    } catch (e) {
      // __mm_populate() ignores errors: out of memory, or SIGBUS past a file's end or from an
      // exhausted hugetlb pool
      if (!(e instanceof IodescError && (e.code === 'ENOMEM' || e.code === 'EFAULT'))) throw e;
    }
  }

  // Top-down first fit below MMAP_BASE, as arch_get_unmapped_area_topdown places mappings.
  private findGap(len: number, align: number): number {
    let top = MMAP_BASE;
    for (let k = this.vmas.length - 1; k >= -1; k--) {
      const v = k >= 0 ? this.vmas[k]! : undefined;
      if (v !== undefined && v.start >= top) continue;
      const floor = v === undefined ? MMAP_MIN_ADDR : v.end;
      const start = Math.floor((top - len) / align) * align;
      if (start >= floor && start >= MMAP_MIN_ADDR) return start;
      if (v !== undefined) top = Math.min(top, v.start);
    }
    return fail('ENOMEM', `no free range of ${len} bytes left in the address space`);
  }

  private insertVma(vma: Vma): void {
    let k = this.vmas.length;
    while (k > 0 && this.vmas[k - 1]!.start > vma.start) k--;
    this.vmas.splice(k, 0, vma);
  }
}

/** Checks that `mm` is an AddressSpace; EINVAL otherwise. */
export function checkMm(mm: unknown): asserts mm is AddressSpace {
  if (!(mm instanceof AddressSpace)) fail('EINVAL', 'mm must be an AddressSpace');
}
