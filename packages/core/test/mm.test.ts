// AddressSpace: mmap, CPU read/write with faults (mm/memory.c), munmap (mm/mmap.c,
// zap_pte_range) and anonymous THP (mm/huge_memory.c).

import { afterEach, describe, expect, it } from 'vitest';
import {
  AddressSpace, FOLL_PIN, HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE, PG_LIVE, PhysicalMemory, PTE_PMD, TASK_SIZE_MAX,
  folioRefCount, leakReport, pageMapcount, pinUserPages, unpinUserPages,
} from '../src/index.js';
import { expectCode, firstDiff, MiB, pattern, setup } from './helpers.js';

const PMD = HPAGE_PMD_NR * PAGE_SIZE;

/** The PTE_* bits of the entry mapping `addr`. */
function pteAt(mm: AddressSpace, addr: number): number {
  const vma = mm.findVma(addr)!;
  return vma.pte[Math.floor((addr - vma.start) / PAGE_SIZE)]!;
}

describe('AddressSpace', () => {
  it.each([
    ['a plain object', {}],
    ['undefined', undefined],
  ])('throws EINVAL when memory is %s', (_label, memory) => {
    expectCode(() => new AddressSpace(memory as never), 'EINVAL');
  });

  it.each([
    ['rlimitMemlock: -1', { rlimitMemlock: -1 }],
    ['rlimitMemlock: 1.5', { rlimitMemlock: 1.5 }],
    ['rlimitMemlock: NaN', { rlimitMemlock: NaN }],
    ['capIpcLock: 1', { capIpcLock: 1 }],
    ['user: null', { user: null }],
    ['user: 5', { user: 5 }],
    ['user: {} (no lockedVm)', { user: {} }],
    ['user: { lockedVm: -1 }', { user: { lockedVm: -1 } }],
  ])('throws EINVAL when %s', (_label, opts) => {
    const memory = new PhysicalMemory({ bytes: 16 * PAGE_SIZE });
    expectCode(() => new AddressSpace(memory, opts as never), 'EINVAL');
  });

  it('defaults to an 8 MiB memlock limit, no CAP_IPC_LOCK and a fresh user', () => {
    const { mm } = setup();
    expect(mm.rlimitMemlock).toBe(8 * MiB);
    expect(mm.memlockLimitPages).toBe(2048);
    expect(mm.capIpcLock).toBe(false);
    expect(mm.user).toEqual({ lockedVm: 0 });
    expect(mm.pinnedVm).toBe(0);
  });

  it('accepts an unlimited rlimitMemlock', () => {
    const { memory } = setup();
    expect(new AddressSpace(memory, { rlimitMemlock: Infinity }).memlockLimitPages).toBe(Infinity);
  });
});

