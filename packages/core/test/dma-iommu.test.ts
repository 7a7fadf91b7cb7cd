// dma-iommu: the merge rules of iommu_dma_map_sg/__finalise_sg and the IOVA allocator
// (drivers/iommu/dma-iommu.c, drivers/iommu/iova.c), as vectors with the kernel's rules.

import { describe, expect, it } from 'vitest';
import {
  Device, Iommu, IovaDomain, PhysicalMemory, dmaMapSegments, dmaUnmapSegments, leakReport, type DeviceOptions,
} from '../src/index.js';
import { expectCode, MiB } from './helpers.js';

const P = 4096;

// Entries (page index, offset, length) on scattered pages: page k lies at (3k + 5) pages.
function list(entries: Array<[number, number]>): { phys: Float64Array; lens: Float64Array } {
  const phys = new Float64Array(entries.length);
  const lens = new Float64Array(entries.length);
  entries.forEach(([off, len], k) => {
    phys[k] = (3 * k + 5) * P + off;
    lens[k] = len;
  });
  return { phys, lens };
}

function iommuDevice(opts: DeviceOptions = {}) {
  const memory = new PhysicalMemory({ bytes: 64 * MiB });
  const iommu = new Iommu({ granule: 4096 });
  const device = new Device(memory, { iommu, ...opts });
  return { memory, iommu, device };
}

const vectors: Array<{ name: string; entries: Array<[number, number]>; opts?: DeviceOptions; lens: number[]; offs?: number[] }> = [
  { name: '20 × (0, 4096) on scattered pages', entries: Array.from({ length: 20 }, () => [0, 4096]), lens: [65536, 16384] },
  { name: '(0,4096),(0,100),(0,4096): a short entry closes its segment', entries: [[0, 4096], [0, 100], [0, 4096]], lens: [4196, 4096] },
  { name: '(512,3584),(0,4096),(0,4096): an offset first entry still merges', entries: [[512, 3584], [0, 4096], [0, 4096]], lens: [11776], offs: [512] },
  { name: '(0,4096),(512,3584): an offset entry starts a segment', entries: [[0, 4096], [512, 3584]], lens: [4096, 3584], offs: [0, 4096 + 512] },
  {
    name: '20 × (0, 4096), 1 MiB max, boundary 0xffff: split at 64 KiB',
    entries: Array.from({ length: 20 }, () => [0, 4096]), opts: { maxSegmentSize: MiB, segBoundaryMask: 0xffff }, lens: [65536, 16384],
  },
  {
    name: '6 × (0, 12288), boundary 0x3fff: each padded to 16 KiB',
    entries: Array.from({ length: 6 }, () => [0, 12288]), opts: { maxSegmentSize: MiB, segBoundaryMask: 0x3fff },
    lens: [12288, 12288, 12288, 12288, 12288, 12288], offs: [0, 16384, 32768, 49152, 65536, 81920],
  },
  { name: '(0,4096),(0,8192): an entry may span pages', entries: [[0, 4096], [0, 8192]], lens: [12288] },
];

