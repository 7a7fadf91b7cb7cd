// GUP on file memory as mainline has it (mm/gup.c: check_vma_flags → writable_file_mapping_allowed,
// gup_fast_folio_allowed; mm/internal.h: gup_must_unshare; mm/memory.c: do_cow_fault, wp_page_copy).

import { describe, expect, it } from 'vitest';
import {
  FOLL_ANON, FOLL_FORCE, FOLL_LONGTERM, FOLL_WRITE, GUP_PIN_COUNTING_BIAS, PAGE_SIZE, PG_ANON, PTE_DIRTY, PTE_WRITE, createFile,
  folioRefCount, folioTestDirty, getUserPages, pinUserPages, pinUserPagesFast, unpinUserPages, writeback, type AddressSpace,
  type PhysicalMemory,
} from '../src/index.js';
import { expectCode, expectUnchanged, pattern, setup, snapshot } from './helpers.js';

type Pin = (mm: AddressSpace, start: number, n: number, flags: number, pages: Uint32Array) => number;
const PINNERS: Array<[string, Pin]> = [
  ['pinUserPages', pinUserPages],
  ['pinUserPagesFast', pinUserPagesFast],
];

function sharedFile(pages = 4, prot: 'r' | 'rw' = 'rw') {
  const { memory, mm } = setup();
  const file = createFile(memory, { size: pages * PAGE_SIZE });
  const addr = mm.mmap(pages * PAGE_SIZE, { file, shared: true, prot });
  return { memory, mm, file, addr };
}

function isAnon(memory: PhysicalMemory, pfn: number): boolean {
  return (memory.flags[memory.folioHead(pfn)]! & PG_ANON) !== 0;
}

describe('FOLL_LONGTERM | FOLL_WRITE on a shared file mapping (writable_file_mapping_allowed)', () => {
  it.each(PINNERS)('%s refuses it with EFAULT, the page untouched', (_name, pin) => {
    const { memory, mm, addr } = sharedFile();
    const before = snapshot(memory);
    expectCode(() => pin(mm, addr, 4, FOLL_WRITE | FOLL_LONGTERM, new Uint32Array(4)), 'EFAULT');
    expectUnchanged(memory, before);
  });

  it.each(PINNERS)('%s refuses it when the entries are already writable (gup_fast_folio_allowed)', (_name, pin) => {
    const { memory, mm, addr } = sharedFile();
    mm.write(addr, pattern(4 * PAGE_SIZE)); // every entry writable and dirty
    const before = snapshot(memory);
    expectCode(() => pin(mm, addr, 4, FOLL_WRITE | FOLL_LONGTERM, new Uint32Array(4)), 'EFAULT');
    expectUnchanged(memory, before);
  });

  it.each(PINNERS)('%s returns a short count when the range runs from anonymous memory into the file', (_name, pin) => {
    const { memory, mm, addr } = sharedFile(2);
    const anon = mm.mmap(2 * PAGE_SIZE);
    expect(anon + 2 * PAGE_SIZE).toBe(addr); // placed just below the file
    const pages = new Uint32Array(4);
    expect(pin(mm, anon, 4, FOLL_WRITE | FOLL_LONGTERM, pages)).toBe(2);
    unpinUserPages(memory, pages, 2);
  });

  it.each(PINNERS)('%s allows a short-term write pin: the write fault dirties the page', (_name, pin) => {
    const { memory, mm, file, addr } = sharedFile();
    const pages = new Uint32Array(1);
    expect(pin(mm, addr, 1, FOLL_WRITE, pages)).toBe(1);
    expect(pages[0]).toBe(file.cachedPfn(0));
    expect(folioTestDirty(memory, pages[0]!)).toBe(true);
    expect(mm.findVma(addr)!.pte[0]).toBe(PTE_WRITE | PTE_DIRTY);
    expect(folioRefCount(memory, pages[0]!)).toBe(2 + GUP_PIN_COUNTING_BIAS);
    unpinUserPages(memory, pages, 1);
  });

  it.each(PINNERS)('%s allows a long-term read-only pin of the page-cache page itself', (_name, pin) => {
    const { memory, mm, file, addr } = sharedFile();
    mm.read(addr, 1);
    const pages = new Uint32Array(1);
    expect(pin(mm, addr, 1, FOLL_LONGTERM, pages)).toBe(1);
    expect(pages[0]).toBe(file.cachedPfn(0));
    unpinUserPages(memory, pages, 1);
  });

  it.each(PINNERS)('%s allows FOLL_LONGTERM | FOLL_WRITE on shared anonymous memory (shmem is not dirty-tracked)', (_name, pin) => {
    const { memory, mm } = setup();
    const addr = mm.mmap(2 * PAGE_SIZE, { shared: true });
    const pages = new Uint32Array(2);
    expect(pin(mm, addr, 2, FOLL_WRITE | FOLL_LONGTERM, pages)).toBe(2);
    unpinUserPages(memory, pages, 2);
  });

  it('refuses FOLL_ANON on file mappings, shared or private', () => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: PAGE_SIZE });
    for (const shared of [true, false]) {
      const addr = mm.mmap(PAGE_SIZE, { file, shared });
      expectCode(() => getUserPages(mm, addr, 1, FOLL_ANON, new Uint32Array(1)), 'EFAULT');
    }
  });

  it('refuses a write pin of a read-only shared file mapping, even with FOLL_FORCE', () => {
    const { mm, addr } = sharedFile(1, 'r');
    expectCode(() => pinUserPages(mm, addr, 1, FOLL_WRITE, new Uint32Array(1)), 'EFAULT');
    expectCode(() => pinUserPages(mm, addr, 1, FOLL_WRITE | FOLL_FORCE, new Uint32Array(1)), 'EFAULT');
  });
});

