// Releasing what get_user_pages took (mm/gup.c: unpin_user_pages*, gup_put_folio; put_page)
// and folio_maybe_dma_pinned (include/linux/mm.h).

import { describe, expect, it } from 'vitest';
import {
  FOLL_WRITE, GUP_PIN_COUNTING_BIAS, HPAGE_PMD_NR, PAGE_SIZE, PG_LIVE,
  folioMaybeDmaPinned, folioPinCount, folioRefCount, getUserPages, leakReport, pageMapcount, pinUserPages, putPage,
  unpinUserPage, unpinUserPageRangeDirtyLock, unpinUserPages, unpinUserPagesDirtyLock,
} from '../src/index.js';
import { expectCode, setup, SMALL, snapshot, expectUnchanged } from './helpers.js';

const PMD = HPAGE_PMD_NR * PAGE_SIZE;
const NR = SMALL / PAGE_SIZE;

/** A memory with `n` populated small pages pinned (FOLL_WRITE) and the state before the pin. */
function pinned(n: number) {
  const { memory, mm } = setup();
  const addr = mm.mmap(n * PAGE_SIZE, { populate: true });
  const before = snapshot(memory);
  const pages = new Uint32Array(n);
  expect(pinUserPages(mm, addr, n, FOLL_WRITE, pages)).toBe(n);
  return { memory, mm, addr, pages, before };
}

/** A memory with one populated THP and `n` of its pages from `first` pinned. */
function pinnedThp(first: number, n: number) {
  const { memory, mm } = setup();
  const addr = mm.mmap(PMD, { thp: true, populate: true });
  const head = mm.lookupPfn(addr);
  const before = snapshot(memory);
  const pages = new Uint32Array(n);
  expect(pinUserPages(mm, addr + first * PAGE_SIZE, n, FOLL_WRITE, pages)).toBe(n);
  return { memory, mm, addr, head, pages, before };
}

