// File-backed mappings through the page cache: faults, dirty tracking, writeback, drop_caches,
// reclaim and SIGBUS past end of file (mm/filemap.c, mm/memory.c, mm/page-writeback.c,
// mm/truncate.c, mm/vmscan.c).

import { describe, expect, it } from 'vitest';
import {
  CachedFile, FOLL_WRITE, GUP_PIN_COUNTING_BIAS, PAGE_SIZE, PTE_DIRTY, PTE_WRITE, createFile, dropCaches,
  filemapWriteAndWait, folioRefCount, folioTestDirty, folioTestUptodate, folioTestWriteback, getUserPages, pageMapcount,
  pinUserPages, putPage, reclaimPageCache, unpinUserPages, writeback, PhysicalMemory,
} from '../src/index.js';
import { expectCode, pattern, setup } from './helpers.js';

function fileMapping(size = 4 * PAGE_SIZE, shared = true) {
  const { memory, mm } = setup();
  const file = createFile(memory, { size });
  const addr = mm.mmap(size, { backing: 'file', shared, file });
  return { memory, mm, file, addr, vma: mm.findVma(addr)! };
}

describe('createFile', () => {
  it('makes a zero-filled file of the size asked, nothing cached', () => {
    const { memory } = setup();
    const file = createFile(memory, { size: 10_000 });
    expect(file).toBeInstanceOf(CachedFile);
    expect(file.size).toBe(10_000);
    expect(file.nrPages).toBe(3);
    expect(file.readStore(0, 10_000)).toEqual(new Uint8Array(10_000));
    expect(file.cachedPfn(0)).toBe(-1);
  });

  it.each([
    ['no options', undefined],
    ['a size that is not an integer', { size: 1.5 }],
    ['a negative size', { size: -1 }],
    ['a size past 16 GiB', { size: 16 * 2 ** 30 + 1 }],
    ['a string size', { size: '4096' }],
    ['an unknown option', { size: 4096, mode: 'rw' }],
    ['options that are not an object', 4096],
  ])('throws EINVAL for %s', (_label, opts) => {
    const { memory } = setup();
    expectCode(() => createFile(memory, opts as never), 'EINVAL');
  });

  it('throws EINVAL without a PhysicalMemory', () => {
    expectCode(() => createFile({} as never, { size: 4096 }), 'EINVAL');
  });
});

describe('CachedFile.readStore / writeStore', () => {
  it('round-trips bytes across page boundaries', () => {
    const { memory } = setup();
    const file = createFile(memory, { size: 3 * PAGE_SIZE });
    file.writeStore(PAGE_SIZE - 10, pattern(PAGE_SIZE + 20, 3));
    expect(file.readStore(PAGE_SIZE - 10, PAGE_SIZE + 20)).toEqual(pattern(PAGE_SIZE + 20, 3));
    expect(file.readStore(0, 10)).toEqual(new Uint8Array(10));
  });

  it.each([
    ['an offset past the end', 4097, 0],
    ['a range past the end', 4000, 200],
    ['a negative offset', -1, 1],
    ['a fractional length', 0, 1.5],
  ])('throws EINVAL for %s', (_label, offset, length) => {
    const { memory } = setup();
    const file = createFile(memory, { size: PAGE_SIZE });
    expectCode(() => file.readStore(offset, length), 'EINVAL');
  });

  it('throws EINVAL for a write past the end or of something not bytes', () => {
    const { memory } = setup();
    const file = createFile(memory, { size: PAGE_SIZE });
    expectCode(() => file.writeStore(4000, new Uint8Array(200)), 'EINVAL');
    expectCode(() => file.writeStore(0, [1, 2] as never), 'EINVAL');
    expect(file.readStore(0, PAGE_SIZE)).toEqual(new Uint8Array(PAGE_SIZE));
  });
});