describe('FOLL_WRITE on a private file mapping (do_cow_fault, wp_page_copy)', () => {
  it.each(PINNERS)('%s pins an anonymous copy, long-term too, and the file never sees the device', (_name, pin) => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: 2 * PAGE_SIZE });
    file.writeStore(0, pattern(2 * PAGE_SIZE, 3));
    const addr = mm.mmap(2 * PAGE_SIZE, { file });
    mm.read(addr + PAGE_SIZE, 1); // page 1 maps the page-cache page read-only first
    const pages = new Uint32Array(2);
    expect(pin(mm, addr, 2, FOLL_WRITE | FOLL_LONGTERM, pages)).toBe(2);
    for (let i = 0; i < 2; i++) {
      expect(pages[i]).not.toBe(file.cachedPfn(i));
      expect(isAnon(memory, pages[i]!)).toBe(true);
      expect(memory.readPhys(pages[i]! * PAGE_SIZE, 8)).toEqual(pattern(2 * PAGE_SIZE, 3).subarray(i * PAGE_SIZE, i * PAGE_SIZE + 8));
    }
    memory.writePhys(pages[0]! * PAGE_SIZE, Uint8Array.of(0xff));
    unpinUserPages(memory, pages, 2);
    expect(mm.read(addr, 1)).toEqual(Uint8Array.of(0xff));
    expect(writeback(memory)).toBe(0);
    expect(file.readStore(0, 1)).toEqual(Uint8Array.of(3));
  });

  it('writes through FOLL_FORCE into a read-only private file mapping via a read-only copy', () => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: PAGE_SIZE });
    const addr = mm.mmap(PAGE_SIZE, { file, prot: 'r' });
    const pages = new Uint32Array(1);
    expect(pinUserPages(mm, addr, 1, FOLL_WRITE | FOLL_FORCE, pages)).toBe(1);
    expect(isAnon(memory, pages[0]!)).toBe(true);
    expect(mm.findVma(addr)!.pte[0]).toBe(PTE_DIRTY);
    unpinUserPages(memory, pages, 1);
  });
});

describe('long-term read-only pins of a private file mapping (gup_must_unshare)', () => {
  it.each(PINNERS)('%s unshares: pins an anonymous copy, mapped read-only and clean', (_name, pin) => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: PAGE_SIZE });
    file.writeStore(0, pattern(16, 8));
    const addr = mm.mmap(PAGE_SIZE, { file });
    mm.read(addr, 1);
    const cached = file.cachedPfn(0);
    const pages = new Uint32Array(1);
    expect(pin(mm, addr, 1, FOLL_LONGTERM, pages)).toBe(1);
    expect(pages[0]).not.toBe(cached);
    expect(isAnon(memory, pages[0]!)).toBe(true);
    expect(mm.lookupPfn(addr)).toBe(pages[0]);
    expect(mm.findVma(addr)!.pte[0]).toBe(0);
    expect(memory.readPhys(pages[0]! * PAGE_SIZE, 16)).toEqual(pattern(16, 8));
    expect(folioRefCount(memory, cached)).toBe(1);
    unpinUserPages(memory, pages, 1);
  });

  it.each(PINNERS)('%s pins the page-cache page itself for a short-term read-only pin', (_name, pin) => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: PAGE_SIZE });
    const addr = mm.mmap(PAGE_SIZE, { file });
    const pages = new Uint32Array(1);
    expect(pin(mm, addr, 1, 0, pages)).toBe(1);
    expect(pages[0]).toBe(file.cachedPfn(0));
    unpinUserPages(memory, pages, 1);
  });
});
