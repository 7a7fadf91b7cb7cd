// The block layer's rules over (physical address, length) pairs, from block/blk.h:
// get_max_segment_size, biovec_phys_mergeable, bvec_gap_to_prev, and the gap bits a split
// records (bvec_seg_gap, req_phys_gap_mask) that decide whether a request may be linked into
// one IOVA range (blk_can_dma_map_iova in block/blk-mq-dma.c).

import { andMask, clearMask } from '../dma/mask.js';
import type { QueueLimits } from './limits.js';

/**
 * `get_max_segment_size`: how many of the `len` bytes at `paddr` one segment may hold, neither
 * crossing `segBoundaryMask + 1` nor exceeding `maxSegmentSize`. Trusts its arguments. O(1).
 */
export function getMaxSegmentSize(lim: QueueLimits, paddr: number, len: number): number {
  const mask = lim.segBoundaryMask;
  // the kernel adds the 1 after the minimum so that mask = ULONG_MAX cannot overflow
  return Math.min(len, Math.min(mask - andMask(paddr, mask), lim.maxSegmentSize - 1) + 1);
}

/**
 * `biovec_phys_mergeable`: the range (addr2, len2) continues (addr1, len1) physically and the
 * two together stay inside one segment-boundary window. O(1).
 */
export function biovecPhysMergeable(lim: QueueLimits, addr1: number, len1: number, addr2: number, len2: number): boolean {
  if (addr1 + len1 !== addr2) return false;
  const mask = lim.segBoundaryMask;
  return clearMask(addr1, mask) === clearMask(addr2 + len2 - 1, mask);
}

/**
 * `bvec_gap_to_prev`: whether a vector starting at page offset `offset`, after one at page
 * offset `prevOffset` of `prevLen` bytes, leaves a gap the device's virt boundary forbids
 * (false when the queue has none). O(1).
 */
export function bvecGapToPrev(lim: QueueLimits, prevOffset: number, prevLen: number, offset: number): boolean {
  const vmask = lim.virtBoundaryMask;
  if (vmask === 0) return false;
  return andMask(offset, vmask) !== 0 || andMask(prevOffset + prevLen, vmask) !== 0;
}

/**
 * `bvec_seg_gap`: the bits that say how a vector at `offset` meets the one before
 * (`prevOffset + prevLen`, wrapped to an unsigned int as the kernel's sum is). ORed into a
 * bio's gaps; its lowest set bit is what matters.
 */
export function bvecSegGap(prevOffset: number, prevLen: number, offset: number): number {
  return (offset | ((prevOffset + prevLen) % 2 ** 32)) >>> 0;
}

/** `ffs`: 1 + the index of the lowest set bit of a 32-bit value, 0 for 0. */
export function ffs(x: number): number {
  const v = x >>> 0;
  return v === 0 ? 0 : 32 - Math.clz32(v & -v);
}

/**
 * `blk_can_dma_map_iova`: `!(req_phys_gap_mask(gapBit) & mergeBoundary)`. `gapBit` is the
 * request's `phys_gap_bit` (0: no gap), `mergeBoundary` the device's `dma_get_merge_boundary`
 * (granule − 1 behind an IOMMU, 0 when it cannot merge). The gap mask has every bit from
 * gapBit − 1 up set, so the two meet exactly when 2^(gapBit−1) ≤ mergeBoundary.
 */
export function blkCanDmaMapIova(gapBit: number, mergeBoundary: number): boolean {
  return gapBit === 0 || 2 ** (gapBit - 1) > mergeBoundary;
}

/** `min_not_zero`, as gap bits combine. */
export function minNotZero(a: number, b: number): number {
  return a === 0 ? b : b === 0 ? a : Math.min(a, b);
}

