// Behaviour settled by reviewing the page cache and huge entries against mainline.

import { describe, expect, it } from 'vitest';
import { FOLL_WRITE, PAGE_SIZE, PTE_DIRTY, folioTestDirty, getUserPages, putPage } from '../src/index.js';
import { pattern, setup } from './helpers.js';

const MiB = 2 ** 20;

describe('dirt through a huge entry', () => {
  it('FOLL_TOUCH on a write through a clean PMD dirties the entry, not the folio (touch_pmd)', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(2 * MiB, { thp: true, shared: true });
    mm.read(addr, 1); // a read fault maps the shmem THP writable but clean
    const vma = mm.findVma(addr)!;
    const pages = new Uint32Array(1);
    getUserPages(mm, addr + 5 * PAGE_SIZE, 1, FOLL_WRITE, pages);
    const head = memory.folioHead(pages[0]!);
    expect(memory.order[head]).toBe(9);
    {
      expect(folioTestDirty(memory, head)).toBe(false);
      expect(vma.pte[0]! & PTE_DIRTY).toBe(PTE_DIRTY);
      expect(vma.pte[511]! & PTE_DIRTY).toBe(PTE_DIRTY);
    }
    putPage(memory, pages[0]!);
  });

  it('a CPU write to any page of a huge entry dirties the whole entry, so a split hands it on', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(2 * MiB, { thp: true, shared: true });
    mm.read(addr, 1);
    mm.write(addr + 300 * PAGE_SIZE, pattern(16));
    const vma = mm.findVma(addr)!;
    const head = memory.folioHead(mm.lookupPfn(addr));
    expect(memory.order[head]).toBe(9);
    {
      for (const i of [0, 299, 300, 511]) expect(vma.pte[i]! & PTE_DIRTY).toBe(PTE_DIRTY);
      mm.munmap(addr + 2 * MiB - PAGE_SIZE, PAGE_SIZE); // splits the PMD
      expect(folioTestDirty(memory, head)).toBe(true);
    }
  });
});

describe('VMA splits', () => {
  it('keeps each half\'s entries after a split into views of one table', () => {
    const { mm } = setup();
    const addr = mm.mmap(64 * PAGE_SIZE);
    mm.write(addr, pattern(64 * PAGE_SIZE, 1));
    mm.munmap(addr + 20 * PAGE_SIZE, 4 * PAGE_SIZE);
    expect(mm.read(addr, 20 * PAGE_SIZE)).toEqual(pattern(64 * PAGE_SIZE, 1).subarray(0, 20 * PAGE_SIZE));
    expect(mm.read(addr + 24 * PAGE_SIZE, 40 * PAGE_SIZE)).toEqual(pattern(64 * PAGE_SIZE, 1).subarray(24 * PAGE_SIZE));
    mm.write(addr + 19 * PAGE_SIZE, pattern(PAGE_SIZE, 9));
    expect(mm.read(addr + 24 * PAGE_SIZE, 16)).toEqual(pattern(64 * PAGE_SIZE, 1).subarray(24 * PAGE_SIZE, 24 * PAGE_SIZE + 16));
  });
});
