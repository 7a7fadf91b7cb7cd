// hugetlb pools and mappings (mm/hugetlb.c, fs/hugetlbfs/inode.c, mm/gup.c on hugetlb leaves).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AddressSpace, FOLL_ANON, FOLL_LONGTERM, FOLL_WRITE, PAGE_SIZE, PG_HUGETLB, PG_LIVE, PhysicalMemory,
  folioMaybeDmaPinned, folioPinCount, folioRefCount, leakReport, pageMapcount, pinUserPages, pinUserPagesFast,
  unpinUserPages, unpinUserPagesDirtyLock,
} from '../src/index.js';
import { expectCode, expectUnchanged, MiB, pattern, snapshot } from './helpers.js';

const GiB = 2 ** 30;
const H2M = 2 * MiB;
const NR_2M = H2M / PAGE_SIZE;
const NR_1G = GiB / PAGE_SIZE;

function setup2M(n: number, bytes = 64 * MiB) {
  const memory = new PhysicalMemory({ bytes, seed: 1, hugepages: { '2M': n } });
  return { memory, mm: new AddressSpace(memory), h: memory.hstate('2M') };
}

describe('PhysicalMemory hugepages', () => {
  it('takes 2 MiB pages from the buddy allocator as order-9 hugetlb folios', () => {
    const plain = new PhysicalMemory({ bytes: 64 * MiB, seed: 1 });
    const { memory, h } = setup2M(4);
    expect([h.nrHugePages, h.freeHugePages, h.resvHugePages]).toEqual([4, 4, 0]);
    expect(memory.nrFreePages).toBe(plain.nrFreePages - 4 * NR_2M);
    expect(memory.hstate('1G').nrHugePages).toBe(0);
  });

  it('hands out the lowest boot-time huge page first, as the pool\'s free list is built', () => {
    const { mm } = setup2M(3);
    const memory = new PhysicalMemory({ bytes: 4 * 2 ** 30 + 8 * MiB, hugepages: { '1G': 2 } });
    const a = mm.mmap(3 * H2M, { hugetlb: '2M', populate: true });
    const heads = [0, 1, 2].map((k) => mm.lookupPfn(a + k * H2M));
    expect(heads).toEqual([...heads].sort((x, y) => x - y));
    const big = new AddressSpace(memory);
    const b = big.mmap(PAGE_SIZE, { hugetlb: '1G', populate: true });
    expect(big.lookupPfn(b)).toBe(2 * NR_1G);
  });

  it('carves 1 GiB pages from the highest 1 GiB-aligned ranges, off the buddy lists', () => {
    const memory = new PhysicalMemory({ bytes: 3 * GiB + 8 * MiB, hugepages: { '1G': 2 } });
    const h = memory.hstate('1G');
    expect([h.nrHugePages, h.freeHugePages, h.order]).toEqual([2, 2, 18]);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1 - 2 * NR_1G);
    for (const head of [NR_1G, 2 * NR_1G]) {
      expect(memory.flags[head]! & PG_HUGETLB).toBe(PG_HUGETLB);
      expect(memory.order[head + NR_1G - 1]).toBe(18);
    }
  });

  it('gives a smaller pool when RAM cannot hold the pages asked for, as boot does', () => {
    const memory = new PhysicalMemory({ bytes: 2 * GiB, hugepages: { '1G': 4, '2M': 100000 } });
    // the first GiB holds the zero page: one 1 GiB page fits, the 2 MiB pages take what is left
    expect(memory.hstate('1G').nrHugePages).toBe(1);
    expect(memory.hstate('1G').requested).toBe(4);
    expect(memory.hstate('2M').nrHugePages).toBe(511);
    expect(memory.nrFreePages).toBe(NR_2M - 1);
  });

  it.each([
    ['not an object', 4],
    ['an unknown size', { '4M': 1 }],
    ['a negative count', { '2M': -1 }],
    ['a fraction', { '1G': 0.5 }],
    ['a string count', { '2M': '2' }],
  ])('is EINVAL for hugepages %s', (_label, hugepages) => {
    expectCode(() => new PhysicalMemory({ bytes: 64 * MiB, hugepages: hugepages as never }), 'EINVAL');
  });
});