describe('mmap', () => {
  it.each([1, 100, PAGE_SIZE, PAGE_SIZE + 1, 3 * MiB])('returns a non-zero page-aligned address for length %i, rounded up to pages', (length) => {
    const { mm } = setup();
    const addr = mm.mmap(length);
    expect(addr).toBeGreaterThan(0);
    expect(addr % PAGE_SIZE).toBe(0);
    const vma = mm.findVma(addr)!;
    expect(vma.start).toBe(addr);
    expect(vma.end - vma.start).toBe(Math.ceil(length / PAGE_SIZE) * PAGE_SIZE);
    expect(vma.prot).toBe('rw');
    expect(vma.backing).toBe('anon');
    expect(vma.shared).toBe(false);
  });

  it('places mappings without overlap', () => {
    const { mm } = setup();
    const ranges = [5, 1, 600, 2].map((n) => {
      const a = mm.mmap(n * PAGE_SIZE);
      return [a, a + n * PAGE_SIZE] as const;
    });
    ranges.sort((x, y) => x[0] - y[0]);
    for (let k = 1; k < ranges.length; k++) expect(ranges[k]![0]).toBeGreaterThanOrEqual(ranges[k - 1]![1]);
  });

  it('aligns a thp mapping of 2 MiB or more to 2 MiB', () => {
    const { mm } = setup();
    mm.mmap(PAGE_SIZE);
    const addr = mm.mmap(3 * MiB, { thp: true });
    expect(addr % PMD).toBe(0);
  });

  it.each([
    ['length 0', 0, {}],
    ['length -4096', -4096, {}],
    ['length 1.5', 1.5, {}],
    ["prot 'w'", PAGE_SIZE, { prot: 'w' }],
    ["prot 'wx'", PAGE_SIZE, { prot: 'wx' }],
    ["prot ''", PAGE_SIZE, { prot: '' }],
    ["prot 'constructor'", PAGE_SIZE, { prot: 'constructor' }],
    ["prot 'toString'", PAGE_SIZE, { prot: 'toString' }],
    ["backing 'swap'", PAGE_SIZE, { backing: 'swap' }],
    ["shared 'yes'", PAGE_SIZE, { shared: 'yes' }],
    ['thp 1', PAGE_SIZE, { thp: 1 }],
    ["populate 'true'", PAGE_SIZE, { populate: 'true' }],
    ["hugetlb '4M'", PAGE_SIZE, { hugetlb: '4M' }],
  ])('throws EINVAL when %s', (_label, length, opts) => {
    const { mm } = setup();
    expectCode(() => mm.mmap(length, opts as never), 'EINVAL');
    expect(mm.vmas).toHaveLength(0);
  });

  it.each([
    ["thp over a file", { backing: 'file', thp: true }],
  ])('throws EOPNOTSUPP for %s (not modelled yet)', (_label, opts) => {
    const { mm } = setup();
    expectCode(() => mm.mmap(PMD, opts as never), 'EOPNOTSUPP');
    expect(mm.vmas).toHaveLength(0);
  });

  it('throws ENOMEM when no gap of that size is left', () => {
    const { mm } = setup();
    expectCode(() => mm.mmap(TASK_SIZE_MAX), 'ENOMEM');
    expect(mm.vmas).toHaveLength(0);
  });

  it('throws ENOMEM, not a RangeError, when the page table cannot be allocated (32 TiB)', () => {
    const { mm } = setup();
    expectCode(() => mm.mmap(2 ** 45), 'ENOMEM');
    expect(mm.vmas).toHaveLength(0);
  });

  it('populates a writable private mapping with pages of its own', () => {
    const { memory, mm } = setup();
    const free = memory.nrFreePages;
    const addr = mm.mmap(8 * PAGE_SIZE, { populate: true });
    expect(memory.nrFreePages).toBe(free - 8);
    for (let k = 0; k < 8; k++) {
      const pfn = mm.lookupPfn(addr + k * PAGE_SIZE);
      expect(pfn).toBeGreaterThan(0);
      expect(pageMapcount(memory, pfn)).toBe(1);
      expect(folioRefCount(memory, pfn)).toBe(1);
    }
  });

  it('populates a read-only private mapping with the zero page', () => {
    const { memory, mm } = setup();
    const free = memory.nrFreePages;
    const addr = mm.mmap(4 * PAGE_SIZE, { prot: 'r', populate: true });
    expect(memory.nrFreePages).toBe(free);
    for (let k = 0; k < 4; k++) expect(mm.lookupPfn(addr + k * PAGE_SIZE)).toBe(memory.zeroPfn);
  });

  it('still maps when populate runs out of memory', () => {
    const { memory, mm } = setup();
    memory.injectAllocFailure(2);
    const addr = mm.mmap(4 * PAGE_SIZE, { populate: true });
    expect(mm.lookupPfn(addr)).toBeGreaterThan(0);
    expect(mm.lookupPfn(addr + 2 * PAGE_SIZE)).toBe(-1);
    mm.write(addr + 3 * PAGE_SIZE, Uint8Array.of(1));
  });
});

