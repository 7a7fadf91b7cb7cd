// Physical memory: page frames with their metadata in typed arrays, a buddy allocator
// (mm/page_alloc.c), the shuffle of mm/shuffle.c for seeded fragmentation, and real bytes.

import { GUP_PIN_COUNTING_BIAS, HPAGE_PMD_ORDER, INT32_MAX, MAX_PAGE_ORDER, PAGE_SIZE } from '../constants.js';
import { checkBool, checkInt, fail } from '../errors.js';
import type { LeakEntry } from './leak.js';
import { PageStore } from './page-store.js';
import { BuddyAllocator } from './buddy.js';
import { bootHugetlbPools, freeHugetlbFolio, HUGETLB_ORDER, memblockGiganticRanges, parseHugepages, type Hstate, type HugePageSize, type HugepagesOption } from './hugetlb.js';
import { fragmentMemory, unfragmentMemory, type FragmentOptions, type FragmentResult } from './fragment.js';
import { PG_ANON, PG_DIRTY, PG_HEAD, PG_HUGE_ZERO, PG_HUGETLB, PG_LIVE, PG_RESERVED, PG_TAIL, PG_UPTODATE, PG_ZERO } from './page-flags.js';

/** Options for `new PhysicalMemory`. */
export interface PhysicalMemoryOptions {
  /** Size of RAM in bytes: a multiple of PAGE_SIZE, from 8 KiB to 256 GiB. */
  bytes: number;
  /** Seeds the shuffle of the free lists (CONFIG_SHUFFLE_PAGE_ALLOCATOR); omitted: PFN order. */
  seed?: number;
  /**
   * Huge pages reserved at boot per size, as `hugepages=` (default none): 1 GiB pages from the
   * highest 1 GiB-aligned ranges, 2 MiB pages from the buddy allocator. More than RAM holds
   * gives a smaller pool (the kernel warns and boots); see `hstate(size).nrHugePages`.
   */
  hugepages?: HugepagesOption;
}

/** Event counters, named for their /proc/vmstat lines. */
export interface MemoryStats {
  /** `nr_foll_pin_acquired`: pins taken (one per page). */
  nrFollPinAcquired: number;
  /** `nr_foll_pin_released`: pins dropped (one per page). */
  nrFollPinReleased: number;
  /** Folios allocated and freed by the buddy allocator. */
  folioAllocs: number;
  folioFrees: number;
  /** Frames `fragment` holds back to break contiguity (its ballast), until `unfragment`. */
  ballastPages: number;
}

// the zero page and at least one page to hand out
const MIN_BYTES = 2 * PAGE_SIZE;
const MAX_BYTES = 256 * 2 ** 30;
const NONE = -1;

/**
 * RAM as the kernel sees it: `nrPages` frames named by PFN. Frame 0 is the shared zero page.
 *
 * Per-frame state (one typed array per field, never an object per page):
 * - `refcount[head]`: the folio's `_refcount`;
 * - `pins[head]`: exact FOLL_PIN count; for a large folio this is the kernel's `_pincount`,
 *   for a small one the kernel folds it into `_refcount` (× GUP_PIN_COUNTING_BIAS);
 * - `gets[head]`: references taken by FOLL_GET, so a leak report can name them;
 * - `mapcount[pfn]`: page-table entries mapping this page (a PMD mapping counts each page once);
 * - `flags[pfn]` (PG_*), `order[pfn]`: folio order of every page of a folio, or buddy order at
 *   the head of a free block; `owner[head]`: the tag of the last call that pinned or got it.
 */
export class PhysicalMemory {
  readonly nrPages: number;
  readonly bytes: number;
  /** The shared zero page's PFN. */
  readonly zeroPfn = 0;
  /** Head of the huge zero folio once a THP read fault has needed it, else -1. */
  hugeZeroPfn = -1;
  readonly refcount: Int32Array;
  readonly pins: Int32Array;
  readonly gets: Int32Array;
  readonly mapcount: Int32Array;
  readonly flags: Uint16Array;
  readonly order: Uint8Array;
  readonly owner: Uint32Array;
  readonly store: PageStore;
  /** The free lists (mm/page_alloc.c). */
  readonly buddy: BuddyAllocator;
  readonly stats: MemoryStats = { nrFollPinAcquired: 0, nrFollPinReleased: 0, folioAllocs: 0, folioFrees: 0, ballastPages: 0 };
  /** The hugetlb pools, one per size (`hstates[]`). */
  readonly hstates: Record<HugePageSize, Hstate>;
  private readonly ownerNames: string[] = [''];
  private readonly ownerIds = new Map<string, number>();
  private allocFailAfter = NONE;
  private allocFailTimes = 0;
  /** Callbacks that add live resources (DMA mappings, ...) to the leak report. */
  readonly leakSources: Array<() => LeakEntry[]> = [];

