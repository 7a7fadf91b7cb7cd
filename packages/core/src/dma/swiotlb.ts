// The software IO TLB of kernel/dma/swiotlb.c: one pool of bounce buffers per memory, in 2 KiB
// slots grouped into segments of 128, for devices that cannot reach a buffer where it lies.

import { checkInt, checkOptions, fail } from '../errors.js';
import { PAGE_SIZE } from '../constants.js';
import { checkMemory, type PhysicalMemory } from '../mm/memory.js';
import { andMask } from './mask.js';

export const IO_TLB_SHIFT = 11;
/** Bytes per slot. */
export const IO_TLB_SIZE = 1 << IO_TLB_SHIFT;
/** Slots per segment: no bounce buffer spans two, so none exceeds 256 KiB. */
export const IO_TLB_SEGSIZE = 128;
/** Pool size when none is configured (64 MiB). */
export const IO_TLB_DEFAULT_SIZE = 64 * 2 ** 20;
/** The smallest pool boot falls back to (1 MiB of slots). */
export const IO_TLB_MIN_SLABS = (1 << 20) >> IO_TLB_SHIFT;

/**
 * One bounce-buffer pool (`struct io_tlb_pool`): `nslabs` slots from physical address `start`.
 * `list[i]` counts the free slots from i to the end of its segment (0 when i is in use), as
 * the kernel's `slots[i].list`; `origAddr`/`allocSize` record what each used slot stands for.
 */
export class SwiotlbPool {
  /** Slots in use. */
  used = 0;
  // Every slot below this one is in use, so a first-fit search may start here.
  private lowestFree = 0;
  readonly list: Uint8Array;
  readonly origAddr: Float64Array;
  readonly allocSize: Float64Array;
  private readonly scratch = new Uint8Array(IO_TLB_SEGSIZE * IO_TLB_SIZE);

  constructor(readonly memory: PhysicalMemory, readonly start: number, readonly nslabs: number) {
    this.list = new Uint8Array(nslabs);
    for (let i = 0; i < nslabs; i++) this.list[i] = IO_TLB_SEGSIZE - (i % IO_TLB_SEGSIZE);
    this.origAddr = new Float64Array(nslabs).fill(-1);
    this.allocSize = new Float64Array(nslabs);
  }

  /** Bytes of the pool. */
  get bytes(): number {
    return this.nslabs * IO_TLB_SIZE;
  }

  /** Physical address of slot `i`. */
  slotAddr(i: number): number {
    return this.start + i * IO_TLB_SIZE;
  }

  /** The slot holding physical address `addr`, or -1 when it lies outside the pool. */
  slotOf(addr: number): number {
    const i = Math.floor((addr - this.start) / IO_TLB_SIZE);
    return i >= 0 && i < this.nslabs ? i : -1;
  }

  /**
   * Finds and takes slots for `size` bytes standing for `orig`, searching from the pool's
   * start (`swiotlb_search_pool_area` with one area): a bounce buffer of a page or more starts
   * on a page, none crosses a 128-slot segment or the device's `boundaryMask`. Returns the
   * first slot, or -1 when the pool has no such run.
   */
  take(orig: number, size: number, boundaryMask: number): number {
    const nslots = Math.ceil(size / IO_TLB_SIZE);
    // swiotlb_find_slots(): nothing over one segment, nor more than is free
    if (nslots > IO_TLB_SEGSIZE || nslots > this.nslabs - this.used) return -1;
    const alignMask = size >= PAGE_SIZE ? PAGE_SIZE - 1 : IO_TLB_SIZE - 1;
    const stride = (alignMask + 1) / IO_TLB_SIZE;
    // boundaries counted in slots (get_max_slots); the default mask has none in reach
    const boundarySlots = boundaryMask >= Number.MAX_SAFE_INTEGER ? Infinity : (boundaryMask + 1) / IO_TLB_SIZE;
    const tblDma = andMask(this.start, boundaryMask);
    const shift = Math.ceil(tblDma / IO_TLB_SIZE);
    let index = this.lowestFree;
    while (index < this.nslabs) {
      if ((tblDma + index * IO_TLB_SIZE) % (alignMask + 1) !== 0) {
        index++;
        continue;
      }
      // iommu_is_span_boundary()
      const spans = boundarySlots !== Infinity && ((shift + index) % boundarySlots) + nslots > boundarySlots;
      const free = this.list[index]!;
      if (!spans && free >= nslots) {
        for (let i = 0; i < nslots; i++) {
          this.list[index + i] = 0;
          this.allocSize[index + i] = size - i * IO_TLB_SIZE;
          this.origAddr[index + i] = orig + i * IO_TLB_SIZE;
        }
        let count = 0;
        for (let i = index - 1; i >= 0 && i % IO_TLB_SEGSIZE !== IO_TLB_SEGSIZE - 1 && this.list[i] !== 0; i--) this.list[i] = ++count;
        this.used += nslots;
        if (index === this.lowestFree) this.skipUsed();
        return index;
      }
      // skip what cannot hold a candidate, as a full scan would find none there: the rest of a
      // used allocation, or a free run too short to the end of its segment
      if (free === 0 && this.allocSize[index]! > 0) index += Math.ceil(this.allocSize[index]! / IO_TLB_SIZE);
      else if (free > 0 && free < nslots) index += free;
      else index += stride;
    }
    return -1;
  }

