// The iov_iter over bio_vecs (lib/iov_iter.c): the bvec cases of lib/tests/kunit_iov_iter.c
// reproduced (copy_to_iter, copy_from_iter, iov_iter_extract_pages over ITER_BVEC), the
// extraction examples, and the round trip as a property.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { folioPinCount, leakReport, PAGE_SIZE, unpinUserPage, type PhysicalMemory } from '@iodesc/core';
import {
  Bio, bioAddPage, bioPut, bioSplitToLimits, BvecArray, bvecIterAdvance, bvecSet, bvLen, bvOffset, bvPage, bvPhys, copyFromIter, copyToIter, extractIterToSg,
  iovIterBvec, iovIterExtractPages, iovIterUbuf, SgEntryTable, type IovIter,
} from '../src/index.js';
import { expectCode, firstDiff, machine, P, pattern } from './helpers.js';

// kunit_iov_iter.c: bvec_test_ranges, { page, from, to } (a zero-length first range included)
const BVEC_TEST_RANGES: Array<[number, number, number]> = [
  [0, 0x0002, 0x0002], [1, 0x0027, 0x0893], [2, 0x0193, 0x0794], [3, 0x0000, 0x1000], [4, 0x0000, 0x1000], [5, 0x0000, 0x1000],
  [6, 0x0000, 0x0ffb], [6, 0x0ffd, 0x0ffe],
];
const BUFSIZE = 0x100000;
const NPAGES = BUFSIZE / P;

// iov_kunit_create_buffer: npages pages, the first quarter swapped with the third so the
// buffer is not physically contiguous
function createBuffer(memory: PhysicalMemory): Uint32Array {
  const pages = new Uint32Array(NPAGES);
  for (let i = 0; i < NPAGES; i++) pages[i] = memory.allocFolio(0);
  for (let i = 0; i < NPAGES / 4; i++) [pages[i], pages[i + NPAGES / 2]] = [pages[i + NPAGES / 2]!, pages[i]!];
  return pages;
}

// iov_kunit_load_bvec: a range starting at 0 on the page after the previous range's end merges into its vector
function loadBvec(memory: PhysicalMemory, pages: Uint32Array, dir: 'dest' | 'source'): { arr: BvecArray; iter: IovIter; size: number } {
  const arr = new BvecArray(8);
  let i = 0;
  let size = 0;
  let canMerge = -1;
  for (const [page, from, to] of BVEC_TEST_RANGES) {
    const pfn = pages[page]!;
    if (from === 0 && from !== to && pfn === canMerge) {
      i--;
      bvecSet(arr, i, bvPage(arr, i), bvLen(arr, i) + to, bvOffset(arr, i));
    } else {
      bvecSet(arr, i, pfn, to - from, from);
    }
    i++;
    size += to - from;
    canMerge = to % PAGE_SIZE === 0 ? pfn + to / PAGE_SIZE : -1;
  }
  arr.count = i;
  return { arr, iter: iovIterBvec(arr, size, { dir, memory }), size };
}

function bufferBytes(memory: PhysicalMemory, pages: Uint32Array): Uint8Array {
  const out = new Uint8Array(BUFSIZE);
  pages.forEach((pfn, k) => out.set(memory.readPhys(pfn * P, P), k * P));
  return out;
}

