// PhysicalMemory: construction, the buddy allocator (mm/page_alloc.c), seeded shuffling
// (mm/shuffle.c), bytes by physical address, and allocation-failure injection.

import { describe, expect, it } from 'vitest';
import {
  AddressSpace, MAX_PAGE_ORDER, PAGE_SIZE, PG_ANON, PG_BUDDY, PG_HEAD, PG_LIVE, PG_TAIL, PG_ZERO, PhysicalMemory,
} from '../src/index.js';
import { expectCode, MiB, pattern, SMALL } from './helpers.js';

describe('PhysicalMemory', () => {
  it('constructs 64 GiB (16 Mi frames) and reads zeros anywhere', () => {
    const memory = new PhysicalMemory({ bytes: 64 * 2 ** 30 });
    expect(memory.nrPages).toBe(16 * 2 ** 20);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
    expect(memory.readPhys(0, 16)).toEqual(new Uint8Array(16));
    expect(memory.readPhys(64 * 2 ** 30 - PAGE_SIZE, PAGE_SIZE)).toEqual(new Uint8Array(PAGE_SIZE));
    expect(memory.store.materialised).toBe(0);
  });

  it('reserves frame 0 as the zero page with refcount 1', () => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    expect(memory.zeroPfn).toBe(0);
    expect(memory.flags[0]! & PG_ZERO).toBe(PG_ZERO);
    expect(memory.refcount[0]).toBe(1);
    expect(memory.nrPages).toBe(SMALL / PAGE_SIZE);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
  });

  it.each([
    ['bytes: -4096', { bytes: -4096 }],
    ['bytes: 4096.5', { bytes: 4096.5 }],
    ['bytes: 0', { bytes: 0 }],
    ['bytes: 1 page (only the zero page)', { bytes: PAGE_SIZE }],
    ['bytes: 64 KiB + 1 (not page multiple)', { bytes: 64 * 1024 + 1 }],
    ['bytes: 256 GiB + 4 KiB', { bytes: 256 * 2 ** 30 + PAGE_SIZE }],
    ['bytes: "64M"', { bytes: '64M' }],
    ['bytes: NaN', { bytes: NaN }],
    ['seed: -1', { bytes: SMALL, seed: -1 }],
    ['seed: 1.5', { bytes: SMALL, seed: 1.5 }],
    ['seed: 2^32', { bytes: SMALL, seed: 2 ** 32 }],
  ])('throws EINVAL when %s', (_label, opts) => {
    expectCode(() => new PhysicalMemory(opts as never), 'EINVAL');
  });

  it.each([[undefined], [null], [42]])('throws EINVAL when options are %s', (opts) => {
    expectCode(() => new PhysicalMemory(opts as never), 'EINVAL');
  });
});

describe('allocFolio', () => {
  it.each([0, 1, 3, 9, MAX_PAGE_ORDER])('hands out an aligned order-%i folio with refcount 1', (order) => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    const free = memory.nrFreePages;
    const head = memory.allocFolio(order);
    expect(head).toBeGreaterThan(0);
    expect(head % (1 << order)).toBe(0);
    expect(memory.refcount[head]).toBe(1);
    expect(memory.order[head]).toBe(order);
    expect(memory.folioNrPages(head)).toBe(1 << order);
    expect(memory.nrFreePages).toBe(free - (1 << order));
    expect(memory.flags[head]! & (PG_LIVE | PG_ANON)).toBe(PG_LIVE | PG_ANON);
    if (order > 0) {
      expect(memory.flags[head]! & PG_HEAD).toBe(PG_HEAD);
      for (let p = head + 1; p < head + (1 << order); p++) {
        expect(memory.flags[p]! & PG_TAIL).toBe(PG_TAIL);
        expect(memory.folioHead(p)).toBe(head);
      }
    }
  });

  it('restores buddyinfo and nrFreePages when every folio is freed (buddies merge)', () => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    const before = memory.buddyinfo();
    const free = memory.nrFreePages;
    const heads: number[] = [];
    for (let k = 0; k < 300; k++) heads.push(memory.allocFolio(k % 5 === 0 ? 3 : k % 50 === 1 ? 9 : 0));
    expect(heads.every((h) => h > 0)).toBe(true);
    expect(memory.buddyinfo()).not.toEqual(before);
    // free in an order unrelated to allocation
    for (let k = 0; k < heads.length; k++) {
      const h = heads[(k * 7) % heads.length]!;
      memory.folioPutRefs(h, 1);
    }
    expect(memory.nrFreePages).toBe(free);
    expect(memory.buddyinfo()).toEqual(before);
    expect(memory.stats.folioAllocs).toBe(300);
    expect(memory.stats.folioFrees).toBe(300);
  });

  it('merges two freed order-0 buddies into one order-1 block', () => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    // take the lone order-0 block at pfn 1, then split an order-1 block
    expect(memory.allocFolio(0)).toBe(1);
    const a = memory.allocFolio(0);
    const b = memory.allocFolio(0);
    expect(a ^ 1).toBe(b);
    const orderOne = memory.buddyinfo()[1]!;
    memory.folioPutRefs(a, 1);
    memory.folioPutRefs(b, 1);
    expect(memory.buddyinfo()[1]).toBe(orderOne + 1);
    expect(memory.flags[Math.min(a, b)]! & PG_BUDDY).toBe(PG_BUDDY);
  });

  it('returns -1 when no block of the order is free', () => {
    const memory = new PhysicalMemory({ bytes: 16 * PAGE_SIZE }); // 15 free pages: no order-4 block
    expect(memory.allocFolio(4)).toBe(-1);
    expect(memory.nrFreePages).toBe(15);
  });
});