describe('mmap of a file', () => {
  it('maps the file from offset: a read faults the page-cache page in read-only', () => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: 4 * PAGE_SIZE });
    file.writeStore(2 * PAGE_SIZE, pattern(PAGE_SIZE, 9));
    const addr = mm.mmap(2 * PAGE_SIZE, { backing: 'file', shared: true, file, offset: 2 * PAGE_SIZE });
    expect(mm.read(addr, PAGE_SIZE)).toEqual(pattern(PAGE_SIZE, 9));
    const pfn = mm.lookupPfn(addr);
    expect(file.cachedPfn(2)).toBe(pfn);
    const vma = mm.findVma(addr)!;
    expect(vma.pte[0]).toBe(0); // write-protected until the first write (dirty tracking)
    expect(folioRefCount(memory, pfn)).toBe(2); // the page cache's and the entry's
    expect(pageMapcount(memory, pfn)).toBe(1);
    expect(folioTestUptodate(memory, pfn)).toBe(true);
    expect(folioTestDirty(memory, pfn)).toBe(false);
  });

  it('creates a fresh zero-filled file when none is given', () => {
    const { mm } = setup();
    const addr = mm.mmap(3 * PAGE_SIZE, { backing: 'file', shared: true });
    const file = mm.findVma(addr)!.file!;
    expect(file.size).toBe(3 * PAGE_SIZE);
    expect(mm.read(addr, 3 * PAGE_SIZE)).toEqual(new Uint8Array(3 * PAGE_SIZE));
  });

  it('takes a file without backing spelled out', () => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: PAGE_SIZE });
    const addr = mm.mmap(PAGE_SIZE, { file, shared: true });
    expect(mm.findVma(addr)!.file).toBe(file);
    expect(mm.findVma(addr)!.backing).toBe('file');
  });

  it('faults every page of an empty file with SIGBUS, and cachedPfn refuses every index', () => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: 0 });
    const addr = mm.mmap(PAGE_SIZE, { file, shared: true });
    expectCode(() => mm.read(addr, 1), 'EFAULT');
    expectCode(() => file.cachedPfn(0), 'EINVAL');
  });

  it.each([
    ['an offset not page aligned', { backing: 'file', offset: 100 }],
    ['a negative offset', { backing: 'file', offset: -4096 }],
    ['an offset on an anonymous mapping', { offset: 4096 }],
    ['a file that is not a CachedFile', { backing: 'file', file: {} }],
    ["a file with backing 'anon'", { backing: 'anon', fileOf: true }],
    ['a file of another memory', { backing: 'file', otherMemory: true }],
    ['shared that is not a boolean', { backing: 'file', shared: 1 }],
    ['a fresh file past 16 GiB', { backing: 'file', offset: 16 * 2 ** 30 }],
  ])('throws EINVAL for %s, mapping nothing', (_label, o) => {
    const { memory, mm } = setup();
    const opts: Record<string, unknown> = { ...o };
    if (opts.fileOf) opts.file = createFile(memory, { size: PAGE_SIZE });
    if (opts.otherMemory) opts.file = createFile(new PhysicalMemory({ bytes: 2 ** 20 }), { size: PAGE_SIZE });
    delete opts.fileOf;
    delete opts.otherMemory;
    expectCode(() => mm.mmap(PAGE_SIZE, opts as never), 'EINVAL');
    expect(mm.vmas).toHaveLength(0);
  });

  it('leaves a split VMA mapping the file from the right page, and both in i_mmap', () => {
    const { mm, file, addr } = fileMapping(4 * PAGE_SIZE);
    mm.munmap(addr + PAGE_SIZE, PAGE_SIZE);
    expect(mm.vmas.map((v) => v.pgoff)).toEqual([0, 2]);
    expect(file.mmaps.size).toBe(2);
    file.writeStore(3 * PAGE_SIZE, pattern(16, 1));
    expect(mm.read(addr + 3 * PAGE_SIZE, 16)).toEqual(pattern(16, 1));
    mm.munmap(addr, 4 * PAGE_SIZE);
    expect(file.mmaps.size).toBe(0);
  });
});

