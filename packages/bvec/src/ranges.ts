// A bio's iterator seen as core's PhysRanges (bio_for_each_bvec: whole vectors, the first from
// where the iterator stands, the last clipped to its size), for core's block rules to walk.

import type { PhysRanges } from '@iodesc/core';
import type { BvecIter } from './bio.js';
import { bvLen, bvOffset, bvPhys, type BvecVector } from './bvec.js';

/** The multi-page vectors `iter` covers in `v`, as (physical address, length) pairs. O(1) per read. */
export class BvecRanges implements PhysRanges {
  count = 0;
  private idx = 0;
  private done = 0;
  private lastLen = 0;
  private v: BvecVector | null = null;

  /** Points the view at `iter` over `v` (O(vectors covered)); returns it. */
  reset(v: BvecVector, iter: BvecIter): this {
    this.v = v;
    this.idx = iter.biIdx;
    this.done = iter.biBvecDone;
    let size = iter.biSize;
    let n = 0;
    let last = 0;
    for (let i = iter.biIdx, d = iter.biBvecDone; size > 0; i++, d = 0) {
      last = Math.min(bvLen(v, i) - d, size);
      size -= last;
      n++;
    }
    this.count = n;
    this.lastLen = last;
    return this;
  }

  /**
   * Points the view at `iter` over `v` when the bytes are known to end `endLen` bytes into
   * vector `endIdx` (the same end as `iter`'s, found once by `reset`): O(1).
   */
  resetTo(v: BvecVector, iter: BvecIter, endIdx: number, endLen: number): this {
    this.v = v;
    this.idx = iter.biIdx;
    this.done = iter.biBvecDone;
    this.count = iter.biSize === 0 ? 0 : endIdx - iter.biIdx + 1;
    this.lastLen = this.count === 1 ? endLen - iter.biBvecDone : endLen;
    return this;
  }

  /** Length of the last vector covered, as clipped by the iterator's size. */
  get lastLength(): number {
    return this.lastLen;
  }

  phys(i: number): number {
    return bvPhys(this.v!, this.idx + i) + (i === 0 ? this.done : 0);
  }

  /** `bv_offset` as `bio_for_each_bvec` shows it: the first vector's plus `bi_bvec_done` (may pass PAGE_SIZE). */
  offset(i: number): number {
    return bvOffset(this.v!, this.idx + i) + (i === 0 ? this.done : 0);
  }

  length(i: number): number {
    if (i === this.count - 1) return this.lastLen;
    return bvLen(this.v!, this.idx + i) - (i === 0 ? this.done : 0);
  }
}
