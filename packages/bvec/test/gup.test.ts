// The GUP that fills bio_vecs (block/bio.c: bio_iov_iter_get_pages, bio_iov_iter_align_down,
// __bio_release_pages; lib/iov_iter.c: iov_iter_extract_bvecs, get_contig_folio_len).

import { describe, expect, it } from 'vitest';
import { folioPinCount, leakReport } from '@iodesc/core';
import { Bio, bioIovIterGetPages, bioPut, bioRelease, BVEC_PAGE_HI, BVEC_STRIDE, BvecArray, bvecSet, iovIterBvec, iovIterUbuf } from '../src/index.js';
import { expectCode, machine, MiB, P } from './helpers.js';

// A populated range whose pages are scattered (no two physically adjacent), by the fragmentation dial.
function scattered(pages: number) {
  const m = machine();
  m.memory.fragment({ seed: 3, freeRunPages: 1 });
  const addr = m.mm.mmap(pages * P, { populate: true });
  return { ...m, addr };
}

describe('bioIovIterGetPages', () => {
  it('pins straight into the bio: one vector per page when no two pages are consecutive', () => {
    const { memory, mm, addr } = scattered(6);
    const bio = new Bio({ maxVecs: 8 });
    const iter = iovIterUbuf(mm, addr + 100, 6 * P - 200, 'dest');
    expect(bioIovIterGetPages(bio, iter)).toBe(6 * P - 200);
    expect([bio.biVcnt, bio.pinned, iter.count]).toEqual([6, true, 0]);
    const v = bio.bvecs();
    expect(v[0]).toEqual({ pfn: mm.lookupPfn(addr), offset: 100, length: P - 100 });
    expect(v[5]).toEqual({ pfn: mm.lookupPfn(addr + 5 * P), offset: 0, length: P - 100 });
    for (const s of v) expect(folioPinCount(memory, s.pfn)).toBe(1);
    bioRelease(bio, { dirty: false });
    bioPut(bio);
    expect(leakReport(memory)).toEqual([]);
  });

  it('leaves no page of the batch in the unused high word of a vector', () => {
    const { memory, mm, addr } = scattered(16);
    const bio = new Bio({ maxVecs: 16 });
    bioIovIterGetPages(bio, iovIterUbuf(mm, addr, 16 * P, 'dest'));
    expect(bio.biVcnt).toBe(16);
    const high = Array.from({ length: 16 }, (_, i) => bio.vecs[bio.base + i * BVEC_STRIDE + BVEC_PAGE_HI]);
    expect(high).toEqual(new Array(16).fill(0));
    bioRelease(bio, { dirty: false });
    bioPut(bio);
    expect(leakReport(memory)).toEqual([]);
  });

  it('merges consecutive pages of one folio, never into a vector added by an earlier batch', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(4 * MiB, { thp: true, populate: true });
    const start = addr + (2 * MiB - (addr % (2 * MiB)));
    const bio = new Bio({ maxVecs: 4 });
    const iter = iovIterUbuf(mm, start, 16 * P, 'dest');
    // batches of the free slots: 4 pages, then 3, 2, 1, each one vector of one THP folio
    expect(bioIovIterGetPages(bio, iter)).toBe(10 * P);
    expect(bio.bvecs().map((b) => b.length)).toEqual([4 * P, 3 * P, 2 * P, P]);
    expect(iter.count).toBe(6 * P);
    bioRelease(bio, { dirty: true });
    bioPut(bio);
    expect(memory.isDirty(mm.lookupPfn(start))).toBe(true);
    expect(leakReport(memory)).toEqual([]);
  });

  it('does not merge physically consecutive pages of different folios', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(4 * P, { populate: true });
    const pfns = [0, 1, 2, 3].map((k) => mm.lookupPfn(addr + k * P));
    expect(pfns.every((p, k) => k === 0 || p === pfns[k - 1]! + 1)).toBe(true);
    const bio = new Bio({ maxVecs: 4 });
    bioIovIterGetPages(bio, iovIterUbuf(mm, addr, 4 * P, 'source'));
    expect(bio.biVcnt).toBe(4);
    bioRelease(bio, { dirty: false });
    bioPut(bio);
    expect(leakReport(memory)).toEqual([]);
  });

  it('stops at the bio capacity', () => {
    const { memory, mm, addr } = scattered(5);
    const bio = new Bio({ maxVecs: 2 });
    const iter = iovIterUbuf(mm, addr, 5 * P, 'dest');
    expect(bioIovIterGetPages(bio, iter)).toBe(2 * P);
    expect(iter.count).toBe(3 * P);
    bioRelease(bio, { dirty: false });
    bioPut(bio);
    expect(leakReport(memory)).toEqual([]);
  });

  it('keeps what it pinned when GUP fails later, and fails only when nothing was pinned', () => {
    const { memory, mm, addr } = scattered(6);
    mm.injectFault(addr + 3 * P, 'EFAULT');
    const bio = new Bio({ maxVecs: 8 });
    const iter = iovIterUbuf(mm, addr, 6 * P, 'dest');
    expect(bioIovIterGetPages(bio, iter)).toBe(3 * P);
    const next = new Bio({ maxVecs: 8 });
    expectCode(() => bioIovIterGetPages(next, iter), 'EFAULT');
    expect(next.biVcnt).toBe(0);
    bioRelease(bio, { dirty: false });
    bioPut(bio);
    bioPut(next);
    expect(leakReport(memory)).toEqual([]);
  });

  it('throws the injected code when the first page fails, holding no pin', () => {
    const { memory, mm, addr } = scattered(2);
    mm.injectFault(addr, 'EHWPOISON');
    const bio = new Bio({ maxVecs: 4 });
    expectCode(() => bioIovIterGetPages(bio, iovIterUbuf(mm, addr, 2 * P, 'dest')), 'EHWPOISON');
    bioPut(bio);
    expect(leakReport(memory)).toEqual([]);
  });

  it('throws ENOMEM holding no pin when the first fault cannot allocate', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(4 * P);
    memory.injectAllocFailure(0, 100);
    const bio = new Bio({ maxVecs: 4 });
    expectCode(() => bioIovIterGetPages(bio, iovIterUbuf(mm, addr, 4 * P, 'dest')), 'ENOMEM');
    memory.clearAllocFailures();
    bioPut(bio);
    expect(leakReport(memory)).toEqual([]);
  });

  it('trims the size to the length mask, unpinning the vectors it drops (bio_iov_iter_align_down)', () => {
    const { memory, mm, addr } = scattered(2);
    const bio = new Bio({ maxVecs: 4 });
    const iter = iovIterUbuf(mm, addr, P + 100, 'dest');
    expect(bioIovIterGetPages(bio, iter, { lenAlignMask: 511 })).toBe(P);
    expect([bio.biVcnt, iter.count]).toEqual([1, 100]);
    expect(folioPinCount(memory, mm.lookupPfn(addr + P))).toBe(0);
    bioRelease(bio, { dirty: false });
    bioPut(bio);
    const tiny = new Bio({ maxVecs: 4 });
    expectCode(() => bioIovIterGetPages(tiny, iovIterUbuf(mm, addr, 100, 'dest'), { lenAlignMask: 511 }), 'EFAULT');
    bioPut(tiny);
    expect(leakReport(memory)).toEqual([]);
  });

  it('unpins the tail pages of a vector the trim shortens (THP: 600 bytes from 3584 trimmed to 512)', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(4 * MiB, { thp: true, populate: true });
    const folio = addr + (2 * MiB - (addr % (2 * MiB)));
    const bio = new Bio({ maxVecs: 4 });
    const iter = iovIterUbuf(mm, folio + 3584, 600, 'dest');
    expect(bioIovIterGetPages(bio, iter, { lenAlignMask: 511 })).toBe(512);
    expect(bio.bvecs()).toEqual([{ pfn: mm.lookupPfn(folio), offset: 3584, length: 512 }]);
    expect(iter.count).toBe(88);
    expect(folioPinCount(memory, mm.lookupPfn(folio))).toBe(1);
    bioRelease(bio, { dirty: false });
    bioPut(bio);
    expect(leakReport(memory)).toEqual([]);
  });

  // block/fops.c:49: bdev_logical_block_size - 1, up to BLK_MAX_BLOCK_SIZE (64 KiB) - 1
  it('trims to a 64 KiB logical block (mask 65535) and refuses a mask that is not 2^k - 1', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(4 * MiB, { thp: true, populate: true });
    const folio = addr + (2 * MiB - (addr % (2 * MiB)));
    const bio = new Bio({ maxVecs: 16 });
    const iter = iovIterUbuf(mm, folio, 65536 + 4096, 'dest');
    expect(bioIovIterGetPages(bio, iter, { lenAlignMask: 65535 })).toBe(65536);
    expect(iter.count).toBe(4096);
    bioRelease(bio, { dirty: false });
    bioPut(bio);
    for (const bad of [1000, 65536, 131071]) {
      expectCode(() => bioIovIterGetPages(new Bio({ maxVecs: 1 }), iovIterUbuf(mm, folio, P, 'dest'), { lenAlignMask: bad }), 'EINVAL');
    }
    expect(leakReport(memory)).toEqual([]);
  });

  it('borrows the vectors of an ITER_BVEC iterator (bio_iov_bvec_set)', () => {
    const arr = new BvecArray(2);
    bvecSet(arr, 0, 10, 2 * P, 0);
    bvecSet(arr, 1, 20, P, 0);
    arr.count = 2;
    const iter = iovIterBvec(arr, 3 * P);
    const bio = new Bio({ maxVecs: 0 });
    expect(bioIovIterGetPages(bio, iter)).toBe(3 * P);
    expect([bio.cloned, bio.pinned, bio.bvecs().length, iter.count]).toEqual([true, false, 2, 0]);
    expectCode(() => bioIovIterGetPages(new Bio({ maxVecs: 1 }), iovIterBvec(arr, P)), 'EINVAL');
  });

  it('refuses a cloned bio (EIO) and bad arguments (EINVAL)', () => {
    const { mm, addr } = scattered(1);
    const clone = Bio.cloneOf(new Bio({ maxVecs: 1 }), { biSector: 0, biSize: 0, biIdx: 0, biBvecDone: 0 });
    expectCode(() => bioIovIterGetPages(clone, iovIterUbuf(mm, addr, P, 'dest')), 'EIO');
    expectCode(() => bioIovIterGetPages(new Bio({ maxVecs: 1 }), {} as never), 'EINVAL');
    expectCode(() => bioIovIterGetPages(new Bio({ maxVecs: 1 }), iovIterUbuf(mm, addr, P, 'dest'), { lenAlignMask: -1 }), 'EINVAL');
    expectCode(() => iovIterUbuf(mm, addr, P, 'sideways' as never), 'EINVAL');
  });
});

describe('bioRelease', () => {
  it('dirties each folio and unpins the pages a vector spans; a second release is EINVAL', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(4 * MiB, { thp: true, populate: true });
    const start = addr + (2 * MiB - (addr % (2 * MiB))) - 2 * P;
    const bio = new Bio({ maxVecs: 8 });
    bioIovIterGetPages(bio, iovIterUbuf(mm, start, 8 * P, 'dest'));
    const head = memory.folioHead(mm.lookupPfn(start + 2 * P));
    expect(folioPinCount(memory, head)).toBeGreaterThan(0);
    bioRelease(bio, { dirty: true });
    expect(folioPinCount(memory, head)).toBe(0);
    expect(memory.isDirty(head)).toBe(true);
    expectCode(() => bioRelease(bio, { dirty: true }), 'EINVAL');
    expectCode(() => bioRelease(bio, {} as never), 'EINVAL');
    bioPut(bio);
    expect(leakReport(memory)).toEqual([]);
  });

  it('does nothing for a bio that pinned nothing', () => {
    const bio = new Bio({ maxVecs: 1 });
    bioRelease(bio, { dirty: true });
    bioPut(bio);
    expect(bio.released).toBe(false);
  });
});
