// Issue 15's "External checks call" section, called exactly as it writes the names, argument
// orders, shapes and return values (outside checks import the package root).

import { describe, expect, it } from 'vitest';
import { getBackend, PAGE_SIZE } from '@iodesc/core';
import { Bio, bioAddPage, bioPut, bioSplitToLimits, blkRqMapSg, bvecBackend, bvecIterAdvance, iovIterBvec, iovIterExtractPages } from '../src/index.js';
import { expectCode, P } from './helpers.js';

describe('the outside checks\' contract', () => {
  it('registers bvecBackend as \'bvec\'', () => {
    expect(getBackend('bvec')).toBe(bvecBackend);
  });

  it('new Bio({ maxVecs }): biIter, biVcnt, bvecs(), bioAddPage → bytes added', () => {
    const bio = new Bio({ maxVecs: 2 });
    expect(bio.biIter).toEqual({ biSector: 0, biSize: 0, biIdx: 0, biBvecDone: 0 });
    expect([bioAddPage(bio, 10, P, 0), bioAddPage(bio, 11, P, 0), bioAddPage(bio, 20, 100, 0)]).toEqual([P, P, 100]);
    expect([bioAddPage(bio, 30, 10, 0), bioAddPage(bio, 20, 50, 100)]).toEqual([0, 50]);
    expect(bio.biVcnt).toBe(2);
    expect(bio.bvecs()).toEqual([{ pfn: 10, offset: 0, length: 2 * P }, { pfn: 20, offset: 0, length: 150 }]);
    expect(bio.bvecs()[0]).not.toBe(bio.bvecs()[0]);
    expect(bioAddPage(bio, 40, 0, 0)).toBe(0);
    expectCode(() => bioAddPage(bio, 40, 10, PAGE_SIZE), 'EINVAL');
    bioPut(bio);
  });

  it('bvecIterAdvance(bio, iter, bytes) → boolean, updating iter', () => {
    const bio = new Bio({ maxVecs: 2 });
    bioAddPage(bio, 40, 3 * P, 100);
    bioAddPage(bio, 50, P, 0);
    const iter = { ...bio.biIter };
    expect(bvecIterAdvance(bio, iter, 5000)).toBe(true);
    expect(iter).toEqual({ biSector: 0, biSize: 4 * P - 5000, biIdx: 0, biBvecDone: 5000 });
    expect(bvecIterAdvance(bio, iter, 3 * P - 5000)).toBe(true);
    expect([iter.biIdx, iter.biBvecDone, iter.biSize]).toEqual([1, 0, P]);
    expect(bvecIterAdvance(bio, iter, P + 1)).toBe(false);
    expect(iter.biSize).toBe(0);
    expectCode(() => bvecIterAdvance(bio, { ...bio.biIter }, -1), 'EINVAL');
    // advancing the bio's own iterator moves what bvecs() shows; offsets stay below PAGE_SIZE
    bvecIterAdvance(bio, bio.biIter, 5000);
    expect(bio.bvecs()).toEqual([{ pfn: 41, offset: 1004, length: 3 * P - 5000 }, { pfn: 50, offset: 0, length: P }]);
    bioPut(bio);
  });

  it('blkRqMapSg(bios, limits) → { count, segments() } of fresh { phys, length }', () => {
    const a = new Bio({ maxVecs: 1 });
    bioAddPage(a, 3, 2 * P, 0);
    const b = new Bio({ maxVecs: 1 });
    bioAddPage(b, 5, P, 0);
    const t = blkRqMapSg([a, b], { segBoundaryMask: 0x3fff });
    expect(t.count).toBe(2);
    expect(t.segments()).toEqual([{ phys: 3 * P, length: P }, { phys: 4 * P, length: 2 * P }]);
    expect(t.segments()[0]).not.toBe(t.segments()[0]);
    const big = blkRqMapSg([a], { segBoundaryMask: Number.MAX_SAFE_INTEGER, maxSegmentSize: P });
    expect(big.count).toBe(2);
    [a, b].forEach(bioPut);
  });

  it('bioSplitToLimits(bio, limits) → the parts in order, biSector advancing; EINVAL with no part', () => {
    const bio = new Bio({ maxVecs: 1, sector: 100 });
    bioAddPage(bio, 0, 16 * P, 0);
    const parts = bioSplitToLimits(bio, { maxSectors: 64 });
    expect(parts.map((p) => [p.biIter.biSector, p.biIter.biSize])).toEqual([[100, 8 * P], [164, 8 * P]]);
    expect(parts.map((p) => p.bvecs())).toEqual([[{ pfn: 0, offset: 0, length: 8 * P }], [{ pfn: 8, offset: 0, length: 8 * P }]]);
    bioPut(bio);
    const odd = new Bio({ maxVecs: 4 });
    [[10, 6144], [30, 1024], [40, 5120]].forEach(([pfn, len]) => bioAddPage(odd, pfn!, len!, 0));
    expectCode(() => bioSplitToLimits(odd, { logicalBlockSize: 4096, maxSegments: 2 }), 'EINVAL');
    expect(odd.biIter.biSize).toBe(12288);
    bioPut(odd);
  });

  it('iovIterBvec(bio, count) and iovIterExtractPages(iter, pages, maxSize, maxPages) → { bytes, offset, nPages }', () => {
    const bio = new Bio({ maxVecs: 4 });
    bioAddPage(bio, 10, P, 0);
    bioAddPage(bio, 11, P, 0);
    bioAddPage(bio, 20, P, 0);
    bioAddPage(bio, 30, 200, 4000);
    const iter = iovIterBvec(bio, 3 * P + 200);
    const pages = new Uint32Array(8);
    expect(iovIterExtractPages(iter, pages, 1 << 20, 8)).toEqual({ bytes: 3 * P, offset: 0, nPages: 3 });
    expect([...pages.subarray(0, 3)]).toEqual([10, 11, 20]);
    expect(iovIterExtractPages(iter, pages, 1 << 20, 8)).toEqual({ bytes: 96, offset: 4000, nPages: 1 });
    expect(iovIterExtractPages(iter, pages, 1 << 20, 8)).toEqual({ bytes: 104, offset: 0, nPages: 1 });
    expect(pages[0]).toBe(31);
    bioPut(bio);
  });
});
