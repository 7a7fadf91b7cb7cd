// ib_umem_get / ib_umem_release / ib_umem_find_best_pgsz (drivers/infiniband/core/umem.c).

import { describe, expect, it } from 'vitest';
import { AddressSpace, Device, dmaFindBestPgsz, Iommu, leakReport, PAGE_SIZE, PhysicalMemory, folioPinCount } from '@iodesc/core';
import { getUserSg, ibUmemFindBestPgsz, ibUmemGet, ibUmemNumDmaBlocks, ibUmemOffset, ibUmemRelease, putUserSg, sgFreeTable } from '../src/index.js';
import { codeOf } from './helpers.js';

const P = PAGE_SIZE;
const M2 = 2 ** 21;
const BITMAP = P | 16 * P | M2 | 2 ** 30;

function machine(opts: { rlimitMemlock?: number; capIpcLock?: boolean } = {}) {
  const memory = new PhysicalMemory({ bytes: 128 * 2 ** 20, seed: 4 });
  return { memory, mm: new AddressSpace(memory, opts) };
}

describe('ibUmemGet / ibUmemRelease', () => {
  it('pins long-term, charges pinnedVm, maps bidirectionally; release undoes all and dirties a writable registration', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(40 * P, { populate: true });
    const device = new Device(memory, { name: 'hca', iommu: new Iommu(), maxSegmentSize: 2 ** 20 });
    const umem = ibUmemGet(device, mm, addr + 100, 20 * P, { writable: true, owner: 'mr' });
    expect(mm.pinnedVm).toBe(21);
    expect(ibUmemOffset(umem)).toBe(100);
    // ib_umem keeps whole pages: the table starts at the page and ends at a page end
    const segs = [...umem.sgt.segments()];
    expect(segs[0]!.offset).toBe(0);
    expect(umem.sgt.length).toBe(21 * P);
    expect(umem.sgt.mapping!.dir).toBe('bidirectional');
    expect(folioPinCount(memory, mm.lookupPfn(addr))).toBe(1);
    expect(codeOf(() => sgFreeTable(umem.sgt))).toBe('EBUSY');
    ibUmemRelease(umem);
    expect(mm.pinnedVm).toBe(0);
    expect(memory.isDirty(mm.lookupPfn(addr + 5 * P))).toBe(true);
    expect(device.liveCount).toBe(0);
    expect(leakReport(memory)).toEqual([]);
    expect(codeOf(() => ibUmemRelease(umem))).toBe('EINVAL');
  });

  it.each([
    ['RLIMIT_MEMLOCK 0', { rlimitMemlock: 0 }, 4 * P, {}, 'EPERM'],
    ['over RLIMIT_MEMLOCK', { rlimitMemlock: 8 * P }, 9 * P, {}, 'ENOMEM'],
    ['size 0', {}, 0, {}, 'EINVAL'],
    ['on-demand paging', {}, 4 * P, { onDemand: true }, 'EOPNOTSUPP'],
  ] as const)('refuses %s (%s) charging and pinning nothing', (_label, mmOpts, size, access, code) => {
    const { memory, mm } = machine(mmOpts);
    const addr = mm.mmap(16 * P, { populate: true });
    const device = new Device(memory, { name: 'hca' });
    expect(codeOf(() => ibUmemGet(device, mm, addr, size, { writable: true, ...access }))).toBe(code);
    expect(mm.pinnedVm).toBe(0);
    expect(leakReport(memory)).toEqual([]);
  });

  it('charges over the limit with CAP_IPC_LOCK', () => {
    const { memory, mm } = machine({ rlimitMemlock: 4 * P, capIpcLock: true });
    const addr = mm.mmap(16 * P, { populate: true });
    const umem = ibUmemGet(new Device(memory, { name: 'hca' }), mm, addr, 16 * P, { writable: false });
    expect(mm.pinnedVm).toBe(16);
    ibUmemRelease(umem);
    expect(mm.pinnedVm).toBe(0);
  });

  it('unwinds pins and the charge when a page in the second batch faults, or the IOVA space runs out', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(1000 * P, { populate: true });
    const device = new Device(memory, { name: 'hca', iommu: new Iommu() });
    mm.injectFault(addr + 700 * P);
    expect(codeOf(() => ibUmemGet(device, mm, addr, 1000 * P, { writable: true }))).toBe('EFAULT');
    mm.clearInjectedFaults();
    const narrow = new Device(memory, { name: 'narrow', iommu: new Iommu(), dmaMaskBits: 16 });
    expect(codeOf(() => ibUmemGet(narrow, mm, addr, 1000 * P, { writable: true }))).toBe('ENOMEM');
    expect(mm.pinnedVm).toBe(0);
    expect(leakReport(memory)).toEqual([]);
  });

  it('maps with DMA_ATTR_REQUIRE_COHERENT: a direct device that would bounce fails with EIO, unwinding all (getUserSg bounces)', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(8 * P, { populate: true });
    const narrow = new Device(memory, { name: 'narrow', dmaMaskBits: 12 });
    expect(codeOf(() => ibUmemGet(narrow, mm, addr, 8 * P, { writable: true }))).toBe('EIO');
    expect(mm.pinnedVm).toBe(0);
    expect(narrow.liveCount).toBe(0);
    expect(leakReport(memory)).toEqual([]);
    const bouncing = new Device(memory, { name: 'bouncing', forceBounce: true });
    expect(codeOf(() => ibUmemGet(bouncing, mm, addr, 8 * P, { writable: true }))).toBe('EIO');
    const t = getUserSg(mm, addr, 8 * P, { write: true, device: bouncing });
    expect([...t.dmaSegments()].length).toBe(t.nents);
    putUserSg(t, { dirty: false });
    expect(mm.pinnedVm).toBe(0);
    expect(leakReport(memory)).toEqual([]);
  });
});