describe('read', () => {
  it('maps the zero page when reading untouched private memory', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(4 * PAGE_SIZE);
    const free = memory.nrFreePages;
    expect(mm.lookupPfn(addr)).toBe(-1);
    expect(mm.read(addr + 10, PAGE_SIZE)).toEqual(new Uint8Array(PAGE_SIZE));
    expect(mm.lookupPfn(addr)).toBe(memory.zeroPfn);
    expect(mm.lookupPfn(addr + PAGE_SIZE)).toBe(memory.zeroPfn);
    expect(memory.nrFreePages).toBe(free);
    expect(memory.refcount[memory.zeroPfn]).toBe(1);
  });

  it('allocates a page of its own when reading untouched shared memory', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { shared: true });
    expect(mm.read(addr, 4)).toEqual(new Uint8Array(4));
    const pfn = mm.lookupPfn(addr);
    expect(pfn).toBeGreaterThan(0);
    expect(pageMapcount(memory, pfn)).toBe(1);
  });

  it('reads a read-only mapping', () => {
    const { mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { prot: 'r' });
    expect(mm.read(addr, 8)).toEqual(new Uint8Array(8));
  });

  it.each([
    ['below the mapping', -PAGE_SIZE, 1],
    ['just past the end', 4 * PAGE_SIZE, 1],
    ['straddling the end', 4 * PAGE_SIZE - 2, 4],
  ])('throws EFAULT %s', (_label, off, length) => {
    const { mm } = setup();
    const addr = mm.mmap(4 * PAGE_SIZE);
    expectCode(() => mm.read(addr + off, length), 'EFAULT');
  });

  it('throws EFAULT past the top of user space', () => {
    const { mm } = setup();
    expectCode(() => mm.read(TASK_SIZE_MAX - 1, 2), 'EFAULT');
  });

  it.each([
    ['addr -1', -1, 1],
    ['addr 1.5', 1.5, 1],
    ['length -1', 0x10000, -1],
    ['length 0.5', 0x10000, 0.5],
  ])('throws EINVAL when %s', (_label, addr, length) => {
    const { mm } = setup();
    expectCode(() => mm.read(addr, length), 'EINVAL');
  });
});