describe('unpinUserPages', () => {
  it('restores every refcount, pin count and mapcount of small folios', () => {
    const { memory, pages, before } = pinned(6);
    unpinUserPages(memory, pages, 6);
    expectUnchanged(memory, before);
    expect(leakReport(memory)).toEqual([]);
    expect(memory.stats.nrFollPinReleased).toBe(6);
  });

  it('restores a large folio after pins on part of it', () => {
    const { memory, pages, before, head } = pinnedThp(30, 40);
    expect(memory.pins[head]).toBe(40);
    unpinUserPages(memory, pages, 40);
    expectUnchanged(memory, before);
  });

  it('releases only the first n entries', () => {
    const { memory, pages } = pinned(4);
    unpinUserPages(memory, pages, 2);
    expect(Array.from(pages, (p) => memory.pins[p])).toEqual([0, 0, 1, 1]);
    unpinUserPages(memory, pages.subarray(2), 2);
    expect(leakReport(memory)).toEqual([]);
  });

  it('accepts entries in any order and a page pinned twice listed twice', () => {
    const { memory, mm, addr, pages, before } = pinned(3);
    const again = new Uint32Array(1);
    pinUserPages(mm, addr + PAGE_SIZE, 1, 0, again);
    unpinUserPages(memory, Uint32Array.of(pages[2]!, pages[1]!, pages[1]!, pages[0]!), 4);
    expectUnchanged(memory, before);
  });

  it('frees a page unmapped while pinned', () => {
    const { memory, mm, addr, pages } = pinned(2);
    const free = memory.nrFreePages;
    mm.munmap(addr, 2 * PAGE_SIZE);
    expect(memory.nrFreePages).toBe(free);
    unpinUserPages(memory, pages, 2);
    expect(memory.nrFreePages).toBe(free + 2);
    for (const p of pages) expect(memory.flags[p]! & PG_LIVE).toBe(0);
  });

  it('throws EINVAL naming a page that was never pinned', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { populate: true });
    const pfn = mm.lookupPfn(addr);
    const before = snapshot(memory);
    expectCode(() => unpinUserPages(memory, Uint32Array.of(pfn), 1), 'EINVAL');
    expectUnchanged(memory, before);
  });

  it('throws EINVAL on a double unpin and keeps the state the first unpin left', () => {
    const { memory, pages, before } = pinned(2);
    unpinUserPages(memory, pages, 2);
    expectCode(() => unpinUserPages(memory, pages, 2), 'EINVAL');
    expectCode(() => unpinUserPage(memory, pages[1]!), 'EINVAL');
    expectUnchanged(memory, before);
    expect(memory.stats.nrFollPinReleased).toBe(2);
  });

  it('throws EINVAL on a double unpin of a large folio page', () => {
    const { memory, pages, before } = pinnedThp(0, 2);
    unpinUserPages(memory, pages, 2);
    expectCode(() => unpinUserPages(memory, pages, 1), 'EINVAL');
    expectUnchanged(memory, before);
  });

  it.each([
    ['a never-pinned page last', 'unpinned'],
    ['a free page last', 'free'],
    ['a PFN beyond memory last', 'beyond'],
    ['the same page twice (pinned once)', 'dup'],
  ])('changes nothing (no unpin, no dirtying) when the batch holds %s', (_label, bad) => {
    const { memory, mm, pages } = pinned(3);
    const extra = mm.mmap(PAGE_SIZE, { populate: true });
    const pinnedState = snapshot(memory);
    const batch =
      bad === 'unpinned' ? [...pages, mm.lookupPfn(extra)] :
      bad === 'free' ? [...pages, NR - 1] :
      bad === 'beyond' ? [...pages, NR + 5] :
      [pages[0]!, pages[1]!, pages[2]!, pages[0]!];
    expectCode(() => unpinUserPagesDirtyLock(memory, Uint32Array.from(batch), batch.length, true), 'EINVAL');
    expectUnchanged(memory, pinnedState);
    for (const p of pages) expect(memory.isDirty(p)).toBe(false);
    expect(memory.stats.nrFollPinReleased).toBe(0);
    unpinUserPages(memory, pages, 3);
    expect(leakReport(memory)).toEqual([]);
  });

  it('changes nothing when a large folio is unpinned more times than pinned within one batch', () => {
    const { memory, head, pages } = pinnedThp(0, 2);
    const state = snapshot(memory);
    expectCode(() => unpinUserPages(memory, Uint32Array.of(pages[0]!, pages[1]!, head + 7), 3), 'EINVAL');
    expectUnchanged(memory, state);
  });

  it.each([
    ['memory is not a PhysicalMemory', 'mm', 1],
    ['n is -1', 'ok', -1],
    ['n is 1.5', 'ok', 1.5],
    ['n exceeds pages.length', 'ok', 5],
    ['pages is a plain array', 'array', 1],
  ])('throws EINVAL when %s', (_label, what, n) => {
    const { memory, mm, pages } = pinned(2);
    const state = snapshot(memory);
    const mem = what === 'mm' ? mm : memory;
    const arr = what === 'array' ? Array.from(pages) : pages;
    expectCode(() => unpinUserPages(mem as never, arr as never, n), 'EINVAL');
    expectUnchanged(memory, state);
  });

  it('skips the zero page', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE);
    const pages = new Uint32Array(1);
    pinUserPages(mm, addr, 1, 0, pages);
    expect(pages[0]).toBe(memory.zeroPfn);
    unpinUserPages(memory, pages, 1);
    expect(memory.isDirty(0)).toBe(false);
    unpinUserPagesDirtyLock(memory, pages, 1, true);
    expect(memory.refcount[0]).toBe(1);
    // folio_mark_dirty() runs before gup_put_folio() skips the zero folio
    expect(memory.isDirty(0)).toBe(true);
  });

  it('releases a folio named twice with another between, freeing each once', () => {
    const { memory, mm } = setup();
    const a = mm.mmap(2 * PAGE_SIZE);
    const pages = new Uint32Array(3);
    pinUserPages(mm, a, 1, FOLL_WRITE, pages.subarray(0, 1));
    pinUserPages(mm, a + PAGE_SIZE, 1, FOLL_WRITE, pages.subarray(1, 2));
    pinUserPages(mm, a, 1, FOLL_WRITE, pages.subarray(2, 3));
    const free = memory.nrFreePages;
    mm.munmap(a, 2 * PAGE_SIZE);
    expect(memory.nrFreePages).toBe(free);
    unpinUserPages(memory, pages, 3);
    expect(memory.nrFreePages).toBe(free + 2);
    expect(leakReport(memory)).toEqual([]);
  });
});

