// Building tables from pages: every row of the kernel's own harness
// (tools/testing/scatterlist/main.c), chaining as __sg_alloc_table chains, offsets and clipping,
// fast-check properties of the merge rules, and bad input.

import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { Device, leakReport, PAGE_SIZE, PhysicalMemory } from '@iodesc/core';
import {
  dmaMapSgtable, SG_MAX_SINGLE_ALLOC, SgAppendTable, sgAllocAppendTableFromPages, sgAllocTable, sgAllocTableFromPages, sgAllocTableFromPagesSegment,
  sgChain, sgEntry, sgFreeAppendTable, sgFreeTable, sgInitTable, sgIsChain, sgIsLast, sgLast, sgMarkEnd, sgNents, sgNentsForLen,
  sglistBackend, sgNext, sgSetPage, sgUnmarkEnd, SgStore, SgTable, UINT_MAX,
} from '../src/index.js';
import { codeOf } from './helpers.js';

const P = PAGE_SIZE;
const pfns = (...a: number[]) => Uint32Array.from(a);

// tools/testing/scatterlist/main.c: { alloc_ret, num_pages, pfn, pfn_app, size, max_seg, expected_segments }
const SGMAX = UINT_MAX;
const HARNESS: Array<[number, number[], number[] | null, number, number, number]> = [
  [-22, [0], null, P, 0, 1],
  [0, [0], null, P, P + 1, 1],
  [0, [0], null, P, SGMAX, 1],
  [0, [0], null, 1, SGMAX, 1],
  [0, [0, 1], null, 2 * P, SGMAX, 1],
  [0, [1, 0], null, 2 * P, SGMAX, 2],
  [0, [0, 1, 2], null, 3 * P, SGMAX, 1],
  [0, [0, 1, 2], null, 3 * P, SGMAX, 1],
  [0, [0, 1, 2], [3, 4, 5], 3 * P, SGMAX, 1],
  [0, [0, 1, 2], [4, 5, 6], 3 * P, SGMAX, 2],
  [0, [0, 2, 1], null, 3 * P, SGMAX, 3],
  [0, [0, 1, 3], null, 3 * P, SGMAX, 2],
  [0, [1, 2, 4], null, 3 * P, SGMAX, 2],
  [0, [1, 3, 4], null, 3 * P, SGMAX, 2],
  [0, [0, 1, 3, 4], null, 4 * P, SGMAX, 2],
  [0, [0, 1, 3, 4, 5], null, 5 * P, SGMAX, 2],
  [0, [0, 1, 3, 4, 6], null, 5 * P, SGMAX, 3],
  [0, [0, 1, 2, 3, 4], null, 5 * P, SGMAX, 1],
  [0, [0, 1, 2, 3, 4], null, 5 * P, 2 * P, 3],
  [0, [0, 1, 2, 3, 4, 5], null, 6 * P, 2 * P, 3],
  [0, [0, 2, 3, 4, 5, 6], null, 6 * P, 2 * P, 4],
  [0, [0, 1, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], 6 * P, 12 * P, 2],
];

describe('the kernel harness (tools/testing/scatterlist/main.c)', () => {
  it('has its 22 rows', () => expect(HARNESS).toHaveLength(22));

  it.each(HARNESS.map((r) => [`pfn ${r[1].join(',')}${r[2] ? ` + ${r[2].join(',')}` : ''} size ${r[3]} max ${r[4]} → ${r[0] ? 'EINVAL' : r[5]}`, ...r] as const))(
    '%s',
    (_label, ret, pfn, app, size, maxSeg, expected) => {
      if (app === null) {
        if (ret !== 0) {
          expect(codeOf(() => sgAllocTableFromPagesSegment(Uint32Array.from(pfn), pfn.length, 0, size, maxSeg))).toBe('EINVAL');
          return;
        }
        const t = sgAllocTableFromPagesSegment(Uint32Array.from(pfn), pfn.length, 0, size, maxSeg);
        expect(t.nents).toBe(expected);
        expect(t.origNents).toBe(expected);
        sgFreeTable(t);
      } else {
        const a = new SgAppendTable();
        expect(sgAllocAppendTableFromPages(a, Uint32Array.from(pfn), pfn.length, 0, size, maxSeg, pfn.length)).toBe(0);
        expect(sgAllocAppendTableFromPages(a, Uint32Array.from(app), app.length, 0, size, maxSeg, 0)).toBe(0);
        expect(a.sgt.nents).toBe(expected);
        sgFreeAppendTable(a);
      }
    },
  );
});

