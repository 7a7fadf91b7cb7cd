// getUserSg/putUserSg and the DMA fields: pinning in batches of 512 through the append call,
// mapping in place (dma_map_sgtable, dma_map_sg), a device's writes reaching the process, and
// unwinding a failure part-way with nothing left behind.

import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import {
  AddressSpace, Device, Iommu, leakReport, PAGE_SIZE, PhysicalMemory, folioPinCount,
} from '@iodesc/core';
import {
  dmaMapSg, dmaMapSgtable, dmaUnmapSg, dmaUnmapSgtable, getUserSg, ibUmemGet, ibUmemRelease, putUserSg, sgAllocTableFromPages, sgAllocTableFromPagesSegment, sgEntry, sgFreeTable, sgNext,
  SgStore, UINT_MAX,
} from '../src/index.js';
import { codeOf } from './helpers.js';

const P = PAGE_SIZE;

function machine(seed = 1, bytes = 64 * 2 ** 20) {
  const memory = new PhysicalMemory({ bytes, seed });
  return { memory, mm: new AddressSpace(memory) };
}

const pattern = (n: number, salt: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + salt) & 0xff);

// The PFNs the process maps over [addr, addr + length), one per page.
function userPfns(mm: AddressSpace, addr: number, length: number): Uint32Array {
  const first = addr - (addr % P);
  const n = Math.ceil((addr - first + length) / P);
  return Uint32Array.from({ length: n }, (_, i) => mm.lookupPfn(first + i * P));
}

