// What only the bvec backend does: multi-page vectors from fromPages (in bios or one flat
// array), chains of bios of at most 256 vectors, the footprint of bios, slabs and the
// conversion table, and toFrags re-describing bvecs as fragments (a counted conversion).

import { describe, expect, it } from 'vitest';
import { Device, Iommu, leakReport } from '@iodesc/core';
import { BIO_BYTES, bvecBackend, bvecPoolInUse, type BvecDescriptor } from '../src/index.js';
import { expectCode, machine, P } from './helpers.js';

describe('bvecBackend.fromPages', () => {
  it('merges physically contiguous pages into multi-page vectors, in bios or one flat array', () => {
    const { memory } = machine();
    const pages = Uint32Array.of(10, 11, 12, 20, 21, 30);
    for (const flat of [false, true]) {
      const d = bvecBackend.fromPages(memory, pages, 100, 6 * P - 200, { flat });
      expect([...d.segments()]).toEqual([
        { pfn: 10, offset: 100, length: 3 * P - 100 }, { pfn: 20, offset: 0, length: 2 * P }, { pfn: 30, offset: 0, length: P - 100 },
      ]);
      d.put();
    }
  });

  it('caps vectors at maxSegmentSize when asked', () => {
    const { memory } = machine();
    const d = bvecBackend.fromPages(memory, Uint32Array.of(10, 11, 12, 13), 0, 4 * P, { maxSegmentSize: 8192 });
    expect([...d.segments()].map((s) => s.length)).toEqual([8192, 8192]);
    d.put();
  });

  it('chains bios of at most 256 vectors and charges each bio, its slab and nothing per page', () => {
    const { memory } = machine();
    const pages = Uint32Array.from({ length: 300 }, (_, k) => 10 + 2 * k);
    const before = bvecPoolInUse();
    const d = bvecBackend.fromPages(memory, pages, 0, 300 * P) as BvecDescriptor;
    expect(d.bios().map((b) => b.biVcnt)).toEqual([256, 44]);
    expect(d.footprint()).toEqual({ bytes: 2 * (BIO_BYTES + 64) + 4096 + 1024, allocations: 4, entries: 300, breakdown: { bio: 2 * (BIO_BYTES + 64), bio_vec: 4096 + 1024 } });
    d.put();
    expect(bvecPoolInUse()).toEqual(before);
  });

  it('charges a flat array as one kvmalloc of 16 bytes per vector', () => {
    const { memory } = machine();
    const d = bvecBackend.fromPages(memory, Uint32Array.from({ length: 300 }, (_, k) => 10 + 2 * k), 0, 300 * P, { flat: true });
    expect(d.footprint()).toEqual({ bytes: 8192, allocations: 1, entries: 300, breakdown: { bio_vec: 8192 } });
  });

  it('keeps small bios inline: one allocation', () => {
    const { memory } = machine();
    const d = bvecBackend.fromPages(memory, Uint32Array.of(10, 20), 0, 2 * P);
    expect(d.footprint()).toEqual({ bytes: BIO_BYTES + 64, allocations: 1, entries: 2, breakdown: { bio: BIO_BYTES + 64 } });
    d.put();
  });
});

describe('bvecBackend.dmaMap', () => {
  it('charges the scatterlist blk_rq_map_sg built while the mapping lives', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(8 * P, { populate: true });
    const d = bvecBackend.getUser(mm, addr, 8 * P, { write: true });
    const device = new Device(memory, { iommu: new Iommu() });
    const before = d.footprint();
    const m = bvecBackend.dmaMap(d, device, 'from-device');
    const during = d.footprint();
    expect(during.bytes - before.bytes).toBe(during.breakdown.scatterlist);
    expect(during.breakdown.scatterlist).toBeGreaterThan(0);
    bvecBackend.dmaUnmap(m);
    expect(d.footprint()).toEqual(before);
    bvecBackend.putUser(d, { dirty: true });
    expect(leakReport(memory)).toEqual([]);
  });
  it('refuses a request of more segments than the device takes (EINVAL, nothing mapped)', () => {
    const { memory } = machine();
    const d = bvecBackend.fromPages(memory, Uint32Array.from({ length: 130 }, (_, k) => 10 + 2 * k), 0, 130 * P);
    const narrow = new Device(memory, { iommu: new Iommu(), maxSegments: 129 });
    expectCode(() => bvecBackend.dmaMap(d, narrow, 'to-device'), 'EINVAL');
    expect(d.sgTable).toBe(null);
    const m = bvecBackend.dmaMap(d, new Device(memory, { maxSegments: 130 }), 'to-device');
    expect(m.count).toBe(130);
    bvecBackend.dmaUnmap(m);
    d.put();
    expect(leakReport(memory)).toEqual([]);
  });
});

describe('bvecBackend.getUser / putUser', () => {
  it('unwinds every bio of the chain when a later page faults', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(600 * P, { populate: true });
    mm.injectFault(addr + 590 * P, 'EFAULT');
    expectCode(() => bvecBackend.getUser(mm, addr, 600 * P, { write: false }), 'EFAULT');
    expect(leakReport(memory)).toEqual([]);
  });

  it('refuses to release twice', () => {
    const { memory, mm } = machine();
    const addr = mm.mmap(2 * P, { populate: true });
    const d = bvecBackend.getUser(mm, addr, 2 * P, { write: false, owner: 'test' });
    expect(leakReport(memory).map((e) => e.owner)).toContain('test');
    bvecBackend.putUser(d, { dirty: false });
    expectCode(() => bvecBackend.putUser(d, { dirty: false }), 'EINVAL');
    expect(leakReport(memory)).toEqual([]);
  });

  it('re-describes a multi-page bvec as one fragment per page, counted as a conversion', () => {
    const { memory } = machine();
    // two order-1 folios back to back: one bvec of 4 pages, four fragments (skb_splice_from_iter
    // hands the network a page at a time; skb_append_pagefrags merges only within one page),
    // 16 bytes of entries written for each
    const a = memory.allocFolio(1);
    let b = memory.allocFolio(1);
    while (b !== a + 2) b = memory.allocFolio(1);
    const desc = bvecBackend.fromPages(memory, Uint32Array.of(a, a + 1, a + 2, a + 3), 100, 4 * P - 200);
    expect(desc.nrSegments).toBe(1);
    const { frags, cost } = bvecBackend.toFrags(desc);
    expect(frags.entries()).toEqual([
      { pfn: a, netmem: false, offset: 100, length: P - 100 },
      { pfn: a + 1, netmem: false, offset: 0, length: P },
      { pfn: a + 2, netmem: false, offset: 0, length: P },
      { pfn: a + 3, netmem: false, offset: 0, length: P - 100 },
    ]);
    expect(cost).toEqual({ conversions: 1, conversionBytes: 64, allocations: 2 });
  });
});
