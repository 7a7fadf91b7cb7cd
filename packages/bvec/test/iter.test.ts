// bvec_iter_advance, the multi-page and single-page views, bio_for_each_bvec and
// bio_for_each_segment (include/linux/bvec.h).

import { describe, expect, it } from 'vitest';
import {
  Bio, bioAddPage, bioPut, BvecArray, bvecIterAdvance, bvecIterBvec, bvecIterLen, bvecIterOffset, bvecIterPage, bvecSet, forEachBvec,
  forEachSegment, mpBvecIterBvec, type BvecIter,
} from '../src/index.js';
import { expectCode, P } from './helpers.js';

const iterOf = (size: number, idx = 0, done = 0): BvecIter => ({ biSector: 0, biSize: size, biIdx: idx, biBvecDone: done });

// Two multi-page vectors: pages 10-12 from offset 100, then pages 20-21.
function twoVectors(): Bio {
  const bio = new Bio({ maxVecs: 4 });
  bioAddPage(bio, 10, 3 * P - 100, 100);
  bioAddPage(bio, 20, 2 * P, 0);
  return bio;
}

describe('bvecIterAdvance', () => {
  it.each<[string, number, [number, number, number]]>([
    ['inside the first multi-page vector', 5000, [0, 5000, 5 * P - 100 - 5000]],
    ['to the end of the first vector exactly', 3 * P - 100, [1, 0, 2 * P]],
    ['into the second vector', 3 * P - 100 + 4097, [1, 4097, 2 * P - 4097]],
    ['to the end', 5 * P - 100, [2, 0, 0]],
  ])('moves %s', (_l, bytes, [idx, done, size]) => {
    const bio = twoVectors();
    const it = { ...bio.biIter };
    expect(bvecIterAdvance(bio, it, bytes)).toBe(true);
    expect([it.biIdx, it.biBvecDone, it.biSize]).toEqual([idx, done, size]);
    bioPut(bio);
  });

  it('updates the iterator it is given, leaving the bio alone', () => {
    const bio = twoVectors();
    const it = { ...bio.biIter };
    bvecIterAdvance(bio, it, 100);
    bvecIterAdvance(bio, it, 100);
    expect(it.biBvecDone).toBe(200);
    expect(bio.biIter.biBvecDone).toBe(0);
    bioPut(bio);
  });

  it('past the end: sets the size to 0 and returns false, as the kernel after its WARN', () => {
    const bio = twoVectors();
    const it = { ...bio.biIter };
    expect(bvecIterAdvance(bio, it, 5 * P)).toBe(false);
    expect([it.biSize, it.biIdx, it.biBvecDone]).toEqual([0, 0, 0]);
    bioPut(bio);
  });

  it('skips zero-length vectors only while bytes remain', () => {
    const arr = new BvecArray(4);
    bvecSet(arr, 0, 10, P, 0);
    bvecSet(arr, 1, 11, 0, 0);
    bvecSet(arr, 2, 12, 0, 0);
    bvecSet(arr, 3, 13, P, 0);
    arr.count = 4;
    const stop = iterOf(2 * P);
    bvecIterAdvance(arr, stop, P);
    expect([stop.biIdx, stop.biBvecDone]).toEqual([1, 0]);
    const past = iterOf(2 * P);
    bvecIterAdvance(arr, past, P + 1);
    expect([past.biIdx, past.biBvecDone]).toEqual([3, 1]);
    const zero = iterOf(2 * P, 1);
    bvecIterAdvance(arr, zero, 0);
    expect(zero.biIdx).toBe(1);
  });

  it.each<[string, number]>([['a negative amount', -1], ['a fraction', 1.5], ['NaN', NaN]])('throws EINVAL when advancing by %s', (_l, bytes) => {
    const bio = twoVectors();
    const it = { ...bio.biIter };
    expectCode(() => bvecIterAdvance(bio, it, bytes), 'EINVAL');
    expect(it).toEqual(bio.biIter);
    bioPut(bio);
  });

  it('throws EINVAL for a malformed iterator', () => {
    const bio = twoVectors();
    expectCode(() => bvecIterAdvance(bio, { biSector: 0, biSize: -1, biIdx: 0, biBvecDone: 0 }, 1), 'EINVAL');
    expectCode(() => bvecIterAdvance(bio, null as never, 1), 'EINVAL');
    bioPut(bio);
  });
});

describe('multi-page and single-page views', () => {
  it('shows the whole vector, or its piece in the current page', () => {
    const bio = twoVectors();
    const it = { ...bio.biIter };
    expect(mpBvecIterBvec(bio, it)).toEqual({ pfn: 10, offset: 100, length: 3 * P - 100 });
    expect(bvecIterBvec(bio, it)).toEqual({ pfn: 10, offset: 100, length: P - 100 });
    bvecIterAdvance(bio, it, P);
    // multi-page: offset from the vector's first page, past PAGE_SIZE as in the kernel
    expect(mpBvecIterBvec(bio, it)).toEqual({ pfn: 10, offset: P + 100, length: 2 * P - 100 });
    expect([bvecIterPage(bio, it), bvecIterOffset(bio, it), bvecIterLen(bio, it)]).toEqual([11, 100, P - 100]);
    bioPut(bio);
  });

  it('clips both views to the iterator size', () => {
    const bio = twoVectors();
    const it = iterOf(50, 0, 0);
    expect(mpBvecIterBvec(bio, it).length).toBe(50);
    expect(bvecIterBvec(bio, it).length).toBe(50);
    bioPut(bio);
  });
});

describe('forEachBvec and forEachSegment', () => {
  it('visits multi-page vectors, or single pages', () => {
    const bio = twoVectors();
    const mp: number[][] = [];
    const sp: number[][] = [];
    forEachBvec(bio, (pfn, off, len) => mp.push([pfn, off, len]));
    forEachSegment(bio, (pfn, off, len) => sp.push([pfn, off, len]));
    expect(mp).toEqual([[10, 100, 3 * P - 100], [20, 0, 2 * P]]);
    expect(sp).toEqual([[10, 100, P - 100], [11, 0, P], [12, 0, P], [20, 0, P], [21, 0, P]]);
    bioPut(bio);
  });

  it('starts where a given iterator stands, mid-vector', () => {
    const bio = twoVectors();
    const it = { ...bio.biIter };
    bvecIterAdvance(bio, it, P + 50);
    const sp: number[][] = [];
    forEachSegment(bio, (pfn, off, len) => sp.push([pfn, off, len]), it);
    expect(sp[0]).toEqual([11, 150, P - 150]);
    expect(sp.reduce((t, s) => t + s[2]!, 0)).toBe(it.biSize);
    bioPut(bio);
  });
});