describe('getUserSg / putUserSg', () => {
  it.each(['direct', 'iommu'] as const)('lets a %s device write through the mapping, and putUserSg({ dirty }) hands the bytes to the process', (kind) => {
    const { memory, mm } = machine();
    const addr = mm.mmap(64 * P, { populate: true });
    const start = addr + 300;
    const length = 40 * P + 77;
    mm.write(start, pattern(length, 1));
    const device = new Device(memory, { name: `nic-${kind}`, iommu: kind === 'iommu' ? new Iommu() : 'direct' });
    const t = getUserSg(mm, start, length, { write: true, device, owner: 'test' });
    expect(t.length).toBe(length);
    expect([...t.segments()][0]!.offset).toBe(300);
    // the device writes its bytes segment by segment, from the DMA fields
    const data = pattern(length, 99);
    let pos = 0;
    for (const { dmaAddress, dmaLength } of t.dmaSegments()) {
      device.dmaWrite(dmaAddress, data.subarray(pos, pos + dmaLength));
      pos += dmaLength;
    }
    expect(pos).toBe(length);
    putUserSg(t, { dirty: true });
    expect(mm.read(start, length).every((b, i) => b === data[i])).toBe(true);
    expect(memory.isDirty(mm.lookupPfn(start))).toBe(true);
    expect(device.liveCount).toBe(0);
    expect(leakReport(memory)).toEqual([]);
    expect(codeOf(() => putUserSg(t, { dirty: false }))).toBe('EINVAL');
  });

  it('builds across 512-page batches the same entries as one call over the pinned pages (merges cross batch edges)', () => {
    const { memory, mm } = machine(3);
    const addr = mm.mmap(1500 * P, { populate: true });
    const t = getUserSg(mm, addr + 5, 1400 * P, { write: false });
    const pages = userPfns(mm, addr + 5, 1400 * P);
    expect(pages.length).toBe(1401);
    // the pages either side of the first batch edge continue each other, so an entry must span it
    expect(pages[512]).toBe(pages[511]! + 1);
    const one = sgAllocTableFromPages(pages, pages.length, 5, 1400 * P);
    expect([...t.segments()]).toEqual([...one.segments()]);
    expect(t.origNents).toBeLessThan(3);
    sgFreeTable(one);
    for (const p of pages) expect(folioPinCount(memory, p)).toBe(1);
    putUserSg(t, { dirty: false });
    expect(leakReport(memory)).toEqual([]);
  });

  it('matches sgAllocTableFromPagesSegment exactly with the same maxSegment', () => {
    const { memory, mm } = machine(5);
    const addr = mm.mmap(1200 * P, { populate: true });
    const t = getUserSg(mm, addr, 1200 * P, { write: true, maxSegment: 100 * P });
    const pages = userPfns(mm, addr, 1200 * P);
    const one = sgAllocTableFromPagesSegment(pages, pages.length, 0, pages.length * P, 100 * P);
    expect([...t.segments()]).toEqual([...one.segments()]);
    putUserSg(t, { dirty: false });
    expect(leakReport(memory)).toEqual([]);
  });

  it('property: across batch edges, any offset, tail and maxSegment, the table equals one build over the pinned PFNs', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(1, 4, 16, 512), fc.integer({ min: 0, max: P - 1 }), fc.integer({ min: 1, max: 1300 * P }), fc.integer({ min: 1, max: 300 }), fc.nat(9),
        (run, offset, length, maxPages, seed) => {
          const memory = new PhysicalMemory({ bytes: 64 * 2 ** 20, seed });
          memory.fragment({ seed, freeRunPages: run });
          const mm = new AddressSpace(memory);
          const addr = mm.mmap(1302 * P, { populate: true, thp: run === 512 });
          const t = getUserSg(mm, addr + offset, length, { write: true, maxSegment: maxPages * P });
          const pages = userPfns(mm, addr + offset, length);
          const one = sgAllocTableFromPagesSegment(pages, pages.length, offset, length, maxPages * P);
          expect([...t.segments()]).toEqual([...one.segments()]);
          sgFreeTable(one);
          putUserSg(t, { dirty: false });
          expect(leakReport(memory)).toEqual([]);
        },
      ),
      { numRuns: 15, seed: 1401 },
    );
  });

  it('unwinds a fault in the third batch: no pin, no table', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(1600 * P, { populate: true });
    mm.injectFault(addr + 1100 * P, 'EFAULT');
    expect(codeOf(() => getUserSg(mm, addr, 1600 * P, { write: true, longterm: true }))).toBe('EFAULT');
    expect(leakReport(memory)).toEqual([]);
    mm.clearInjectedFaults();
    putUserSg(getUserSg(mm, addr, 1600 * P, { write: true }), { dirty: false });
    expect(leakReport(memory)).toEqual([]);
  });

  it('unwinds a table allocation failing after the second batch merged into the last entry: ENOMEM, each pin released once', () => {
    const { memory, mm } = machine(3);
    const addr = mm.mmap(1100 * P, { populate: true });
    const pages = userPfns(mm, addr, 1100 * P);
    // one run over the first batch edge: batch 2 grows the last entry to maxSegment, then needs a new one
    for (let i = 1; i < 700; i++) expect(pages[i]).toBe(pages[0]! + i);
    const grow = SgStore.prototype.reserve;
    // the buffer of slots cannot grow once the first batch is in (batch 1 fits the first chunk)
    const spy = vi.spyOn(SgStore.prototype, 'reserve').mockImplementation(function (this: SgStore, slots: number) {
      if (this.used > 0 && slots > this.capacity) throw new RangeError('Array buffer allocation failed');
      grow.call(this, slots);
    });
    let code: string | undefined;
    try {
      code = codeOf(() => getUserSg(mm, addr, 1100 * P, { write: false, maxSegment: 600 * P }));
    } finally {
      spy.mockRestore();
    }
    expect(code).toBe('ENOMEM');
    for (const p of pages) expect(folioPinCount(memory, p)).toBe(0);
    expect(leakReport(memory)).toEqual([]);
  });

  it('unwinds an allocation failure while faulting in the second batch', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(1100 * P);
    memory.injectAllocFailure(700, 1000);
    expect(codeOf(() => getUserSg(mm, addr, 1100 * P, { write: true }))).toBe('ENOMEM');
    expect(leakReport(memory)).toEqual([]);
    memory.clearAllocFailures();
  });

  it('unwinds when the IOVA space runs out after pinning: no pin, no mapping', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(64 * P, { populate: true });
    // a 16-bit mask leaves 15 IOVA pages
    const device = new Device(memory, { name: 'narrow', iommu: new Iommu(), dmaMaskBits: 16 });
    expect(codeOf(() => getUserSg(mm, addr, 64 * P, { write: true, device }))).toBe('ENOMEM');
    expect(device.iommu!.iovad.allocatedPages).toBe(0);
    expect(device.liveCount).toBe(0);
    expect(leakReport(memory)).toEqual([]);
  });

  it.each([
    ['maxSegment 0', { write: true, maxSegment: 0 }],
    ['maxSegment 4095', { write: true, maxSegment: P - 1 }],
    ['write missing', {}],
    ['write a string', { write: 'yes' }],
    ['device not a Device', { write: true, device: {} }],
    ['dir unknown', { write: true, dir: 'sideways' }],
  ])('refuses %s with EINVAL, pinning nothing', (_label, opts) => {
    const { memory, mm } = machine();
    const addr = mm.mmap(8 * P, { populate: true });
    expect(codeOf(() => getUserSg(mm, addr, 8 * P, opts as never))).toBe('EINVAL');
    expect(leakReport(memory)).toEqual([]);
  });

  it.each([
    ['length 0', 0],
    ['length 1.5', 1.5],
    ['length -1', -1],
  ])('refuses %s with EINVAL', (_label, length) => {
    const { memory, mm } = machine();
    const addr = mm.mmap(8 * P, { populate: true });
    expect(codeOf(() => getUserSg(mm, addr, length, { write: true }))).toBe('EINVAL');
    expect(leakReport(memory)).toEqual([]);
  });

  it('charges an sg_append_table header and hands out fresh DMA segment objects', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(8 * P, { populate: true });
    const device = new Device(memory, { name: 'd' });
    const t = getUserSg(mm, addr, 8 * P, { write: false, device });
    expect(t.footprint().breakdown).toMatchObject({ sg_append_table: 32 });
    const a = [...t.dmaSegments()];
    const b = [...t.dmaSegments()];
    expect(a).toEqual(b);
    expect(a[0]).not.toBe(b[0]);
    expect(t.nents).toBe(a.length);
    putUserSg(t, { dirty: false });
    expect(leakReport(memory)).toEqual([]);
  });

  it('tears down a table mapped with dmaMapSg over fewer entries than it holds', () => {
    const memory = new PhysicalMemory({ bytes: 64 * 2 ** 20, seed: 2 });
    memory.fragment({ seed: 2, freeRunPages: 1 });
    const mm = new AddressSpace(memory);
    const addr = mm.mmap(10 * P, { populate: true });
    const t = getUserSg(mm, addr, 10 * P, { write: true });
    expect(t.origNents).toBeGreaterThan(3);
    const device = new Device(memory, { name: 'd' });
    expect(dmaMapSg(device, t, 3, 'from-device')).toBe(3);
    putUserSg(t, { dirty: true });
    expect(device.liveCount).toBe(0);
    expect(leakReport(memory)).toEqual([]);
  });

  it('refuses an ib_umem\'s table (EINVAL), leaving the registration whole', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(8 * P, { populate: true });
    const device = new Device(memory, { name: 'hca' });
    const umem = ibUmemGet(device, mm, addr, 8 * P, { writable: true });
    expect(codeOf(() => putUserSg(umem.sgt, { dirty: false }))).toBe('EINVAL');
    expect(mm.pinnedVm).toBe(8);
    expect(folioPinCount(memory, mm.lookupPfn(addr))).toBe(1);
    expect(device.liveCount).toBe(1);
    ibUmemRelease(umem);
    expect(leakReport(memory)).toEqual([]);
  });

  it('refuses to free a table still holding pins (EBUSY)', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(8 * P, { populate: true });
    const t = getUserSg(mm, addr, 8 * P, { write: true });
    expect(codeOf(() => sgFreeTable(t))).toBe('EBUSY');
    putUserSg(t, { dirty: false });
    expect(leakReport(memory)).toEqual([]);
  });
});

