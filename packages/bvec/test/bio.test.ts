// bio_add_page / bvec_try_merge_page / bio_add_folio (block/bio.c), the bio's vectors from
// bvec_slabs or inline, and what a bio costs (include/linux/blk_types.h).

import { describe, expect, it } from 'vitest';
import { BIO_MAX_SIZE } from '@iodesc/core';
import {
  Bio, BIO_BACK_PAD, BIO_BYTES, BIO_ITER_OFFSET, BIO_MAX_VECS, BVEC_ITER_BYTES, bioAddFolio, bioAddPage, bioAllocBytes, bioFull, bioPut, bioSplitToLimits, bvecPoolInUse, BVEC_LEN, BVEC_STRIDE,
} from '../src/index.js';
import { expectCode, machine, P } from './helpers.js';

type Add = [pfn: number, len: number, off: number];

describe('bioAddPage', () => {
  it.each<[string, number, Add[], number[], Array<[number, number, number]>]>([
    ['merges the physically next page into the last vector', 4, [[10, P, 0], [11, P, 0]], [P, P], [[10, 0, 2 * P]]],
    ['starts a new vector for a page elsewhere', 4, [[10, P, 0], [20, P, 0]], [P, P], [[10, 0, P], [20, 0, P]]],
    ['merges pieces of one page that meet', 4, [[10, 100, 0], [10, 200, 100]], [100, 200], [[10, 0, 300]]],
    ['keeps pieces of one page that leave a hole apart', 4, [[10, 100, 0], [10, 200, 300]], [100, 200], [[10, 0, 100], [10, 300, 200]]],
    ['takes a length running past the page (the following pages)', 4, [[10, 3 * P, 100], [13, P, 100]], [3 * P, P], [[10, 100, 4 * P]]],
    ['a full bio still takes a contiguous page, and refuses another', 1, [[10, P, 0], [11, P, 0], [20, P, 0]], [P, P, 0], [[10, 0, 2 * P]]],
    ['has no size cap below BIO_MAX_SIZE: 1 GiB in one vector', 1, [[0, 2 ** 29, 0], [2 ** 17, 2 ** 29, 0]], [2 ** 29, 2 ** 29], [[0, 0, 2 ** 30]]],
    ['returns 0 for a zero length (the kernel WARNs)', 4, [[10, 0, 0]], [0], []],
  ])('%s', (_label, maxVecs, adds, want, bvecs) => {
    const bio = new Bio({ maxVecs });
    expect(adds.map(([pfn, len, off]) => bioAddPage(bio, pfn, len, off))).toEqual(want);
    expect(bio.bvecs().map((b) => [b.pfn, b.offset, b.length])).toEqual(bvecs);
    expect(bio.biVcnt).toBe(bvecs.length);
    expect(bio.biIter.biSize).toBe(want.reduce((a, b) => a + b, 0));
    bioPut(bio);
  });

  it('merges across folios: no same-folio requirement in mainline', () => {
    const { memory } = machine();
    const a = memory.allocFolio(0);
    const b = memory.allocFolio(0);
    expect(b).toBe(a + 1);
    const bio = new Bio({ maxVecs: 2, memory });
    bioAddPage(bio, a, P, 0);
    expect(bioAddPage(bio, b, P, 0)).toBe(P);
    expect(bio.biVcnt).toBe(1);
    bioPut(bio);
  });

  it('returns 0 once bi_size would pass BIO_MAX_SIZE', () => {
    const bio = new Bio({ maxVecs: 2 });
    expect(bioAddPage(bio, 0, BIO_MAX_SIZE - 10, 0)).toBe(BIO_MAX_SIZE - 10);
    expect(bioAddPage(bio, 2 ** 21, 11, 0)).toBe(0);
    expect(bioAddPage(bio, 2 ** 21, 10, 0)).toBe(10);
    bioPut(bio);
  });

  it.each<[string, Add]>([
    ['an offset of PAGE_SIZE', [10, 100, P]],
    ['a negative offset', [10, 100, -1]],
    ['a negative length', [10, -1, 0]],
    ['a fractional PFN', [10.5, 100, 0]],
  ])('throws EINVAL for %s', (_l, [pfn, len, off]) => {
    const bio = new Bio({ maxVecs: 1 });
    expectCode(() => bioAddPage(bio, pfn, len, off), 'EINVAL');
    expect(bio.biVcnt).toBe(0);
    bioPut(bio);
  });

  it('refuses a bio that was put, and a clone', () => {
    const bio = new Bio({ maxVecs: 1 });
    bioPut(bio);
    expectCode(() => bioAddPage(bio, 1, 1, 0), 'EINVAL');
    const clone = Bio.cloneOf(new Bio({ maxVecs: 1 }), { biSector: 0, biSize: 0, biIdx: 0, biBvecDone: 0 });
    expect(bioAddPage(clone, 1, 1, 0)).toBe(0);
  });
});

