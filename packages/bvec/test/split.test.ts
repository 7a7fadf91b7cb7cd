// bioSplitToLimits: the split at submission under each limit (block/blk-merge.c:
// bio_split_io_at, bvec_split_segs, get_max_io_size, through core's loop), and as a property:
// the segments produced for a device never break its limits and cover the bio exactly.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { blkValidateLimits, type QueueLimitsOptions } from '@iodesc/core';
import { Bio, bioAddPage, bioPut, bioSplitToLimits, blkRqMapSg } from '../src/index.js';
import { expectCode, P } from './helpers.js';

type Piece = [pfn: number, len: number, off: number];

function bioOf(pieces: Piece[], sector = 0): Bio {
  const bio = new Bio({ maxVecs: Math.max(1, pieces.length), sector });
  for (const [pfn, len, off] of pieces) expect(bioAddPage(bio, pfn, len, off)).toBe(len);
  return bio;
}

const scatteredPages = (n: number): Piece[] => Array.from({ length: n }, (_, k) => [10 + 2 * k, P, 0]);

describe('bioSplitToLimits', () => {
  it.each<[string, QueueLimitsOptions, Piece[], Array<[number, number]>]>([
    ['fits: the bio alone', {}, scatteredPages(4), [[100, 4 * P]]],
    ['maxSectors 16: 8 KiB parts of one 32 KiB vector', { maxSectors: 16 }, [[16, 8 * P, 0]], [[100, 2 * P], [116, 2 * P], [132, 2 * P], [148, 2 * P]]],
    ['maxSegments 4 of 6 scattered pages', { maxSegments: 4 }, scatteredPages(6), [[100, 4 * P], [132, 2 * P]]],
    ['maxSegmentSize 4 KiB with 4 segments: a 64 KiB vector in 16 KiB parts', { maxSegmentSize: 4096, maxSegments: 4 }, [[16, 16 * P, 0]],
      [[100, 4 * P], [132, 4 * P], [164, 4 * P], [196, 4 * P]]],
    ['segBoundaryMask 64 KiB with 2 segments: a vector across the boundary', { segBoundaryMask: 0xffff, maxSegments: 2 }, [[15, 3 * P, 0], [40, P, 0]],
      [[100, 3 * P], [124, P]]],
    ['virtBoundaryMask 4095: a vector ending mid-page ends the part', { virtBoundaryMask: 4095 }, [[10, P, 0], [20, 2048, 0], [30, P, 0]],
      [[100, P + 2048], [112, P]]],
    ['logicalBlockSize 4096 rounds a 6 KiB split down to 4 KiB', { maxSegments: 3, logicalBlockSize: 4096 }, [[10, 2048, 0], [20, 2048, 0], [30, 2048, 0], [40, 2048, 0]],
      [[100, P], [108, P]]],
  ])('%s', (_label, limits, pieces, want) => {
    const bio = bioOf(pieces, 100);
    const parts = bioSplitToLimits(bio, limits);
    expect(parts.map((p) => [p.biIter.biSector, p.biIter.biSize])).toEqual(want);
    expect(parts[parts.length - 1]).toBe(bio);
    expect(parts.slice(0, -1).every((p) => p.cloned && p.vecs === bio.vecs)).toBe(true);
    bioPut(bio);
  });

  // blk-merge.c:382,418 write ffs(gaps) into the bio being split; bio.c:228 (bio_init) zeroes the
  // clone's bit and __bio_clone (bio.c:847) does not copy it
  it('leaves a split part gap bit 0 and the remainder the bit of its own last scan', () => {
    const bio = bioOf([[10, P, 0], [20, 2048, 0], [30, P, 0], [40, P, 0]]);
    const parts = bioSplitToLimits(bio, { maxSegments: 2 });
    expect(parts.map((p) => [p.gapBitSet, p.biBvecGapBit])).toEqual([[true, 0], [true, 13]]);
    bioPut(bio);
  });

  it('leaves a remainder that needs no scan the bit of the part split off before it', () => {
    const bio = bioOf([[10, P, 0], [20, 2048, 0]]);
    const parts = bioSplitToLimits(bio, { maxSegments: 1 });
    expect(parts.map((p) => [p.biIter.biSize, p.biBvecGapBit])).toEqual([[P, 0], [2048, 13]]);
    bioPut(bio);
  });

  // blk-merge.c bio_split_io_at: bv_offset of mp_bvec_iter_bvec is bv_offset + bi_bvec_done
  it('checks a remainder\'s first vector at the offset bio_for_each_bvec shows, past PAGE_SIZE', () => {
    const bio = bioOf([[16, 16 * P, 0], [100, P, 0]], 112);
    // chunk_sectors 128 ends the first part 16 sectors in; the remainder enters the vector 8 KiB in,
    // so it ends at bv_offset 65536, on the 64 KiB virt boundary: no gap before the next page
    const parts = bioSplitToLimits(bio, { virtBoundaryMask: 0xffff, chunkSectors: 128 });
    expect(parts.map((p) => [p.biIter.biSector, p.biIter.biSize])).toEqual([[112, 2 * P], [128, 15 * P]]);
    expect(bio.biBvecGapBit).toBe(17);
    bioPut(bio);
  });

  // blk.h:370-385 bio_may_need_split
  it('submits a bio of one vector within max_fast_segment_size unscanned (bio_may_need_split)', () => {
    const bio = new Bio({ maxVecs: 1 });
    bioAddPage(bio, 10, 100, 1);
    const parts = bioSplitToLimits(bio, {});
    expect(parts).toEqual([bio]);
    expect([bio.gapBitSet, bio.biIter.biSize]).toEqual([false, 100]);
    // with chunk_sectors, or past the fast size, it is scanned and refused
    expectCode(() => bioSplitToLimits(bio, { chunkSectors: 8 }), 'EINVAL');
    const late = new Bio({ maxVecs: 1 });
    bioAddPage(late, 10, 200, 4000);
    expectCode(() => bioSplitToLimits(late, {}), 'EINVAL');
    bioPut(bio);
    bioPut(late);
  });

  it.each<[string, QueueLimitsOptions, Piece[]]>([
    ['a vector offset breaking dmaAlignment (511)', {}, [[10, 512, 100], [20, 512, 0]]],
    ['a vector length breaking dmaAlignment', {}, [[10, 100, 0], [20, 512, 0]]],
    ['a misaligned vector after a split point', { maxSectors: 8 }, [[10, P, 0], [20, P, 0], [30, 512, 8]]],
    ['no whole logical block before a virt-boundary split', { virtBoundaryMask: 4095, logicalBlockSize: 4096 }, [[20, 2048, 0], [30, P, 0]]],
    ['limits below the kernel minimums', { maxSegmentSize: 1024 }, scatteredPages(2)],
  ])('throws EINVAL for %s, with no part made and the bio unchanged', (_l, limits, pieces) => {
    const bio = bioOf(pieces, 7);
    const before = { ...bio.biIter };
    expectCode(() => bioSplitToLimits(bio, limits), 'EINVAL');
    expect(bio.biIter).toEqual(before);
    bioPut(bio);
  });
});