describe('write faults on a shared file mapping', () => {
  it('dirties the folio and maps it writable and dirty', () => {
    const { memory, mm, addr, vma } = fileMapping();
    mm.write(addr + 5, pattern(10));
    const pfn = mm.lookupPfn(addr);
    expect(folioTestDirty(memory, pfn)).toBe(true);
    expect(vma.pte[0]).toBe(PTE_WRITE | PTE_DIRTY);
  });

  it('dirties a page first mapped by a read when it is written (wp_page_shared)', () => {
    const { memory, mm, addr, vma } = fileMapping();
    mm.read(addr, 1);
    const pfn = mm.lookupPfn(addr);
    mm.write(addr, Uint8Array.of(1));
    expect(mm.lookupPfn(addr)).toBe(pfn);
    expect(folioTestDirty(memory, pfn)).toBe(true);
    expect(vma.pte[0]).toBe(PTE_WRITE | PTE_DIRTY);
  });

  it('shows one process\'s writes to another mapping of the same file', () => {
    const { memory, mm, file, addr } = fileMapping();
    const other = mm.mmap(4 * PAGE_SIZE, { file, shared: true });
    mm.write(addr + PAGE_SIZE, pattern(100, 4));
    expect(mm.read(other + PAGE_SIZE, 100)).toEqual(pattern(100, 4));
    expect(pageMapcount(memory, mm.lookupPfn(addr + PAGE_SIZE))).toBe(2);
  });
});

describe('private file mappings', () => {
  it('read the file and write to an anonymous copy the file never sees', () => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: PAGE_SIZE });
    file.writeStore(0, pattern(PAGE_SIZE, 2));
    const addr = mm.mmap(PAGE_SIZE, { file });
    expect(mm.read(addr, PAGE_SIZE)).toEqual(pattern(PAGE_SIZE, 2));
    const cached = mm.lookupPfn(addr);
    expect(cached).toBe(file.cachedPfn(0));
    mm.write(addr, Uint8Array.of(0xee));
    const copy = mm.lookupPfn(addr);
    expect(copy).not.toBe(cached);
    expect(memory.readPhys(copy * PAGE_SIZE, 2)).toEqual(Uint8Array.of(0xee, 3));
    expect(pageMapcount(memory, cached)).toBe(0);
    expect(folioRefCount(memory, cached)).toBe(1); // the cache's reference alone
    expect(folioTestDirty(memory, cached)).toBe(false);
    expect(writeback(memory)).toBe(0);
    expect(file.readStore(0, 2)).toEqual(Uint8Array.of(2, 3));
  });

  it('copies at once on a first write to an untouched page (do_cow_fault)', () => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: PAGE_SIZE });
    file.writeStore(0, pattern(PAGE_SIZE, 5));
    const addr = mm.mmap(PAGE_SIZE, { file });
    mm.write(addr + 1, Uint8Array.of(0xaa));
    const copy = mm.lookupPfn(addr);
    expect(copy).not.toBe(file.cachedPfn(0));
    expect(file.cachedPfn(0)).toBeGreaterThan(0);
    expect(mm.read(addr, 3)).toEqual(Uint8Array.of(5, 0xaa, 7));
  });
});

describe('file faults out of memory', () => {
  it('throws ENOMEM and frees the copy when the page cache cannot read the page in (do_cow_fault)', () => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: PAGE_SIZE });
    const addr = mm.mmap(PAGE_SIZE, { file });
    const free = memory.nrFreePages;
    memory.injectAllocFailure(1); // the copy is allocated, the page-cache page is not
    expectCode(() => mm.write(addr, Uint8Array.of(1)), 'ENOMEM');
    expect(memory.nrFreePages).toBe(free);
    expect(mm.lookupPfn(addr)).toBe(-1);
    expect(mm.read(addr, 1)).toEqual(Uint8Array.of(0));
  });

  it('returns a short GUP count when a shared read fault finds no page', () => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: 2 * PAGE_SIZE });
    const addr = mm.mmap(2 * PAGE_SIZE, { file, shared: true });
    memory.injectAllocFailure(1);
    const pages = new Uint32Array(2);
    expect(pinUserPages(mm, addr, 2, 0, pages)).toBe(1);
    unpinUserPages(memory, pages, 1);
    expect(file.cachedPfn(1)).toBe(-1);
  });
});