describe('lib/tests/kunit_iov_iter.c, the bvec cases', () => {
  it('iov_kunit_copy_to_bvec', () => {
    const { memory } = machine();
    const pages = createBuffer(memory);
    const scratch = Uint8Array.from({ length: BUFSIZE }, (_, i) => pattern(i));
    const { iter, size } = loadBvec(memory, pages, 'dest');
    expect(copyToIter(iter, scratch, size)).toBe(size);
    expect([iter.count, iter.nrSegs]).toEqual([0, 0]);
    const want = new Uint8Array(BUFSIZE);
    let patt = 0;
    for (const [page, from, to] of BVEC_TEST_RANGES) for (let i = from; i < to; i++) want[page * P + i] = pattern(patt++);
    expect(firstDiff(bufferBytes(memory, pages), want)).toBe(-1);
  });

  it('iov_kunit_copy_from_bvec', () => {
    const { memory } = machine();
    const pages = createBuffer(memory);
    pages.forEach((pfn, k) => memory.writePhys(pfn * P, Uint8Array.from({ length: P }, (_, i) => pattern(k * P + i))));
    const { iter, size } = loadBvec(memory, pages, 'source');
    const scratch = new Uint8Array(BUFSIZE);
    expect(copyFromIter(iter, scratch, size)).toBe(size);
    expect([iter.count, iter.nrSegs]).toEqual([0, 0]);
    const want = new Uint8Array(BUFSIZE);
    let i = 0;
    for (const [page, from, to] of BVEC_TEST_RANGES) for (let j = from; j < to; j++) want[i++] = pattern(page * P + j);
    expect(firstDiff(scratch, want)).toBe(-1);
  });

  it('iov_kunit_extract_pages_bvec', () => {
    const { memory } = machine();
    const pages = createBuffer(memory);
    const { iter } = loadBvec(memory, pages, 'dest');
    let size = iter.count;
    let r = 0;
    let from = BVEC_TEST_RANGES[0]![1];
    const list = new Uint32Array(8);
    outer: do {
      list.fill(0xaa55aa55);
      const got = iovIterExtractPages(iter, list, 100 * 1024, 8);
      expect(got.offset).toBeLessThan(P);
      expect(got.bytes).toBeLessThanOrEqual(size);
      expect(iter.count).toBe(size - got.bytes);
      size -= got.bytes;
      if (got.bytes === 0) break;
      let len = got.bytes;
      let offset0 = got.offset;
      for (let i = 0; i < 8; i++) {
        const part = Math.min(len, P - offset0);
        while (from === BVEC_TEST_RANGES[r]![2]) {
          r++;
          if (r >= BVEC_TEST_RANGES.length) break outer;
          from = BVEC_TEST_RANGES[r]![1];
        }
        const ix = BVEC_TEST_RANGES[r]![0] + Math.floor(from / P);
        expect(list[i]).toBe(pages[ix]);
        expect(offset0).toBe(from % P);
        from += part;
        len -= part;
        if (len === 0) break;
        offset0 = 0;
      }
    } while (iter.count > 0);
    expect([size, iter.count]).toEqual([0, 0]);
  });
});

// kunit_iov_iter.c iov_kunit_iter_to_sg_check: extract_iter_to_sg in four calls (sg_max 0, then 1,
// then the rest of the head, then a 16-page tail), then the bytes read back through the table
function iterToSgCheck(memory: PhysicalMemory, iter: IovIter): SgEntryTable {
  const tail = 16 * P;
  const sgt = new SgEntryTable(NPAGES);
  let i = extractIterToSg(iter, BUFSIZE, sgt, 0);
  expect([i, sgt.nents]).toEqual([0, 0]);
  i = extractIterToSg(iter, BUFSIZE - tail, sgt, 1);
  expect(i).toBeLessThanOrEqual(BUFSIZE - tail);
  expect(sgt.nents).toBe(1);
  i += extractIterToSg(iter, BUFSIZE - tail - i, sgt, NPAGES - sgt.nents);
  expect(i).toBe(BUFSIZE - tail);
  i += extractIterToSg(iter, tail, sgt, NPAGES - sgt.nents);
  expect(i).toBe(BUFSIZE);
  expect(sgt.nents).toBeLessThanOrEqual(NPAGES);
  // sg_copy_to_buffer
  const scratch = new Uint8Array(BUFSIZE);
  let at = 0;
  for (const e of sgt.entries()) {
    scratch.set(memory.readPhys(e.pfn * P + e.offset, e.length), at);
    at += e.length;
  }
  expect(at).toBe(BUFSIZE);
  expect(firstDiff(scratch, Uint8Array.from({ length: BUFSIZE }, (_, k) => pattern(k)))).toBe(-1);
  return sgt;
}

