// The huge zero folio (mm/huge_memory.c): a read fault on an empty 2 MiB of a THP mapping maps
// it behind one read-only PMD. Unlike the small zero page it is pinned and counted like any
// large folio (is_zero_folio() is false for it), and a write or a long-term pin replaces it.

import { describe, expect, it } from 'vitest';
import {
  FOLL_LONGTERM, FOLL_WRITE, HPAGE_PMD_NR, PAGE_SIZE, folioPinCount, folioRefCount, leakReport, pinUserPages,
  unpinUserPages,
} from '../src/index.js';
import { setup } from './helpers.js';

const PMD = HPAGE_PMD_NR * PAGE_SIZE;

function thpBuffer() {
  const { memory, mm } = setup();
  const addr = mm.mmap(2 * PMD, { thp: true });
  return { memory, mm, addr };
}

describe('huge zero folio', () => {
  it('backs a read of an untouched 2 MiB range, allocated once on first use', () => {
    const { memory, mm, addr } = thpBuffer();
    expect(memory.hugeZeroPfn).toBe(-1);
    expect(mm.read(addr + 5 * PAGE_SIZE, 8)).toEqual(new Uint8Array(8));
    const hz = memory.hugeZeroPfn;
    expect(hz).toBeGreaterThan(0);
    expect(memory.order[hz]).toBe(9);
    expect(mm.lookupPfn(addr)).toBe(hz);
    expect(mm.lookupPfn(addr + 511 * PAGE_SIZE)).toBe(hz + 511);
    mm.read(addr + PMD, 1);
    expect(mm.lookupPfn(addr + PMD)).toBe(hz); // the same folio for every range
    expect(folioRefCount(memory, hz)).toBe(1); // no reference per mapping
    expect(memory.mapcount[hz]).toBe(0);
  });

  it('is pinned and counted by a short-term read-only pin, as a large folio', () => {
    const { memory, mm, addr } = thpBuffer();
    mm.read(addr, 1);
    const hz = memory.hugeZeroPfn;
    const pages = new Uint32Array(16);
    expect(pinUserPages(mm, addr + PAGE_SIZE, 16, 0, pages)).toBe(16);
    expect(pages[0]).toBe(hz + 1);
    expect(folioPinCount(memory, hz)).toBe(16);
    expect(folioRefCount(memory, hz)).toBe(17);
    expect(memory.stats.nrFollPinAcquired).toBe(16);
    expect(leakReport(memory)).toHaveLength(1);
    unpinUserPages(memory, pages, 16);
    expect(folioRefCount(memory, hz)).toBe(1);
    expect(leakReport(memory)).toEqual([]);
  });

  it.each([
    ['a long-term read-only pin (gup_must_unshare)', FOLL_LONGTERM],
    ['a write pin', FOLL_WRITE],
  ])('is replaced by a THP of its own for %s', (_label, flags) => {
    const { memory, mm, addr } = thpBuffer();
    mm.read(addr, 1);
    const hz = memory.hugeZeroPfn;
    const pages = new Uint32Array(4);
    expect(pinUserPages(mm, addr, 4, flags, pages)).toBe(4);
    expect(memory.folioHead(pages[0]!)).not.toBe(hz);
    expect(memory.order[memory.folioHead(pages[0]!)]).toBe(9);
    expect(folioPinCount(memory, hz)).toBe(0);
    unpinUserPages(memory, pages, 4);
  });

  it('is replaced by a THP on a CPU write, and the bytes land there', () => {
    const { memory, mm, addr } = thpBuffer();
    mm.read(addr, 1);
    mm.write(addr + 100, Uint8Array.of(7, 8, 9));
    const pfn = mm.lookupPfn(addr);
    expect(pfn).not.toBe(memory.hugeZeroPfn);
    expect(memory.order[pfn]).toBe(9);
    expect(mm.read(addr + 99, 5)).toEqual(Uint8Array.of(0, 7, 8, 9, 0));
    expect(memory.readPhys(memory.hugeZeroPfn * PAGE_SIZE, 4096).every((b) => b === 0)).toBe(true);
  });

  it('falls back to small zero entries when part of its range is unmapped', () => {
    const { memory, mm, addr } = thpBuffer();
    mm.read(addr, 1);
    mm.munmap(addr + 10 * PAGE_SIZE, PAGE_SIZE);
    expect(mm.lookupPfn(addr)).toBe(memory.zeroPfn);
    expect(mm.lookupPfn(addr + 11 * PAGE_SIZE)).toBe(memory.zeroPfn);
    expect(mm.lookupPfn(addr + 10 * PAGE_SIZE)).toBe(-1);
  });

  it('falls back to the small zero page when no order-9 block can be had', () => {
    const { memory, mm, addr } = thpBuffer();
    memory.injectAllocFailure(0);
    mm.read(addr, 1);
    expect(memory.hugeZeroPfn).toBe(-1);
    expect(mm.lookupPfn(addr)).toBe(memory.zeroPfn);
  });
});