describe('access past the end of a file', () => {
  it('throws EFAULT naming SIGBUS on a CPU read or write, changing nothing', () => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: PAGE_SIZE + 100 });
    const addr = mm.mmap(4 * PAGE_SIZE, { file, shared: true });
    const free = memory.nrFreePages;
    expect(() => mm.read(addr + 2 * PAGE_SIZE, 1)).toThrow(/SIGBUS.*past the end of the file/);
    expectCode(() => mm.read(addr, 3 * PAGE_SIZE), 'EFAULT');
    expectCode(() => mm.write(addr + PAGE_SIZE, new Uint8Array(PAGE_SIZE + 1)), 'EFAULT');
    expect(memory.nrFreePages).toBe(free);
    expect(mm.lookupPfn(addr)).toBe(-1);
    // the page holding the end of the file maps whole; the tail past i_size reads as zeros
    expect(mm.read(addr + PAGE_SIZE, PAGE_SIZE)).toEqual(new Uint8Array(PAGE_SIZE));
  });

  it('throws EFAULT from GUP at the first page, a short count after it', () => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: 2 * PAGE_SIZE });
    const addr = mm.mmap(4 * PAGE_SIZE, { file, shared: true });
    const pages = new Uint32Array(4);
    expect(pinUserPages(mm, addr, 4, FOLL_WRITE, pages)).toBe(2);
    unpinUserPages(memory, pages, 2);
    expectCode(() => pinUserPages(mm, addr + 2 * PAGE_SIZE, 1, 0, pages), 'EFAULT');
  });

  it('stops MAP_POPULATE at the end of the file', () => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: PAGE_SIZE });
    const addr = mm.mmap(3 * PAGE_SIZE, { file, shared: true, populate: true });
    expect(mm.lookupPfn(addr)).toBe(file.cachedPfn(0));
    expect(mm.lookupPfn(addr + PAGE_SIZE)).toBe(-1);
  });
});

describe('writeback', () => {
  it('stores dirty pages, cleans them and write-protects the entries', () => {
    const { memory, mm, file, addr, vma } = fileMapping();
    mm.write(addr + PAGE_SIZE - 2, pattern(4, 7));
    expect(file.readStore(PAGE_SIZE - 2, 4)).toEqual(new Uint8Array(4));
    expect(writeback(memory)).toBe(2);
    expect(file.readStore(PAGE_SIZE - 2, 4)).toEqual(pattern(4, 7));
    expect(folioTestDirty(memory, mm.lookupPfn(addr))).toBe(false);
    expect(folioTestWriteback(memory, mm.lookupPfn(addr))).toBe(false);
    expect(vma.pte[0]).toBe(0);
    expect(vma.pte[1]).toBe(0);
    expect(writeback(memory)).toBe(0);
    // the next write faults and dirties again
    mm.write(addr, Uint8Array.of(1));
    expect(folioTestDirty(memory, mm.lookupPfn(addr))).toBe(true);
    expect(filemapWriteAndWait(file)).toBe(1);
  });

  it('stores only up to the end of the file', () => {
    const { memory, mm } = setup();
    const file = createFile(memory, { size: 100 });
    const addr = mm.mmap(PAGE_SIZE, { file, shared: true });
    mm.write(addr, pattern(PAGE_SIZE, 1));
    writeback(memory);
    expect(file.readStore(0, 100)).toEqual(pattern(100, 1));
    expect(dropCaches(memory)).toBe(0); // still mapped
    mm.munmap(addr, PAGE_SIZE);
    expect(dropCaches(memory)).toBe(1);
    const again = mm.mmap(PAGE_SIZE, { file, shared: true });
    expect(mm.read(again, PAGE_SIZE)).toEqual(new Uint8Array([...pattern(100, 1), ...new Uint8Array(PAGE_SIZE - 100)]));
  });

  it('takes a page dirtied by munmap: a dirty entry hands its dirt to the folio', () => {
    const { memory, mm, file, addr, vma } = fileMapping();
    mm.read(addr, 1);
    const pfn = mm.lookupPfn(addr);
    // a write that left the entry dirty but the folio clean (the hardware dirty bit)
    vma.pte[0] = PTE_WRITE | PTE_DIRTY;
    mm.munmap(addr, 4 * PAGE_SIZE);
    expect(folioTestDirty(memory, pfn)).toBe(true);
    expect(writeback(memory)).toBe(1);
    expect(file.cachedPfn(0)).toBe(pfn);
  });

  it('throws EINVAL without a PhysicalMemory or a file', () => {
    expectCode(() => writeback({} as never), 'EINVAL');
    expectCode(() => filemapWriteAndWait({} as never), 'EINVAL');
    expectCode(() => dropCaches(null as never), 'EINVAL');
    expectCode(() => reclaimPageCache(undefined as never), 'EINVAL');
    expectCode(() => folioTestDirty(new PhysicalMemory({ bytes: 8192 }), 2), 'EINVAL');
  });
});