// Pages that are pairwise discontiguous: every one its own entry.
const scattered = (n: number) => Uint32Array.from({ length: n }, (_, i) => 2 * i + 7);

describe('chaining (__sg_alloc_table, get_next_sg)', () => {
  // entries, chunk sizes, slots, bytes charged for the scatterlist
  it.each([
    [1, [1], 1, 32],
    [3, [3], 3, 96],
    [127, [127], 127, 4096],
    [128, [128], 128, 4096],
    [129, [128, 2], 130, 4096 + 64],
    [200, [128, 73], 201, 4096 + 4096],
    [254, [128, 127], 255, 8192],
    [255, [128, 128], 256, 8192],
    [256, [128, 128, 2], 258, 8192 + 64],
  ])('%i discontiguous pages → chunks %j, %i slots, %i bytes', (n, chunks, slots, bytes) => {
    const t = sgAllocTableFromPages(scattered(n), n, 0, n * P);
    expect(t.origNents).toBe(n);
    expect(t.chunkSlots).toEqual(chunks);
    expect(t.totalSlots).toBe(slots);
    expect(sgNents(t)).toBe(n);
    const f = t.footprint();
    expect(f).toMatchObject({ bytes: bytes + 16, allocations: chunks.length + 1, entries: slots, breakdown: { scatterlist: bytes, sg_table: 16 } });
    // every full chunk links through its last slot; the entries come back in order
    for (let c = 0; c < chunks.length - 1; c++) {
      const link = t.chunkStart[c]! + SG_MAX_SINGLE_ALLOC - 1;
      expect(sgIsChain(t, link)).toBe(true);
      expect(sgEntry(t, link)).toMatchObject({ pfn: t.chunkStart[c + 1], offset: 0, length: 0 });
    }
    expect([...t.segments()].map((s) => s.pfn)).toEqual([...scattered(n)]);
    sgFreeTable(t);
    // through an append table: total_nents leaves the chain links out, so it equals orig_nents
    // (sg_alloc_table_from_pages_segment's WARN_ON)
    const a = new SgAppendTable();
    sgAllocAppendTableFromPages(a, scattered(n), n, 0, n * P, SGMAX, 0);
    expect([a.totalNents, a.sgt.origNents, a.sgt.totalSlots]).toEqual([n, n, slots]);
    sgFreeAppendTable(a);
  });

  it('uses the last slot of a chunk directly when only one entry is needed there (128 entries: no chain)', () => {
    const t = sgAllocTableFromPages(scattered(128), 128, 0, 128 * P);
    const last = t.chunkStart[0]! + 127;
    expect(sgIsChain(t, last)).toBe(false);
    expect(sgIsLast(t, last)).toBe(true);
    expect(sgLast(t, t.sgl, 128)).toBe(last);
  });

  it('walks across the chain with sgNext, and sgNentsForLen counts across it', () => {
    const t = sgAllocTableFromPages(scattered(129), 129, 0, 129 * P);
    expect(sgNext(t, t.chunkStart[0]! + 126)).toBe(t.chunkStart[1]);
    expect(sgNentsForLen(t, 127 * P + 1)).toBe(128);
    expect(sgNentsForLen(t, 0)).toBe(0);
    expect(codeOf(() => sgNentsForLen(t, 129 * P + 1))).toBe('EINVAL');
  });

  it('sgAllocTable chains as __sg_alloc_table and sgSetPage fills entries keeping the end mark', () => {
    const t = sgAllocTable(200);
    expect(t.chunkSlots).toEqual([128, 73]);
    expect(sgNents(t)).toBe(200);
    let s = t.sgl;
    for (let i = 0; i < 200; i++, s = sgNext(t, s)) sgSetPage(t, s, 1000 + i, 100, 7);
    expect(s).toBe(-1);
    expect(t.length).toBe(20000);
    expect(sgIsLast(t, t.chunkStart[1]! + 72)).toBe(true);
    expect(codeOf(() => sgSetPage(t, t.chunkStart[0]! + 127, 5, 1, 0))).toBe('EINVAL');
  });

  it('sgInitTable, sgMarkEnd, sgUnmarkEnd and sgChain edit slots as the kernel helpers do', () => {
    const t = sgAllocTable(8);
    sgMarkEnd(t, t.sgl + 2);
    expect(sgNents(t)).toBe(3);
    sgUnmarkEnd(t, t.sgl + 2);
    expect(sgNents(t)).toBe(8);
    sgChain(t, t.sgl, 3, t.sgl + 5);
    expect(sgNents(t)).toBe(5); // slots 0, 1, then 5, 6, 7
    sgInitTable(t, t.sgl, 8);
    expect(sgNents(t)).toBe(8);
  });

  it('keeps length right while the helpers edit entries and links (it is counted once per change)', () => {
    const t = sgAllocTable(8);
    let s = t.sgl;
    for (let i = 0; i < 8; i++, s = sgNext(t, s)) sgSetPage(t, s, 100 + i, 10, 0);
    expect(t.length).toBe(80);
    sgSetPage(t, t.sgl + 1, 101, 500, 0);
    expect(t.length).toBe(570);
    sgMarkEnd(t, t.sgl + 2);
    expect(t.length).toBe(520);
    sgUnmarkEnd(t, t.sgl + 2);
    expect(t.length).toBe(570);
    sgChain(t, t.sgl, 3, t.sgl + 5);
    expect(t.length).toBe(540); // slots 0, 1, 5, 6, 7: the walk ends at the end mark
    t.origNents = 2;
    expect(t.length).toBe(510);
    sgInitTable(t, t.sgl, 8);
    expect(t.length).toBe(0);
    sgFreeTable(t);
  });

  it('takes appends again after sgFreeAppendTable, from an empty store', () => {
    const a = new SgAppendTable();
    sgAllocAppendTableFromPages(a, pfns(1, 2, 4), 3, 0, 3 * P, SGMAX, 0);
    expect(a.sgt.length).toBe(3 * P);
    sgFreeAppendTable(a);
    expect([a.prv, a.totalNents, a.sgt.origNents, a.sgt.totalSlots, a.sgt.length]).toEqual([-1, 0, 0, 0, 0]);
    sgAllocAppendTableFromPages(a, pfns(7, 8), 2, 10, 2 * P - 20, SGMAX, 0);
    expect([...a.sgt.segments()].map((e) => [e.pfn, e.offset, e.length])).toEqual([[7, 10, 2 * P - 20]]);
    expect(a.sgt.length).toBe(2 * P - 20);
    sgFreeAppendTable(a);
  });
});