describe('mmap hugetlb', () => {
  it('rounds the length up to the huge page size, aligns the address and reserves every page', () => {
    const { mm, h } = setup2M(4);
    const addr = mm.mmap(H2M + 1, { hugetlb: '2M' });
    expect(addr % H2M).toBe(0);
    expect(mm.findVma(addr)!.end - addr).toBe(2 * H2M);
    expect([h.freeHugePages, h.resvHugePages]).toEqual([4, 2]);
  });

  it('is ENOMEM at mmap when the pool cannot cover the reservation, and changes nothing', () => {
    const { memory, mm, h } = setup2M(3);
    mm.mmap(2 * H2M, { hugetlb: '2M' });
    const before = snapshot(memory);
    expectCode(() => mm.mmap(2 * H2M, { hugetlb: '2M' }), 'ENOMEM');
    expect(mm.vmas.length).toBe(1);
    expect(h.resvHugePages).toBe(2);
    expectUnchanged(memory, before);
  });

  it('is ENOMEM at mmap from an empty pool', () => {
    const { mm } = setup2M(0);
    expectCode(() => mm.mmap(PAGE_SIZE, { hugetlb: '2M' }), 'ENOMEM');
    expectCode(() => mm.mmap(PAGE_SIZE, { hugetlb: '1G' }), 'ENOMEM');
  });

  it.each([
    ['an unknown size', { hugetlb: '4M' }],
    ['file backing', { hugetlb: '2M', backing: 'file' }],
    ['a non-boolean noreserve', { hugetlb: '2M', noreserve: 1 }],
  ])('is EINVAL for %s', (_label, opts) => {
    const { mm } = setup2M(2);
    expectCode(() => mm.mmap(H2M, opts as never), 'EINVAL');
  });

  it('maps the whole zeroed huge page on the first touch, consuming its reservation', () => {
    const { memory, mm, h } = setup2M(2);
    // a device wrote into the free pool pages: the fault must still hand out zeros
    for (let p = 0; p < memory.nrPages; p += 64) memory.writePhys(p * PAGE_SIZE, Uint8Array.of(0xee));
    const addr = mm.mmap(H2M, { hugetlb: '2M' });
    mm.write(addr + 5 * PAGE_SIZE + 7, pattern(100));
    const head = mm.lookupPfn(addr);
    expect(head % NR_2M).toBe(0);
    for (const k of [0, 1, 511]) {
      expect(mm.lookupPfn(addr + k * PAGE_SIZE)).toBe(head + k);
      expect(pageMapcount(memory, head + k)).toBe(1);
    }
    expect(mm.read(addr + 5 * PAGE_SIZE + 7, 100)).toEqual(pattern(100));
    expect(mm.read(addr, 64).every((b) => b === 0)).toBe(true);
    expect(memory.readPhys((head + 5) * PAGE_SIZE + 7, 100)).toEqual(pattern(100));
    expect([h.freeHugePages, h.resvHugePages, folioRefCount(memory, head)]).toEqual([1, 0, 1]);
  });

  it('is EFAULT (SIGBUS) when a MAP_NORESERVE fault finds the pool empty', () => {
    const { mm } = setup2M(1);
    const a = mm.mmap(H2M, { hugetlb: '2M' });
    const b = mm.mmap(H2M, { hugetlb: '2M', noreserve: true });
    expectCode(() => mm.read(b, 1), 'EFAULT');
    expectCode(() => pinUserPages(mm, b, 1, FOLL_WRITE, new Uint32Array(1)), 'EFAULT');
    mm.write(a, Uint8Array.of(1));
    expect(mm.read(a, 1)).toEqual(Uint8Array.of(1));
  });

  it('populates a MAP_NORESERVE mapping as far as the pool goes, quietly, as mm_populate does', () => {
    const { mm, h } = setup2M(2);
    const addr = mm.mmap(3 * H2M, { hugetlb: '2M', noreserve: true, populate: true });
    expect([h.freeHugePages, h.resvHugePages]).toEqual([0, 0]);
    expect(mm.lookupPfn(addr + H2M)).toBeGreaterThan(0);
    expect(mm.lookupPfn(addr + 2 * H2M)).toBe(-1);
    expectCode(() => mm.write(addr + 2 * H2M, Uint8Array.of(1)), 'EFAULT');
  });

  it('maps 1 GiB pages whole from the gigantic pool', () => {
    const memory = new PhysicalMemory({ bytes: 2 * GiB + 4 * MiB, hugepages: { '1G': 1 } });
    const mm = new AddressSpace(memory);
    const addr = mm.mmap(4096, { hugetlb: '1G', populate: true });
    expect(addr % GiB).toBe(0);
    expect(mm.lookupPfn(addr)).toBe(NR_1G);
    expect(mm.lookupPfn(addr + GiB - PAGE_SIZE)).toBe(2 * NR_1G - 1);
    mm.write(addr + GiB - 3, Uint8Array.of(1, 2, 3));
    expect(memory.readPhys(2 * GiB - 3, 3)).toEqual(Uint8Array.of(1, 2, 3));
    mm.munmap(addr, GiB);
    expect(memory.hstate('1G').freeHugePages).toBe(1);
    expect(memory.readPhys(2 * GiB - 3, 3)).toEqual(new Uint8Array(3));
  });
});