describe('seed', () => {
  // The first 1023 frames sit in small blocks that are not shuffled: fault enough THPs to
  // reach the shuffled max-order blocks.
  function faultPfns(seed: number | undefined): number[] {
    const memory = new PhysicalMemory({ bytes: SMALL, ...(seed === undefined ? {} : { seed }) });
    const mm = new AddressSpace(memory);
    const addr = mm.mmap(16 * MiB, { thp: true });
    const out: number[] = [];
    for (let off = 0; off < 16 * MiB; off += 2 * MiB) {
      mm.write(addr + off, Uint8Array.of(1));
      out.push(mm.lookupPfn(addr + off));
    }
    const small = mm.mmap(8 * PAGE_SIZE);
    for (let k = 0; k < 8; k++) {
      mm.write(small + k * PAGE_SIZE, Uint8Array.of(1));
      out.push(mm.lookupPfn(small + k * PAGE_SIZE));
    }
    return out;
  }

  it('gives the same PFNs for the same fault sequence when the seed is the same', () => {
    expect(faultPfns(7)).toEqual(faultPfns(7));
    expect(faultPfns(undefined)).toEqual(faultPfns(undefined));
  });

  it('gives different PFNs when the seed differs', () => {
    expect(faultPfns(7)).not.toEqual(faultPfns(8));
    expect(faultPfns(7)).not.toEqual(faultPfns(undefined));
  });
});

describe('readPhys', () => {
  it('reads zeros from frames never written, allocated or not', () => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    const head = memory.allocFolio(0);
    expect(memory.readPhys(head * PAGE_SIZE, PAGE_SIZE)).toEqual(new Uint8Array(PAGE_SIZE));
    expect(memory.readPhys(SMALL - 100, 100)).toEqual(new Uint8Array(100));
    expect(memory.store.materialised).toBe(0);
  });

  it.each([
    ['physAddr -1', -1, 1],
    ['physAddr 1.5', 1.5, 1],
    ['length -1', 0, -1],
    ['length 0.5', 0, 0.5],
    ['range runs 1 byte past RAM', SMALL - 10, 11],
    ['physAddr past RAM', SMALL + PAGE_SIZE, 1],
    ['physAddr 2^53', 2 ** 53, 1],
  ])('throws EINVAL when %s', (_label, addr, length) => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    expectCode(() => memory.readPhys(addr, length), 'EINVAL');
  });

  it('reads 0 bytes at the very end of RAM', () => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    expect(memory.readPhys(SMALL, 0)).toEqual(new Uint8Array(0));
  });
});

