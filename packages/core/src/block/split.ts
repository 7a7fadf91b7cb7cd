// The split at submission, over any sequence of (physical address, length) vectors, as
// block/blk-merge.c does it for a bio: bio_split_io_at, bvec_split_segs, get_max_io_size.

import { PAGE_SIZE } from '../constants.js';
import { andMask, isLowMask } from '../dma/mask.js';
import { fail } from '../errors.js';
import { BLK_MAX_BLOCK_SIZE, blkValidateLimits, SECTOR_SHIFT, SECTOR_SIZE, type QueueLimits } from './limits.js';
import { bvecGapToPrev, bvecSegGap, ffs, getMaxSegmentSize } from './merge.js';

/**
 * A read-only sequence of physically contiguous vectors, as a bio's iterator shows them
 * (`bio_for_each_bvec`): entry `i` starts at physical address `phys(i)` and holds `length(i)`
 * bytes. Backends implement it over their own typed arrays, so the walks below allocate nothing.
 */
export interface PhysRanges {
  readonly count: number;
  phys(i: number): number;
  length(i: number): number;
  /**
   * Entry `i`'s `bv_offset` as `bio_for_each_bvec` shows it, the offset from the vector's own
   * first page: for an iterator standing inside a vector, `bv_offset + bi_bvec_done`, which may
   * pass PAGE_SIZE. The offset and gap rules (`bvec_gap_to_prev`, `bvec_seg_gap`, the
   * virt-boundary check in `bvec_split_segs`, `max_fast_segment_size`) read this. Absent:
   * `phys(i) % PAGE_SIZE`.
   */
  offset?(i: number): number;
}

/** What `bioSplitIoAt` decided. */
export interface SplitDecision {
  /** EINVAL: a vector misaligned, or no logical block fits (the kernel fails the bio); null otherwise. */
  error: 'EINVAL' | null;
  /** 0: no split needed; otherwise the first part's size in 512-byte sectors. */
  sectors: number;
  /** Segments in the (first part of the) bio. */
  segs: number;
  /** Bytes gathered before the split point was rounded (all the bytes when no split). */
  bytes: number;
  /** `bi_bvec_gap_bit`: ffs of the gaps between the vectors scanned (0: none). */
  gapBit: number;
  /** Why the split happened ('' when none). */
  reason: '' | 'virt-boundary' | 'max-segments' | 'max-bytes';
}

/** Checks `ranges` looks like a `PhysRanges`; EINVAL otherwise. */
export function checkRanges(ranges: unknown): asserts ranges is PhysRanges {
  const r = ranges as PhysRanges;
  if (
    typeof r !== 'object' || r === null || !Number.isInteger(r.count) || r.count < 0 || typeof r.phys !== 'function' || typeof r.length !== 'function'
    || (r.offset !== undefined && typeof r.offset !== 'function')
  ) {
    fail('EINVAL', 'ranges must be a PhysRanges ({ count, phys(i), length(i), offset?(i) })');
  }
}

/**
 * `bvec_split_segs`: adds the segments of the vector (`paddr`, `len`, at `bv_offset` `off`) that fit under
 * `maxSegs` and `maxBytes` to `r.segs` and `r.bytes` (the kernel's in/out counters), each cut
 * by `get_max_segment_size` and stopping early at a virt boundary; true when the vector must
 * be split (not all of it fits).
 */
function bvecSplitSegs(lim: QueueLimits, r: SplitDecision, paddr: number, off: number, len: number, maxSegs: number, maxBytes: number): boolean {
  const maxLen = maxBytes - r.bytes;
  let left = Math.min(len, maxLen);
  let total = 0;
  while (left > 0 && r.segs < maxSegs) {
    const seg = getMaxSegmentSize(lim, paddr + total, left);
    r.segs++;
    total += seg;
    left -= seg;
    if (lim.virtBoundaryMask !== 0 && andMask(off + total, lim.virtBoundaryMask) !== 0) break;
  }
  r.bytes += total;
  return left > 0 || len > maxLen;
}

/**
 * Checks a `len_align_mask` as callers pass one (`bdev_logical_block_size - 1`, iomap's
 * `alignment - 1`, `dma_alignment`): 2^k − 1 up to BLK_MAX_BLOCK_SIZE − 1; EINVAL otherwise.
 * Returns it.
 */
export function checkLenAlignMask(name: string, mask: unknown): number {
  if (typeof mask !== 'number' || !Number.isInteger(mask) || mask < 0 || mask > BLK_MAX_BLOCK_SIZE - 1) fail('EINVAL', `${name} = ${String(mask)} is outside [0, ${BLK_MAX_BLOCK_SIZE - 1}]`);
  if (!isLowMask(mask, 0)) fail('EINVAL', `${name} = ${mask} is not a mask 2^k - 1 (511 for 512-byte blocks)`);
  return mask;
}

