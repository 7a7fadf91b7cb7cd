// Kernel cases a second review against mainline turned up, one test each.

import { describe, expect, it } from 'vitest';
import {
  FOLL_FORCE, FOLL_WRITE, HPAGE_PMD_NR, MAX_PAGE_ORDER, PAGE_SIZE, PhysicalMemory, getUserPages, pinUserPages,
  pinUserPagesFast, putPage, unpinUserPages,
} from '../src/index.js';
import { setup } from './helpers.js';

const PMD = HPAGE_PMD_NR * PAGE_SIZE;

describe('FOLL_FORCE writes into a read-only private mapping', () => {
  it('leave the folio clean when the copy came off the zero page (wp_page_copy dirties the entry)', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { prot: 'r' });
    mm.read(addr, 1);
    const pages = new Uint32Array(1);
    expect(getUserPages(mm, addr, 1, FOLL_WRITE | FOLL_FORCE, pages)).toBe(1);
    expect(memory.isDirty(pages[0]!)).toBe(false);
    putPage(memory, pages[0]!);
  });

  it('dirty the folio through a clean entry on the slow path behind the fast one (FOLL_TOUCH)', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { prot: 'r' });
    const pages = new Uint32Array(1);
    pinUserPages(mm, addr, 1, FOLL_WRITE | FOLL_FORCE, pages); // no FOLL_TOUCH: stays clean
    expect(memory.isDirty(pages[0]!)).toBe(false);
    unpinUserPages(memory, pages, 1);
    pinUserPagesFast(mm, addr, 1, FOLL_WRITE | FOLL_FORCE, pages); // gup_fast refuses a read-only entry
    expect(memory.isDirty(pages[0]!)).toBe(true);
    unpinUserPages(memory, pages, 1);
  });
});

describe('THP faults', () => {
  it('give small pages where a page table already exists (not pmd_none)', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PMD, { thp: true });
    memory.injectAllocFailure(0); // no huge zero folio: the read maps a small zero entry
    mm.read(addr, 1);
    mm.write(addr + PAGE_SIZE, Uint8Array.of(1));
    expect(memory.order[mm.lookupPfn(addr + PAGE_SIZE)]).toBe(0);
    expect(mm.lookupPfn(addr)).toBe(memory.zeroPfn);
  });
});

describe('shared anonymous (shmem) faults', () => {
  it('dirty the folio on a write fault, not on a read fault (fault_dirty_shared_page)', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(2 * PAGE_SIZE, { shared: true });
    mm.read(addr, 1);
    mm.write(addr + PAGE_SIZE, Uint8Array.of(1));
    expect(memory.isDirty(mm.lookupPfn(addr))).toBe(false);
    expect(memory.isDirty(mm.lookupPfn(addr + PAGE_SIZE))).toBe(true);
  });
});

describe('free lists', () => {
  it('hand out boot memory from the lowest PFN (__free_pages_core frees to the tail)', () => {
    const memory = new PhysicalMemory({ bytes: 2049 * PAGE_SIZE });
    expect(memory.allocFolio(0)).toBe(1);
  });

  it('put a max-order block freed to the tail behind the never-used ones (one list)', () => {
    const outcomes = new Set<string>();
    for (let seed = 0; seed < 16; seed++) {
      const memory = new PhysicalMemory({ bytes: 64 * 2 ** 20, seed });
      const first = memory.allocFolio(MAX_PAGE_ORDER);
      memory.folioPutRefs(first, 1);
      const order: number[] = [];
      for (let b = memory.allocFolio(MAX_PAGE_ORDER); b >= 0; b = memory.allocFolio(MAX_PAGE_ORDER)) order.push(b);
      const at = order.indexOf(first);
      expect([0, order.length - 1]).toContain(at); // at the head, or behind every other block
      outcomes.add(at === 0 ? 'head' : 'tail');
    }
    expect([...outcomes].sort()).toEqual(['head', 'tail']); // shuffle_pick_tail() tosses a coin
  });
});