describe('lib/tests/kunit_iov_iter.c, extract_iter_to_sg', () => {
  it('iov_kunit_iter_to_sg_bvec', () => {
    const { memory } = machine();
    const pages = createBuffer(memory);
    pages.forEach((pfn, k) => memory.writePhys(pfn * P, Uint8Array.from({ length: P }, (_, j) => pattern(k * P + j))));
    // one vector per physically contiguous run of pages
    const arr = new BvecArray(NPAGES);
    let k = 0;
    let canMerge = -1;
    for (const pfn of pages) {
      if (pfn === canMerge) bvecSet(arr, k - 1, bvPage(arr, k - 1), bvLen(arr, k - 1) + P, 0);
      else bvecSet(arr, k++, pfn, P, 0);
      canMerge = pfn + 1;
    }
    arr.count = k;
    const sgt = iterToSgCheck(memory, iovIterBvec(arr, BUFSIZE, { dir: 'dest', memory }));
    // one entry per vector, except where a call's size cut one (no pin taken)
    expect(sgt.nents).toBeLessThanOrEqual(k + 3);
    expect(leakReport(memory)).toEqual([]);
  });

  it('iov_kunit_iter_to_sg_ubuf: one pinned page per entry, the caller unpins', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(BUFSIZE, { prot: 'rw' });
    mm.write(addr, Uint8Array.from({ length: BUFSIZE }, (_, j) => pattern(j)));
    const sgt = iterToSgCheck(memory, iovIterUbuf(mm, addr, BUFSIZE, 'dest'));
    expect(sgt.nents).toBe(NPAGES);
    expect(folioPinCount(memory, sgt.pfn[0]!)).toBe(1);
    for (let i = 0; i < sgt.nents; i++) unpinUserPage(memory, sgt.pfn[i]!);
    expect(leakReport(memory)).toEqual([]);
  });

  it('cuts a vector at maxSize, starts mid-vector, and takes no more than sgMax entries', () => {
    const arr = new BvecArray(3);
    bvecSet(arr, 0, 10, 3 * P, 100);
    bvecSet(arr, 1, 20, P, 0);
    bvecSet(arr, 2, 30, P, 0);
    arr.count = 3;
    const iter = iovIterBvec(arr, 5 * P);
    const sgt = new SgEntryTable(4);
    expect(extractIterToSg(iter, P, sgt, 4)).toBe(P);
    expect(extractIterToSg(iter, 10 * P, sgt, 2)).toBe(3 * P);
    expect(sgt.entries()).toEqual([{ pfn: 10, offset: 100, length: P }, { pfn: 10, offset: P + 100, length: 2 * P }, { pfn: 20, offset: 0, length: P }]);
    expect(iter.count).toBe(P);
    expectCode(() => extractIterToSg(iter, P, sgt, 2), 'EINVAL');
  });

  it('unpins every entry past origNents when a user batch fails', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(4 * P, { prot: 'rw', populate: true });
    const sgt = new SgEntryTable(8);
    // the iterator runs past the mapping: the second batch faults
    const iter = iovIterUbuf(mm, addr, 8 * P, 'source');
    expect(extractIterToSg(iter, 2 * P, sgt, 8)).toBe(2 * P);
    expect(extractIterToSg(iter, 2 * P, sgt, 6)).toBe(2 * P);
    expect(sgt.nents).toBe(4);
    expectCode(() => extractIterToSg(iter, 4 * P, sgt, 4), 'EFAULT');
    expect(sgt.nents).toBe(0);
    expect(leakReport(memory)).toEqual([]);
  });
});