  /** Frees the slots taken at `index` (`swiotlb_release_slots`), merging the free counts. */
  release(index: number): void {
    const nslots = Math.ceil(this.allocSize[index]! / IO_TLB_SIZE);
    const segEnd = (Math.floor(index / IO_TLB_SEGSIZE) + 1) * IO_TLB_SEGSIZE;
    let count = index + nslots < segEnd ? this.list[index + nslots]! : 0;
    for (let i = index + nslots - 1; i >= index; i--) {
      this.list[i] = ++count;
      this.origAddr[i] = -1;
      this.allocSize[i] = 0;
    }
    for (let i = index - 1; i >= 0 && i % IO_TLB_SEGSIZE !== IO_TLB_SEGSIZE - 1 && this.list[i] !== 0; i--) this.list[i] = ++count;
    this.used -= nslots;
    if (index < this.lowestFree) this.lowestFree = index;
  }

  // Moves lowestFree past the allocations that start at it.
  private skipUsed(): void {
    let i = this.lowestFree;
    while (i < this.nslabs && this.list[i] === 0) i += Math.ceil(this.allocSize[i]! / IO_TLB_SIZE);
    this.lowestFree = i;
  }

  /**
   * Copies `size` bytes between the bounce buffer at slot `index` and the memory it stands for
   * (`swiotlb_bounce`): into the bounce buffer when `toDevice`, back out of it otherwise.
   */
  bounce(index: number, size: number, toDevice: boolean): void {
    const orig = this.origAddr[index]!;
    const tlb = this.slotAddr(index);
    const buf = this.scratch;
    if (toDevice) {
      this.memory.copyFromPhys(orig, buf, 0, size);
      this.memory.copyToPhys(tlb, buf, 0, size);
    } else {
      this.memory.copyFromPhys(tlb, buf, 0, size);
      this.memory.copyToPhys(orig, buf, 0, size);
    }
  }
}

// One pool per memory, or null once allocation has failed; the size asked for before first use.
const pools = new WeakMap<PhysicalMemory, SwiotlbPool | null>();

/**
 * Allocates `memory`'s bounce pool now, of `bytes` (a multiple of 256 KiB; default 64 MiB),
 * from the lowest free frames, as `swiotlb_init_remap` does at boot: when no run of that size
 * is free it halves the size (to whole segments) down to 1 MiB before giving up.
 * Returns the pool, or null when none could be placed. EBUSY when the pool already exists.
 */
export function swiotlbInit(memory: PhysicalMemory, opts?: { bytes?: number }): SwiotlbPool | null {
  checkMemory(memory);
  const o = checkOptions('swiotlbInit options', opts);
  const segBytes = IO_TLB_SEGSIZE * IO_TLB_SIZE;
  const bytes = o.bytes === undefined ? IO_TLB_DEFAULT_SIZE : checkInt('bytes', o.bytes, segBytes, 2 ** 40);
  if (bytes % segBytes !== 0) fail('EINVAL', `bytes = ${bytes} is not a multiple of a swiotlb segment (${segBytes})`);
  if (pools.has(memory)) fail('EBUSY', 'this memory already has its swiotlb pool');
  let nslabs = bytes / IO_TLB_SIZE;
  let pool: SwiotlbPool | null = null;
  for (;;) {
    const nrPages = (nslabs * IO_TLB_SIZE) / PAGE_SIZE;
    const first = nrPages <= memory.nrPages ? memory.reserveLowest(nrPages) : -1;
    if (first >= 0) {
      pool = new SwiotlbPool(memory, first * PAGE_SIZE, nslabs);
      break;
    }
    if (nslabs <= IO_TLB_MIN_SLABS) break;
    nslabs = Math.ceil(nslabs / 2 / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE;
  }
  pools.set(memory, pool);
  return pool;
}

/** `memory`'s bounce pool, allocated with the default size on first use; null when it could not be. */
export function swiotlbPool(memory: PhysicalMemory): SwiotlbPool | null {
  const pool = pools.get(memory);
  if (pool !== undefined) return pool;
  return swiotlbInit(memory);
}

/** The pool, undefined when not yet placed, null when it could not be placed. */
export function swiotlbPoolState(memory: PhysicalMemory): SwiotlbPool | null | undefined {
  return pools.get(memory);
}

/** The pool if it has been allocated, without allocating it. */
export function swiotlbPoolIfAny(memory: PhysicalMemory): SwiotlbPool | null {
  return pools.get(memory) ?? null;
}