  constructor(opts: PhysicalMemoryOptions) {
    if (typeof opts !== 'object' || opts === null) fail('EINVAL', 'PhysicalMemory needs an options object { bytes }');
    const bytes = checkInt('bytes', opts.bytes, MIN_BYTES, MAX_BYTES);
    if (bytes % PAGE_SIZE !== 0) fail('EINVAL', `bytes = ${bytes} is not a multiple of PAGE_SIZE (${PAGE_SIZE})`);
    const seed = opts.seed === undefined ? undefined : checkInt('seed', opts.seed, 0, 0xffffffff);
    const huge = parseHugepages(opts.hugepages);
    this.bytes = bytes;
    const n = (this.nrPages = bytes / PAGE_SIZE);
    this.refcount = new Int32Array(n);
    this.pins = new Int32Array(n);
    this.gets = new Int32Array(n);
    this.mapcount = new Int32Array(n);
    this.flags = new Uint16Array(n);
    this.order = new Uint8Array(n);
    this.owner = new Uint32Array(n);
    this.store = new PageStore(n);
    this.flags[0] = PG_ZERO | PG_RESERVED | PG_UPTODATE | PG_LIVE;
    this.refcount[0] = 1;
    const gigantic = memblockGiganticRanges(n, huge.gigantic);
    this.buddy = new BuddyAllocator(n, this.flags, this.order, seed, gigantic);
    this.hstates = bootHugetlbPools(this, huge.small, gigantic, huge.gigantic);
  }

  /** PFN of the first page of the folio holding `pfn` (`page_folio`). Trusts `pfn`. */
  folioHead(pfn: number): number {
    return pfn & -(1 << this.order[pfn]!);
  }

  /** Pages in the folio holding `pfn` (`folio_nr_pages`). */
  folioNrPages(pfn: number): number {
    return 1 << this.order[pfn]!;
  }

  /** Checks that `pfn` names a frame of this memory; EINVAL otherwise. */
  checkPfn(name: string, pfn: unknown): number {
    return checkInt(name, pfn, 0, this.nrPages - 1);
  }

  /** Checks that `pfn` is allocated (not free on a buddy list); EINVAL naming it otherwise. */
  checkLivePfn(name: string, pfn: unknown): number {
    const p = this.checkPfn(name, pfn);
    if (!(this.flags[p]! & PG_LIVE)) fail('EINVAL', `${name} = ${p} is a free page`);
    return p;
  }

  /** The hugetlb pool of huge pages of `size` ('2M' or '1G'); EINVAL for another size. */
  hstate(size: HugePageSize): Hstate {
    if (size !== '2M' && size !== '1G') fail('EINVAL', `huge page size must be '2M' or '1G', got ${String(size)}`);
    return this.hstates[size];
  }

  /**
   * Leaves free memory as runs of `freeRunPages` frames, each starting at a multiple of it,
   * the rest held back as ballast (see `fragmentMemory`): `{ seed, freeRunPages: 1 }` scatters
   * what a process gets over about 4 frames per page, 16 gives runs of 16 pages, 512 leaves
   * 2 MiB blocks for THP. EINVAL for a bad option. Undo with `unfragment`.
   */
  fragment(options: FragmentOptions): FragmentResult {
    return fragmentMemory(this, options);
  }

  /** Returns the ballast `fragment` held back; free memory is laid out again as at boot. Returns the frames returned. */
  unfragment(): number {
    return unfragmentMemory(this);
  }

  /** Free pages on the buddy lists. */
  get nrFreePages(): number {
    return this.buddy.nrFreePages;
  }

  /** Free blocks per order, as /proc/buddyinfo prints them. */
  buddyinfo(): number[] {
    return this.buddy.buddyinfo();
  }

  // --- folios ---