describe('offsets and clipping (sg_alloc_append_table_from_pages)', () => {
  // pages, offset, size, maxSegment → entries as [pfn, offset, length]
  it.each([
    ['offset 100 in one page', [5], 100, 10, SGMAX, [[5, 100, 10]]],
    ['offset 100 to the end of two pages', [5, 6], 100, 2 * P - 100, SGMAX, [[5, 100, 2 * P - 100]]],
    ['offset 4095, one byte of the second page', [5, 9], 4095, 2, SGMAX, [[5, 4095, 1], [9, 0, 1]]],
    ['offset 100 clipped in the last page', [5, 6, 8], 100, 2 * P + 1, SGMAX, [[5, 100, 2 * P - 100], [8, 0, 101]]],
    ['offset 100, maxSegment 2 pages', [5, 6, 7, 8], 100, 4 * P - 200, 2 * P, [[5, 100, 2 * P - 100], [7, 0, 2 * P - 100]]],
    ['maxSegment 8191 rounds down to one page', [5, 6], 0, 2 * P, 2 * P - 1, [[5, 0, P], [6, 0, P]]],
    // size runs out before the pages do: the kernel's unsigned long wraps, later entries stay whole
    ['size ends in entry 1 of 3', [5, 7, 9], 0, P + 10, SGMAX, [[5, 0, P], [7, 0, 10], [9, 0, P]]],
    ['size ends exactly at entry 1 of 3: entry 1 gets 0 bytes', [5, 7, 9], 0, P, SGMAX, [[5, 0, P], [7, 0, 0], [9, 0, P]]],
    ['size ends in the last of 3', [5, 7, 9], 0, 2 * P + 1, SGMAX, [[5, 0, P], [7, 0, P], [9, 0, 1]]],
  ])('%s', (_label, pages, offset, size, max, want) => {
    const t = sgAllocTableFromPagesSegment(Uint32Array.from(pages), pages.length, offset, size, max);
    expect([...t.segments()].map((s) => [s.pfn, s.offset, s.length])).toEqual(want);
  });

  it('cannot DMA-map the 0-byte entry of a size ending on an entry edge (core refuses a length below 1; the kernel maps it)', () => {
    const memory = new PhysicalMemory({ bytes: 16 * 2 ** 20, seed: 5 });
    const t = sgAllocTableFromPages(pfns(5, 7, 9), 3, 0, P);
    expect(codeOf(() => dmaMapSgtable(new Device(memory, { name: 'd' }), t, 'to-device'))).toBe('EINVAL');
    expect(t.mapping).toBe(null);
    sgFreeTable(t);
  });
});

