// A request's bios to the device (block/blk-mq-dma.c): blk_rq_map_sg under the segment size
// and boundary with its conversion cost, then core's DMA layer; and the scatterlist-less
// blk_rq_dma_map_iter path, IOVA-coalesced behind an IOMMU, with its per-segment fallback.

import { describe, expect, it } from 'vitest';
import { Device, dmaMapSegments, dmaUnmapSegments, Iommu, leakReport, type PhysicalMemory } from '@iodesc/core';
import {
  Bio, bioAddPage, bioChain, bioPut, bioSplitToLimits, blkRqDmaMap, blkRqDmaUnmap, blkRqMapSg, requestGapBit, sgTableCost,
} from '../src/index.js';
import { expectCode, machine, P } from './helpers.js';

type Piece = [pfn: number, len: number, off: number];

function bioOf(pieces: Piece[], memory?: PhysicalMemory): Bio {
  const bio = new Bio({ maxVecs: Math.max(1, pieces.length), ...(memory ? { memory } : {}) });
  for (const [pfn, len, off] of pieces) expect(bioAddPage(bio, pfn, len, off)).toBe(len);
  return bio;
}

const segs = (t: { segments(): Iterable<{ phys: number; length: number }> }) => [...t.segments()].map((s) => [s.phys, s.length]);

describe('blkRqMapSg', () => {
  it.each<[string, Record<string, number>, Piece[][], Array<[number, number]>]>([
    ['one segment per run of contiguous vectors', {}, [[[10, P, 0], [20, P, 0], [21, P, 0]]], [[10 * P, P], [20 * P, 2 * P]]],
    ['merges across bio boundaries', {}, [[[10, P, 0]], [[11, P, 0]], [[12, 100, 0]]], [[10 * P, 2 * P + 100]]],
    ['clips by the segment size (64 KiB default): a 96 KiB vector', {}, [[[16, 24 * P, 0]]], [[16 * P, 65536], [32 * P, 32768]]],
    ['merges a clipped vector\'s tail with the next only once it is used up', { maxSegmentSize: 8192 }, [[[10, 3 * P, 0], [13, P, 0]]],
      [[10 * P, 2 * P], [12 * P, 2 * P]]],
    ['cuts at the segment boundary', { segBoundaryMask: 0xffff }, [[[14, 4 * P, 0]]], [[14 * P, 2 * P], [16 * P, 2 * P]]],
    ['does not merge across the boundary', { segBoundaryMask: 0xffff }, [[[15, P, 0]], [[16, P, 0]]], [[15 * P, P], [16 * P, P]]],
    ['applies neither virt boundary nor max segments', { virtBoundaryMask: 4095, maxSegments: 1 }, [[[10, 2048, 0], [20, 100, 0]]], [[10 * P, 2048], [20 * P, 100]]],
  ])('%s', (_l, limits, bios, want) => {
    const list = bios.map((p) => bioOf(p));
    const table = blkRqMapSg(list, limits);
    expect(segs(table)).toEqual(want);
    expect(table.count).toBe(want.length);
    // the outside checks' shape: an array of fresh { phys, length }
    expect(table.segments()).toEqual(want.map(([phys, length]) => ({ phys, length })));
    expect(table.segments()[0]).not.toBe(table.segments()[0]);
    list.forEach(bioPut);
  });

  it('follows a bi_next chain given its first bio', () => {
    const a = bioOf([[10, P, 0]]);
    bioChain(a, bioOf([[11, P, 0]]));
    expect(segs(blkRqMapSg(a))).toEqual([[10 * P, 2 * P]]);
    bioPut(a);
  });

  it('walks a split part from where its iterator stands', () => {
    const bio = bioOf([[16, 8 * P, 0]]);
    const parts = bioSplitToLimits(bio, { maxSectors: 16 });
    expect(parts.map((p) => segs(blkRqMapSg(p)))).toEqual([[[16 * P, 2 * P]], [[18 * P, 2 * P]], [[20 * P, 2 * P]], [[22 * P, 2 * P]]]);
    bioPut(bio);
  });

  it('counts the table as the conversion it is: 32-byte entries, chained past 128', () => {
    const bio = bioOf(Array.from({ length: 200 }, (_, k): Piece => [10 + 2 * k, P, 0]));
    const t = blkRqMapSg(bio);
    expect(t.cost).toEqual({ bytes: 4096 + 4096, allocations: 2, entries: 128 + 73 });
    expect(sgTableCost(3)).toEqual({ bytes: 96, allocations: 1, entries: 3 });
    bioPut(bio);
  });

  it('throws EINVAL for an empty request, an empty bio and bad limits', () => {
    expectCode(() => blkRqMapSg([]), 'EINVAL');
    expectCode(() => blkRqMapSg(new Bio({ maxVecs: 1 })), 'EINVAL');
    expectCode(() => blkRqMapSg(bioOf([[10, P, 0]]), { segBoundaryMask: 100 }), 'EINVAL');
    expectCode(() => blkRqMapSg({} as never), 'EINVAL');
  });

  it('hands core\'s DMA layer a list the device moves real bytes through', () => {
    const { memory } = machine();
    const pages = [memory.allocFolio(0), memory.allocFolio(2), memory.allocFolio(0)];
    const bio = bioOf([[pages[0]!, 3000, 1000], [pages[1]!, 4 * P, 0], [pages[2]!, 500, 0]], memory);
    const device = new Device(memory, { iommu: new Iommu(), maxSegmentSize: 8192 });
    const t = blkRqMapSg(bio, { maxSegmentSize: 8192 });
    const m = dmaMapSegments(device, t.phys, t.lens, t.count, 'from-device');
    const data = Uint8Array.from({ length: 3000 + 4 * P + 500 }, (_, i) => (i * 13) & 0xff);
    let at = 0;
    for (const s of m.segments()) {
      device.dmaWrite(s.dmaAddress, data.subarray(at, at + s.dmaLength));
      at += s.dmaLength;
    }
    dmaUnmapSegments(device, m);
    expect(memory.readPhys(pages[0]! * P + 1000, 3000)).toEqual(data.subarray(0, 3000));
    expect(memory.readPhys(pages[1]! * P, 4 * P)).toEqual(data.subarray(3000, 3000 + 4 * P));
    expect(memory.readPhys(pages[2]! * P, 500)).toEqual(data.subarray(3000 + 4 * P));
    expect(leakReport(memory)).toEqual([]);
    bioPut(bio);
  });
});

