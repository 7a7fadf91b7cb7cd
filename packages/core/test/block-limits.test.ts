// Block queue limits and the rules over (address, length) pairs: blk_validate_limits
// (block/blk-settings.c), get_max_segment_size, biovec_phys_mergeable, bvec_gap_to_prev
// (block/blk.h), and blk_can_dma_map_iova with req_phys_gap_mask (block/blk-mq-dma.c,
// include/linux/blk-mq.h).

import { describe, expect, it } from 'vitest';
import {
  biovecPhysMergeable, blkCanDmaMapIova, blkValidateLimits, bvecGapToPrev, bvecSegGap, ffs, getMaxSegmentSize, NO_SEG_BOUNDARY,
  type QueueLimitsOptions,
} from '../src/index.js';
import { expectCode } from './helpers.js';

describe('blkValidateLimits', () => {
  it('fills in the defaults of blk_validate_limits', () => {
    expect(blkValidateLimits()).toEqual({
      logicalBlockSize: 512, physicalBlockSize: 512, maxHwSectors: 255, maxSectors: 255, maxSegments: 128, maxSegmentSize: 65536,
      segBoundaryMask: 0xffffffff, virtBoundaryMask: 0, dmaAlignment: 511, chunkSectors: 0, maxFastSegmentSize: 4096,
    });
  });

  it.each<[string, QueueLimitsOptions, Partial<ReturnType<typeof blkValidateLimits>>]>([
    ['max_sectors rounded down to the logical block', { maxSectors: 255, logicalBlockSize: 4096 }, { maxHwSectors: 248, maxSectors: 248 }],
    ['max_sectors capped at BLK_DEF_MAX_SECTORS_CAP (4 MiB)', { maxSectors: 65535 }, { maxHwSectors: 65535, maxSectors: 8192 }],
    ['a virt boundary lifts max_segment_size to UINT_MAX', { virtBoundaryMask: 4095 }, { maxSegmentSize: 0xffffffff }],
    ['physical block defaults to the logical one', { logicalBlockSize: 4096 }, { physicalBlockSize: 4096 }],
    ['fast segment size: the boundary when it is smaller than a page', { segBoundaryMask: 4095 }, { maxFastSegmentSize: 4096 }],
    ['fast segment size: the segment size otherwise, at most a page', { maxSegmentSize: 4096 }, { maxFastSegmentSize: 4096 }],
    ['masks above 32 bits', { segBoundaryMask: NO_SEG_BOUNDARY }, { segBoundaryMask: NO_SEG_BOUNDARY }],
    ['0 means the default', { maxSegments: 0, dmaAlignment: 0 }, { maxSegments: 128, dmaAlignment: 511 }],
  ])('%s', (_label, opts, want) => {
    expect(blkValidateLimits(opts)).toMatchObject(want);
  });

  it.each<[string, QueueLimitsOptions]>([
    ['maxSectors below a page (8 sectors)', { maxSectors: 7 }],
    ['maxSectors below one logical block', { maxSectors: 8, logicalBlockSize: 8192 }],
    ['logicalBlockSize not a power of two', { logicalBlockSize: 1000 }],
    ['logicalBlockSize above 64 KiB', { logicalBlockSize: 131072 }],
    ['logicalBlockSize below 512', { logicalBlockSize: 256 }],
    ['physicalBlockSize not a power of two', { physicalBlockSize: 3000 }],
    ['segBoundaryMask below 4095', { segBoundaryMask: 2047 }],
    ['segBoundaryMask not 2^k - 1', { segBoundaryMask: 0x10fff }],
    ['maxSegmentSize below 4096 without a virt boundary', { maxSegmentSize: 2048 }],
    ['dmaAlignment above PAGE_SIZE', { dmaAlignment: 8191 }],
    ['dmaAlignment given as a size, not a mask', { dmaAlignment: 512 }],
    ['virtBoundaryMask not 2^k - 1', { virtBoundaryMask: 4096 }],
    ['a negative count', { maxSegments: -1 }],
    ['a fraction', { maxSectors: 8.5 }],
    ['an unknown key', { maxSegmentCount: 4 } as QueueLimitsOptions],
  ])('throws EINVAL for %s', (_label, opts) => {
    expectCode(() => blkValidateLimits(opts), 'EINVAL');
  });

  it('returns validated limits as they are', () => {
    const lim = blkValidateLimits({ maxSegments: 4 });
    expect(blkValidateLimits(lim)).toBe(lim);
    expect(Object.isFrozen(lim)).toBe(true);
  });
});