describe('sgAllocAppendTableFromPages', () => {
  it('grows the previous entry a page at a time, up to maxSegment, then starts new entries', () => {
    const a = new SgAppendTable();
    sgAllocAppendTableFromPages(a, pfns(10, 11), 2, 0, 2 * P, 4 * P, 10);
    sgAllocAppendTableFromPages(a, pfns(12, 13, 14, 15), 4, 0, 4 * P, 4 * P, 0);
    expect([...a.sgt.segments()].map((s) => [s.pfn, s.length])).toEqual([[10, 4 * P], [14, 2 * P]]);
  });

  it('allocates with leftPages in mind, so totalNents may exceed nents', () => {
    const a = new SgAppendTable();
    sgAllocAppendTableFromPages(a, pfns(1, 3), 2, 0, 2 * P, SGMAX, 500);
    expect(a.sgt.nents).toBe(2);
    expect(a.totalNents).toBe(128);
    sgAllocAppendTableFromPages(a, pfns(4, 9), 2, 0, 2 * P, SGMAX, 0);
    expect(a.sgt.nents).toBe(3);
    expect(a.totalNents).toBe(128);
    expect(a.sgt.footprint()).toMatchObject({ bytes: 4096 + 32, breakdown: { sg_append_table: 32 } });
    expect(sgNents(a.sgt)).toBe(3);
  });

  // the buffer of slots cannot grow (as sg_kmalloc fails): at the up-front reserve, or at get_next_sg's chunk
  it.each(['reserve', 'allocChunk'] as const)(
    'restores the last entry and reports ENOMEM when allocation fails at %s after pages merged into it (scatterlist.c:537)',
    (where) => {
      const a = new SgAppendTable();
      sgAllocAppendTableFromPages(a, pfns(10, 11), 2, 0, 2 * P, SGMAX, 1000);
      const before = [...a.sgt.segments()];
      const prv = a.prv;
      const totalNents = a.totalNents;
      // two pages continue the last entry, then 200 scattered ones need new slots
      const pages = Uint32Array.from({ length: 202 }, (_, i) => (i < 2 ? 12 + i : 100 + 2 * i));
      const grow = SgStore.prototype.reserve;
      const spy = where === 'reserve'
        ? vi.spyOn(SgStore.prototype, 'reserve').mockImplementation(function (this: SgStore, slots: number) {
          if (this.used > 0 && slots > this.capacity) throw new RangeError('Array buffer allocation failed');
          grow.call(this, slots);
        })
        : vi.spyOn(SgTable.prototype, 'allocChunk').mockImplementation(() => {
          throw new RangeError('Array buffer allocation failed');
        });
      let code: string | undefined;
      try {
        code = codeOf(() => sgAllocAppendTableFromPages(a, pages, 202, 0, 202 * P, SGMAX, 0));
      } finally {
        spy.mockRestore();
      }
      expect(code).toBe('ENOMEM');
      expect([...a.sgt.segments()]).toEqual(before);
      expect(a.prv).toBe(prv);
      expect(a.sgt.nents).toBe(1);
      expect(a.totalNents).toBe(totalNents);
      // with memory back, the same call builds what one call over all the pages builds
      sgAllocAppendTableFromPages(a, pages, 202, 0, 202 * P, SGMAX, 0);
      const all = Uint32Array.from([10, 11, ...pages]);
      const one = sgAllocTableFromPages(all, all.length, 0, all.length * P);
      expect([...a.sgt.segments()]).toEqual([...one.segments()]);
      sgFreeTable(one);
      sgFreeAppendTable(a);
    },
  );

  it('refuses an offset on a later call, and appending to an ended table, changing nothing', () => {
    const a = new SgAppendTable();
    sgAllocAppendTableFromPages(a, pfns(1, 2), 2, 0, 2 * P, SGMAX, 2);
    const before = [...a.sgt.segments()];
    expect(codeOf(() => sgAllocAppendTableFromPages(a, pfns(3), 1, 5, P - 5, SGMAX, 0))).toBe('EINVAL');
    sgAllocAppendTableFromPages(a, pfns(3), 1, 0, P, SGMAX, 0);
    expect([...a.sgt.segments()].map((s) => s.length)).toEqual([3 * P]);
    // pages that merge are fine; a new entry after the end mark has no slot (the kernel oopses)
    expect(codeOf(() => sgAllocAppendTableFromPages(a, pfns(9), 1, 0, P, SGMAX, 0))).toBe('EINVAL');
    expect(a.sgt.nents).toBe(1);
    expect(before).toHaveLength(1);
  });
});