describe('blkRqDmaMap (blk_rq_dma_map_iter)', () => {
  const setup = (iommu: boolean, opts: { dmaMaskBits?: number } = {}) => {
    const { memory } = machine();
    const dom = new Iommu();
    const device = new Device(memory, { iommu: iommu ? dom : 'direct', ...opts });
    return { memory, dom, device };
  };

  it('links a request with page-aligned gaps into one IOVA range the device writes through', () => {
    const { memory, dom, device } = setup(true);
    // pages apart from one another, so the gaps are real: 2 pages from 2000 on
    const [a, b, c] = [1000, 2000, 3000];
    const bios = [bioOf([[a, P - 512, 512], [b, 2 * P, 0]], memory), bioOf([[c, 1024, 0]], memory)];
    const parts = bios.flatMap((x) => bioSplitToLimits(x, { dmaAlignment: 511 }));
    expect(requestGapBit(parts)).toBe(13);
    const map = blkRqDmaMap(parts, undefined, device, 'from-device');
    expect([map.coalesced, map.count, map.dmaLength(0), map.dmaAddress(0) % P]).toEqual([true, 1, P - 512 + 2 * P + 1024, 512]);
    const data = Uint8Array.from({ length: map.dmaLength(0) }, (_, i) => (i * 7 + 3) & 0xff);
    device.dmaWrite(map.dmaAddress(0), data);
    expect(memory.readPhys(a * P + 512, P - 512)).toEqual(data.subarray(0, P - 512));
    expect(memory.readPhys(b * P, 2 * P)).toEqual(data.subarray(P - 512, 3 * P - 512));
    expect(memory.readPhys(c * P, 1024)).toEqual(data.subarray(3 * P - 512));
    blkRqDmaUnmap(map);
    expect([dom.iovad.allocatedPages, dom.mappedGranules]).toEqual([0, 0]);
    expectCode(() => blkRqDmaUnmap(map), 'EINVAL');
    expect(leakReport(memory)).toEqual([]);
    bios.forEach(bioPut);
  });

  it('maps segment by segment when a gap falls inside a granule', () => {
    const { memory, device } = setup(true);
    const a = memory.allocFolio(0);
    const b = memory.allocFolio(0);
    const bio = bioOf([[a, 2048, 0], [b, P, 0]], memory);
    const map = blkRqDmaMap(bioSplitToLimits(bio), undefined, device, 'to-device');
    memory.writePhys(b * P, new Uint8Array(P).fill(9));
    expect([map.coalesced, [...map.segments()].map((s) => s.dmaLength)]).toEqual([false, [2048, P]]);
    expect(device.dmaRead(map.dmaAddress(1), P)).toEqual(new Uint8Array(P).fill(9));
    blkRqDmaUnmap(map);
    expect(device.liveCount).toBe(0);
    bioPut(bio);
  });

  it('maps segment by segment on a direct device', () => {
    const { memory, device } = setup(false);
    const bio = bioOf([[100, P, 0], [200, P, 0]], memory);
    const map = blkRqDmaMap(bio, undefined, device, 'to-device');
    expect([map.coalesced, map.count, map.dmaAddress(0), map.dmaAddress(1)]).toEqual([false, 2, 100 * P, 200 * P]);
    blkRqDmaUnmap(map);
    expect(device.liveCount).toBe(0);
    bioPut(bio);
  });

  it('falls back when no IOVA range fits the request, and unwinds when a segment cannot be mapped', () => {
    // a 16-bit mask leaves 15 IOVA pages
    const { memory, dom, device } = setup(true, { dmaMaskBits: 16 });
    const eight = bioOf(Array.from({ length: 8 }, (_, k): Piece => [100 + 2 * k, P, 0]), memory);
    const ok = blkRqDmaMap(eight, undefined, device, 'to-device');
    expect(ok.coalesced).toBe(true);
    blkRqDmaUnmap(ok);
    const sixteen = bioOf(Array.from({ length: 16 }, (_, k): Piece => [100 + 2 * k, P, 0]), memory);
    expectCode(() => blkRqDmaMap(sixteen, undefined, device, 'to-device'), 'ENOMEM');
    expect([dom.iovad.allocatedPages, dom.mappedGranules, device.liveCount]).toEqual([0, 0, 0]);
    const twelve = bioOf(Array.from({ length: 12 }, (_, k): Piece => [100 + 2 * k, P, 0]), memory);
    // 12 pages round up to a 16-page range: none; one page at a time fits
    const fb = blkRqDmaMap(twelve, undefined, device, 'to-device');
    expect([fb.coalesced, fb.count]).toEqual([false, 12]);
    blkRqDmaUnmap(fb);
    expect(leakReport(memory)).toEqual([]);
    [eight, sixteen, twelve].forEach(bioPut);
  });

  it('fails with EIO, unlinking everything, when a segment cut by the segment size starts off a granule (dma_iova_link\'s WARN)', () => {
    const { memory, dom, device } = setup(true);
    const bio = bioOf([[1000, 2 * 65536 - 512, 512]], memory);
    expectCode(() => blkRqDmaMap(bio, undefined, device, 'to-device'), 'EIO');
    expect([dom.iovad.allocatedPages, dom.mappedGranules, device.liveCount]).toEqual([0, 0, 0]);
    // with a virt boundary the segment size is UINT_MAX: one segment, linked
    const map = blkRqDmaMap(bio, { virtBoundaryMask: 4095 }, device, 'to-device');
    expect([map.coalesced, map.count]).toEqual([true, 1]);
    blkRqDmaUnmap(map);
    expect(leakReport(memory)).toEqual([]);
    bioPut(bio);
  });

  it('throws EINVAL for bad arguments', () => {
    const { device } = setup(true);
    const bio = bioOf([[10, P, 0]]);
    expectCode(() => blkRqDmaMap(bio, undefined, {} as never, 'to-device'), 'EINVAL');
    expectCode(() => blkRqDmaMap(bio, undefined, device, 'up' as never), 'EINVAL');
    bioPut(bio);
  });
});
