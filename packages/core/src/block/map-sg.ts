// The walk that turns a request's bios into physical segments at dispatch
// (block/blk-mq-dma.c: blk_map_iter_next, __blk_map_iter_next, __blk_rq_map_sg).

import { fail } from '../errors.js';
import { blkValidateLimits, type QueueLimits } from './limits.js';
import { biovecPhysMergeable, getMaxSegmentSize } from './merge.js';
import { checkRanges, type PhysRanges } from './split.js';

const UINT_MAX = 0xffffffff;

/**
 * `struct blk_map_iter` over the bios of one request (each a `PhysRanges`, chained as by
 * `bi_next`). Each `next()` leaves the segment in `paddr`/`len`; nothing is allocated per step.
 */
export class BlkMapIter {
  /** Physical address of the segment `next()` produced. */
  paddr = 0;
  /** Its length in bytes. */
  len = 0;
  private bio = 0;
  private idx = 0;
  private done = 0;

  readonly lim: QueueLimits;

  /** EINVAL for limits that do not validate or a `bios` that is not an array of `PhysRanges`. */
  constructor(lim: QueueLimits, readonly bios: readonly PhysRanges[]) {
    this.lim = blkValidateLimits(lim);
    if (!Array.isArray(bios)) fail('EINVAL', 'bios must be an array of vector sequences');
    for (const b of bios) checkRanges(b);
  }

  /** Bytes left to walk in the current bio (`iter.bi_size` is non-zero). */
  private hasSize(): boolean {
    const b = this.bios[this.bio];
    return b !== undefined && this.idx < b.count;
  }

  // bvec_iter_advance_single: bytes never run past the current vector
  private advance(bytes: number): void {
    const b = this.bios[this.bio]!;
    this.done += bytes;
    if (this.done === b.length(this.idx)) {
      this.done = 0;
      this.idx++;
    }
  }

  // __blk_map_iter_next: stay while bytes remain, else step to the next bio if there is one
  private step(): boolean {
    if (this.hasSize()) return true;
    if (this.bio + 1 >= this.bios.length) return false;
    this.bio++;
    this.idx = 0;
    this.done = 0;
    return true;
  }

  /**
   * `blk_map_iter_next`: the next segment: the current vector from where the walk stands,
   * clipped by `get_max_segment_size`; once a vector is used up, following vectors (across bio
   * boundaries) are merged while `biovec_phys_mergeable` allows and the total stays within
   * that size. False when the request is done. O(vectors merged).
   */
  next(): boolean {
    if (!this.hasSize()) return false;
    let b = this.bios[this.bio]!;
    const paddr = b.phys(this.idx) + this.done;
    const maxSize = getMaxSegmentSize(this.lim, paddr, UINT_MAX);
    let len = Math.min(b.length(this.idx) - this.done, maxSize);
    this.advance(len);
    while (!this.hasSize() || this.done === 0) {
      if (!this.step()) break;
      b = this.bios[this.bio]!;
      const np = b.phys(this.idx);
      const nl = b.length(this.idx);
      if (len + nl > maxSize || !biovecPhysMergeable(this.lim, paddr, len, np, nl)) break;
      len += nl;
      this.advance(nl);
    }
    this.paddr = paddr;
    this.len = len;
    return true;
  }
}

/**
 * `__blk_rq_map_sg` without the scatterlist: walks the request and writes each segment to
 * `outPhys[k]`/`outLen[k]`; returns the count. Pass null arrays to count only (as a driver
 * sizes its table by `nr_phys_segments`). EINVAL when the arrays are too short. O(vectors).
 */
export function blkRqMapSegments(lim: QueueLimits, bios: readonly PhysRanges[], outPhys: Float64Array | null, outLen: Float64Array | null): number {
  const it = new BlkMapIter(lim, bios);
  let k = 0;
  while (it.next()) {
    if (outPhys !== null && outLen !== null) {
      if (k >= outPhys.length || k >= outLen.length) fail('EINVAL', `the segment table holds ${Math.min(outPhys.length, outLen.length)} entries, the request needs more`);
      outPhys[k] = it.paddr;
      outLen[k] = it.len;
    }
    k++;
  }
  return k;
}