describe('sglistBackend.dmaMap re-cutting an append table for the device', () => {
  const memory = new PhysicalMemory({ bytes: 16 * 2 ** 20, seed: 5 });
  const device = new Device(memory, { name: 'd', maxSegmentSize: 16 * P });
  const run = (from: number, n: number) => Uint32Array.from({ length: n }, (_, i) => from + i);

  it('re-cuts an ended table and points its wrapper (prv, totalNents) into the new slots', () => {
    const a = new SgAppendTable();
    sgAllocAppendTableFromPages(a, run(1000, 64), 64, 0, 64 * P, UINT_MAX, 0);
    const m = sglistBackend.dmaMap(a.sgt, device, 'to-device');
    expect([...a.sgt.segments()].map((e) => [e.pfn, e.length])).toEqual([[1000, 16 * P], [1016, 16 * P], [1032, 16 * P], [1048, 16 * P]]);
    expect(sgEntry(a.sgt, a.prv)).toMatchObject({ pfn: 1048, end: true });
    expect(a.totalNents).toBe(a.sgt.totalSlots);
    sglistBackend.dmaUnmap(m);
    // a page continuing the last entry merges into it; any other has no slot after the end
    sgAllocAppendTableFromPages(a, run(1064, 1), 1, 0, P, UINT_MAX, 0);
    expect([...a.sgt.segments()].map((e) => e.length)).toEqual([16 * P, 16 * P, 16 * P, 17 * P]);
    expect(codeOf(() => sgAllocAppendTableFromPages(a, run(3000, 1), 1, 0, P, UINT_MAX, 0))).toBe('EINVAL');
    sgFreeAppendTable(a);
    expect(leakReport(memory)).toEqual([]);
  });

  it('leaves a table whose wrapper may still append as it is (mapped with DMA-debug warnings)', () => {
    const a = new SgAppendTable();
    sgAllocAppendTableFromPages(a, run(1000, 64), 64, 0, 64 * P, UINT_MAX, 10);
    const before = a.prv;
    const m = sglistBackend.dmaMap(a.sgt, device, 'to-device');
    expect([...a.sgt.segments()].map((e) => e.length)).toEqual([64 * P]);
    sglistBackend.dmaUnmap(m);
    expect(a.prv).toBe(before);
    sgAllocAppendTableFromPages(a, run(2000, 10), 10, 0, 10 * P, UINT_MAX, 0);
    expect([...a.sgt.segments()].map((e) => [e.pfn, e.length])).toEqual([[1000, 64 * P], [2000, 10 * P]]);
    sgFreeAppendTable(a);
  });
});