describe('dmaMapSgtable / dmaMapSg: DMA fields in place', () => {
  it('writes the IOMMU-merged segments into the first entries; entries past nents read DMA length 0', () => {
    const { memory } = machine();
    // three discontiguous runs: an IOMMU maps them into one IOVA range and merges the segments
    const t = sgAllocTableFromPages(Uint32Array.of(100, 101, 200, 300, 301, 302), 6, 0, 6 * P);
    expect(t.origNents).toBe(3);
    const device = new Device(memory, { name: 'iommu', iommu: new Iommu(), maxSegmentSize: 2 ** 20 });
    dmaMapSgtable(device, t, 'to-device');
    expect(t.nents).toBe(1);
    expect([...t.dmaSegments()]).toEqual([{ dmaAddress: expect.any(Number), dmaLength: 6 * P }]);
    const s1 = sgNext(t, t.sgl);
    expect(sgEntry(t, s1).dmaLength).toBe(0);
    expect(sgEntry(t, sgNext(t, s1)).dmaLength).toBe(0);
    dmaUnmapSgtable(device, t, 'to-device');
    expect(device.iommu!.iovad.allocatedPages).toBe(0);
    expect([...t.dmaSegments()]).toEqual([]);
    sgFreeTable(t);
  });

  it('maps one segment per entry on a direct device, bus address = physical address', () => {
    const { memory } = machine();
    const t = sgAllocTableFromPages(Uint32Array.of(100, 101, 200), 3, 10, 3 * P - 20);
    const device = new Device(memory, { name: 'direct' });
    dmaMapSgtable(device, t, 'from-device');
    expect([...t.dmaSegments()]).toEqual([{ dmaAddress: 100 * P + 10, dmaLength: 2 * P - 10 }, { dmaAddress: 200 * P, dmaLength: P - 10 }]);
    expect(codeOf(() => dmaMapSgtable(device, t, 'from-device'))).toBe('EBUSY');
    dmaUnmapSgtable(device, t, 'from-device');
    sgFreeTable(t);
  });

  it('warns about an entry longer than the device max segment and maps it anyway (DMA-API debug)', () => {
    const { memory } = machine();
    const t = sgAllocTableFromPages(Uint32Array.from({ length: 32 }, (_, i) => 500 + i), 32, 0, 32 * P);
    const device = new Device(memory, { name: 'small-seg', maxSegmentSize: 65536 });
    dmaMapSgtable(device, t, 'to-device');
    expect(device.warnings.some((w) => w.includes('longer than device claims to support'))).toBe(true);
    expect([...t.dmaSegments()]).toEqual([{ dmaAddress: 500 * P, dmaLength: 32 * P }]);
    dmaUnmapSgtable(device, t, 'to-device');
    sgFreeTable(t);
  });

  it('dmaMapSg returns the count, 0 on failure with nothing mapped; dmaUnmapSg wants the original nents', () => {
    const { memory } = machine();
    const t = sgAllocTableFromPages(Uint32Array.from({ length: 40 }, (_, i) => 1000 + 2 * i), 40, 0, 40 * P);
    const iommu = new Iommu();
    const narrow = new Device(memory, { name: 'narrow', iommu, dmaMaskBits: 16 });
    expect(dmaMapSg(narrow, t, 40, 'to-device')).toBe(0);
    expect(iommu.iovad.allocatedPages).toBe(0);
    const wide = new Device(memory, { name: 'wide', iommu, maxSegmentSize: UINT_MAX });
    const n = dmaMapSg(wide, t, 40, 'to-device');
    expect(n).toBe(1);
    expect(t.nents).toBe(40); // dma_map_sg leaves the table's nents alone
    expect(codeOf(() => dmaUnmapSg(wide, t, n, 'to-device'))).toBe('EINVAL');
    dmaUnmapSg(wide, t, 40, 'to-device');
    expect(iommu.iovad.allocatedPages).toBe(0);
    sgFreeTable(t);
  });

  it('dmaSegments after dmaMapSg yields only the mapped entries, not fields an earlier mapping left behind', () => {
    const { memory } = machine();
    const t = sgAllocTableFromPages(Uint32Array.of(10, 20, 30), 3, 0, 3 * P);
    const device = new Device(memory, { name: 'direct' });
    dmaMapSgtable(device, t, 'to-device');
    dmaUnmapSgtable(device, t, 'to-device');
    expect(dmaMapSg(device, t, 1, 'to-device')).toBe(1);
    expect(t.nents).toBe(3);
    expect([...t.dmaSegments()]).toEqual([{ dmaAddress: 10 * P, dmaLength: P }]);
    dmaUnmapSg(device, t, 1, 'to-device');
    sgFreeTable(t);
  });

  it('refuses to free a mapped table (EBUSY), and unmapping an unmapped one (EINVAL)', () => {
    const { memory } = machine();
    const t = sgAllocTableFromPages(Uint32Array.of(7), 1, 0, P);
    const device = new Device(memory, { name: 'd' });
    expect(codeOf(() => dmaUnmapSgtable(device, t, 'to-device'))).toBe('EINVAL');
    dmaMapSgtable(device, t, 'to-device');
    expect(codeOf(() => sgFreeTable(t))).toBe('EBUSY');
    dmaUnmapSgtable(device, t, 'to-device');
    sgFreeTable(t);
    expect(leakReport(memory)).toEqual([]);
  });
});