describe('pinUserPages on hugetlb', () => {
  it.each([
    ['the slow path', pinUserPages],
    ['the fast path', pinUserPagesFast],
  ])('grabs one folio per huge page with exact pin counts: %s', (_label, pin) => {
    const { memory, mm } = setup2M(3);
    const addr = mm.mmap(3 * H2M, { hugetlb: '2M', populate: true });
    const heads = [0, 1, 2].map((k) => mm.lookupPfn(addr + k * H2M));
    const pages = new Uint32Array(600);
    // from 100 pages into the first huge page: 412 of it, 188 of the second
    expect(pin(mm, addr + 100 * PAGE_SIZE, 600, FOLL_WRITE | FOLL_LONGTERM, pages)).toBe(600);
    expect(pages[0]).toBe(heads[0]! + 100);
    expect(pages[412]).toBe(heads[1]);
    expect([folioRefCount(memory, heads[0]!), folioPinCount(memory, heads[0]!)]).toEqual([1 + 412, 412]);
    expect([folioRefCount(memory, heads[1]!), folioPinCount(memory, heads[1]!)]).toEqual([1 + 188, 188]);
    expect(folioMaybeDmaPinned(memory, heads[1]! + 300)).toBe(true);
    expect(folioMaybeDmaPinned(memory, heads[2]!)).toBe(false);
    expect(memory.stats.nrFollPinAcquired).toBe(600);
    unpinUserPagesDirtyLock(memory, pages, 600, true);
    expect([folioRefCount(memory, heads[0]!), folioPinCount(memory, heads[0]!)]).toEqual([1, 0]);
    expect(memory.isDirty(heads[1]!)).toBe(true);
    expect(leakReport(memory)).toEqual([]);
  });

  it('pins a whole 1 GiB page as one folio', () => {
    const memory = new PhysicalMemory({ bytes: 2 * GiB + 4 * MiB, hugepages: { '1G': 1 } });
    const mm = new AddressSpace(memory);
    const addr = mm.mmap(GiB, { hugetlb: '1G', populate: true });
    const pages = new Uint32Array(NR_1G);
    expect(pinUserPagesFast(mm, addr, NR_1G, FOLL_WRITE, pages)).toBe(NR_1G);
    expect(pages[NR_1G - 1]).toBe(2 * NR_1G - 1);
    expect([folioRefCount(memory, NR_1G), folioPinCount(memory, NR_1G)]).toEqual([1 + NR_1G, NR_1G]);
    unpinUserPages(memory, pages, NR_1G);
    expect([folioRefCount(memory, NR_1G), folioPinCount(memory, NR_1G)]).toEqual([1, 0]);
  });

  it('makes a read-faulted private page writable in place for a FOLL_WRITE pin (the fast walk falls back)', () => {
    const { memory, mm } = setup2M(1);
    const addr = mm.mmap(H2M, { hugetlb: '2M' });
    mm.read(addr, 1);
    const head = mm.lookupPfn(addr);
    const pages = new Uint32Array(NR_2M);
    expect(pinUserPagesFast(mm, addr, NR_2M, FOLL_WRITE, pages)).toBe(NR_2M);
    expect(pages[0]).toBe(head);
    expect([folioRefCount(memory, head), folioPinCount(memory, head)]).toEqual([1 + NR_2M, NR_2M]);
    expect(memory.hstate('2M').freeHugePages).toBe(0);
    unpinUserPages(memory, pages, NR_2M);
  });

  it('refuses FOLL_ANON: a hugetlb VMA is not anonymous (it has vm_ops)', () => {
    const { mm } = setup2M(1);
    const addr = mm.mmap(H2M, { hugetlb: '2M' });
    expectCode(() => pinUserPages(mm, addr, 1, FOLL_ANON, new Uint32Array(1)), 'EFAULT');
  });

  it('allows a long-term writable pin of a shared mapping: hugetlb is not dirty-tracked', () => {
    const { memory, mm } = setup2M(1);
    const addr = mm.mmap(H2M, { hugetlb: '2M', shared: true });
    const pages = new Uint32Array(2);
    expect(pinUserPages(mm, addr, 2, FOLL_WRITE | FOLL_LONGTERM, pages)).toBe(2);
    // page cache: one reference per page; the mapping: one; the pins: one each
    expect(folioRefCount(memory, pages[0]!)).toBe(NR_2M + 1 + 2);
    unpinUserPages(memory, pages, 2);
  });
});