describe('bad input', () => {
  const pages = pfns(1, 2, 3, 4);
  it.each([
    ['maxSegment 0', () => sgAllocTableFromPagesSegment(pages, 4, 0, 4 * P, 0)],
    ['maxSegment 4095', () => sgAllocTableFromPagesSegment(pages, 4, 0, 4 * P, P - 1)],
    ['size larger than the pages', () => sgAllocTableFromPagesSegment(pages, 4, 0, 4 * P + 1, SGMAX)],
    ['size larger than the pages from the offset', () => sgAllocTableFromPagesSegment(pages, 4, 1, 4 * P, SGMAX)],
    ['size 0', () => sgAllocTableFromPagesSegment(pages, 4, 0, 0, SGMAX)],
    ['offset PAGE_SIZE', () => sgAllocTableFromPagesSegment(pages, 4, P, 100, SGMAX)],
    ['offset -1', () => sgAllocTableFromPagesSegment(pages, 4, -1, 100, SGMAX)],
    ['nPages beyond the array', () => sgAllocTableFromPagesSegment(pages, 5, 0, 4 * P, SGMAX)],
    ['nPages 0', () => sgAllocTableFromPagesSegment(pages, 0, 0, 1, SGMAX)],
    ['pages a plain array', () => sgAllocTableFromPagesSegment([1, 2] as unknown as Uint32Array, 2, 0, P, SGMAX)],
    ['a PFN of 2^30', () => sgAllocTableFromPagesSegment(Uint32Array.of(1, 2 ** 30), 2, 0, 2 * P, SGMAX)],
    ['maxSegment past UINT_MAX', () => sgAllocTableFromPagesSegment(pages, 4, 0, P, 2 ** 32)],
    ['append with leftPages -1', () => sgAllocAppendTableFromPages(new SgAppendTable(), pages, 4, 0, P, SGMAX, -1)],
    ['append to a plain object', () => sgAllocAppendTableFromPages({} as SgAppendTable, pages, 4, 0, P, SGMAX, 0)],
  ])('%s is EINVAL', (_label, call) => {
    expect(codeOf(call)).toBe('EINVAL');
  });

  // the issue's list of bad input, on an append table already holding entries (it may take more):
  // each call is EINVAL and allocates nothing, the table exactly as before
  it.each([
    ['maxSegment 0', pages, 4, 0, 4 * P, 0],
    ['size larger than the pages', pages, 4, 0, 4 * P + 1, SGMAX],
    ['offset PAGE_SIZE', pages, 4, P, P, SGMAX],
    ['appending with an offset', pages, 4, 100, P, SGMAX],
    ['nPages beyond the array', pages, 5, 0, 4 * P, SGMAX],
  ] as const)('%s on a used append table is EINVAL and allocates nothing', (_label, pg, n, offset, size, max) => {
    const a = new SgAppendTable();
    sgAllocAppendTableFromPages(a, pfns(50, 60), 2, 0, 2 * P, SGMAX, 300);
    const before = { segs: [...a.sgt.segments()], prv: a.prv, total: a.totalNents, nents: a.sgt.nents, f: a.sgt.footprint(), used: a.sgt.store.used };
    expect(codeOf(() => sgAllocAppendTableFromPages(a, pg, n, offset, size, max, 0))).toBe('EINVAL');
    expect({ segs: [...a.sgt.segments()], prv: a.prv, total: a.totalNents, nents: a.sgt.nents, f: a.sgt.footprint(), used: a.sgt.store.used }).toEqual(before);
    // and on a fresh one nothing is allocated at all
    const fresh = new SgAppendTable();
    if (offset === 0 || offset >= P) expect(codeOf(() => sgAllocAppendTableFromPages(fresh, pg, n, offset, size, max, 0))).toBe('EINVAL');
    expect([fresh.sgt.sgl, fresh.totalNents, fresh.sgt.footprint().allocations, fresh.sgt.store.used]).toEqual([-1, 0, 1, 0]);
    sgFreeAppendTable(a);
  });

  it('a freed table refuses use', () => {
    const t = sgAllocTableFromPages(pages, 4, 0, 4 * P);
    sgFreeTable(t);
    expect(codeOf(() => sgNents(t))).toBe('EINVAL');
    expect(codeOf(() => sgFreeTable(t))).toBe('EINVAL');
  });
});

