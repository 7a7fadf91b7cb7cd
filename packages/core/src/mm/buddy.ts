// The buddy allocator's free lists (mm/page_alloc.c): blocks of 2^order pages, split on the
// way out (expand), merged on the way back (__free_one_page), placed head or tail as mainline
// places them, and shuffled when seeded (mm/shuffle.c).

import { MAX_PAGE_ORDER } from '../constants.js';
import { PG_BUDDY } from './page-flags.js';
import { splitmix32 } from './prng.js';

const NONE = -1;
/** Frames in a 1 GiB range reserved for a gigantic page. */
const GIGANTIC_NR = 1 << 18;

/**
 * Free lists over the frames of one memory. It owns `next`/`prev` links per frame and writes
 * PG_BUDDY and the block order into the memory's `flags`/`order` at the head of each free
 * block; the memory keeps the rest of a folio's state.
 */
export class BuddyAllocator {
  /** Free pages on the lists. */
  nrFreePages = 0;
  private readonly freeHead = new Int32Array(MAX_PAGE_ORDER + 1).fill(NONE);
  private readonly freeTail = new Int32Array(MAX_PAGE_ORDER + 1).fill(NONE);
  private readonly freeCount = new Int32Array(MAX_PAGE_ORDER + 1);
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  /** The shuffle's random source, when seeded. */
  private rand: (() => number) | undefined;
  // Max-order blocks never handed out since boot, in hand-out order, kept off the linked lists
  // so that building a large memory touches no per-frame state (deferred struct page init).
  private pristine = new Uint32Array(0);
  private pristineNext = 0;
  /** Max-order blocks freed to the tail while never-used ones remain: handed out after them. */
  private readonly afterPristine: number[] = [];

  constructor(
    private readonly nrPages: number,
    private readonly flags: Uint16Array,
    private readonly order: Uint8Array,
    seed: number | undefined,
    /** Heads of 1 GiB ranges memblock reserved at boot (gigantic hugetlb pages): never freed to the lists. */
    private readonly memblockReserved: readonly number[] = [],
  ) {
    this.next = new Int32Array(nrPages);
    this.prev = new Int32Array(nrPages);
    this.seedFreeLists(seed);
  }

  /**
   * Takes a block of 2^order pages off the lists (__rmqueue_smallest + expand): the smallest
   * that fits, split, its lowest part kept. Returns its first PFN, or -1 when none is free.
   */
  take(order: number): number {
    let o = order;
    while (o <= MAX_PAGE_ORDER && this.freeHead[o] === NONE) o++;
    let head: number;
    if (o <= MAX_PAGE_ORDER) {
      head = this.freeHead[o]!;
      this.unlinkFree(head, o);
    } else if (this.pristineNext < this.pristine.length) {
      // the max-order list runs on into the blocks never handed out since boot...
      head = this.pristine[this.pristineNext++]!;
      o = MAX_PAGE_ORDER;
      // ...and then into those freed to its tail meanwhile, which now join it for real
      if (this.pristineNext === this.pristine.length) {
        for (const b of this.afterPristine) this.linkFree(b, MAX_PAGE_ORDER, true);
        this.afterPristine.length = 0;
      }
    } else {
      return NONE;
    }
    // expand(): hand the upper halves back, keep the lowest block
    while (o > order) {
      o--;
      this.linkFree(head + (1 << o), o);
    }
    this.nrFreePages -= 1 << order;
    return head;
  }

  /** Returns the block of 2^order pages at `head` (`__free_one_page`), merging with free buddies. */
  give(head: number, order: number): void {
    this.nrFreePages += 1 << order;
    let pfn = head;
    let o = order;
    while (o < MAX_PAGE_ORDER) {
      const buddy = pfn ^ (1 << o);
      if (buddy + (1 << o) > this.nrPages || !(this.flags[buddy]! & PG_BUDDY) || this.order[buddy] !== o) break;
      this.unlinkFree(buddy, o);
      pfn &= ~(1 << o);
      o++;
    }
    this.linkFree(pfn, o, this.toTail(pfn, o));
  }