describe('unpinUserPage', () => {
  it('releases one pin', () => {
    const { memory, pages, before } = pinned(1);
    unpinUserPage(memory, pages[0]!);
    expectUnchanged(memory, before);
  });

  it.each([[-1], [1.5], [NR]])('throws EINVAL for pfn %s', (pfn) => {
    const { memory } = setup();
    expectCode(() => unpinUserPage(memory, pfn), 'EINVAL');
  });
});

describe('unpinUserPagesDirtyLock', () => {
  it('marks every unpinned folio PG_DIRTY when makeDirty is true', () => {
    const { memory, pages, before } = pinned(3);
    for (const p of pages) expect(memory.isDirty(p)).toBe(false);
    unpinUserPagesDirtyLock(memory, pages, 3, true);
    for (const p of pages) expect(memory.isDirty(p)).toBe(true);
    expectUnchanged(memory, before);
  });

  it('leaves pages clean when makeDirty is false', () => {
    const { memory, pages } = pinned(3);
    unpinUserPagesDirtyLock(memory, pages, 3, false);
    for (const p of pages) expect(memory.isDirty(p)).toBe(false);
  });

  it('dirties only the first n entries', () => {
    const { memory, pages } = pinned(3);
    unpinUserPagesDirtyLock(memory, pages, 1, true);
    expect(Array.from(pages, (p) => memory.isDirty(p))).toEqual([true, false, false]);
  });

  it('dirties a whole large folio', () => {
    const { memory, head, pages } = pinnedThp(5, 2);
    unpinUserPagesDirtyLock(memory, pages, 2, true);
    expect(memory.isDirty(head)).toBe(true);
    expect(memory.isDirty(head + HPAGE_PMD_NR - 1)).toBe(true);
    expect(memory.pins[head]).toBe(0);
  });

  it.each([[1], ['true'], [undefined]])('throws EINVAL when makeDirty is %s', (makeDirty) => {
    const { memory, pages } = pinned(1);
    expectCode(() => unpinUserPagesDirtyLock(memory, pages, 1, makeDirty as never), 'EINVAL');
    expect(memory.pins[pages[0]!]).toBe(1);
  });
});

describe('unpinUserPageRangeDirtyLock', () => {
  it.each([
    ['makeDirty true', true],
    ['makeDirty false', false],
  ])('releases a physically contiguous range in a THP (%s)', (_label, dirty) => {
    const { memory, head, before } = pinnedThp(10, 20);
    unpinUserPageRangeDirtyLock(memory, head + 10, 20, dirty);
    expectUnchanged(memory, before);
    expect(memory.isDirty(head)).toBe(dirty);
    expect(memory.stats.nrFollPinReleased).toBe(20);
  });

  it('releases a range over small folios', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { populate: true });
    const pfn = mm.lookupPfn(addr);
    pinUserPages(mm, addr, 1, 0, new Uint32Array(1));
    pinUserPages(mm, addr, 1, 0, new Uint32Array(1));
    unpinUserPageRangeDirtyLock(memory, pfn, 1, true);
    expect(memory.pins[pfn]).toBe(1);
    expect(memory.isDirty(pfn)).toBe(true);
  });

  it('changes nothing when part of the range is not pinned', () => {
    const { memory, head } = pinnedThp(0, 4);
    const state = snapshot(memory);
    expectCode(() => unpinUserPageRangeDirtyLock(memory, head, 5, true), 'EINVAL');
    expectUnchanged(memory, state);
    expect(memory.isDirty(head)).toBe(false);
  });

  it.each([
    ['pfn -1', -1, 1],
    ['pfn beyond memory', NR, 1],
    ['range past the end of memory', NR - 1, 2],
    ['nrPages -1', 1, -1],
    ['nrPages 0.5', 1, 0.5],
  ])('throws EINVAL when %s', (_label, pfn, n) => {
    const { memory } = setup();
    expectCode(() => unpinUserPageRangeDirtyLock(memory, pfn, n, false), 'EINVAL');
  });
});

