// get_user_pages and the pin_user_pages family (mm/gup.c, Documentation/core-api/pin_user_pages.rst).

import { describe, expect, it } from 'vitest';
import {
  AddressSpace, FOLL_ANON, FOLL_FORCE, FOLL_GET, FOLL_LONGTERM, FOLL_NOFAULT, FOLL_PIN, FOLL_WRITE, GUP_PIN_COUNTING_BIAS,
  HPAGE_PMD_NR, PAGE_SIZE, PTE_WRITE, TASK_SIZE_MAX, PhysicalMemory,
  getUserPages, getUserPagesFast, leakReport, pinUserPages, pinUserPagesFast, putPage, unpinUserPages,
} from '../src/index.js';
import { expectCode, expectUnchanged, MiB, setup, snapshot, snapshotDiff } from './helpers.js';

const PMD = HPAGE_PMD_NR * PAGE_SIZE;
const SENTINEL = 0xffffffff;

function pageArray(n: number): Uint32Array {
  return new Uint32Array(n).fill(SENTINEL);
}

function sum(a: Int32Array): number {
  let s = 0;
  for (const v of a) s += v;
  return s;
}

describe('pinUserPages', () => {
  it('adds GUP_PIN_COUNTING_BIAS to a small folio refcount per pin', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(4 * PAGE_SIZE, { populate: true });
    const pages = pageArray(4);
    expect(pinUserPages(mm, addr, 4, 0, pages)).toBe(4);
    for (let k = 0; k < 4; k++) {
      expect(pages[k]).toBe(mm.lookupPfn(addr + k * PAGE_SIZE));
      expect(memory.refcount[pages[k]!]).toBe(1 + GUP_PIN_COUNTING_BIAS);
      expect(memory.pins[pages[k]!]).toBe(1);
      expect(memory.gets[pages[k]!]).toBe(0);
    }
    expect(pinUserPages(mm, addr, 1, FOLL_WRITE, pages)).toBe(1);
    expect(memory.refcount[pages[0]!]).toBe(1 + 2 * GUP_PIN_COUNTING_BIAS);
    expect(memory.pins[pages[0]!]).toBe(2);
  });

  it.each([
    ['3 pages at the start', 0, 3],
    ['1 page in the middle', 200, 1],
    ['the whole folio', 0, HPAGE_PMD_NR],
    ['the last 7 pages', HPAGE_PMD_NR - 7, 7],
  ])('adds 1 to refcount and 1 to the pin count per page of a large folio: %s (page %i, %i pages)', (_label, first, n) => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PMD, { thp: true, populate: true });
    const head = mm.lookupPfn(addr);
    const pages = pageArray(n);
    expect(pinUserPages(mm, addr + first * PAGE_SIZE, n, FOLL_WRITE, pages)).toBe(n);
    for (let k = 0; k < n; k++) expect(pages[k]).toBe(head + first + k);
    expect(memory.refcount[head]).toBe(1 + n);
    expect(memory.pins[head]).toBe(n);
    expect(memory.stats.nrFollPinAcquired).toBe(n);
  });

  it('pins across two THP folios, each by the pages it holds', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(2 * PMD, { thp: true, populate: true });
    const a = mm.lookupPfn(addr);
    const b = mm.lookupPfn(addr + PMD);
    const pages = pageArray(6);
    expect(pinUserPages(mm, addr + PMD - 2 * PAGE_SIZE, 6, 0, pages)).toBe(6);
    expect(Array.from(pages)).toEqual([a + 510, a + 511, b, b + 1, b + 2, b + 3]);
    expect([memory.refcount[a], memory.pins[a]]).toEqual([3, 2]);
    expect([memory.refcount[b], memory.pins[b]]).toEqual([5, 4]);
  });

  it('pins a THP split into page entries as one folio', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PMD, { thp: true, populate: true });
    const head = mm.lookupPfn(addr);
    mm.munmap(addr + 511 * PAGE_SIZE, PAGE_SIZE);
    expect(memory.refcount[head]).toBe(511);
    const pages = pageArray(10);
    expect(pinUserPages(mm, addr, 10, 0, pages)).toBe(10);
    expect(memory.refcount[head]).toBe(521);
    expect(memory.pins[head]).toBe(10);
  });

  it('does not count a pin on the zero page (read of untouched private memory)', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(3 * PAGE_SIZE);
    const pages = pageArray(3);
    expect(pinUserPages(mm, addr, 3, 0, pages)).toBe(3);
    expect(Array.from(pages)).toEqual([0, 0, 0]);
    expect(memory.refcount[memory.zeroPfn]).toBe(1);
    expect(memory.pins[memory.zeroPfn]).toBe(0);
    expect(memory.stats.nrFollPinAcquired).toBe(0);
    unpinUserPages(memory, pages, 3);
    expect(memory.stats.nrFollPinReleased).toBe(0);
    expect(leakReport(memory)).toEqual([]);
  });

  it('does not return the zero page for a FOLL_LONGTERM read pin (gup_must_unshare)', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(2 * PAGE_SIZE);
    mm.read(addr, PAGE_SIZE); // page 0 maps the zero page, page 1 stays empty
    const pages = pageArray(2);
    expect(pinUserPages(mm, addr, 2, FOLL_LONGTERM, pages)).toBe(2);
    for (let k = 0; k < 2; k++) {
      expect(pages[k]).not.toBe(memory.zeroPfn);
      expect(mm.lookupPfn(addr + k * PAGE_SIZE)).toBe(pages[k]);
      expect(memory.refcount[pages[k]!]).toBe(1 + GUP_PIN_COUNTING_BIAS);
      // unshared, still read-only
      expect(mm.findVma(addr)!.pte[k]! & PTE_WRITE).toBe(0);
    }
    // a later CPU write lands in the pinned page, which the device sees
    mm.write(addr + 5, Uint8Array.of(77));
    expect(mm.lookupPfn(addr)).toBe(pages[0]);
    expect(memory.readPhys(pages[0]! * PAGE_SIZE + 5, 1)).toEqual(Uint8Array.of(77));
  });

  it("does not return the zero page for a FOLL_LONGTERM read pin of an 'r' private mapping (still a COW mapping)", () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { prot: 'r' });
    const pages = pageArray(1);
    expect(pinUserPages(mm, addr, 1, FOLL_LONGTERM, pages)).toBe(1);
    expect(pages[0]).not.toBe(memory.zeroPfn);
    expect(mm.read(addr, 4)).toEqual(new Uint8Array(4));
  });

  it('breaks COW off the zero page for FOLL_WRITE', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE);
    mm.read(addr, 1);
    const pages = pageArray(1);
    expect(pinUserPages(mm, addr, 1, FOLL_WRITE, pages)).toBe(1);
    expect(pages[0]).not.toBe(memory.zeroPfn);
    expect(mm.lookupPfn(addr)).toBe(pages[0]);
    expect(mm.findVma(addr)!.pte[0]! & PTE_WRITE).toBe(PTE_WRITE);
  });

  it.each([1, 100, PAGE_SIZE - 1])('rounds an unaligned start down to its page (offset %i)', (off) => {
    const { mm } = setup();
    const addr = mm.mmap(3 * PAGE_SIZE, { populate: true });
    const pages = pageArray(2);
    expect(pinUserPages(mm, addr + off, 2, 0, pages)).toBe(2);
    expect(Array.from(pages)).toEqual([mm.lookupPfn(addr), mm.lookupPfn(addr + PAGE_SIZE)]);
  });

  it('crosses adjacent VMAs', () => {
    const { mm } = setup();
    const hi = mm.mmap(2 * PAGE_SIZE, { populate: true });
    const lo = mm.mmap(2 * PAGE_SIZE, { populate: true });
    expect(lo + 2 * PAGE_SIZE).toBe(hi);
    const pages = pageArray(4);
    expect(pinUserPages(mm, lo, 4, FOLL_WRITE, pages)).toBe(4);
    expect(pages[3]).toBe(mm.lookupPfn(hi + PAGE_SIZE));
  });

  it.each([
    ['the range runs off the top mapping', 'top'],
    ['the range runs into a hole', 'hole'],
    ['the range runs into a read-only VMA (FOLL_WRITE)', 'ro'],
  ])('returns a short count when %s; the caller owns exactly those pins', (_label, where) => {
    const { memory, mm } = setup();
    let addr: number;
    if (where === 'top') {
      addr = mm.mmap(5 * PAGE_SIZE); // the first mapping ends at the top of the mmap area
    } else if (where === 'hole') {
      const hi = mm.mmap(PAGE_SIZE);
      mm.mmap(PAGE_SIZE);
      addr = mm.mmap(5 * PAGE_SIZE);
      mm.munmap(hi - PAGE_SIZE, PAGE_SIZE);
    } else {
      mm.mmap(PAGE_SIZE, { prot: 'r' });
      addr = mm.mmap(5 * PAGE_SIZE);
    }
    const before = snapshot(memory);
    mm.write(addr, new Uint8Array(5 * PAGE_SIZE).fill(1));
    const afterWrite = snapshot(memory);
    const pages = pageArray(8);
    expect(pinUserPages(mm, addr, 8, FOLL_WRITE, pages)).toBe(5);
    expect(Array.from(pages.subarray(5))).toEqual([SENTINEL, SENTINEL, SENTINEL]);
    for (let k = 0; k < 5; k++) expect(memory.pins[pages[k]!]).toBe(1);
    expect(sum(memory.pins)).toBe(5);
    expect(memory.stats.nrFollPinAcquired).toBe(5);
    unpinUserPages(memory, pages, 5);
    expect(leakReport(memory)).toEqual([]);
    expectUnchanged(memory, afterWrite);
    mm.munmap(addr, 5 * PAGE_SIZE);
    expect(memory.nrFreePages).toBe(before.nrFreePages);
  });

  it.each([
    ['no mapping at start', 'none', 0],
    ['start just past the top mapping', 'past', 0],
    ['FOLL_WRITE on an r mapping', 'ro', FOLL_WRITE],
    ['FOLL_WRITE on an rx mapping', 'rx', FOLL_WRITE],
    ['FOLL_NOFAULT on an untouched page', 'nofault', FOLL_NOFAULT],
  ])('throws EFAULT when the first page fails: %s', (_label, where, flags) => {
    const { memory, mm } = setup();
    let start: number;
    if (where === 'none') start = 0x10000;
    else if (where === 'past') start = mm.mmap(PAGE_SIZE) + PAGE_SIZE;
    else if (where === 'ro') start = mm.mmap(2 * PAGE_SIZE, { prot: 'r' });
    else if (where === 'rx') start = mm.mmap(2 * PAGE_SIZE, { prot: 'rx' });
    else start = mm.mmap(2 * PAGE_SIZE);
    const before = snapshot(memory);
    const pages = pageArray(2);
    expectCode(() => pinUserPages(mm, start, 2, flags, pages), 'EFAULT');
    expectUnchanged(memory, before);
    expect(Array.from(pages)).toEqual([SENTINEL, SENTINEL]);
    expect(leakReport(memory)).toEqual([]);
  });

  it('pins present pages under FOLL_NOFAULT and stops short at the first missing one', () => {
    const { mm } = setup();
    const addr = mm.mmap(4 * PAGE_SIZE);
    mm.write(addr, new Uint8Array(2 * PAGE_SIZE));
    expect(pinUserPages(mm, addr, 4, FOLL_NOFAULT | FOLL_WRITE, pageArray(4))).toBe(2);
  });

  it('writes through FOLL_FORCE into a read-only private mapping with a read-only COW copy', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { prot: 'r' });
    const pages = pageArray(1);
    expect(pinUserPages(mm, addr, 1, FOLL_WRITE | FOLL_FORCE, pages)).toBe(1);
    expect(pages[0]).not.toBe(memory.zeroPfn);
    expect(mm.findVma(addr)!.pte[0]! & PTE_WRITE).toBe(0);
    expectCode(() => mm.write(addr, Uint8Array.of(1)), 'EFAULT');
  });

  it('refuses FOLL_FORCE writes to a shared read-only mapping', () => {
    const { mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { prot: 'r', shared: true });
    expectCode(() => pinUserPages(mm, addr, 1, FOLL_WRITE | FOLL_FORCE, pageArray(1)), 'EFAULT');
  });

  it('accepts FOLL_ANON on anonymous memory', () => {
    const { mm } = setup();
    const addr = mm.mmap(PAGE_SIZE);
    expect(pinUserPages(mm, addr, 1, FOLL_ANON, pageArray(1))).toBe(1);
  });

  it.each([
    [0, 'EFAULT'],
    [1, 1],
    [3, 3],
    [4, 4],
  ] as const)('stops at an injected fault at page %i (result %s)', (k, expected) => {
    const { memory, mm } = setup();
    const addr = mm.mmap(5 * PAGE_SIZE, { populate: true });
    const before = snapshot(memory);
    mm.injectFault(addr + k * PAGE_SIZE);
    const pages = pageArray(5);
    if (expected === 'EFAULT') {
      expectCode(() => pinUserPages(mm, addr, 5, 0, pages), 'EFAULT');
      expectUnchanged(memory, before);
      return;
    }
    expect(pinUserPages(mm, addr, 5, 0, pages)).toBe(expected);
    expect(sum(memory.pins)).toBe(expected);
    unpinUserPages(memory, pages, expected);
    expectUnchanged(memory, before);
    mm.clearInjectedFaults();
    expect(pinUserPages(mm, addr, 5, 0, pages)).toBe(5);
  });

  it.each([1, 7, 300])('stops at an injected fault at page %i inside a PMD-mapped THP', (k) => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PMD, { thp: true, populate: true });
    const head = mm.lookupPfn(addr);
    mm.injectFault(addr + k * PAGE_SIZE);
    const pages = pageArray(400);
    expect(pinUserPages(mm, addr, 400, 0, pages)).toBe(k);
    expect(memory.pins[head]).toBe(k);
    expect(memory.refcount[head]).toBe(1 + k);
    expect(pages[k]).toBe(SENTINEL);
    unpinUserPages(memory, pages, k);
    expect(leakReport(memory)).toEqual([]);
  });

  it('throws the injected errno when the first page fails (EHWPOISON)', () => {
    const { mm } = setup();
    const addr = mm.mmap(2 * PAGE_SIZE);
    mm.injectFault(addr, 'EHWPOISON');
    expectCode(() => pinUserPages(mm, addr, 2, 0, pageArray(2)), 'EHWPOISON');
  });

  it('throws ENOMEM when the first page cannot be allocated, and stops short at a later one', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(4 * PAGE_SIZE);
    memory.injectAllocFailure(0);
    expectCode(() => pinUserPages(mm, addr, 4, FOLL_WRITE, pageArray(4)), 'ENOMEM');
    expect(leakReport(memory)).toEqual([]);
    memory.injectAllocFailure(2);
    const pages = pageArray(4);
    expect(pinUserPages(mm, addr, 4, FOLL_WRITE, pages)).toBe(2);
    unpinUserPages(memory, pages, 2);
    expect(leakReport(memory)).toEqual([]);
  });

  it('throws ENOMEM and changes nothing when the refcount would overflow', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { populate: true });
    const pfn = mm.lookupPfn(addr);
    memory.refcount[pfn] = 0x7fffffff - GUP_PIN_COUNTING_BIAS + 1;
    const before = snapshot(memory);
    expectCode(() => pinUserPages(mm, addr, 1, 0, pageArray(1)), 'ENOMEM');
    expectUnchanged(memory, before);
  });

  it('throws ENOMEM and changes nothing when a large folio pin count would overflow', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PMD, { thp: true, populate: true });
    const head = mm.lookupPfn(addr);
    memory.pins[head] = 0x7fffffff - 1;
    const before = snapshot(memory);
    expectCode(() => pinUserPages(mm, addr, 2, 0, pageArray(2)), 'ENOMEM');
    expectUnchanged(memory, before);
    memory.pins[head] = 0;
  });

  it('throws ENOMEM and changes nothing when a FOLL_GET reference would overflow', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { populate: true });
    const pfn = mm.lookupPfn(addr);
    memory.refcount[pfn] = 0x7fffffff;
    const before = snapshot(memory);
    expectCode(() => getUserPages(mm, addr, 1, 0, pageArray(1)), 'ENOMEM');
    expectUnchanged(memory, before);
  });

  it('returns a short count when a later page would overflow', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(3 * PAGE_SIZE, { populate: true });
    memory.refcount[mm.lookupPfn(addr + 2 * PAGE_SIZE)] = 0x7fffffff;
    const pages = pageArray(3);
    expect(pinUserPages(mm, addr, 3, 0, pages)).toBe(2);
    expect(sum(memory.pins)).toBe(2);
  });

  it('returns 0 and takes nothing for nrPages 0', () => {
    const { memory, mm } = setup();
    const before = snapshot(memory);
    expect(pinUserPages(mm, 0x10000, 0, 0, new Uint32Array(0))).toBe(0);
    expectUnchanged(memory, before);
  });

  it.each([
    ['FOLL_GET', FOLL_GET],
    ['FOLL_GET | FOLL_PIN', FOLL_GET | FOLL_PIN],
    ['unknown bit 1 << 2', 1 << 2],
    ['unknown bit 1 << 30', 1 << 30],
    ['-1', -1],
    ['1.5', 1.5],
    ['2^31', 2 ** 31],
  ])('throws EINVAL for gupFlags %s', (_label, flags) => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { populate: true });
    const before = snapshot(memory);
    expectCode(() => pinUserPages(mm, addr, 1, flags, pageArray(1)), 'EINVAL');
    expectUnchanged(memory, before);
  });

  it.each([
    ['start -4096', { start: -PAGE_SIZE }],
    ['start 0.5', { start: 0.5 }],
    ['start NaN', { start: NaN }],
    ['nrPages -1', { nrPages: -1 }],
    ['nrPages 1.5', { nrPages: 1.5 }],
    ['nrPages 2^31', { nrPages: 2 ** 31 }],
    ['pages too short (1 slot for 2)', { pages: new Uint32Array(1) }],
    ['pages an Int32Array', { pages: new Int32Array(2) }],
    ['pages a plain array', { pages: [0, 0] }],
    ['mm a PhysicalMemory', { mm: 'memory' }],
    ['mm a plain object', { mm: {} }],
    ['owner a number', { opts: { owner: 5 } }],
  ])('throws EINVAL and pins nothing when %s', (_label, bad: Record<string, unknown>) => {
    const { memory, mm } = setup();
    const addr = mm.mmap(2 * PAGE_SIZE, { populate: true });
    const before = snapshot(memory);
    const args = {
      mm: bad.mm === 'memory' ? memory : bad.mm ?? mm,
      start: bad.start ?? addr,
      nrPages: bad.nrPages ?? 2,
      pages: bad.pages ?? pageArray(2),
      opts: bad.opts,
    };
    for (const fn of [pinUserPages, pinUserPagesFast]) {
      expectCode(() => fn(args.mm as AddressSpace, args.start as number, args.nrPages as number, 0, args.pages as Uint32Array, args.opts as never), 'EINVAL');
    }
    expectUnchanged(memory, before);
  });
});