describe('write', () => {
  it.each([
    ['within a page', 5, 100],
    ['across a page boundary', PAGE_SIZE - 3, 10],
    ['over three pages', PAGE_SIZE - 1, 2 * PAGE_SIZE + 2],
  ])('round-trips through read %s (offset %i, %i bytes)', (_label, off, length) => {
    const { memory, mm } = setup();
    const addr = mm.mmap(4 * PAGE_SIZE);
    const data = pattern(length, 1);
    mm.write(addr + off, data);
    expect(mm.read(addr + off, length)).toEqual(data);
    expect(mm.read(addr + off - 1, 1)).toEqual(new Uint8Array(1));
    // the bytes land in the frames the page table names
    const pfn = mm.lookupPfn(addr + off);
    expect(memory.readPhys(pfn * PAGE_SIZE + off, 1)).toEqual(data.subarray(0, 1));
  });

  it('writes across two adjacent mappings', () => {
    const { mm } = setup();
    const hi = mm.mmap(PAGE_SIZE);
    const lo = mm.mmap(PAGE_SIZE);
    expect(lo + PAGE_SIZE).toBe(hi);
    const data = pattern(100, 7);
    mm.write(hi - 50, data);
    expect(mm.read(hi - 50, 100)).toEqual(data);
  });

  it('copies the zero page on write (COW) and leaves the zero page untouched', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(2 * PAGE_SIZE);
    mm.read(addr, 2 * PAGE_SIZE);
    expect(mm.lookupPfn(addr)).toBe(memory.zeroPfn);
    mm.write(addr + 1, Uint8Array.of(42));
    const pfn = mm.lookupPfn(addr);
    expect(pfn).not.toBe(memory.zeroPfn);
    expect(memory.flags[pfn]! & PG_LIVE).toBe(PG_LIVE);
    expect(pageMapcount(memory, pfn)).toBe(1);
    expect(folioRefCount(memory, pfn)).toBe(1);
    expect(mm.read(addr, 3)).toEqual(Uint8Array.of(0, 42, 0));
    expect(mm.lookupPfn(addr + PAGE_SIZE)).toBe(memory.zeroPfn);
    expect(memory.readPhys(0, PAGE_SIZE)).toEqual(new Uint8Array(PAGE_SIZE));
  });

  it.each(['r', 'rx'] as const)("throws EFAULT when writing a '%s' mapping", (prot) => {
    const { mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { prot });
    expectCode(() => mm.write(addr, Uint8Array.of(1)), 'EFAULT');
    expect(mm.lookupPfn(addr)).toBe(-1);
  });

  it('throws EFAULT outside any mapping', () => {
    const { mm } = setup();
    expectCode(() => mm.write(0x10000, Uint8Array.of(1)), 'EFAULT');
  });

  it('writes nothing when the range runs into a hole', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(3 * PAGE_SIZE);
    mm.munmap(addr + 2 * PAGE_SIZE, PAGE_SIZE);
    const free = memory.nrFreePages;
    expectCode(() => mm.write(addr + PAGE_SIZE, new Uint8Array(2 * PAGE_SIZE).fill(1)), 'EFAULT');
    expect(mm.lookupPfn(addr + PAGE_SIZE)).toBe(-1);
    expect(memory.nrFreePages).toBe(free);
  });

  it('throws EFAULT when a write runs into a read-only mapping and writes nothing', () => {
    const { mm } = setup();
    const hi = mm.mmap(PAGE_SIZE, { prot: 'r' });
    const lo = mm.mmap(PAGE_SIZE);
    expect(lo + PAGE_SIZE).toBe(hi);
    expectCode(() => mm.write(hi - 2, Uint8Array.of(1, 2, 3, 4)), 'EFAULT');
    expect(mm.lookupPfn(lo)).toBe(-1);
  });

  it.each([
    ['addr -1', -1, Uint8Array.of(1)],
    ['addr 0.5', 0.5, Uint8Array.of(1)],
    ['bytes a plain array', 0x10000, [1]],
    ['bytes a Uint16Array', 0x10000, Uint16Array.of(1)],
  ])('throws EINVAL when %s', (_label, addr, bytes) => {
    const { mm } = setup();
    mm.mmap(PAGE_SIZE);
    expectCode(() => mm.write(addr, bytes as never), 'EINVAL');
  });
});

