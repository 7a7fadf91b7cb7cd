// Page contents: real bytes, materialised on the first byte written and dropped when the frame
// is freed. Slots live in large arenas indexed by a per-frame table, so no object exists per page.

import { PAGE_SHIFT, PAGE_SIZE } from '../constants.js';

/** Pages per arena buffer (4096 pages, 16 MiB): big enough to amortise, small enough to grow in steps. */
const ARENA_SHIFT = 12;
const ARENA_PAGES = 1 << ARENA_SHIFT;

/** Backing bytes for page frames, allocated lazily per frame. */
export class PageStore {
  /** slot + 1 for each frame holding bytes, 0 for a frame that reads as zeros. */
  private readonly slotOf: Int32Array;
  private readonly arenas: Uint8Array[] = [];
  private freeSlots = new Int32Array(64);
  private nrFree = 0;
  private nextSlot = 0;
  /** Frames whose bytes are materialised. */
  materialised = 0;

  constructor(nrFrames: number) {
    this.slotOf = new Int32Array(nrFrames);
  }

  /** Copies `len` bytes of `pfn` from byte `off` into `dst` at `dstOff` (zeros if never written). */
  copyOut(pfn: number, off: number, dst: Uint8Array, dstOff: number, len: number): void {
    const slot = this.slotOf[pfn]! - 1;
    if (slot < 0) {
      dst.fill(0, dstOff, dstOff + len);
      return;
    }
    const arena = this.arenas[slot >> ARENA_SHIFT]!;
    const base = ((slot & (ARENA_PAGES - 1)) << PAGE_SHIFT) + off;
    dst.set(arena.subarray(base, base + len), dstOff);
  }

  /** Copies `len` bytes from `src` at `srcOff` into `pfn` at byte `off`, materialising it. */
  copyIn(pfn: number, off: number, src: Uint8Array, srcOff: number, len: number): void {
    let slot = this.slotOf[pfn]! - 1;
    if (slot < 0) {
      slot = this.takeSlot();
      this.slotOf[pfn] = slot + 1;
      this.materialised++;
    }
    const arena = this.arenas[slot >> ARENA_SHIFT]!;
    arena.set(src.subarray(srcOff, srcOff + len), ((slot & (ARENA_PAGES - 1)) << PAGE_SHIFT) + off);
  }

  /** Forgets `pfn`'s bytes (the frame was freed): it reads as zeros again. */
  drop(pfn: number): void {
    const slot = this.slotOf[pfn]! - 1;
    if (slot < 0) return;
    this.slotOf[pfn] = 0;
    this.materialised--;
    const start = (slot & (ARENA_PAGES - 1)) << PAGE_SHIFT;
    this.arenas[slot >> ARENA_SHIFT]!.fill(0, start, start + PAGE_SIZE);
    if (this.nrFree === this.freeSlots.length) {
      const grown = new Int32Array(this.nrFree * 2);
      grown.set(this.freeSlots);
      this.freeSlots = grown;
    }
    this.freeSlots[this.nrFree++] = slot;
  }

  private takeSlot(): number {
    if (this.nrFree > 0) return this.freeSlots[--this.nrFree]!;
    const slot = this.nextSlot++;
    if (slot >> ARENA_SHIFT >= this.arenas.length) this.arenas.push(new Uint8Array(ARENA_PAGES * PAGE_SIZE));
    return slot;
  }
}
