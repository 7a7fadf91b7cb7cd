// A block queue's limits (struct queue_limits) with the defaults and checks of
// block/blk-settings.c (blk_validate_limits, blk_set_default_limits) and the constants of
// include/linux/blkdev.h and block/blk.h.

import { PAGE_SIZE } from '../constants.js';
import { checkInt, checkOptions, fail } from '../errors.js';
import { isLowMask } from '../dma/mask.js';

/** 512-byte sectors, the unit of `maxSectors` and of a bio's `biSector`. */
export const SECTOR_SHIFT = 9;
export const SECTOR_SIZE = 512;
/** `BLK_MAX_SEGMENTS`: the default `max_segments`. */
export const BLK_MAX_SEGMENTS = 128;
/** `BLK_SAFE_MAX_SECTORS`: the default `max_hw_sectors` (127.5 KiB). */
export const BLK_SAFE_MAX_SECTORS = 255;
/** `BLK_MAX_SEGMENT_SIZE`: the historic 64 KiB default `max_segment_size`. */
export const BLK_MAX_SEGMENT_SIZE = 65536;
/** `BLK_SEG_BOUNDARY_MASK`: the default `seg_boundary_mask` (segments stay within 4 GiB). */
export const BLK_SEG_BOUNDARY_MASK = 0xffffffff;
/** `BLK_MIN_SEGMENT_SIZE`: no segment limit may be below a page. */
export const BLK_MIN_SEGMENT_SIZE = 4096;
/** `BLK_DEF_MAX_SECTORS_CAP`: `max_sectors` is capped at 4 MiB unless io_opt/io_min ask for more. */
export const BLK_DEF_MAX_SECTORS_CAP = (4 * 2 ** 20) / SECTOR_SIZE;
/** `BLK_MAX_BLOCK_SIZE` with CONFIG_TRANSPARENT_HUGEPAGE: 64 KiB logical blocks at most. */
export const BLK_MAX_BLOCK_SIZE = 65536;
/** `BIO_MAX_SIZE` (UINT_MAX): the most bytes one bio's `bi_size` holds. */
export const BIO_MAX_SIZE = 0xffffffff;

const UINT_MAX = 0xffffffff;
const PAGE_SECTORS = PAGE_SIZE / SECTOR_SIZE;

/** What a driver sets (each optional; 0 or absent takes the kernel's default). */
export interface QueueLimitsOptions {
  /** Longest segment in bytes (`max_segment_size`; default 65536, UINT_MAX with a virt boundary). */
  maxSegmentSize?: number;
  /** No segment crosses a multiple of mask + 1 (`seg_boundary_mask`, 2^k − 1 ≥ 4095; default 0xffffffff). */
  segBoundaryMask?: number;
  /** Segments after the first start, and segments before the last end, on mask + 1 (`virt_boundary_mask`; 0 = none). */
  virtBoundaryMask?: number;
  /** Segments per request (`max_segments`; default 128). */
  maxSegments?: number;
  /** The hardware's transfer limit in 512-byte sectors (`max_hw_sectors`; default 255, at least 8). */
  maxSectors?: number;
  /** Logical block size in bytes, a power of two in 512..65536 (default 512). */
  logicalBlockSize?: number;
  /** Physical block size in bytes, a power of two (default: the logical block size). */
  physicalBlockSize?: number;
  /** Buffer start alignment as a mask (`dma_alignment`, 2^k − 1 ≤ 4095; default 511). */
  dmaAlignment?: number;
  /** Requests do not cross multiples of this many sectors (`chunk_sectors`; 0 = none). */
  chunkSectors?: number;
}

/** Validated limits, every field filled in as `blk_validate_limits` leaves it. */
export interface QueueLimits {
  readonly logicalBlockSize: number;
  readonly physicalBlockSize: number;
  /** `max_hw_sectors`, rounded down to the logical block. */
  readonly maxHwSectors: number;
  /** `max_sectors`: min(max_hw_sectors, 4 MiB cap), rounded down to the logical block. */
  readonly maxSectors: number;
  readonly maxSegments: number;
  readonly maxSegmentSize: number;
  readonly segBoundaryMask: number;
  readonly virtBoundaryMask: number;
  readonly dmaAlignment: number;
  readonly chunkSectors: number;
  /** `max_fast_segment_size`: a bvec ending within this many bytes of its page start is one segment, no questions asked. */
  readonly maxFastSegmentSize: number;
}

const KEYS = new Set(['maxSegmentSize', 'segBoundaryMask', 'virtBoundaryMask', 'maxSegments', 'maxSectors', 'logicalBlockSize', 'physicalBlockSize', 'dmaAlignment', 'chunkSectors']);
const isPow2 = (v: number): boolean => v > 0 && 2 ** Math.round(Math.log2(v)) === v;

/**
 * Fills in the defaults and checks the limits as `blk_validate_limits` does. A frozen object
 * comes back; a `QueueLimits` passed again is returned as is. Throws EINVAL (naming the value
 * and the limit) where the kernel returns -EINVAL: a logical block size that is not a power of
 * two in 512..65536, `maxSectors` below a page (8) or below one logical block,
 * `segBoundaryMask` below 4095, `maxSegmentSize` below 4096 without a virt boundary,
 * `dmaAlignment` above PAGE_SIZE; and, as our own checks, masks that are not 2^k − 1, unknown
 * keys and non-integers. Cost: O(1).
 */