describe('getUserPages', () => {
  it('takes a FOLL_GET reference by default: refcount + 1, no pin', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(2 * PAGE_SIZE, { populate: true });
    const pages = pageArray(2);
    expect(getUserPages(mm, addr, 2, 0, pages)).toBe(2);
    for (const pfn of pages) {
      expect(memory.refcount[pfn]).toBe(2);
      expect(memory.gets[pfn]).toBe(1);
      expect(memory.pins[pfn]).toBe(0);
    }
    expect(memory.stats.nrFollPinAcquired).toBe(0);
    for (const pfn of pages) putPage(memory, pfn);
    for (const pfn of pages) expect(memory.refcount[pfn]).toBe(1);
  });

  it('takes one reference per page of a large folio', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PMD, { thp: true, populate: true });
    const head = mm.lookupPfn(addr);
    expect(getUserPages(mm, addr, 8, FOLL_GET, pageArray(8))).toBe(8);
    expect(memory.refcount[head]).toBe(9);
    expect(memory.gets[head]).toBe(8);
    expect(memory.pins[head]).toBe(0);
  });

  it('takes a reference on the zero page under FOLL_GET', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(2 * PAGE_SIZE);
    const pages = pageArray(2);
    expect(getUserPages(mm, addr, 2, 0, pages)).toBe(2);
    expect(Array.from(pages)).toEqual([0, 0]);
    expect(memory.refcount[0]).toBe(3);
    expect(memory.gets[0]).toBe(2);
    putPage(memory, 0);
    putPage(memory, 0);
    expect(memory.refcount[0]).toBe(1);
    expect(leakReport(memory)).toEqual([]);
  });

  it('pins when passed FOLL_PIN, as __get_user_pages does', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { populate: true });
    const pages = pageArray(1);
    expect(getUserPages(mm, addr, 1, FOLL_PIN | FOLL_LONGTERM, pages)).toBe(1);
    expect(memory.refcount[pages[0]!]).toBe(1 + GUP_PIN_COUNTING_BIAS);
    expect(memory.gets[pages[0]!]).toBe(0);
  });

  it.each([
    ['FOLL_GET | FOLL_PIN', FOLL_GET | FOLL_PIN],
    ['FOLL_LONGTERM without FOLL_PIN', FOLL_LONGTERM],
    ['FOLL_GET | FOLL_LONGTERM', FOLL_GET | FOLL_LONGTERM],
    ['unknown bit 1 << 4', 1 << 4],
  ])('throws EINVAL for gupFlags %s', (_label, flags) => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { populate: true });
    const before = snapshot(memory);
    expectCode(() => getUserPages(mm, addr, 1, flags, pageArray(1)), 'EINVAL');
    expectCode(() => getUserPagesFast(mm, addr, 1, flags, pageArray(1)), 'EINVAL');
    expectUnchanged(memory, before);
  });

  it('returns a short count of references when the range leaves the mapping', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(3 * PAGE_SIZE, { populate: true });
    const pages = pageArray(5);
    expect(getUserPages(mm, addr, 5, FOLL_WRITE, pages)).toBe(3);
    expect(sum(memory.gets)).toBe(3);
    for (let k = 0; k < 3; k++) putPage(memory, pages[k]!);
    expect(leakReport(memory)).toEqual([]);
  });
});