describe('munmap', () => {
  let memory: PhysicalMemory;
  afterEach(() => {
    expect(leakReport(memory)).toEqual([]);
  });

  it('splits the VMA when unmapping its middle, keeping both sides and their bytes', () => {
    let mm: AddressSpace;
    ({ memory, mm } = setup());
    const addr = mm.mmap(5 * PAGE_SIZE);
    mm.write(addr, pattern(5 * PAGE_SIZE));
    mm.munmap(addr + PAGE_SIZE, 2 * PAGE_SIZE);
    expect(mm.vmas.map((v) => [v.start - addr, v.end - addr])).toEqual([
      [0, PAGE_SIZE],
      [3 * PAGE_SIZE, 5 * PAGE_SIZE],
    ]);
    expectCode(() => mm.read(addr + PAGE_SIZE, 1), 'EFAULT');
    expectCode(() => mm.read(addr + 3 * PAGE_SIZE - 1, 1), 'EFAULT');
    expect(mm.read(addr, PAGE_SIZE)).toEqual(pattern(5 * PAGE_SIZE).subarray(0, PAGE_SIZE));
    expect(mm.read(addr + 3 * PAGE_SIZE, 2 * PAGE_SIZE)).toEqual(pattern(5 * PAGE_SIZE).subarray(3 * PAGE_SIZE));
  });

  it('trims the head or tail of a VMA', () => {
    let mm: AddressSpace;
    ({ memory, mm } = setup());
    const addr = mm.mmap(4 * PAGE_SIZE);
    mm.munmap(addr, PAGE_SIZE);
    mm.munmap(addr + 3 * PAGE_SIZE, PAGE_SIZE);
    expect(mm.vmas.map((v) => [v.start - addr, v.end - addr])).toEqual([[PAGE_SIZE, 3 * PAGE_SIZE]]);
  });

  it('unmaps several VMAs and the holes between them at once', () => {
    let mm: AddressSpace;
    ({ memory, mm } = setup());
    const free = memory.nrFreePages;
    const a = mm.mmap(PAGE_SIZE);
    const b = mm.mmap(PAGE_SIZE);
    const c = mm.mmap(PAGE_SIZE);
    for (const x of [a, b, c]) mm.write(x, Uint8Array.of(1));
    mm.munmap(b, PAGE_SIZE);
    mm.munmap(c, 3 * PAGE_SIZE);
    expect(mm.vmas).toHaveLength(0);
    expect(memory.nrFreePages).toBe(free);
  });

  it('rounds the length up to whole pages', () => {
    let mm: AddressSpace;
    ({ memory, mm } = setup());
    const addr = mm.mmap(3 * PAGE_SIZE);
    mm.munmap(addr, PAGE_SIZE + 1);
    expect(mm.findVma(addr + PAGE_SIZE)).toBeUndefined();
    expect(mm.findVma(addr + 2 * PAGE_SIZE)).toBeDefined();
  });

  it('ignores ranges with no mapping', () => {
    let mm: AddressSpace;
    ({ memory, mm } = setup());
    mm.munmap(0x10000, 16 * PAGE_SIZE);
    expect(mm.vmas).toHaveLength(0);
  });

  it('frees the pages it unmaps (nrFreePages and buddyinfo restored)', () => {
    let mm: AddressSpace;
    ({ memory, mm } = setup());
    const free = memory.nrFreePages;
    const buddy = memory.buddyinfo();
    const addr = mm.mmap(64 * PAGE_SIZE);
    mm.write(addr, pattern(64 * PAGE_SIZE));
    expect(memory.nrFreePages).toBe(free - 64);
    expect(memory.store.materialised).toBe(64);
    mm.munmap(addr, 64 * PAGE_SIZE);
    expect(memory.nrFreePages).toBe(free);
    expect(memory.buddyinfo()).toEqual(buddy);
    expect(memory.store.materialised).toBe(0);
  });

  it('keeps a pinned page allocated until it is unpinned, then frees it', () => {
    let mm: AddressSpace;
    ({ memory, mm } = setup());
    const free = memory.nrFreePages;
    const addr = mm.mmap(2 * PAGE_SIZE);
    mm.write(addr, Uint8Array.of(7));
    const pages = new Uint32Array(1);
    expect(pinUserPages(mm, addr, 1, 0, pages)).toBe(1);
    const pfn = pages[0]!;
    mm.munmap(addr, 2 * PAGE_SIZE);
    expect(memory.flags[pfn]! & PG_LIVE).toBe(PG_LIVE);
    expect(pageMapcount(memory, pfn)).toBe(0);
    expect(folioRefCount(memory, pfn)).toBe(1024);
    expect(memory.nrFreePages).toBe(free - 1);
    // a device can still reach the bytes
    expect(memory.readPhys(pfn * PAGE_SIZE, 1)).toEqual(Uint8Array.of(7));
    unpinUserPages(memory, pages, 1);
    expect(memory.flags[pfn]! & PG_LIVE).toBe(0);
    expect(memory.nrFreePages).toBe(free);
  });

  it.each([
    ['addr unaligned', 1, PAGE_SIZE],
    ['addr -4096', -PAGE_SIZE, PAGE_SIZE],
    ['length 0', 0, 0],
    ['length -1', 0, -1],
    ['length 1.5', 0, 1.5],
  ])('throws EINVAL when %s and unmaps nothing', (_label, off, length) => {
    let mm: AddressSpace;
    ({ memory, mm } = setup());
    const addr = mm.mmap(PAGE_SIZE);
    expectCode(() => mm.munmap(off < 0 ? off : addr + off, length), 'EINVAL');
    expect(mm.vmas).toHaveLength(1);
  });
});