describe('ibUmemFindBestPgsz', () => {
  it('finds 2 MiB for a THP-backed, 2 MiB-aligned registration on a direct device, and sets iova', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(4 * M2, { thp: true, populate: true });
    expect(addr % M2).toBe(0);
    const umem = ibUmemGet(new Device(memory, { name: 'hca', maxSegmentSize: 0xffffffff }), mm, addr, 4 * M2, { writable: true });
    expect(ibUmemFindBestPgsz(umem, BITMAP, addr)).toBe(M2);
    expect(umem.iova).toBe(addr);
    expect(ibUmemNumDmaBlocks(umem, M2)).toBe(4);
    // an IOVA off the VA's 2 MiB alignment by a page: only 4 KiB pages line up
    expect(ibUmemFindBestPgsz(umem, BITMAP, addr + P)).toBe(P);
    expect(ibUmemFindBestPgsz(umem, M2 | 2 ** 30, addr + P)).toBe(0);
    ibUmemRelease(umem);
    expect(leakReport(memory)).toEqual([]);
  });

  it.each([0, 0x100, P - 1])('agrees with dmaFindBestPgsz over a getUserSg table of the same range at offset %i (its first entry already starts there)', (off) => {
    const { memory, mm } = machine();
    const addr = mm.mmap(4 * M2, { thp: true, populate: true });
    const device = new Device(memory, { name: 'hca', maxSegmentSize: 0xffffffff });
    const bitmap = P | 2 * P | 16 * P | M2;
    const start = addr + off;
    const length = M2 - 2 * P;
    const umem = ibUmemGet(device, mm, start, length, { writable: true });
    const t = getUserSg(mm, start, length, { write: true, device });
    expect([...t.segments()][0]!.offset).toBe(off);
    for (const virt of [start, start + P, M2 * 5 + off]) {
      const best = ibUmemFindBestPgsz(umem, bitmap, virt);
      expect(best).toBeGreaterThan(0);
      expect(dmaFindBestPgsz(t.mapping!, start, length, bitmap, virt)).toBe(best);
    }
    expect(ibUmemFindBestPgsz(umem, bitmap, start)).toBe(M2);
    putUserSg(t, { dirty: false });
    ibUmemRelease(umem);
    expect(leakReport(memory)).toEqual([]);
  });

  it('computes for a registration of size 0 at an unaligned address (one page pinned), as the kernel does', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(4 * P, { populate: true });
    const umem = ibUmemGet(new Device(memory, { name: 'hca' }), mm, addr + 100, 0, { writable: false });
    expect(mm.pinnedVm).toBe(1);
    expect(ibUmemFindBestPgsz(umem, BITMAP, addr + 100)).toBe(P);
    ibUmemRelease(umem);
    expect(mm.pinnedVm).toBe(0);
    expect(leakReport(memory)).toEqual([]);
  });

  it('finds 4 KiB for scattered pages', () => {
    const memory = new PhysicalMemory({ bytes: 128 * 2 ** 20, seed: 4 });
    memory.fragment({ seed: 4, freeRunPages: 1 });
    const mm = new AddressSpace(memory);
    const addr = mm.mmap(64 * P, { populate: true });
    const umem = ibUmemGet(new Device(memory, { name: 'hca' }), mm, addr, 64 * P, { writable: false });
    expect(umem.sgt.origNents).toBe(64);
    expect(ibUmemFindBestPgsz(umem, BITMAP, addr)).toBe(P);
    ibUmemRelease(umem);
    expect(leakReport(memory)).toEqual([]);
  });
});