describe('bioAddFolio', () => {
  it('adds part of a large folio, starting in the page its offset names', () => {
    const { memory } = machine();
    const head = memory.allocFolio(2);
    const bio = new Bio({ maxVecs: 2, memory });
    expect(bioAddFolio(bio, head, 2 * P, P + 100)).toBe(true);
    expect(bio.bvecs()).toEqual([{ pfn: head + 1, offset: 100, length: 2 * P }]);
    expectCode(() => bioAddFolio(bio, head + 1, P, 0), 'EINVAL');
    expectCode(() => bioAddFolio(bio, head, 2 * P, 3 * P), 'EINVAL');
    bioPut(bio);
  });
});

describe('Bio', () => {
  it('charges struct bio as x86-64 lays it out: 136 bytes, bi_iter (20) at offset 40 (rw_hint is one byte)', () => {
    expect([BIO_BYTES, BIO_ITER_OFFSET, BVEC_ITER_BYTES]).toEqual([136, 40, 20]);
  });

  it.each([
    // block/bio.c bio_alloc_bioset: nr_vecs = bvs->nr_vecs above BIO_INLINE_VECS; bio_init_inline keeps nr_vecs
    ['2 asked, inline', 2, 2],
    ['4 asked, inline', 4, 4],
    ['5 asked, biovec-16', 5, 16],
    ['17 asked, biovec-64', 17, 64],
    ['65 asked, biovec-128', 65, 128],
    ['129 asked, biovec-max', 129, 256],
  ])('holds the whole slab slot: %s', (_label, asked, held) => {
    const bio = new Bio({ maxVecs: asked });
    expect(bio.maxVecs).toBe(held);
    for (let i = 0; i < held; i++) expect(bioAddPage(bio, 2 * i, 100, 0)).toBe(100);
    expect(bioAddPage(bio, 2 * held, 100, 0)).toBe(0);
    expect(bioFull(bio, 0)).toBe(true);
    bioPut(bio);
  });

  it('charges the bio_set back pad to every bio but a split part (bioset_init, BIOSET_NEED_BVECS)', () => {
    const bio = new Bio({ maxVecs: 0 });
    expect(bioAllocBytes(bio)).toEqual({ bio: BIO_BYTES + BIO_BACK_PAD, bvec: 0, allocations: 1 });
    const big = new Bio({ maxVecs: 16 });
    for (let i = 0; i < 4; i++) bioAddPage(big, 2 * i, 4096, 0);
    const parts = bioSplitToLimits(big, { maxSectors: 8 });
    expect(parts.map((p) => bioAllocBytes(p))).toEqual([
      { bio: BIO_BYTES, bvec: 0, allocations: 1 },
      { bio: BIO_BYTES, bvec: 0, allocations: 1 },
      { bio: BIO_BYTES, bvec: 0, allocations: 1 },
      { bio: BIO_BYTES + BIO_BACK_PAD, bvec: 256, allocations: 2 },
    ]);
    bioPut(big);
  });

  it('keeps up to 4 vectors inline and takes larger arrays from the bvec slabs', () => {
    const before = bvecPoolInUse();
    const small = new Bio({ maxVecs: 4 });
    const mid = new Bio({ maxVecs: 17 });
    const max = new Bio();
    expect([small.inline, mid.inline, mid.slabVecs, max.maxVecs, max.slabVecs]).toEqual([true, false, 64, BIO_MAX_VECS, 256]);
    expect(bioAllocBytes(small)).toEqual({ bio: BIO_BYTES + 64, bvec: 0, allocations: 1 });
    expect(bioAllocBytes(mid)).toEqual({ bio: BIO_BYTES + 64, bvec: 64 * 16, allocations: 2 });
    const during = bvecPoolInUse();
    expect(during.map((n, i) => n - before[i]!)).toEqual([1, 0, 1, 0, 1]);
    bioPut(small);
    bioPut(mid);
    bioPut(max);
    expect(bvecPoolInUse()).toEqual(before);
  });

  it('reuses pooled vector slots instead of allocating per bio', () => {
    const a = new Bio({ maxVecs: 16 });
    const { vecs, base } = a;
    bioPut(a);
    const b = new Bio({ maxVecs: 16 });
    expect([b.vecs === vecs, b.base]).toEqual([true, base]);
    bioPut(b);
  });

  it('stores each vector in 16 bytes: page, length, offset at named words', () => {
    const bio = new Bio({ maxVecs: 2 });
    bioAddPage(bio, 7, 300, 12);
    expect(bio.vecs[bio.base + BVEC_LEN]).toBe(300);
    expect(BVEC_STRIDE * 4).toBe(16);
    bioPut(bio);
  });

  it('hands out fresh vector objects, offset below PAGE_SIZE', () => {
    const bio = new Bio({ maxVecs: 2 });
    bioAddPage(bio, 7, 3 * P, 4000);
    const [a] = bio.bvecs();
    const [b] = bio.bvecs();
    expect(a).not.toBe(b);
    expect(a).toEqual({ pfn: 7, offset: 4000, length: 3 * P });
    bioPut(bio);
  });

  it('validates its options', () => {
    expectCode(() => new Bio({ maxVecs: 257 }), 'EINVAL');
    expectCode(() => new Bio({ maxVecs: -1 }), 'EINVAL');
    expectCode(() => new Bio({ memory: {} as never }), 'EINVAL');
  });
});