  /**
   * Takes every free block off the lists, the never-used ones included, calling `visit(pfn,
   * order)` for each: the caller now owns those frames. Used to re-lay free memory (fragment).
   */
  drain(visit: (pfn: number, order: number) => void): void {
    for (let o = 0; o <= MAX_PAGE_ORDER; o++) {
      for (let pfn = this.freeHead[o]!; pfn !== NONE; pfn = this.next[pfn]!) {
        this.flags[pfn] = 0;
        visit(pfn, o);
      }
      this.freeHead[o] = NONE;
      this.freeTail[o] = NONE;
      this.freeCount[o] = 0;
    }
    for (let k = this.pristineNext; k < this.pristine.length; k++) visit(this.pristine[k]!, MAX_PAGE_ORDER);
    for (const pfn of this.afterPristine) {
      this.flags[pfn] = 0;
      visit(pfn, MAX_PAGE_ORDER);
    }
    this.pristine = new Uint32Array(0);
    this.pristineNext = 0;
    this.afterPristine.length = 0;
    this.nrFreePages = 0;
  }

  /**
   * Frees the frames [start, end), which its caller owns and which no free block touches, as
   * maximal aligned blocks each put at the tail of its list, in PFN order, as boot frees memory
   * (__free_pages_core with FPI_TO_TAIL): so the lowest block of each order is handed out first.
   */
  freeRangeToTail(start: number, end: number): void {
    let pfn = start;
    while (pfn < end) {
      let o = 0;
      while (o < MAX_PAGE_ORDER && (pfn & (1 << o)) === 0 && pfn + (2 << o) <= end) o++;
      while (pfn + (1 << o) > end) o--;
      this.linkFree(pfn, o, true);
      this.nrFreePages += 1 << o;
      pfn += 1 << o;
    }
  }

  /** Free blocks per order, as /proc/buddyinfo prints them. */
  buddyinfo(): number[] {
    const info = Array.from(this.freeCount);
    info[MAX_PAGE_ORDER] = info[MAX_PAGE_ORDER]! + this.pristine.length - this.pristineNext + this.afterPristine.length;
    return info;
  }

  // Where __free_one_page() puts a merged block: at a max-order block a coin toss when the free
  // lists are shuffled (shuffle_pick_tail), else at the tail when the block's own buddy one
  // order up is free, so that it is likely to merge before being handed out (buddy_merge_likely).
  private toTail(pfn: number, order: number): boolean {
    if (order >= MAX_PAGE_ORDER) return this.rand !== undefined && (this.rand() & 1) === 1;
    if (order >= MAX_PAGE_ORDER - 1) return false;
    const higher = pfn & ~(1 << order);
    const higherBuddy = higher ^ (2 << order);
    return higherBuddy + (2 << order) <= this.nrPages && (this.flags[higherBuddy]! & PG_BUDDY) !== 0 && this.order[higherBuddy] === order + 1;
  }

  private linkFree(pfn: number, order: number, toTail = false): void {
    this.flags[pfn] = PG_BUDDY;
    this.order[pfn] = order;
    if (toTail && order === MAX_PAGE_ORDER && this.pristineNext < this.pristine.length) {
      // the tail of the max-order list lies past the never-used blocks
      this.afterPristine.push(pfn);
      return;
    }
    this.freeCount[order]!++;
    const last = this.freeTail[order]!;
    if (toTail && last !== NONE) {
      this.next[last] = pfn;
      this.prev[pfn] = last;
      this.next[pfn] = NONE;
      this.freeTail[order] = pfn;
      return;
    }
    const first = this.freeHead[order]!;
    this.next[pfn] = first;
    this.prev[pfn] = NONE;
    if (first !== NONE) this.prev[first] = pfn;
    else this.freeTail[order] = pfn;
    this.freeHead[order] = pfn;
  }

