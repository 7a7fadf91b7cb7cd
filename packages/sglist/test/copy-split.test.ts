// sg_copy_buffer and its wrappers, the mapping iterator over real bytes, and sg_split
// (lib/scatterlist.c, lib/sg_split.c).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Device, Iommu, PAGE_SIZE, PhysicalMemory } from '@iodesc/core';
import {
  dmaMapSgtable, dmaUnmapSgtable, SG_MITER_FROM_SG, SG_MITER_TO_SG, sgAllocTableFromPages, sgAllocTableFromPagesSegment, sgCopyFromBuffer,
  sgCopyToBuffer, sgEntry, sgFreeTable, sgMiterNext, sgMiterSkip, sgMiterStart, sgMiterStop, sgPcopyFromBuffer, sgPcopyToBuffer,
  sgSplit, type SgTable,
} from '../src/index.js';
import { codeOf } from './helpers.js';

const P = PAGE_SIZE;
const memory = new PhysicalMemory({ bytes: 16 * 2 ** 20, seed: 2 });

// Byte-wise equality without vitest's deep diff (slow on long arrays).
function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const pattern = (n: number, salt: number) => Uint8Array.from({ length: n }, (_, i) => (i * 13 + salt) & 0xff);

// The bytes a table describes, read entry by entry by physical address.
function bytesOf(t: SgTable): Uint8Array {
  const parts = [...t.segments()].map((s) => memory.readPhys(s.pfn * P + s.offset, s.length));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// pages 300,301 | 305 | 310,311,312 from offset 100, 5 pages and a bit
const PAGES = Uint32Array.of(300, 301, 305, 310, 311, 312);
const SIZE = 5 * P + 10;

describe('sgCopyFromBuffer / sgCopyToBuffer / sgPcopy*', () => {
  it('copies a buffer into the described bytes and back, across entries and pages', () => {
    const t = sgAllocTableFromPages(PAGES, 6, 100, SIZE);
    const data = pattern(SIZE, 3);
    expect(sgCopyFromBuffer(t, t.origNents, data, memory)).toBe(SIZE);
    expect(same(bytesOf(t), data)).toBe(true);
    const back = new Uint8Array(SIZE);
    expect(sgCopyToBuffer(t, t.origNents, back, memory)).toBe(SIZE);
    expect(same(back, data)).toBe(true);
    sgFreeTable(t);
  });

  it('copies with a skip, and stops at the end of the list (a short count)', () => {
    const t = sgAllocTableFromPages(PAGES, 6, 100, SIZE);
    sgCopyFromBuffer(t, 3, new Uint8Array(SIZE), memory);
    const part = pattern(3 * P, 9);
    expect(sgPcopyFromBuffer(t, 3, part, P + 5, memory)).toBe(3 * P);
    const got = new Uint8Array(5 * P);
    expect(sgPcopyToBuffer(t, 3, got, P, memory)).toBe(SIZE - P);
    expect(same(got.subarray(5, 5 + 3 * P), part)).toBe(true);
    expect(sgPcopyToBuffer(t, 3, got, SIZE + 1, memory)).toBe(0);
    sgFreeTable(t);
  });

  it('copies exactly the first nents entries', () => {
    const t = sgAllocTableFromPages(PAGES, 6, 0, 6 * P);
    expect(sgCopyToBuffer(t, 2, new Uint8Array(6 * P), memory)).toBe(3 * P);
    sgFreeTable(t);
  });

  it('property: pcopy-from then pcopy-to at any skip returns the same bytes', () => {
    fc.assert(
      fc.property(fc.nat(SIZE - 1), fc.integer({ min: 1, max: 3 * P }), fc.nat(255), (skip, n, salt) => {
        const t = sgAllocTableFromPagesSegment(PAGES, 6, 100, SIZE, 2 * P);
        const data = pattern(n, salt);
        const done = sgPcopyFromBuffer(t, t.origNents, data, skip, memory);
        expect(done).toBe(Math.min(n, SIZE - skip));
        const back = new Uint8Array(n);
        expect(sgPcopyToBuffer(t, t.origNents, back, skip, memory)).toBe(done);
        expect(same(back.subarray(0, done), data.subarray(0, done))).toBe(true);
        sgFreeTable(t);
      }),
      { numRuns: 60, seed: 77 },
    );
  });

  it('refuses a table built without memory when none is given (EINVAL)', () => {
    const t = sgAllocTableFromPages(PAGES, 6, 0, 6 * P);
    expect(codeOf(() => sgCopyToBuffer(t, 6, new Uint8Array(4)))).toBe('EINVAL');
  });
});

describe('sgMiter', () => {
  it('walks page windows: the first from the offset, each at most a page, the last clipped', () => {
    const t = sgAllocTableFromPages(PAGES, 6, 100, SIZE);
    const m = sgMiterStart(t, t.origNents, SG_MITER_FROM_SG, memory);
    const windows: number[][] = [];
    while (sgMiterNext(m)) windows.push([m.pfn, m.offset, m.length]);
    sgMiterStop(m);
    expect(windows).toEqual([[300, 100, P - 100], [301, 0, P], [305, 0, P], [310, 0, P], [311, 0, P], [312, 0, 110]]);
  });

  it('writes back what the caller wrote into a TO_SG window; consumed moves the next window', () => {
    const t = sgAllocTableFromPages(Uint32Array.of(400), 1, 0, P);
    const m = sgMiterStart(t, 1, SG_MITER_TO_SG, memory);
    expect(sgMiterNext(m)).toBe(true);
    m.addr!.fill(0xab, 0, 10);
    m.consumed = 10;
    expect(sgMiterNext(m)).toBe(true);
    expect([m.offset, m.length]).toEqual([10, P - 10]);
    sgMiterStop(m);
    expect(memory.readPhys(400 * P, 10)).toEqual(new Uint8Array(10).fill(0xab));
    expect(sgMiterSkip(m, P)).toBe(false);
  });

  it('refuses flags with neither direction (EINVAL)', () => {
    const t = sgAllocTableFromPages(Uint32Array.of(400), 1, 0, P);
    expect(codeOf(() => sgMiterStart(t, 1, 0, memory))).toBe('EINVAL');
  });
});

describe('sgSplit', () => {
  it('splits into pieces that keep the original page and grow the offset', () => {
    const t = sgAllocTableFromPages(Uint32Array.of(50, 51, 52, 60), 4, 0, 4 * P);
    const { tables, mappedNents } = sgSplit(t, 0, 100, [P + 50, 2 * P]);
    // out_mapped_nents of an unmapped input: each piece's entry count, as sg_split writes it
    expect(mappedNents).toEqual([1, 2]);
    expect(tables.map((x) => [x.origNents, x.length])).toEqual([[1, P + 50], [2, 2 * P]]);
    // the second piece starts 4246 bytes into the first entry: page 50, offset 4246 in the entry
    const e = sgEntry(tables[1]!, tables[1]!.sgl);
    expect([e.pfn, e.offset, e.length]).toEqual([50, P + 150, 2 * P - 150]);
    expect([...tables[1]!.segments()][0]).toEqual({ pfn: 51, offset: 150, length: 2 * P - 150 });
    expect(tables[1]!.footprint()).toMatchObject({ bytes: 64, allocations: 1, entries: 2 });
  });

  it('splits the DMA fields of a mapped list over the DMA lengths', () => {
    const t = sgAllocTableFromPages(Uint32Array.of(50, 51, 52, 60, 70), 5, 0, 5 * P);
    const device = new Device(memory, { name: 'direct' });
    dmaMapSgtable(device, t, 'to-device');
    const { tables, mappedNents } = sgSplit(t, t.nents, 0, [2 * P, 3 * P]);
    expect(mappedNents).toEqual([1, 3]);
    expect([...tables[0]!.dmaSegments()]).toEqual([{ dmaAddress: 50 * P, dmaLength: 2 * P }]);
    expect([...tables[1]!.dmaSegments()]).toEqual([
      { dmaAddress: 52 * P, dmaLength: P }, { dmaAddress: 60 * P, dmaLength: P }, { dmaAddress: 70 * P, dmaLength: P },
    ]);
    dmaUnmapSgtable(device, t, 'to-device');
  });

  it('maps merged IOMMU segments into fewer mapped entries per piece', () => {
    const t = sgAllocTableFromPages(Uint32Array.of(50, 51, 52, 60, 70), 5, 0, 5 * P);
    const device = new Device(memory, { name: 'iommu', iommu: new Iommu(), maxSegmentSize: 2 ** 20 });
    dmaMapSgtable(device, t, 'to-device');
    expect(t.nents).toBe(1);
    const { mappedNents } = sgSplit(t, t.nents, P, [P, 3 * P]);
    expect(mappedNents).toEqual([1, 1]);
    dmaUnmapSgtable(device, t, 'to-device');
  });

  it('refuses sizes that do not fit the list (EINVAL)', () => {
    const t = sgAllocTableFromPages(Uint32Array.of(50, 51), 2, 0, 2 * P);
    expect(codeOf(() => sgSplit(t, 0, 0, [P, P + 1]))).toBe('EINVAL');
    expect(codeOf(() => sgSplit(t, 0, 2 * P + 1, [1]))).toBe('EINVAL');
    expect(codeOf(() => sgSplit(t, 0, 0, []))).toBe('EINVAL');
  });

  it('property: pieces reaching the end of the list describe its consecutive byte ranges', () => {
    fc.assert(
      fc.property(fc.nat(4 * P), fc.array(fc.integer({ min: 1, max: 3 * P }), { minLength: 0, maxLength: 3 }), (skip, head) => {
        const t = sgAllocTableFromPagesSegment(Uint32Array.of(10, 11, 12, 20, 21, 30, 31, 32, 33), 9, 7, 9 * P - 7, 2 * P);
        const total = 9 * P - 7;
        const rest = total - skip - head.reduce((a, b) => a + b, 0);
        if (rest <= 0) {
          if (rest < 0) expect(codeOf(() => sgSplit(t, 0, skip, head))).toBe('EINVAL');
          return;
        }
        const sizes = [...head, rest];
        const whole = bytesOf(t);
        const { tables } = sgSplit(t, 0, skip, sizes);
        let at = skip;
        tables.forEach((piece, i) => {
          expect(piece.length).toBe(sizes[i]);
          expect(same(bytesOf(piece), whole.subarray(at, at + sizes[i]!))).toBe(true);
          at += sizes[i]!;
        });
      }),
      { numRuns: 80, seed: 314 },
    );
  });

  it('gives a last piece ending inside an entry every later entry too, the last one 0 bytes long (sg_calculate_split decrements nb_splits twice)', () => {
    const t = sgAllocTableFromPages(Uint32Array.of(10, 11, 20, 30), 4, 0, 4 * P);
    const { tables } = sgSplit(t, 0, 0, [100]);
    expect([...tables[0]!.segments()].map((s) => [s.pfn, s.length])).toEqual([[10, 2 * P], [20, P], [30, 0]]);
  });

  // entries [10-11: 2 pages] [20] [30]; sizes → the last piece's entries as [pfn, length]
  it.each([
    ['ends exactly on an inner entry edge', 0, [2 * P], [[10, 2 * P]]],
    ['ends exactly on an inner entry edge, starting inside an entry', 100, [P, 2 * P - 100], [[11, P - 100], [20, P]]],
    ['ends inside the list\'s last entry', 0, [3 * P + 100], [[10, 2 * P], [20, P], [30, 100]]],
  ])('keeps a last piece that %s exact', (_label, skip, sizes, want) => {
    const t = sgAllocTableFromPages(Uint32Array.of(10, 11, 20, 30), 4, 0, 4 * P);
    const { tables } = sgSplit(t, 0, skip, sizes);
    expect([...tables[tables.length - 1]!.segments()].map((s) => [s.pfn, s.length])).toEqual(want);
  });
});