  /**
   * Allocates a folio of 2^order pages, refcount 1, contents zero (`folio_alloc`).
   * Returns the head PFN, or -1 when no block of that order can be found (the caller maps
   * that to ENOMEM). Cost: O(order) splits.
   */
  allocFolio(order: number, anon = true): number {
    if (!Number.isInteger(order) || order < 0 || order > MAX_PAGE_ORDER) checkInt('order', order, 0, MAX_PAGE_ORDER);
    if (anon !== true && anon !== false) checkBool('anon', anon);
    if (this.allocFailAfter !== NONE && this.allocFailAfter-- <= 0) {
      this.allocFailAfter = 0;
      if (--this.allocFailTimes <= 0) this.allocFailAfter = NONE;
      return NONE;
    }
    const head = this.buddy.take(order);
    if (head < 0) return NONE;
    const nr = 1 << order;
    const fl = anon ? PG_ANON | PG_UPTODATE | PG_LIVE : PG_UPTODATE | PG_LIVE;
    if (order > 0) {
      this.order.fill(order, head, head + nr);
      this.flags.fill(fl | PG_TAIL, head + 1, head + nr);
      this.flags[head] = fl | PG_HEAD;
    } else {
      this.order[head] = 0;
      this.flags[head] = fl;
    }
    this.refcount[head] = 1;
    this.stats.folioAllocs++;
    return head;
  }

  /**
   * The huge zero folio's head PFN, allocated on first use as `get_huge_zero_folio()` does and
   * kept for good; -1 when no order-9 block is free (the fault then falls back to small pages).
   */
  hugeZeroFolio(): number {
    if (this.hugeZeroPfn >= 0) return this.hugeZeroPfn;
    const head = this.allocFolio(HPAGE_PMD_ORDER, false);
    if (head < 0) return -1;
    for (let p = head; p < head + (1 << HPAGE_PMD_ORDER); p++) this.flags[p] = this.flags[p]! | PG_HUGE_ZERO | PG_RESERVED;
    return (this.hugeZeroPfn = head);
  }

  /**
   * Reserves the lowest run of `nrPages` free frames for good, as a boot-time reservation takes
   * memory low (`memblock_alloc_low`; swiotlb's pool). Each frame becomes a reserved page
   * (refcount 1, never freed). Returns the first PFN, or -1 when no run is free.
   * Cost: one scan of the frames' flags.
   */
  reserveLowest(nrPages: number): number {
    checkInt('nrPages', nrPages, 1, this.nrPages);
    const flags = this.flags;
    let run = 0;
    let start = -1;
    for (let pfn = 1; pfn < this.nrPages; pfn++) {
      // allocated, or a huge page of a pool (free ones included: they never return to the buddy)
      if (flags[pfn]! & (PG_LIVE | PG_HUGETLB)) {
        run = 0;
        continue;
      }
      if (run++ === 0) start = pfn;
      if (run === nrPages) {
        this.buddy.claimRange(start, nrPages);
        flags.fill(PG_LIVE | PG_RESERVED | PG_UPTODATE, start, start + nrPages);
        this.order.fill(0, start, start + nrPages);
        this.refcount.fill(1, start, start + nrPages);
        return start;
      }
    }
    return NONE;
  }

  /**
   * Makes allocations fail, as fail_page_alloc does: the `nth` from now (0 = the next) and the
   * `times - 1` after it (`times` Infinity: every one, until `clearAllocFailures`).
   */
  injectAllocFailure(nth: number, times = 1): void {
    this.allocFailAfter = checkInt('nth', nth, 0, INT32_MAX);
    this.allocFailTimes = times === Infinity ? Infinity : checkInt('times', times, 1, INT32_MAX);
  }

  /** Disarms `injectAllocFailure`. */
  clearAllocFailures(): void {
    this.allocFailAfter = NONE;
    this.allocFailTimes = 0;
  }

  /**
   * Drops `refs` references from the folio holding `pfn` (`folio_put_refs`); frees it at 0.
   * EINVAL for a free page or more references than it holds. The GUP and fault paths use the
   * unchecked twin, `putRefsUnchecked`.
   */
  folioPutRefs(pfn: number, refs: number): void {
    const head = this.folioHead(this.checkLivePfn('pfn', pfn));
    checkInt('refs', refs, 1, this.refcount[head]!);
    this.putRefsUnchecked(head, refs);
  }

  /** `folioPutRefs` on a head PFN its caller vouches for. */
  putRefsUnchecked(head: number, refs: number): void {
    const left = (this.refcount[head] = this.refcount[head]! - refs);
    if (left === 0) this.freeFolio(head);
  }

  /** Frees the folio headed by `head` if it is still allocated and its refcount has reached 0. */
  freeIfUnreferenced(head: number): void {
    if (this.refcount[head] === 0 && this.flags[head]! & PG_LIVE) this.freeFolio(head);
  }

  /**
   * Adds `refs` references to the folio headed by `head` unless its refcount would overflow
   * (refused before it wraps, where the kernel notices only after). Returns whether it did.
   */
  tryRefAdd(head: number, refs: number): boolean {
    if (this.refcount[head]! > INT32_MAX - refs) return false;
    this.refcount[head] = this.refcount[head]! + refs;
    return true;
  }