describe('dropCaches', () => {
  it('drops clean unmapped pages and keeps dirty, mapped, pinned and referenced ones', () => {
    const { memory, mm, file, addr } = fileMapping(5 * PAGE_SIZE);
    mm.read(addr, 5 * PAGE_SIZE); // all five cached and mapped, clean
    const pfns = [0, 1, 2, 3, 4].map((i) => file.cachedPfn(i));
    const pin = new Uint32Array(1);
    const ref = new Uint32Array(1);
    mm.write(addr + PAGE_SIZE, Uint8Array.of(1)); // page 1 dirty
    pinUserPages(mm, addr + 2 * PAGE_SIZE, 1, 0, pin); // page 2 pinned
    getUserPages(mm, addr + 3 * PAGE_SIZE, 1, 0, ref); // page 3 referenced
    mm.munmap(addr, 4 * PAGE_SIZE); // page 4 stays mapped
    const free = memory.nrFreePages;
    expect(dropCaches(memory)).toBe(1); // page 0
    expect(memory.nrFreePages).toBe(free + 1);
    expect([0, 1, 2, 3, 4].map((i) => file.cachedPfn(i))).toEqual([-1, pfns[1], pfns[2], pfns[3], pfns[4]]);
    unpinUserPages(memory, pin, 1);
    putPage(memory, ref[0]!);
    writeback(memory);
    expect(dropCaches(memory)).toBe(3);
    expect(file.cachedPfn(4)).toBe(pfns[4]);
  });
});

describe('reclaimPageCache', () => {
  it('unmaps clean pages and frees them; keeps dirty and pinned ones', () => {
    const { memory, mm, file, addr } = fileMapping(3 * PAGE_SIZE);
    mm.read(addr, 3 * PAGE_SIZE);
    mm.write(addr + PAGE_SIZE, pattern(8, 1)); // page 1 dirty
    const pin = new Uint32Array(1);
    pinUserPages(mm, addr + 2 * PAGE_SIZE, 1, 0, pin); // page 2 pinned
    const r = reclaimPageCache(memory);
    expect(r).toEqual({ scanned: 3, unmapped: 3, reclaimed: 1, keptPinned: 1, keptDirty: 1, keptBusy: 0 });
    expect(mm.lookupPfn(addr)).toBe(-1);
    expect(file.cachedPfn(0)).toBe(-1);
    expect(folioRefCount(memory, pin[0]!)).toBe(1 + GUP_PIN_COUNTING_BIAS);
    // the data written survives: a refault reads the dirty cached page
    expect(mm.read(addr + PAGE_SIZE, 8)).toEqual(pattern(8, 1));
    unpinUserPages(memory, pin, 1);
    expect(writeback(memory)).toBe(1);
    mm.munmap(addr, 3 * PAGE_SIZE);
    expect(reclaimPageCache(memory).reclaimed).toBe(2);
    expect(file.readStore(PAGE_SIZE, 8)).toEqual(pattern(8, 1));
  });

  it('unmaps a page held by a FOLL_GET reference but keeps it: the refcount freeze fails', () => {
    const { memory, mm, file, addr } = fileMapping(PAGE_SIZE);
    const ref = new Uint32Array(1);
    getUserPages(mm, addr, 1, 0, ref);
    expect(reclaimPageCache(memory)).toEqual({ scanned: 1, unmapped: 1, reclaimed: 0, keptPinned: 0, keptDirty: 0, keptBusy: 1 });
    expect(mm.lookupPfn(addr)).toBe(-1);
    expect(file.cachedPfn(0)).toBe(ref[0]);
    putPage(memory, ref[0]!);
    expect(reclaimPageCache(memory).reclaimed).toBe(1);
  });
});