// ---- properties ----

// A page array as runs of PFN-adjacent pages at random places (runs may touch, or repeat a PFN).
const pageArray = fc.array(fc.record({ start: fc.nat(5000), len: fc.integer({ min: 1, max: 40 }) }), { minLength: 1, maxLength: 12 }).map((runs) => {
  const out: number[] = [];
  for (const r of runs) for (let i = 0; i < r.len; i++) out.push(r.start + i);
  return Uint32Array.from(out);
});

const buildCase = pageArray.chain((pages) =>
  fc.record({
    pages: fc.constant(pages),
    offset: fc.integer({ min: 0, max: P - 1 }),
    cut: fc.double({ min: 0, max: 1, noNaN: true }),
    maxSegment: fc.oneof(fc.integer({ min: P, max: 40 * P }), fc.constant(SGMAX)),
  }).map((c) => {
    const room = pages.length * P - c.offset;
    // at least the bytes reaching into the last page, so every page is described
    const min = room - P + 1;
    return { ...c, size: Math.max(1, min + Math.floor(c.cut * (room - min))) };
  }),
);

// Expected bytes: page pieces of `pages` from `offset`, `size` bytes.
function pieces(pages: Uint32Array, offset: number, size: number): number[][] {
  const out: number[][] = [];
  for (let i = 0, off = offset; size > 0; i++, off = 0) {
    const n = Math.min(size, P - off);
    out.push([pages[i]!, off, n]);
    size -= n;
  }
  return out;
}

function piecesOf(t: SgTable): number[][] {
  const out: number[][] = [];
  for (const s of t.segments()) {
    let len = s.length;
    for (let p = s.pfn, off = s.offset; len > 0; p++, off = 0) {
      const n = Math.min(len, P - off);
      out.push([p, off, n]);
      len -= n;
    }
  }
  return out;
}

describe('properties of sgAllocTableFromPagesSegment', () => {
  it('covers exactly size bytes in order, no entry over maxSegment, adjacent entries never mergeable', () => {
    fc.assert(
      fc.property(buildCase, ({ pages, offset, size, maxSegment }) => {
        const t = sgAllocTableFromPagesSegment(pages, pages.length, offset, size, maxSegment);
        expect(piecesOf(t)).toEqual(pieces(pages, offset, size));
        expect(t.length).toBe(size);
        const max = Math.floor(maxSegment / P) * P;
        const segs = [...t.segments()];
        for (let i = 0; i < segs.length; i++) {
          const s = segs[i]!;
          expect(s.length).toBeLessThanOrEqual(max);
          const next = segs[i + 1];
          if (next === undefined) continue;
          const pagesOf = Math.ceil((s.offset + s.length) / P);
          // a break between physically continuing pages only where the entry is full
          if (next.pfn === s.pfn + pagesOf) expect(pagesOf * P).toBe(max);
        }
      }),
      { numRuns: 200, seed: 14 },
    );
  });

  it('builds the same entries when the pages arrive in batches through the append call', () => {
    fc.assert(
      fc.property(buildCase, fc.array(fc.nat(), { maxLength: 6 }), ({ pages, offset, maxSegment }, cuts) => {
        const size = pages.length * P - offset;
        const one = sgAllocTableFromPagesSegment(pages, pages.length, offset, size, maxSegment);
        const edges = [...new Set(cuts.map((c) => 1 + (c % pages.length)))].filter((e) => e < pages.length).sort((x, y) => x - y);
        const a = new SgAppendTable();
        let from = 0;
        for (const to of [...edges, pages.length]) {
          const off = from === 0 ? offset : 0;
          sgAllocAppendTableFromPages(a, pages.subarray(from), to - from, off, (to - from) * P - off, maxSegment, pages.length - to);
          from = to;
        }
        expect([...a.sgt.segments()]).toEqual([...one.segments()]);
        expect(sgNents(a.sgt)).toBe(one.origNents);
      }),
      { numRuns: 150, seed: 1414 },
    );
  });
});