describe('pinUserPagesFast', () => {
  type Scenario = (mm: AddressSpace) => { start: number; n: number; flags: number };
  const scenarios: Array<[string, Scenario]> = [
    ['untouched memory, read', (mm) => ({ start: mm.mmap(4 * PAGE_SIZE), n: 4, flags: 0 })],
    ['untouched memory, FOLL_WRITE', (mm) => ({ start: mm.mmap(4 * PAGE_SIZE), n: 4, flags: FOLL_WRITE })],
    ['untouched memory, FOLL_LONGTERM', (mm) => ({ start: mm.mmap(4 * PAGE_SIZE), n: 4, flags: FOLL_LONGTERM })],
    ['populated memory, FOLL_WRITE', (mm) => ({ start: mm.mmap(4 * PAGE_SIZE, { populate: true }), n: 4, flags: FOLL_WRITE })],
    ['half populated, FOLL_WRITE', (mm) => {
      const a = mm.mmap(6 * PAGE_SIZE);
      mm.write(a, new Uint8Array(3 * PAGE_SIZE));
      mm.read(a + 3 * PAGE_SIZE, PAGE_SIZE);
      return { start: a + 17, n: 6, flags: FOLL_WRITE };
    }],
    ['THP, unaligned, across folios', (mm) => {
      const a = mm.mmap(2 * PMD, { thp: true, populate: true });
      return { start: a + PMD - 3 * PAGE_SIZE + 5, n: 9, flags: FOLL_WRITE };
    }],
    ['short: runs off the top mapping', (mm) => ({ start: mm.mmap(3 * PAGE_SIZE, { populate: true }), n: 5, flags: 0 })],
    ['short: populated then untouched then off the end', (mm) => {
      const a = mm.mmap(4 * PAGE_SIZE);
      mm.write(a, new Uint8Array(2 * PAGE_SIZE));
      return { start: a, n: 8, flags: FOLL_WRITE };
    }],
    ['read-only mapping, FOLL_WRITE (EFAULT)', (mm) => ({ start: mm.mmap(2 * PAGE_SIZE, { prot: 'r', populate: true }), n: 2, flags: FOLL_WRITE })],
    ['no mapping (EFAULT)', () => ({ start: 0x10000, n: 1, flags: 0 })],
  ];

  function run(fn: typeof pinUserPages, scenario: Scenario) {
    const memory = new PhysicalMemory({ bytes: 64 * MiB, seed: 3 });
    const mm = new AddressSpace(memory);
    const { start, n, flags } = scenario(mm);
    const pages = pageArray(n);
    let result: number | string;
    try {
      result = fn(mm, start, n, flags, pages);
    } catch (e) {
      result = (e as { code: string }).code;
    }
    return { result, pages: Array.from(pages), state: snapshot(memory), stats: { ...memory.stats } };
  }

  it.each(scenarios)('matches pinUserPages: %s', (_label, scenario) => {
    const fast = run(pinUserPagesFast, scenario);
    const slow = run(pinUserPages, scenario);
    expect([fast.result, fast.pages, fast.stats]).toEqual([slow.result, slow.pages, slow.stats]);
    expect(snapshotDiff(slow.state, fast.state)).toEqual([]);
  });

  it('throws EFAULT when the range runs past the top of user space', () => {
    const { mm } = setup();
    expectCode(() => pinUserPagesFast(mm, TASK_SIZE_MAX - PAGE_SIZE, 2, 0, pageArray(2)), 'EFAULT');
  });

  it('throws EFAULT, not EOVERFLOW, for a range ending past 2^53 (no 64-bit start can wrap there)', () => {
    const { mm } = setup();
    expectCode(() => pinUserPagesFast(mm, Number.MAX_SAFE_INTEGER, 2, 0, pageArray(2)), 'EFAULT');
  });

  it.each([
    ['FOLL_ANON', FOLL_ANON],
    ['FOLL_ANON | FOLL_WRITE', FOLL_ANON | FOLL_WRITE],
  ])('rejects %s, a bit gup_fast_fallback does not accept', (_l, flags) => {
    const { mm } = setup();
    const addr = mm.mmap(PAGE_SIZE);
    expectCode(() => pinUserPagesFast(mm, addr, 1, flags, pageArray(1)), 'EINVAL');
  });

  it('rejects FOLL_GET', () => {
    const { mm } = setup();
    const addr = mm.mmap(PAGE_SIZE);
    expectCode(() => pinUserPagesFast(mm, addr, 1, FOLL_GET, pageArray(1)), 'EINVAL');
  });
});