describe('iovIterExtractPages over bvecs', () => {
  it('gathers pages 10-11 then 20 in one run of 12288 bytes', () => {
    const arr = new BvecArray(2);
    bvecSet(arr, 0, 10, 2 * P, 0);
    bvecSet(arr, 1, 20, P, 0);
    arr.count = 2;
    const iter = iovIterBvec(arr, 3 * P);
    const pages = new Uint32Array(8);
    expect(iovIterExtractPages(iter, pages, 1 << 20, 8)).toEqual({ bytes: 12288, offset: 0, nPages: 3 });
    expect([...pages.subarray(0, 3)]).toEqual([10, 11, 20]);
    expect(iter.count).toBe(0);
  });

  it('takes a 200-byte run at offset 4000 in two calls, one page each', () => {
    const arr = new BvecArray(1);
    bvecSet(arr, 0, 10, 200, 4000);
    arr.count = 1;
    const iter = iovIterBvec(arr, 200);
    const pages = new Uint32Array(1);
    expect(iovIterExtractPages(iter, pages, 1 << 20, 1)).toEqual({ bytes: 96, offset: 4000, nPages: 1 });
    expect(pages[0]).toBe(10);
    expect(iovIterExtractPages(iter, pages, 1 << 20, 1)).toEqual({ bytes: 104, offset: 0, nPages: 1 });
    expect(pages[0]).toBe(11);
    expect(iovIterExtractPages(iter, pages, 1 << 20, 1)).toEqual({ bytes: 0, offset: 0, nPages: 0 });
  });

  it('stops a run at a vector that does not end on a page, and at one starting mid-page', () => {
    const arr = new BvecArray(3);
    bvecSet(arr, 0, 10, 2048, 0);
    bvecSet(arr, 1, 20, P, 0);
    bvecSet(arr, 2, 30, 100, 0);
    arr.count = 3;
    const iter = iovIterBvec(arr, 2048 + P + 100);
    const pages = new Uint32Array(4);
    expect(iovIterExtractPages(iter, pages, 1 << 20, 4)).toEqual({ bytes: 2048, offset: 0, nPages: 1 });
    expect(iovIterExtractPages(iter, pages, 1 << 20, 4)).toEqual({ bytes: P + 100, offset: 0, nPages: 2 });
    expect([...pages.subarray(0, 2)]).toEqual([20, 30]);
  });

  it('caps at maxSize and takes no pin', () => {
    const { memory } = machine();
    const arr = new BvecArray(1);
    bvecSet(arr, 0, memory.allocFolio(2), 4 * P, 0);
    arr.count = 1;
    const iter = iovIterBvec(arr, 4 * P, { memory });
    expect(iovIterExtractPages(iter, new Uint32Array(8), 5000, 8)).toEqual({ bytes: 5000, offset: 0, nPages: 2 });
    expect(leakReport(memory)).toEqual([]);
  });

  it('throws EINVAL for bad arguments', () => {
    const arr = new BvecArray(1);
    bvecSet(arr, 0, 10, P, 0);
    arr.count = 1;
    expectCode(() => iovIterBvec(arr, P + 1), 'EINVAL');
    const iter = iovIterBvec(arr, P);
    expectCode(() => iovIterExtractPages(iter, [] as never, 10, 1), 'EINVAL');
    expectCode(() => iovIterExtractPages(iter, new Uint32Array(1), -1, 1), 'EINVAL');
  });
});

// The same examples through a Bio, as the outside checks call them: iovIterBvec(bio, count)
describe('iovIterBvec over a Bio', () => {
  const bioOf = (pieces: Array<[number, number, number]>): Bio => {
    const bio = new Bio({ maxVecs: 4 });
    for (const [pfn, len, off] of pieces) expect(bioAddPage(bio, pfn, len, off)).toBe(len);
    return bio;
  };

  it('gathers pages 10-11 then 20 in one run of 12288 bytes', () => {
    const bio = bioOf([[10, P, 0], [11, P, 0], [20, P, 0]]);
    const iter = iovIterBvec(bio, 3 * P);
    const pages = new Uint32Array(8);
    expect(iovIterExtractPages(iter, pages, 3 * P, 8)).toEqual({ bytes: 12288, offset: 0, nPages: 3 });
    expect([...pages.subarray(0, 3)]).toEqual([10, 11, 20]);
    bioPut(bio);
  });

  it('takes a 200-byte run at offset 4000 in two calls', () => {
    const bio = bioOf([[30, 200, 4000]]);
    const iter = iovIterBvec(bio, 200);
    const pages = new Uint32Array(4);
    expect(iovIterExtractPages(iter, pages, 1 << 20, 4)).toEqual({ bytes: 96, offset: 4000, nPages: 1 });
    expect(pages[0]).toBe(30);
    expect(iovIterExtractPages(iter, pages, 1 << 20, 4)).toEqual({ bytes: 104, offset: 0, nPages: 1 });
    expect(pages[0]).toBe(31);
    bioPut(bio);
  });

  it('starts where the bio\'s iterator stands: a split part, the remainder, an advanced bio', () => {
    const bio = bioOf([[16, 8 * P, 0]]);
    const parts = bioSplitToLimits(bio, { maxSectors: 16 });
    const firstPages = parts.map((p) => {
      const iter = iovIterBvec(p, p.biIter.biSize);
      const pages = new Uint32Array(4);
      const r = iovIterExtractPages(iter, pages, 1 << 20, 4);
      expect([r.bytes, r.offset, r.nPages, iter.count]).toEqual([2 * P, 0, 2, 0]);
      return pages[0];
    });
    expect(firstPages).toEqual([16, 18, 20, 22]);
    expectCode(() => iovIterBvec(parts[0]!, 2 * P + 1), 'EINVAL');
    bioPut(bio);
    const two = bioOf([[10, P, 0], [20, 2 * P, 0]]);
    bvecIterAdvance(two, two.biIter, P + 100);
    const iter = iovIterBvec(two, two.biIter.biSize);
    const pages = new Uint32Array(4);
    expect(iovIterExtractPages(iter, pages, 1 << 20, 4)).toEqual({ bytes: 2 * P - 100, offset: 100, nPages: 2 });
    expect([...pages.subarray(0, 2)]).toEqual([20, 21]);
    bioPut(two);
  });

  it('copies the bytes of a split part only', () => {
    const { memory } = machine();
    const head = memory.allocFolio(2);
    const bio = new Bio({ maxVecs: 1, memory });
    bioAddPage(bio, head, 4 * P, 0);
    const [first, rest] = bioSplitToLimits(bio, { maxSectors: 8 }) as [Bio, Bio, ...Bio[]];
    const data = new Uint8Array(P).fill(7);
    expect(copyToIter(iovIterBvec(rest, P), data)).toBe(P);
    expect(copyToIter(iovIterBvec(first, P), new Uint8Array(P).fill(1))).toBe(P);
    expect(memory.readPhys((head + 1) * P, P)).toEqual(data);
    expect(memory.readPhys(head * P, 1)[0]).toBe(1);
    bioPut(bio);
  });
});

