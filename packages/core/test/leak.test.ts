// The leak report: pins and get_user_pages references still held, with the owner that took them.

import { describe, expect, it } from 'vitest';
import {
  FOLL_WRITE, HPAGE_PMD_NR, PAGE_SIZE,
  getUserPages, leakReport, pinUserPages, pinUserPagesFast, putPage, unpinUserPages,
} from '../src/index.js';
import { expectCode, setup } from './helpers.js';

describe('leakReport', () => {
  it('is empty for fresh memory and after mapping and writing', () => {
    const { memory, mm } = setup();
    expect(leakReport(memory)).toEqual([]);
    const addr = mm.mmap(4 * PAGE_SIZE);
    mm.write(addr, new Uint8Array(4 * PAGE_SIZE).fill(3));
    expect(leakReport(memory)).toEqual([]);
  });

  it('names the owner of each pinned folio and empties once unpinned', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(3 * PAGE_SIZE, { populate: true });
    const a = new Uint32Array(2);
    const b = new Uint32Array(1);
    pinUserPages(mm, addr, 2, FOLL_WRITE, a, { owner: 'rdma-mr-1' });
    pinUserPagesFast(mm, addr + 2 * PAGE_SIZE, 1, 0, b, { owner: 'io_uring' });
    const report = leakReport(memory);
    expect(report).toHaveLength(3);
    expect(report).toEqual(expect.arrayContaining([
      expect.objectContaining({ kind: 'pinned-page', pfn: a[0], count: 1, owner: 'rdma-mr-1' }),
      expect.objectContaining({ kind: 'pinned-page', pfn: a[1], count: 1, owner: 'rdma-mr-1' }),
      expect.objectContaining({ kind: 'pinned-page', pfn: b[0], count: 1, owner: 'io_uring' }),
    ]));
    unpinUserPages(memory, a, 2);
    expect(leakReport(memory)).toEqual([expect.objectContaining({ pfn: b[0], owner: 'io_uring' })]);
    unpinUserPages(memory, b, 1);
    expect(leakReport(memory)).toEqual([]);
  });

  it('lists FOLL_GET references with their owner, zero page included', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(2 * PAGE_SIZE);
    mm.write(addr, Uint8Array.of(1));
    const pages = new Uint32Array(2);
    getUserPages(mm, addr, 2, 0, pages, { owner: 'direct-io' });
    expect(pages[1]).toBe(memory.zeroPfn);
    expect(leakReport(memory)).toEqual([
      expect.objectContaining({ kind: 'referenced-page', pfn: 0, count: 1, owner: 'direct-io' }),
      expect.objectContaining({ kind: 'referenced-page', pfn: pages[0], count: 1, owner: 'direct-io' }),
    ]);
    for (const p of pages) putPage(memory, p);
    expect(leakReport(memory)).toEqual([]);
  });

  it('reports a large folio once with its exact pin count', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(HPAGE_PMD_NR * PAGE_SIZE, { thp: true, populate: true });
    const pages = new Uint32Array(37);
    pinUserPages(mm, addr + 3 * PAGE_SIZE, 37, 0, pages, { owner: 'vfio' });
    expect(leakReport(memory)).toEqual([
      expect.objectContaining({ kind: 'pinned-page', pfn: mm.lookupPfn(addr), count: 37, owner: 'vfio' }),
    ]);
    unpinUserPages(memory, pages, 37);
    expect(leakReport(memory)).toEqual([]);
  });

  it('reports an untagged pin with owner undefined', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { populate: true });
    pinUserPages(mm, addr, 1, 0, new Uint32Array(1));
    expect(leakReport(memory)).toEqual([expect.objectContaining({ kind: 'pinned-page', owner: undefined })]);
  });

  it('reports a page pinned and then unmapped', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { populate: true });
    const pages = new Uint32Array(1);
    pinUserPages(mm, addr, 1, 0, pages, { owner: 'leaky' });
    mm.munmap(addr, PAGE_SIZE);
    expect(leakReport(memory)).toEqual([expect.objectContaining({ pfn: pages[0], owner: 'leaky' })]);
  });

  it('appends the entries of registered leak sources', () => {
    const { memory } = setup();
    memory.leakSources.push(() => [{ kind: 'dma-mapping', count: 1, owner: 'nvme', detail: 'iova 0x1000' }]);
    expect(leakReport(memory)).toEqual([expect.objectContaining({ kind: 'dma-mapping', owner: 'nvme' })]);
  });

  it('throws EINVAL when memory is not a PhysicalMemory', () => {
    const { mm } = setup();
    expectCode(() => leakReport(mm as never), 'EINVAL');
  });
});