/**
 * `bio_split_io_at`: walks `ranges` (a bio's vectors) against the limits and a byte budget
 * and says whether and where to split. A vector whose page offset breaks `dmaAlignment`
 * or whose length breaks `lenAlignMask` is EINVAL; a virt-boundary gap, `maxSegments` or
 * `maxBytes` ends the first part, rounded down to the logical block (EINVAL if that leaves
 * nothing). Records the gap bit of what was scanned, and the segments and bytes counted
 * (`bvec_split_segs`' in/out counters live in the record, so the walk is reentrant).
 * `lenAlignMask` is 2^k − 1 up to 65535 (`checkLenAlignMask`). Cost: O(vectors scanned);
 * allocates only the returned record (pass `out` to reuse one). EINVAL for limits that do not
 * validate, a malformed `ranges`, or a bad byte budget or mask (the vectors themselves are
 * trusted).
 */
export function bioSplitIoAt(lim: QueueLimits, ranges: PhysRanges, maxBytes: number, lenAlignMask: number, out?: SplitDecision): SplitDecision {
  lim = blkValidateLimits(lim);
  checkRanges(ranges);
  if (!Number.isInteger(maxBytes) || maxBytes < 0) fail('EINVAL', `maxBytes = ${maxBytes} is not a byte count`);
  checkLenAlignMask('lenAlignMask', lenAlignMask);
  const r: SplitDecision = out ?? { error: null, sectors: 0, segs: 0, bytes: 0, gapBit: 0, reason: '' };
  r.error = null;
  r.sectors = 0;
  r.segs = 0;
  r.bytes = 0;
  r.gapBit = 0;
  r.reason = '';
  let gaps = 0;
  let prevOff = 0;
  let prevLen = 0;
  const n = ranges.count;
  for (let i = 0; i < n; i++) {
    const paddr = ranges.phys(i);
    const len = ranges.length(i);
    const off = ranges.offset === undefined ? paddr % PAGE_SIZE : ranges.offset(i);
    if (andMask(off, lim.dmaAlignment) !== 0 || andMask(len, lenAlignMask) !== 0) {
      r.error = 'EINVAL';
      return r;
    }
    if (i > 0) {
      if (bvecGapToPrev(lim, prevOff, prevLen, off)) {
        r.reason = 'virt-boundary';
        return splitAt(lim, r, gaps);
      }
      gaps = (gaps | bvecSegGap(prevOff, prevLen, off)) >>> 0;
    }
    if (r.segs < lim.maxSegments && r.bytes + len <= maxBytes && off + len <= lim.maxFastSegmentSize) {
      r.segs++;
      r.bytes += len;
    } else if (bvecSplitSegs(lim, r, paddr, off, len, lim.maxSegments, maxBytes)) {
      r.reason = r.segs >= lim.maxSegments && r.bytes < maxBytes ? 'max-segments' : 'max-bytes';
      return splitAt(lim, r, gaps);
    }
    prevOff = off;
    prevLen = len;
  }
  r.gapBit = ffs(gaps);
  return r;
}

// The split: the bytes gathered rounded down to the logical block (bio_split_alignment).
function splitAt(lim: QueueLimits, r: SplitDecision, gaps: number): SplitDecision {
  const b = r.bytes - (r.bytes % lim.logicalBlockSize);
  if (b === 0) {
    r.error = 'EINVAL';
    return r;
  }
  r.gapBit = ffs(gaps);
  r.sectors = b / SECTOR_SIZE;
  return r;
}

/** `bio_split_rw_at`: `bioSplitIoAt` with vector lengths held to `dmaAlignment` too. */
export function bioSplitRwAt(lim: QueueLimits, ranges: PhysRanges, maxBytes: number, out?: SplitDecision): SplitDecision {
  return bioSplitIoAt(lim, ranges, maxBytes, lim.dmaAlignment, out);
}

/**
 * `get_max_io_size`: the most sectors a read or write starting at sector `biSector` may carry:
 * `maxSectors`, cut at the next `chunkSectors` boundary, ending on a physical block when
 * enough remain, else rounded down to the logical block. O(1).
 */
export function getMaxIoSize(lim: QueueLimits, biSector: number): number {
  lim = blkValidateLimits(lim);
  if (!Number.isSafeInteger(biSector) || biSector < 0) fail('EINVAL', `biSector = ${biSector} is not a sector`);
  const pbs = lim.physicalBlockSize >> SECTOR_SHIFT;
  const lbs = lim.logicalBlockSize >> SECTOR_SHIFT;
  let max = lim.maxSectors;
  const chunk = lim.chunkSectors;
  if (chunk !== 0) max = Math.min(max, chunk - (biSector % chunk));
  const start = biSector % pbs;
  const end = start + max - ((start + max) % pbs);
  if (end > start) return end - start;
  return max - (max % lbs);
}