describe('copyToIter / copyFromIter', () => {
  it('refuse the wrong direction with 0 bytes, as the kernel after its WARN', () => {
    const { memory } = machine();
    const arr = new BvecArray(1);
    bvecSet(arr, 0, memory.allocFolio(0), P, 0);
    arr.count = 1;
    expect(copyToIter(iovIterBvec(arr, P, { dir: 'source', memory }), new Uint8Array(P))).toBe(0);
    expect(copyFromIter(iovIterBvec(arr, P, { dir: 'dest', memory }), new Uint8Array(P))).toBe(0);
    expectCode(() => copyToIter(iovIterBvec(arr, P), new Uint8Array(P)), 'EINVAL');
  });

  it('bytes copied into a random bvec layout through the iterator come back identical (property)', () => {
    const { memory } = machine();
    const pool = Array.from({ length: 24 }, () => memory.allocFolio(2));
    const layout = fc.array(fc.record({ folio: fc.nat(23), off: fc.nat(4 * P - 1), len: fc.nat(3 * P) }), { minLength: 1, maxLength: 8 });
    fc.assert(fc.property(layout, fc.nat(255), (vs, salt) => {
      const arr = new BvecArray(vs.length);
      let total = 0;
      vs.forEach((v, i) => {
        const len = Math.min(v.len, 4 * P - v.off);
        bvecSet(arr, i, pool[v.folio]! + Math.floor(v.off / P), len, v.off % P);
        total += len;
      });
      arr.count = vs.length;
      // distinct vectors may share bytes: write each vector's bytes once, in order, then read back the same walk
      const src = Uint8Array.from({ length: total }, (_, i) => (i * 31 + salt) & 0xff);
      const to = iovIterBvec(arr, total, { memory });
      expect(copyToIter(to, src)).toBe(total);
      const expected = new Uint8Array(total);
      const from = iovIterBvec(arr, total, { memory });
      expect(copyFromIter(from, expected)).toBe(total);
      // re-copying what was read gives the same bytes: the walk is consistent even with overlaps
      const again = iovIterBvec(arr, total, { memory });
      copyToIter(again, expected);
      const back = new Uint8Array(total);
      copyFromIter(iovIterBvec(arr, total, { memory }), back);
      expect(firstDiff(back, expected)).toBe(-1);
      if (noOverlap(arr)) expect(firstDiff(back, src)).toBe(-1);
    }), { numRuns: 40, seed: 0x15b7ec });
  });
});

// Whether the vectors of `arr` touch disjoint bytes.
function noOverlap(arr: BvecArray): boolean {
  const spans: Array<[number, number]> = [];
  for (let i = 0; i < arr.count; i++) {
    const start = bvPhys(arr, i);
    spans.push([start, start + bvLen(arr, i)]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  return spans.every((s, i) => i === 0 || s[0] >= spans[i - 1]![1]);
}