describe('dmaMapSegments through an IOMMU (iommu_dma_map_sg, __finalise_sg)', () => {
  it.each(vectors)('$name', ({ entries, opts, lens, offs }) => {
    const { device, iommu, memory } = iommuDevice(opts);
    const { phys, lens: l } = list(entries);
    const m = dmaMapSegments(device, phys, l, entries.length, 'bidirectional');
    const segs = [...m.segments()];
    expect(segs.map((s) => s.dmaLength)).toEqual(lens);
    expect(m.count).toBe(lens.length);
    const base = m.iovaPfn * 4096;
    if (offs) expect(segs.map((s) => s.dmaAddress - base)).toEqual(offs);
    expect(device.warnings).toEqual([]);
    dmaUnmapSegments(device, m);
    expect(iommu.iovad.allocatedPages).toBe(0);
    expect(iommu.mappedGranules).toBe(0);
    expect(leakReport(memory)).toEqual([]);
  });

  it('compares max_seg_size - cur_len in unsigned 32 bits: an oversize first entry swallows the next', () => {
    const { device } = iommuDevice({ maxSegmentSize: 65536 });
    const { phys, lens } = list([[0, 131072], [0, 4096]]);
    phys[1] = 200 * P;
    const m = dmaMapSegments(device, phys, lens, 2, 'to-device');
    expect([...m.segments()].map((s) => s.dmaLength)).toEqual([135168]);
    // dma-debug warns about the oversize entry, and maps it anyway
    expect(device.warnings).toHaveLength(1);
    expect(device.warnings[0]).toMatch(/longer than device claims to support \[len=131072\] \[max=65536\]/);
    expect(device.warnings[0]).toContain(`mapping #${m.id}`);
    dmaUnmapSegments(device, m);
  });

  it('sizes the IOVA range as alloc_iova_fast does, aligned to its own size', () => {
    const { device, iommu } = iommuDevice({ maxSegmentSize: 2 ** 31 });
    const cases: Array<[number, number]> = [[3, 4], [5, 8], [31, 32], [33, 33], [100, 100]];
    for (const [pages, want] of cases) {
      const m = dmaMapSegments(device, Float64Array.of(64 * P), Float64Array.of(pages * P), 1, 'to-device');
      expect(m.iovaPages).toBe(want);
      let align = 1;
      while (align < want) align *= 2;
      expect(m.iovaPfn % align).toBe(0);
      expect(m.iovaPfn).toBeGreaterThan(0);
      dmaUnmapSegments(device, m);
    }
    expect(iommu.iovad.allocatedPages).toBe(0);
  });

  it('allocates top-down below the DMA mask and the aperture', () => {
    const { device } = iommuDevice({ dmaMaskBits: 32 });
    const a = dmaMapSegments(device, Float64Array.of(P), Float64Array.of(P), 1, 'to-device');
    const b = dmaMapSegments(device, Float64Array.of(2 * P), Float64Array.of(P), 1, 'to-device');
    expect(a.dmaAddress(0)).toBe(2 ** 32 - P);
    expect(b.dmaAddress(0)).toBe(2 ** 32 - 2 * P);
    dmaUnmapSegments(device, a);
    dmaUnmapSegments(device, b);
    const wide = iommuDevice();
    const c = dmaMapSegments(wide.device, Float64Array.of(P), Float64Array.of(P), 1, 'to-device');
    expect(c.dmaAddress(0)).toBe(2 ** 48 - P);
    dmaUnmapSegments(wide.device, c);
  });

  it('tries 32-bit IOVAs first for a PCI device', () => {
    const { device } = iommuDevice({ pci: true });
    const m = dmaMapSegments(device, Float64Array.of(P), Float64Array.of(P), 1, 'to-device');
    expect(m.dmaAddress(0)).toBe(2 ** 32 - P);
    dmaUnmapSegments(device, m);
  });

  it('runs out of IOVA space with ENOMEM, never handing out IOVA 0, and leaves nothing allocated', () => {
    const { device, iommu, memory } = iommuDevice({ dmaMaskBits: 16 });
    const maps = [];
    for (let i = 0; i < 15; i++) maps.push(dmaMapSegments(device, Float64Array.of((i + 1) * P), Float64Array.of(P), 1, 'from-device'));
    expect(maps.map((m) => m.iovaPfn).sort((a, b) => a - b)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    const before = iommu.iovad.allocatedPages;
    expectCode(() => dmaMapSegments(device, Float64Array.of(P), Float64Array.of(P), 1, 'from-device'), 'ENOMEM');
    expect(iommu.iovad.allocatedPages).toBe(before);
    expect(iommu.mappedGranules).toBe(15);
    for (const m of maps) dmaUnmapSegments(device, m);
    expect(iommu.iovad.allocatedPages).toBe(0);
    expect(iommu.mappedGranules).toBe(0);
    expect(leakReport(memory)).toEqual([]);
  });
});

describe('IovaDomain (alloc_iova)', () => {
  it('reuses a freed gap below the cached node after retrying from the limit', () => {
    const d = new IovaDomain(12);
    const a = d.alloc(4, 63);
    const b = d.alloc(4, 63);
    expect([a, b]).toEqual([60, 56]);
    d.free(a);
    // cached node moved up past the freed range: the next search starts at the top again
    expect(d.alloc(4, 63)).toBe(60);
    expect(d.alloc(8, 63)).toBe(48);
    expect(d.ranges()).toEqual([[48, 55], [56, 59], [60, 63]]);
  });

  it('fails when no aligned range fits', () => {
    const d = new IovaDomain(12);
    expect(d.alloc(16, 15)).toBe(0); // pages 1..15 only: a 16-page aligned range would need page 0
    expect(d.alloc(8, 15)).toBe(8);
    expect(d.alloc(8, 15)).toBe(0);
  });
});