describe('getUserPagesFast', () => {
  it('takes FOLL_GET references as getUserPages does', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(3 * PAGE_SIZE);
    mm.write(addr, Uint8Array.of(1));
    const pages = pageArray(3);
    expect(getUserPagesFast(mm, addr, 3, FOLL_WRITE, pages)).toBe(3);
    expect(sum(memory.gets)).toBe(3);
    expect(sum(memory.pins)).toBe(0);
  });
});

describe('nr_foll_pin counters', () => {
  it('count one per page pinned and released, small and large folios alike', () => {
    const { memory, mm } = setup();
    const small = mm.mmap(5 * PAGE_SIZE, { populate: true });
    const huge = mm.mmap(PMD, { thp: true, populate: true });
    const untouched = mm.mmap(2 * PAGE_SIZE);
    const a = pageArray(5);
    const b = pageArray(10);
    const z = pageArray(2);
    pinUserPages(mm, small, 5, 0, a);
    pinUserPagesFast(mm, huge, 10, FOLL_WRITE, b);
    pinUserPages(mm, untouched, 2, 0, z); // zero page: not counted
    getUserPages(mm, small, 1, 0, pageArray(1)); // FOLL_GET: not counted
    expect(memory.stats.nrFollPinAcquired).toBe(15);
    expect(memory.stats.nrFollPinReleased).toBe(0);
    unpinUserPages(memory, a, 5);
    unpinUserPages(memory, b, 10);
    unpinUserPages(memory, z, 2);
    expect(memory.stats.nrFollPinReleased).toBe(15);
  });
});