describe('munmap hugetlb', () => {
  it.each([
    ['an unaligned start', 1, 1],
    ['an unaligned end', 0, 1],
    ['a start one page in', 0, 0],
  ])('is EINVAL when it would split a huge page (%s) and changes nothing', (label, startPages, lenPages) => {
    const { memory, mm, h } = setup2M(2);
    const addr = mm.mmap(2 * H2M, { hugetlb: '2M', populate: true });
    const before = snapshot(memory);
    const start = label === 'a start one page in' ? addr + PAGE_SIZE : addr + startPages * PAGE_SIZE;
    const len = label === 'a start one page in' ? H2M : H2M + lenPages * PAGE_SIZE;
    expectCode(() => mm.munmap(start, len), 'EINVAL');
    expect(mm.vmas.length).toBe(1);
    expect(h.freeHugePages).toBe(0);
    expectUnchanged(memory, before);
  });

  it('unmaps on huge page boundaries, returning pages and unused reservations to the pool', () => {
    const { mm, h } = setup2M(4);
    const addr = mm.mmap(4 * H2M, { hugetlb: '2M' });
    mm.write(addr, Uint8Array.of(1));
    mm.write(addr + H2M, Uint8Array.of(2));
    expect([h.freeHugePages, h.resvHugePages]).toEqual([2, 2]);
    mm.munmap(addr + H2M, 2 * H2M);
    expect(mm.vmas.length).toBe(2);
    // the second page went back, the third's reservation too
    expect([h.freeHugePages, h.resvHugePages]).toEqual([3, 1]);
    expect(mm.read(addr, 1)).toEqual(Uint8Array.of(1));
    mm.munmap(addr, 4 * H2M);
    expect([h.freeHugePages, h.resvHugePages]).toEqual([4, 0]);
  });

  it('keeps a pinned huge page out of the pool until its last unpin', () => {
    const { memory, mm, h } = setup2M(1);
    const addr = mm.mmap(H2M, { hugetlb: '2M' });
    const pages = new Uint32Array(3);
    expect(pinUserPagesFast(mm, addr, 3, FOLL_WRITE, pages)).toBe(3);
    mm.munmap(addr, H2M);
    expect(h.freeHugePages).toBe(0);
    expect(leakReport(memory)).toEqual([expect.objectContaining({ kind: 'pinned-page', pfn: pages[0], count: 3 })]);
    unpinUserPages(memory, pages, 2);
    expect(h.freeHugePages).toBe(0);
    unpinUserPages(memory, pages.subarray(2), 1);
    expect([h.freeHugePages, h.resvHugePages]).toEqual([1, 0]);
    expect(memory.flags[pages[0]!]! & PG_HUGETLB).toBe(PG_HUGETLB);
    expectCode(() => unpinUserPages(memory, pages, 1), 'EINVAL');
  });

  it('keeps a shared mapping\'s pages in its page cache until its last VMA goes', () => {
    const { memory, mm, h } = setup2M(2);
    const addr = mm.mmap(2 * H2M, { hugetlb: '2M', shared: true, populate: true });
    const first = mm.lookupPfn(addr);
    mm.write(addr, Uint8Array.of(9));
    mm.munmap(addr, H2M);
    expect(h.freeHugePages).toBe(0);
    expect(folioRefCount(memory, first)).toBe(NR_2M);
    expect(memory.readPhys(first * PAGE_SIZE, 1)).toEqual(Uint8Array.of(9));
    mm.munmap(addr + H2M, H2M);
    expect([h.freeHugePages, h.resvHugePages]).toEqual([2, 0]);
  });

  it('makes a private read-faulted page writable on the first write (hugetlb_wp reuse)', () => {
    const { memory, mm } = setup2M(1);
    const addr = mm.mmap(H2M, { hugetlb: '2M' });
    expect(mm.read(addr + 10, 1)).toEqual(Uint8Array.of(0));
    const head = mm.lookupPfn(addr);
    mm.write(addr + 10, Uint8Array.of(5));
    expect(mm.lookupPfn(addr)).toBe(head);
    expect(memory.readPhys(head * PAGE_SIZE + 10, 1)).toEqual(Uint8Array.of(5));
  });
});