describe('getMaxSegmentSize', () => {
  it.each([
    ['the segment size caps', {}, 0, 2 ** 20, 65536],
    ['the length caps', {}, 0, 100, 100],
    ['the boundary caps: 0x10000 - 0xff00', { segBoundaryMask: 0xffff }, 0xff00, 2 ** 20, 0x100],
    ['no overflow with a 53-bit mask at address 0', { segBoundaryMask: NO_SEG_BOUNDARY, maxSegmentSize: 0xffffffff }, 0, 2 ** 40, 0xffffffff],
    ['a boundary above 32 bits', { segBoundaryMask: 2 ** 40 - 1, maxSegmentSize: 0xffffffff }, 2 ** 40 - 4096, 2 ** 20, 4096],
  ])('%s', (_l, opts, paddr, len, want) => {
    expect(getMaxSegmentSize(blkValidateLimits(opts), paddr, len)).toBe(want);
  });
});

describe('biovecPhysMergeable', () => {
  const lim = blkValidateLimits({ segBoundaryMask: 0xffff });
  it.each([
    ['contiguous inside one boundary window', 0x1000, 0x1000, 0x2000, 0x1000, true],
    ['a hole between them', 0x1000, 0x1000, 0x3000, 0x1000, false],
    ['contiguous but crossing the 64 KiB boundary', 0xf000, 0x1000, 0x10000, 0x1000, false],
    ['the first ends one byte short of the second', 0x1000, 0xfff, 0x2000, 0x1000, false],
  ])('%s', (_l, a1, l1, a2, l2, want) => {
    expect(biovecPhysMergeable(lim, a1, l1, a2, l2)).toBe(want);
  });
});

describe('bvecGapToPrev and the gap bits', () => {
  it('sees no gap without a virt boundary', () => {
    expect(bvecGapToPrev(blkValidateLimits(), 0, 100, 300)).toBe(false);
  });
  it.each([
    ['the previous ends on the boundary and the next starts on it', 0, 4096, 0, false],
    ['the previous ends inside a virt page', 0, 2048, 0, true],
    ['the next starts inside a virt page', 0, 4096, 512, true],
    ['a multi-page previous ending on the boundary', 512, 8192 - 512, 0, false],
  ])('virt boundary 4095: %s', (_l, po, pl, off, want) => {
    expect(bvecGapToPrev(blkValidateLimits({ virtBoundaryMask: 4095 }), po, pl, off)).toBe(want);
  });
  it('records the lowest bit where vectors meet (bvec_seg_gap, ffs)', () => {
    expect(ffs(bvecSegGap(0, 4096, 0))).toBe(13);
    expect(ffs(bvecSegGap(0, 2048, 0))).toBe(12);
    expect(ffs(bvecSegGap(0, 4096, 512))).toBe(10);
    expect(ffs(0)).toBe(0);
    // the unsigned int sum wraps, as in the kernel
    expect(bvecSegGap(4095, 2 ** 32 - 4095, 0)).toBe(0);
  });
  it.each([
    ['no gap at all', 0, 4095, true],
    ['gaps only on 4 KiB multiples (bit 13)', 13, 4095, true],
    ['a gap at 2 KiB (bit 12)', 12, 4095, false],
    ['a gap at 512 bytes (bit 10)', 10, 4095, false],
    ['direct mapping cannot merge (boundary 0): any gap passes, the IOVA allocation then fails', 1, 0, true],
  ])('blkCanDmaMapIova: %s', (_l, bit, boundary, want) => {
    expect(blkCanDmaMapIova(bit, boundary)).toBe(want);
  });
});