describe('putPage', () => {
  it('drops a FOLL_GET reference', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { populate: true });
    const before = snapshot(memory);
    const pages = new Uint32Array(1);
    getUserPages(mm, addr, 1, 0, pages);
    putPage(memory, pages[0]!);
    expectUnchanged(memory, before);
  });

  it('drops references on a large folio through its tail pages', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PMD, { thp: true, populate: true });
    const before = snapshot(memory);
    const pages = new Uint32Array(3);
    getUserPages(mm, addr + 7 * PAGE_SIZE, 3, 0, pages);
    for (const p of pages) putPage(memory, p);
    expectUnchanged(memory, before);
  });

  it('frees a page whose last reference it drops', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { populate: true });
    const free = memory.nrFreePages;
    const pages = new Uint32Array(1);
    getUserPages(mm, addr, 1, 0, pages);
    mm.munmap(addr, PAGE_SIZE);
    expect(memory.nrFreePages).toBe(free);
    putPage(memory, pages[0]!);
    expect(memory.nrFreePages).toBe(free + 1);
  });

  it('throws EINVAL on a page that is only pinned', () => {
    const { memory, pages } = pinned(1);
    const state = snapshot(memory);
    expectCode(() => putPage(memory, pages[0]!), 'EINVAL');
    expectUnchanged(memory, state);
  });

  it('throws EINVAL when put twice', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { populate: true });
    const pages = new Uint32Array(1);
    getUserPages(mm, addr, 1, 0, pages);
    putPage(memory, pages[0]!);
    const state = snapshot(memory);
    expectCode(() => putPage(memory, pages[0]!), 'EINVAL');
    expectUnchanged(memory, state);
  });

  it.each([
    ['a free page', NR - 1],
    ['a PFN beyond memory', NR],
    ['a negative PFN', -1],
    ['a fractional PFN', 2.5],
  ])('throws EINVAL for %s (%s)', (_label, pfn) => {
    const { memory } = setup();
    expectCode(() => putPage(memory, pfn), 'EINVAL');
  });

  it('throws EINVAL when memory is not a PhysicalMemory', () => {
    expectCode(() => putPage({} as never, 1), 'EINVAL');
  });
});

describe('folioMaybeDmaPinned', () => {
  it('answers for a small folio: pinned while the refcount holds the bias', () => {
    const { memory, pages } = pinned(1);
    const pfn = pages[0]!;
    expect(folioMaybeDmaPinned(memory, pfn)).toBe(true);
    unpinUserPages(memory, pages, 1);
    expect(folioMaybeDmaPinned(memory, pfn)).toBe(false);
  });

  it('answers a false positive for a small folio with GUP_PIN_COUNTING_BIAS plain references, as the kernel does', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { populate: true });
    const pfn = mm.lookupPfn(addr);
    const one = new Uint32Array(1);
    for (let k = 0; k < GUP_PIN_COUNTING_BIAS - 2; k++) getUserPages(mm, addr, 1, 0, one);
    expect(folioRefCount(memory, pfn)).toBe(GUP_PIN_COUNTING_BIAS - 1);
    expect(folioMaybeDmaPinned(memory, pfn)).toBe(false);
    getUserPages(mm, addr, 1, 0, one);
    expect(folioMaybeDmaPinned(memory, pfn)).toBe(true);
  });

  it('answers exactly for a large folio, from any of its pages', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PMD, { thp: true, populate: true });
    const head = mm.lookupPfn(addr);
    // many plain references do not look like pins on a large folio
    for (let k = 0; k < 3; k++) getUserPages(mm, addr, HPAGE_PMD_NR, 0, new Uint32Array(HPAGE_PMD_NR));
    expect(folioMaybeDmaPinned(memory, head)).toBe(false);
    const pages = new Uint32Array(1);
    pinUserPages(mm, addr + 300 * PAGE_SIZE, 1, 0, pages);
    expect(folioMaybeDmaPinned(memory, head)).toBe(true);
    expect(folioMaybeDmaPinned(memory, head + HPAGE_PMD_NR - 1)).toBe(true);
    expect(folioPinCount(memory, head + 5)).toBe(1);
    unpinUserPages(memory, pages, 1);
    expect(folioMaybeDmaPinned(memory, head + 300)).toBe(false);
  });

  it('is false for the zero page after a read pin', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE);
    pinUserPages(mm, addr, 1, 0, new Uint32Array(1));
    expect(folioMaybeDmaPinned(memory, memory.zeroPfn)).toBe(false);
  });

  it.each([[-1], [NR], [0.5]])('throws EINVAL for pfn %s', (pfn) => {
    const { memory } = setup();
    expectCode(() => folioMaybeDmaPinned(memory, pfn), 'EINVAL');
    expectCode(() => folioPinCount(memory, pfn), 'EINVAL');
    expectCode(() => folioRefCount(memory, pfn), 'EINVAL');
    expectCode(() => pageMapcount(memory, pfn), 'EINVAL');
  });
});