  private unlinkFree(pfn: number, order: number): void {
    const n = this.next[pfn]!;
    const p = this.prev[pfn]!;
    if (p === NONE) this.freeHead[order] = n;
    else this.next[p] = n;
    if (n !== NONE) this.prev[n] = p;
    else this.freeTail[order] = p;
    this.flags[pfn] = 0;
    this.freeCount[order]!--;
  }

  /**
   * Takes the frames [start, start + nr) off the free lists, all of which must be free, and
   * returns the rest of every block they cut to the lists (the model of a memblock or CMA
   * reservation: `alloc_contig_range` isolating a range). Cost: O(blocks touched × order).
   */
  claimRange(start: number, nr: number): void {
    const end = start + nr;
    let p = start;
    while (p < end) {
      let o = 0;
      let head = p;
      while (o <= MAX_PAGE_ORDER) {
        head = p - (p % (1 << o));
        if (this.flags[head]! & PG_BUDDY && this.order[head] === o) break;
        o++;
      }
      if (o <= MAX_PAGE_ORDER) {
        this.unlinkFree(head, o);
      } else {
        // a max-order block not yet on any list
        o = MAX_PAGE_ORDER;
        head = p - (p % (1 << o));
        this.unlistPristine(head);
      }
      const blockEnd = head + (1 << o);
      this.releaseSpan(head, Math.max(head, start));
      this.releaseSpan(Math.min(blockEnd, end), blockEnd);
      p = blockEnd;
    }
    this.nrFreePages -= nr;
  }

  // Puts [from, to) back on the lists as maximal aligned blocks (no merging: each block's buddy
  // is claimed or another piece of the same split).
  private releaseSpan(from: number, to: number): void {
    let p = from;
    while (p < to) {
      let o = 0;
      while (o < MAX_PAGE_ORDER && p % (2 << o) === 0 && p + (2 << o) <= to) o++;
      this.linkFree(p, o, true);
      p += 1 << o;
    }
  }

  private unlistPristine(head: number): void {
    const i = this.pristine.indexOf(head, this.pristineNext);
    if (i >= 0) {
      this.pristine.copyWithin(i, i + 1);
      this.pristine = this.pristine.subarray(0, this.pristine.length - 1);
      if (this.pristineNext === this.pristine.length) {
        for (const b of this.afterPristine) this.linkFree(b, MAX_PAGE_ORDER, true);
        this.afterPristine.length = 0;
      }
      return;
    }
    const j = this.afterPristine.indexOf(head);
    if (j < 0) throw new Error(`buddy: frame ${head} is not free`);
    this.afterPristine.splice(j, 1);
  }

  // Frame 0 is the zero page; the rest goes on the free lists as maximal aligned blocks, the
  // max-order ones shuffled when seeded (shuffle_free_memory() at SHUFFLE_ORDER = MAX_PAGE_ORDER).
  private seedFreeLists(seed: number | undefined): void {
    const big: number[] = [];
    let pfn = 1;
    while (pfn < this.nrPages) {
      // memblock_free_all() frees only what memblock did not reserve
      if (this.memblockReserved.includes(pfn)) {
        pfn += GIGANTIC_NR;
        continue;
      }
      let o = 0;
      while (o < MAX_PAGE_ORDER && (pfn & (1 << o)) === 0 && pfn + (2 << o) <= this.nrPages) o++;
      while (pfn + (1 << o) > this.nrPages) o--;
      if (o === MAX_PAGE_ORDER) big.push(pfn);
      else this.linkFree(pfn, o, true); // __free_pages_core(): FPI_TO_TAIL
      this.nrFreePages += 1 << o;
      pfn += 1 << o;
    }
    if (seed !== undefined) {
      const rand = (this.rand = splitmix32(seed));
      for (let i = big.length - 1; i > 0; i--) {
        const j = rand() % (i + 1);
        const t = big[i]!;
        big[i] = big[j]!;
        big[j] = t;
      }
    }
    this.pristine = Uint32Array.from(big);
  }
}