describe('writePhys', () => {
  it.each([
    ['within one page', 100, 200],
    ['across one page boundary', PAGE_SIZE - 10, 20],
    ['across three pages', 3 * PAGE_SIZE - 1, 2 * PAGE_SIZE + 2],
    ['up to the last byte of RAM', SMALL - 5000, 5000],
  ])('round-trips through readPhys %s (addr %i, %i bytes)', (_label, addr, length) => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    const data = pattern(length, 3);
    memory.writePhys(addr, data);
    expect(memory.readPhys(addr, length)).toEqual(data);
    // the bytes around the write still read as zeros
    if (addr > 0) expect(memory.readPhys(addr - 1, 1)).toEqual(new Uint8Array(1));
    if (addr + length < SMALL) expect(memory.readPhys(addr + length, 1)).toEqual(new Uint8Array(1));
  });

  it('materialises only the pages it touches', () => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    memory.writePhys(PAGE_SIZE - 1, Uint8Array.of(1, 2));
    expect(memory.store.materialised).toBe(2);
  });

  it('throws EINVAL and writes nothing when the range runs past RAM', () => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    expectCode(() => memory.writePhys(SMALL - 1, Uint8Array.of(1, 2)), 'EINVAL');
    expect(memory.readPhys(SMALL - 1, 1)).toEqual(new Uint8Array(1));
    expect(memory.store.materialised).toBe(0);
  });

  it.each([['a number array', [1, 2]], ['a string', 'ab'], ['an Int8Array', new Int8Array(2)]])('throws EINVAL when bytes is %s', (_l, bytes) => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    expectCode(() => memory.writePhys(0, bytes as never), 'EINVAL');
  });

  it('reads zeros again once the frame is freed and reallocated', () => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    const pfn = memory.allocFolio(0);
    memory.writePhys(pfn * PAGE_SIZE, Uint8Array.of(9, 9, 9));
    memory.folioPutRefs(pfn, 1);
    expect(memory.readPhys(pfn * PAGE_SIZE, 3)).toEqual(new Uint8Array(3));
    expect(memory.store.materialised).toBe(0);
  });
});

describe('injectAllocFailure', () => {
  it('makes the next fault fail with ENOMEM and leaves the entry empty', () => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    const mm = new AddressSpace(memory);
    const addr = mm.mmap(4 * PAGE_SIZE);
    const free = memory.nrFreePages;
    memory.injectAllocFailure(0);
    expectCode(() => mm.write(addr, Uint8Array.of(1)), 'ENOMEM');
    expect(mm.lookupPfn(addr)).toBe(-1);
    expect(memory.nrFreePages).toBe(free);
    // one-shot: the retry succeeds
    mm.write(addr, Uint8Array.of(1));
    expect(mm.read(addr, 1)).toEqual(Uint8Array.of(1));
  });

  it('fails the nth allocation from now when nth > 0', () => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    const mm = new AddressSpace(memory);
    const addr = mm.mmap(4 * PAGE_SIZE);
    memory.injectAllocFailure(2);
    mm.write(addr, Uint8Array.of(1));
    mm.write(addr + PAGE_SIZE, Uint8Array.of(1));
    expectCode(() => mm.write(addr + 2 * PAGE_SIZE, Uint8Array.of(1)), 'ENOMEM');
    expect(mm.lookupPfn(addr + 2 * PAGE_SIZE)).toBe(-1);
  });

  it.each([[-1], [0.5], [2 ** 31]])('throws EINVAL when nth is %s', (nth) => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    expectCode(() => memory.injectAllocFailure(nth), 'EINVAL');
  });
});

describe('isDirty', () => {
  it.each([[-1], [SMALL / PAGE_SIZE], [1.5]])('throws EINVAL for pfn %s', (pfn) => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    expectCode(() => memory.isDirty(pfn), 'EINVAL');
  });

  it('is false for a fresh page', () => {
    const memory = new PhysicalMemory({ bytes: SMALL });
    expect(memory.isDirty(memory.allocFolio(0))).toBe(false);
  });
});

describe('free-list placement (__free_one_page)', () => {
  // 1024 frames, unseeded: frames 1..15 allocated one by one in PFN order
  function fifteen(): PhysicalMemory {
    const memory = new PhysicalMemory({ bytes: 1024 * PAGE_SIZE });
    for (let want = 1; want <= 15; want++) expect(memory.allocFolio(0)).toBe(want);
    return memory;
  }

  it('puts a freed block at the tail when its buddy one order up is free (buddy_merge_likely)', () => {
    const memory = fifteen();
    memory.folioPutRefs(14, 1);
    memory.folioPutRefs(15, 1); // 14..15 merge into one order-1 block
    memory.folioPutRefs(3, 1); // its higher buddy (0..1) is not free: at the head
    memory.folioPutRefs(13, 1); // 12 is busy, but 14..15 (the buddy of 12..13) is free: at the tail
    expect(memory.allocFolio(0)).toBe(3);
    expect(memory.allocFolio(0)).toBe(13);
  });

  it('puts a freed block at the head otherwise, so it is handed out next (LIFO)', () => {
    const memory = fifteen();
    memory.folioPutRefs(3, 1);
    memory.folioPutRefs(5, 1); // 4 busy, higher buddy 6..7 busy: at the head
    expect(memory.allocFolio(0)).toBe(5);
    expect(memory.allocFolio(0)).toBe(3);
  });
});