describe('hugetlb pool accounting', () => {
  type Op =
    | { kind: 'mmap'; nr: number; shared: boolean; populate: boolean }
    | { kind: 'munmap'; which: number; firstHalf: boolean }
    | { kind: 'pin'; which: number; fast: boolean; longterm: boolean }
    | { kind: 'unpin'; which: number; dirty: boolean }
    | { kind: 'write'; which: number };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('mmap' as const), nr: fc.integer({ min: 1, max: 3 }), shared: fc.boolean(), populate: fc.boolean() }),
    fc.record({ kind: fc.constant('munmap' as const), which: fc.nat(), firstHalf: fc.boolean() }),
    fc.record({ kind: fc.constant('pin' as const), which: fc.nat(), fast: fc.boolean(), longterm: fc.boolean() }),
    fc.record({ kind: fc.constant('unpin' as const), which: fc.nat(), dirty: fc.boolean() }),
    fc.record({ kind: fc.constant('write' as const), which: fc.nat() }),
  );

  function liveHugetlbFolios(memory: PhysicalMemory): number {
    let live = 0;
    for (let p = 0; p < memory.nrPages; p += NR_2M) if ((memory.flags[p]! & (PG_HUGETLB | PG_LIVE)) === (PG_HUGETLB | PG_LIVE)) live++;
    return live;
  }

  it('keeps free + in use = total and reserved <= free through any sequence, and returns everything at the end', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 25 }), (ops) => {
        const { memory, mm, h } = setup2M(6, 32 * MiB);
        const maps: Array<{ addr: number; len: number }> = [];
        const pins: Uint32Array[] = [];
        for (const o of ops) {
          if (o.kind === 'mmap') {
            try {
              maps.push({ addr: mm.mmap(o.nr * H2M, { hugetlb: '2M', shared: o.shared, populate: o.populate }), len: o.nr * H2M });
            } catch (e) {
              expect(e).toMatchObject({ code: 'ENOMEM' });
            }
          } else if (maps.length > 0 && o.kind === 'munmap') {
            const k = o.which % maps.length;
            const m = maps[k]!;
            const half = Math.ceil(m.len / H2M / 2) * H2M;
            if (o.firstHalf && half < m.len) {
              mm.munmap(m.addr, half);
              maps[k] = { addr: m.addr + half, len: m.len - half };
            } else {
              mm.munmap(m.addr, m.len);
              maps.splice(k, 1);
            }
          } else if (maps.length > 0 && o.kind === 'pin') {
            const m = maps[o.which % maps.length]!;
            const n = m.len / PAGE_SIZE - 3;
            const pages = new Uint32Array(n);
            const pin = o.fast ? pinUserPagesFast : pinUserPages;
            pins.push(pages.subarray(0, pin(mm, m.addr + 3 * PAGE_SIZE, n, FOLL_WRITE | (o.longterm ? FOLL_LONGTERM : 0), pages)));
          } else if (pins.length > 0 && o.kind === 'unpin') {
            const p = pins.splice(o.which % pins.length, 1)[0]!;
            unpinUserPagesDirtyLock(memory, p, p.length, o.dirty);
          } else if (maps.length > 0 && o.kind === 'write') {
            mm.write(maps[o.which % maps.length]!.addr, Uint8Array.of(1));
          }
          expect(h.freeHugePages + liveHugetlbFolios(memory)).toBe(h.nrHugePages);
          expect(h.resvHugePages).toBeLessThanOrEqual(h.freeHugePages);
        }
        for (const p of pins) unpinUserPages(memory, p, p.length);
        for (const m of maps) mm.munmap(m.addr, m.len);
        expect([h.freeHugePages, h.resvHugePages]).toEqual([6, 0]);
        expect(leakReport(memory)).toEqual([]);
      }),
      { seed: 5, numRuns: 60 },
    );
  });
});