describe('THP', () => {
  function thpSetup(pmds = 2) {
    const { memory, mm } = setup();
    const addr = mm.mmap(pmds * PMD, { thp: true });
    return { memory, mm, addr };
  }

  it('backs an aligned 2 MiB of a thp mapping with one order-9 folio, refcount 1, each page mapped once', () => {
    const { memory, mm, addr } = thpSetup();
    const free = memory.nrFreePages;
    mm.write(addr + 12345, Uint8Array.of(1));
    const head = mm.lookupPfn(addr);
    expect(memory.order[head]).toBe(HPAGE_PMD_ORDER);
    expect(head % HPAGE_PMD_NR).toBe(0);
    expect(memory.refcount[head]).toBe(1);
    expect(memory.nrFreePages).toBe(free - HPAGE_PMD_NR);
    const vma = mm.findVma(addr)!;
    for (let k = 0; k < HPAGE_PMD_NR; k++) {
      expect(mm.lookupPfn(addr + k * PAGE_SIZE)).toBe(head + k);
      expect(memory.mapcount[head + k]).toBe(1);
      expect(vma.pte[k]! & PTE_PMD).toBe(PTE_PMD);
    }
    // the second 2 MiB is not touched yet
    expect(mm.lookupPfn(addr + PMD)).toBe(-1);
  });

  it('populates each aligned 2 MiB with one folio', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(2 * PMD, { thp: true, populate: true });
    const a = mm.lookupPfn(addr);
    const b = mm.lookupPfn(addr + PMD);
    expect(memory.order[a]).toBe(HPAGE_PMD_ORDER);
    expect(memory.order[b]).toBe(HPAGE_PMD_ORDER);
    expect(a).not.toBe(b);
  });

  it('falls back to small pages where the 2 MiB around the fault leaves the VMA', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PMD + 4 * PAGE_SIZE, { thp: true });
    mm.write(addr + PMD, Uint8Array.of(1));
    expect(memory.order[mm.lookupPfn(addr + PMD)]).toBe(0);
  });

  it('falls back to small pages when no order-9 block is free', () => {
    const { memory, mm, addr } = thpSetup(1);
    while (memory.allocFolio(HPAGE_PMD_ORDER) >= 0);
    mm.write(addr, Uint8Array.of(1));
    expect(memory.order[mm.lookupPfn(addr)]).toBe(0);
  });

  it('replaces zero-page entries with one folio on the first write', () => {
    const { memory, mm, addr } = thpSetup(1);
    mm.read(addr, PMD);
    mm.write(addr + 5 * PAGE_SIZE, Uint8Array.of(9));
    const head = mm.lookupPfn(addr);
    expect(memory.order[head]).toBe(HPAGE_PMD_ORDER);
    expect(mm.read(addr + 5 * PAGE_SIZE, 1)).toEqual(Uint8Array.of(9));
    expect(memory.mapcount[memory.zeroPfn]).toBe(0);
  });

  it.each([
    ['the first page', 0, 1],
    ['the last page', HPAGE_PMD_NR - 1, 1],
    ['a middle page', 100, 1],
    ['the first half', 0, HPAGE_PMD_NR / 2],
    ['the second half', HPAGE_PMD_NR / 2, HPAGE_PMD_NR / 2],
  ])('splits the PMD and keeps the folio when unmapping %s (page %i, %i pages)', (_label, first, n) => {
    const { memory, mm, addr } = thpSetup();
    const free = memory.nrFreePages;
    const data = pattern(2 * PMD, 5);
    mm.write(addr, data);
    const head = mm.lookupPfn(addr);
    const other = mm.lookupPfn(addr + PMD);
    mm.munmap(addr + first * PAGE_SIZE, n * PAGE_SIZE);
    // still one order-9 folio, holding one reference per remaining page entry
    expect(memory.order[head]).toBe(HPAGE_PMD_ORDER);
    expect(memory.flags[head]! & PG_LIVE).toBe(PG_LIVE);
    expect(memory.refcount[head]).toBe(HPAGE_PMD_NR - n);
    expect(memory.refcount[memory.zeroPfn]).toBe(1);
    for (let k = 0; k < HPAGE_PMD_NR; k++) {
      const unmapped = k >= first && k < first + n;
      expect(memory.mapcount[head + k]).toBe(unmapped ? 0 : 1);
      if (unmapped) expect(mm.lookupPfn(addr + k * PAGE_SIZE)).toBe(-1);
      else {
        expect(mm.lookupPfn(addr + k * PAGE_SIZE)).toBe(head + k);
        expect(pteAt(mm, addr + k * PAGE_SIZE) & PTE_PMD).toBe(0);
      }
    }
    // the other 2 MiB keeps its PMD mapping
    expect(memory.refcount[other]).toBe(1);
    expect(pteAt(mm, addr + PMD) & PTE_PMD).toBe(PTE_PMD);
    // the bytes left mapped are intact
    if (first > 0) expect(firstDiff(mm.read(addr, first * PAGE_SIZE), data.subarray(0, first * PAGE_SIZE))).toBe(-1);
    expect(firstDiff(mm.read(addr + (first + n) * PAGE_SIZE, PMD), data.subarray((first + n) * PAGE_SIZE, (first + n) * PAGE_SIZE + PMD))).toBe(-1);
    // unmapping the rest frees the folio
    mm.munmap(addr, 2 * PMD);
    expect(memory.flags[head]! & PG_LIVE).toBe(0);
    expect(memory.nrFreePages).toBe(free);
  });

  it('frees the folio page by page once every page is unmapped', () => {
    const { memory, mm, addr } = thpSetup(1);
    const free = memory.nrFreePages;
    mm.write(addr, Uint8Array.of(1));
    const head = mm.lookupPfn(addr);
    for (let k = HPAGE_PMD_NR - 1; k > 0; k--) mm.munmap(addr + k * PAGE_SIZE, PAGE_SIZE);
    expect(memory.refcount[head]).toBe(1);
    expect(memory.flags[head]! & PG_LIVE).toBe(PG_LIVE);
    mm.munmap(addr, PAGE_SIZE);
    expect(memory.flags[head]! & PG_LIVE).toBe(0);
    expect(memory.nrFreePages).toBe(free);
  });

  it('frees the folio when the whole PMD is unmapped at once', () => {
    const { memory, mm, addr } = thpSetup(1);
    const free = memory.nrFreePages;
    mm.write(addr, Uint8Array.of(1));
    mm.munmap(addr, PMD);
    expect(memory.nrFreePages).toBe(free);
  });

  it('keeps a pinned THP folio alive after munmap until the pin is dropped', () => {
    const { memory, mm, addr } = thpSetup(1);
    const free = memory.nrFreePages;
    mm.write(addr, Uint8Array.of(1));
    const pages = new Uint32Array(3);
    expect(pinUserPages(mm, addr + 10 * PAGE_SIZE, 3, FOLL_PIN, pages)).toBe(3);
    mm.munmap(addr, PMD);
    const head = memory.folioHead(pages[0]!);
    expect(memory.refcount[head]).toBe(3);
    expect(memory.pins[head]).toBe(3);
    unpinUserPages(memory, pages, 3);
    expect(memory.nrFreePages).toBe(free);
  });
});

describe('address-space limits', () => {
  it('throws ENOMEM for an mmap longer than user space (get_unmapped_area)', () => {
    const { mm } = setup();
    expectCode(() => mm.mmap(TASK_SIZE_MAX + 1), 'ENOMEM');
    expect(mm.vmas).toEqual([]);
  });

  it('throws EINVAL for a munmap range running past the top of user space (do_vmi_munmap)', () => {
    const { mm } = setup();
    expectCode(() => mm.munmap(TASK_SIZE_MAX - PAGE_SIZE, 2 * PAGE_SIZE), 'EINVAL');
  });
});