  /** References one pin of `nr` pages takes on the folio headed by `head`: 1 each for a large folio, the bias each for a small one. */
  pinRefs(head: number, nr: number): number {
    return this.order[head]! > 0 ? nr : nr * GUP_PIN_COUNTING_BIAS;
  }

  private freeFolio(head: number): void {
    if (this.flags[head]! & PG_RESERVED) return;
    const order = this.order[head]!;
    if (this.flags[head]! & PG_HUGETLB) return freeHugetlbFolio(this, this.hstates[order === HUGETLB_ORDER['1G'] ? '1G' : '2M'], head);
    const nr = 1 << order;
    if (this.store.materialised > 0) for (let p = head; p < head + nr; p++) this.store.drop(p);
    if (order > 0) this.flags.fill(0, head, head + nr);
    else this.flags[head] = 0;
    this.pins[head] = 0;
    this.gets[head] = 0;
    this.owner[head] = 0;
    this.stats.folioFrees++;
    if (order > 0) this.order.fill(0, head, head + nr);
    this.buddy.give(head, order);
  }

  // --- bytes, as a device or the CPU sees them by physical address ---

  /** Reads `length` bytes at physical address `physAddr` into a new array. EINVAL past the end of RAM. */
  readPhys(physAddr: number, length: number): Uint8Array {
    this.checkPhysRange(physAddr, length);
    const out = new Uint8Array(length);
    this.copyFromPhys(physAddr, out, 0, length);
    return out;
  }

  /** Writes `bytes` at physical address `physAddr`, materialising the pages it touches. */
  writePhys(physAddr: number, bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array)) fail('EINVAL', 'bytes must be a Uint8Array');
    this.checkPhysRange(physAddr, bytes.length);
    this.copyToPhys(physAddr, bytes, 0, bytes.length);
  }

  /** Unchecked copy out of RAM into `dst[dstOff..]`. */
  copyFromPhys(physAddr: number, dst: Uint8Array, dstOff: number, length: number): void {
    let pfn = Math.floor(physAddr / PAGE_SIZE);
    let off = physAddr - pfn * PAGE_SIZE;
    while (length > 0) {
      const n = Math.min(length, PAGE_SIZE - off);
      this.store.copyOut(pfn, off, dst, dstOff, n);
      dstOff += n;
      length -= n;
      pfn++;
      off = 0;
    }
  }

  /** Unchecked copy of `src[srcOff..]` into RAM. */
  copyToPhys(physAddr: number, src: Uint8Array, srcOff: number, length: number): void {
    let pfn = Math.floor(physAddr / PAGE_SIZE);
    let off = physAddr - pfn * PAGE_SIZE;
    while (length > 0) {
      const n = Math.min(length, PAGE_SIZE - off);
      this.store.copyIn(pfn, off, src, srcOff, n);
      srcOff += n;
      length -= n;
      pfn++;
      off = 0;
    }
  }

  private checkPhysRange(physAddr: number, length: number): void {
    checkInt('physAddr', physAddr, 0, this.bytes);
    checkInt('length', length, 0, this.bytes);
    if (physAddr + length > this.bytes) {
      fail('EINVAL', `physical range [${physAddr}, ${physAddr + length}) runs past the end of RAM (${this.bytes} bytes)`);
    }
  }

  // --- owners, for the leak report ---

  /** The small integer that stands for `tag` in `owner[]` (0 = untagged). */
  ownerId(tag: string | undefined): number {
    if (tag === undefined) return 0;
    let id = this.ownerIds.get(tag);
    if (id === undefined) {
      id = this.ownerNames.push(tag) - 1;
      this.ownerIds.set(tag, id);
    }
    return id;
  }

  /** The tag behind an owner id. */
  ownerName(id: number): string | undefined {
    return id === 0 ? undefined : this.ownerNames[id];
  }

  /** True when the page at `pfn` is dirty (`folio_test_dirty` of its folio). */
  isDirty(pfn: number): boolean {
    return (this.flags[this.folioHead(this.checkPfn('pfn', pfn))]! & PG_DIRTY) !== 0;
  }
}

/** Checks that `memory` is a PhysicalMemory; EINVAL otherwise. */
export function checkMemory(memory: unknown): asserts memory is PhysicalMemory {
  if (!(memory instanceof PhysicalMemory)) fail('EINVAL', 'memory must be a PhysicalMemory');
}