export function blkValidateLimits(opts?: QueueLimitsOptions | QueueLimits): QueueLimits {
  if (opts !== undefined && validated.has(opts as QueueLimits)) return opts as QueueLimits;
  const o = checkOptions('limits', opts) as QueueLimitsOptions;
  for (const k of Object.keys(o)) if (!KEYS.has(k) && k !== 'maxHwSectors' && k !== 'maxFastSegmentSize') fail('EINVAL', `limits.${k} is not a queue limit`);
  const opt = (k: keyof QueueLimitsOptions, max: number): number => (o[k] === undefined ? 0 : checkInt(`limits.${k}`, o[k], 0, max));

  let lbs = opt('logicalBlockSize', UINT_MAX);
  if (lbs === 0) lbs = SECTOR_SIZE;
  else if (lbs < 512 || lbs > BLK_MAX_BLOCK_SIZE || !isPow2(lbs)) fail('EINVAL', `limits.logicalBlockSize = ${lbs} must be a power of two in [512, ${BLK_MAX_BLOCK_SIZE}]`);
  let pbs = opt('physicalBlockSize', UINT_MAX);
  if (pbs < lbs) pbs = lbs;
  else if (!isPow2(pbs)) fail('EINVAL', `limits.physicalBlockSize = ${pbs} is not a power of two`);

  let maxHw = opt('maxSectors', UINT_MAX);
  if (maxHw === 0) maxHw = BLK_SAFE_MAX_SECTORS;
  if (maxHw < PAGE_SECTORS) fail('EINVAL', `limits.maxSectors = ${maxHw} is below a page (${PAGE_SECTORS} sectors)`);
  const lbSectors = lbs / SECTOR_SIZE;
  if (lbSectors > maxHw) fail('EINVAL', `limits.maxSectors = ${maxHw} is below one logical block (${lbSectors} sectors)`);
  maxHw -= maxHw % lbSectors;
  let maxSectors = Math.min(maxHw, BLK_DEF_MAX_SECTORS_CAP);
  maxSectors -= maxSectors % lbSectors;

  let maxSegments = opt('maxSegments', 0xffff);
  if (maxSegments === 0) maxSegments = BLK_MAX_SEGMENTS;

  let segBoundaryMask = o.segBoundaryMask === undefined ? 0 : checkInt('limits.segBoundaryMask', o.segBoundaryMask);
  if (segBoundaryMask === 0) segBoundaryMask = BLK_SEG_BOUNDARY_MASK;
  if (segBoundaryMask < BLK_MIN_SEGMENT_SIZE - 1) fail('EINVAL', `limits.segBoundaryMask = ${segBoundaryMask} is below ${BLK_MIN_SEGMENT_SIZE - 1}`);
  if (!isLowMask(segBoundaryMask, 12)) fail('EINVAL', `limits.segBoundaryMask = ${segBoundaryMask} is not of the form 2^k - 1`);

  const virtBoundaryMask = opt('virtBoundaryMask', UINT_MAX);
  if (virtBoundaryMask !== 0 && !isLowMask(virtBoundaryMask, 1)) fail('EINVAL', `limits.virtBoundaryMask = ${virtBoundaryMask} is not of the form 2^k - 1`);

  let maxSegmentSize = opt('maxSegmentSize', UINT_MAX);
  if (virtBoundaryMask !== 0) {
    if (maxSegmentSize === 0) maxSegmentSize = UINT_MAX;
  } else {
    if (maxSegmentSize === 0) maxSegmentSize = BLK_MAX_SEGMENT_SIZE;
    if (maxSegmentSize < BLK_MIN_SEGMENT_SIZE) fail('EINVAL', `limits.maxSegmentSize = ${maxSegmentSize} is below ${BLK_MIN_SEGMENT_SIZE}`);
  }
  const segSize = segBoundaryMask > maxSegmentSize - 1 ? maxSegmentSize : segBoundaryMask + 1;
  const maxFastSegmentSize = Math.min(segSize, PAGE_SIZE);

  let dmaAlignment = opt('dmaAlignment', UINT_MAX);
  if (dmaAlignment === 0) dmaAlignment = SECTOR_SIZE - 1;
  if (dmaAlignment > PAGE_SIZE) fail('EINVAL', `limits.dmaAlignment = ${dmaAlignment} is above PAGE_SIZE (${PAGE_SIZE})`);
  if (!isLowMask(dmaAlignment, 1)) fail('EINVAL', `limits.dmaAlignment = ${dmaAlignment} is not a mask 2^k - 1 (511 for 512-byte alignment)`);

  const chunkSectors = opt('chunkSectors', UINT_MAX);

  const lim: QueueLimits = Object.freeze({
    logicalBlockSize: lbs, physicalBlockSize: pbs, maxHwSectors: maxHw, maxSectors, maxSegments, maxSegmentSize,
    segBoundaryMask, virtBoundaryMask, dmaAlignment, chunkSectors, maxFastSegmentSize,
  });
  validated.add(lim);
  return lim;
}

// Limits objects this module produced: trusted without a second validation.
const validated = new WeakSet<QueueLimits>();