describe('segments for a device (property)', () => {
  const limitsArb = fc.record({
    maxSectors: fc.constantFrom(8, 16, 24, 255, 1024),
    maxSegments: fc.integer({ min: 1, max: 8 }),
    maxSegmentSize: fc.constantFrom(4096, 8192, 65536),
    segBoundaryMask: fc.constantFrom(0xfff, 0x3fff, 0xffff, 0xffffffff),
    virtBoundaryMask: fc.constantFrom(0, 4095),
    logicalBlockSize: fc.constantFrom(512, 4096),
  });
  // vectors of whole 512-byte sectors, runs of pages either next to the previous or elsewhere
  const piecesArb = fc.array(fc.record({ jump: fc.boolean(), off: fc.nat(7), sectors: fc.integer({ min: 1, max: 24 }) }), { minLength: 1, maxLength: 12 });

  it('never break the limits and cover the bio exactly', () => {
    fc.assert(fc.property(limitsArb, piecesArb, (opts, raw) => {
      const limits = blkValidateLimits(opts.virtBoundaryMask ? opts : { ...opts, virtBoundaryMask: 0 });
      const bio = new Bio({ maxVecs: raw.length });
      let next = 100 * P;
      for (const r of raw) {
        const start = r.jump ? next + 3 * P + r.off * 512 : next;
        bioAddPage(bio, Math.floor(start / P), r.sectors * 512, start % P);
        next = start + r.sectors * 512;
      }
      const whole = bio.bvecs().map((b) => [b.pfn * P + b.offset, b.length] as const);
      let parts: Bio[];
      try {
        parts = bioSplitToLimits(bio, limits);
      } catch (e) {
        // only the kernel's refusals: no logical block fits before a split
        expect((e as { code?: string }).code).toBe('EINVAL');
        bioPut(bio);
        return;
      }
      const covered: Array<[number, number]> = [];
      let sector = 0;
      parts.forEach((part, k) => {
        expect(part.biIter.biSector).toBe(sector);
        sector += part.biIter.biSize / 512;
        expect(part.biIter.biSize).toBeLessThanOrEqual(limits.maxSectors * 512);
        if (k < parts.length - 1) expect(part.biIter.biSize % limits.logicalBlockSize).toBe(0);
        const table = blkRqMapSg(part, limits);
        expect(table.count).toBeLessThanOrEqual(limits.maxSegments);
        const list = table.segments();
        list.forEach((s, j) => {
          // the virt boundary: no gap inside a part (bvec_gap_to_prev)
          if (limits.virtBoundaryMask !== 0) {
            const vb = limits.virtBoundaryMask + 1;
            if (j > 0) expect(s.phys % vb).toBe(0);
            if (j < list.length - 1) expect((s.phys + s.length) % vb).toBe(0);
          }
        });
        for (const s of list) {
          expect(s.length).toBeLessThanOrEqual(limits.maxSegmentSize);
          const mask = limits.segBoundaryMask + 1;
          expect(Math.floor(s.phys / mask)).toBe(Math.floor((s.phys + s.length - 1) / mask));
          covered.push([s.phys, s.length]);
        }
      });
      expect(flatten(covered)).toEqual(flatten(whole.map(([a, l]) => [a, l])));
      bioPut(bio);
    }), { numRuns: 200, seed: 0xb10c });
  });
});

// Byte ranges as maximal runs, so two descriptions of the same bytes compare equal.
function flatten(list: ReadonlyArray<readonly [number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [a, l] of list) {
    const last = out[out.length - 1];
    if (last !== undefined && last[0] + last[1] === a) last[1] += l;
    else out.push([a, l]);
  }
  return out;
}

