// munmap and exit with pinned pages (mm/memory.c: zap_pte_range; mm/mmap.c: exit_mmap): pinned
// pages outlive their mappings until the last unpin, and the leak report names them.

import { describe, expect, it } from 'vitest';
import {
  FOLL_LONGTERM, FOLL_WRITE, GUP_PIN_COUNTING_BIAS, PAGE_SIZE, PG_LIVE, createFile, dropCaches, folioRefCount,
  leakReport, pageMapcount, pinUserPagesFast, unpinUserPages, unpinUserPagesDirtyLock, writeback,
} from '../src/index.js';
import { pattern, setup } from './helpers.js';

const release = [
  ['munmap', (mm: ReturnType<typeof setup>['mm'], addr: number, len: number) => mm.munmap(addr, len)],
  ['exit', (mm: ReturnType<typeof setup>['mm']) => mm.exit()],
] as const;

describe('AddressSpace.exit', () => {
  it('unmaps every mapping, anonymous, THP, shmem and file, freeing what nothing else holds', () => {
    const { memory, mm } = setup();
    const free = memory.nrFreePages;
    const a = mm.mmap(4 * PAGE_SIZE);
    const t = mm.mmap(2 * 2 ** 20, { thp: true });
    const s = mm.mmap(PAGE_SIZE, { shared: true });
    const f = mm.mmap(PAGE_SIZE, { backing: 'file', shared: true });
    const named = createFile(memory, { size: PAGE_SIZE });
    const g = mm.mmap(PAGE_SIZE, { file: named, shared: true });
    for (const addr of [a, t, s, f, g]) mm.write(addr, pattern(64));
    const temp = mm.findVma(f)!.file!;
    mm.exit();
    expect(mm.vmas).toHaveLength(0);
    expect(temp.mmaps.size).toBe(0);
    expect(named.mmaps.size).toBe(0);
    // the file mmap made is released with its last mapping, dirty page and all (truncate, no
    // writeback); the named file's page stays cached, dirty from its entry, until written and dropped
    expect(temp.cachedPfn(0)).toBe(-1);
    expect(memory.nrFreePages).toBe(free - 1);
    expect(writeback(memory)).toBe(1);
    expect(dropCaches(memory)).toBe(1);
    expect(memory.nrFreePages).toBe(free);
    expect(named.readStore(0, 64)).toEqual(pattern(64));
    expect(temp.readStore(0, 64)).toEqual(new Uint8Array(64));
  });

  it('frees a pinned page of a released temporary file at its last unpin', () => {
    const { memory, mm } = setup();
    const free = memory.nrFreePages;
    const f = mm.mmap(PAGE_SIZE, { backing: 'file', shared: true });
    mm.write(f, pattern(64));
    const pages = new Uint32Array(1);
    pinUserPagesFast(mm, f, 1, FOLL_WRITE, pages);
    mm.munmap(f, PAGE_SIZE);
    expect(memory.flags[pages[0]!]! & PG_LIVE).toBe(PG_LIVE);
    unpinUserPagesDirtyLock(memory, pages, 1, true);
    expect(memory.nrFreePages).toBe(free);
    expect(leakReport(memory)).toEqual([]);
  });
});

describe.each(release)('%s with pinned pages', (_name, unmap) => {
  it('keeps pinned anonymous pages until the last unpin, named by the leak report', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(4 * PAGE_SIZE);
    mm.write(addr, pattern(4 * PAGE_SIZE, 6));
    const pages = new Uint32Array(4);
    pinUserPagesFast(mm, addr, 4, FOLL_WRITE | FOLL_LONGTERM, pages, { owner: 'rdma' });
    unmap(mm, addr, 4 * PAGE_SIZE);
    for (const pfn of pages) {
      expect(memory.flags[pfn]! & PG_LIVE).toBe(PG_LIVE);
      expect(pageMapcount(memory, pfn)).toBe(0);
      expect(folioRefCount(memory, pfn)).toBe(GUP_PIN_COUNTING_BIAS);
    }
    expect(memory.readPhys(pages[3]! * PAGE_SIZE, 8)).toEqual(pattern(4 * PAGE_SIZE, 6).subarray(3 * PAGE_SIZE, 3 * PAGE_SIZE + 8));
    const leaks = leakReport(memory);
    expect(leaks.map((l) => [l.kind, l.pfn, l.count, l.owner])).toEqual([...pages].sort((x, y) => x - y).map((p) => ['pinned-page', p, 1, 'rdma']));
    const free = memory.nrFreePages;
    unpinUserPages(memory, pages, 4);
    expect(memory.nrFreePages).toBe(free + 4);
    expect(leakReport(memory)).toEqual([]);
  });

  it('keeps pinned file pages in the page cache; after the unpin writeback and drop_caches free them', () => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: 2 * PAGE_SIZE });
    const addr = mm.mmap(2 * PAGE_SIZE, { file, shared: true });
    const pages = new Uint32Array(2);
    pinUserPagesFast(mm, addr, 2, FOLL_WRITE, pages, { owner: 'o_direct' });
    unmap(mm, addr, 2 * PAGE_SIZE);
    expect(leakReport(memory).map((l) => [l.pfn, l.owner])).toEqual([...pages].sort((x, y) => x - y).map((p) => [p, 'o_direct']));
    expect(dropCaches(memory)).toBe(0); // pinned and dirty
    memory.writePhys(pages[0]! * PAGE_SIZE, pattern(8, 2));
    unpinUserPagesDirtyLock(memory, pages, 2, true);
    expect(leakReport(memory)).toEqual([]);
    for (const pfn of pages) expect(folioRefCount(memory, pfn)).toBe(1); // the cache's reference
    expect(writeback(memory)).toBe(2);
    const free = memory.nrFreePages;
    expect(dropCaches(memory)).toBe(2);
    expect(memory.nrFreePages).toBe(free + 2);
    expect(file.readStore(0, 8)).toEqual(pattern(8, 2));
  });
});
