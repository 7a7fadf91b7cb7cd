// Behaviour settled by reviewing the DMA layer against mainline: padding is mapped as
// iommu_map_sg maps it, widened lengths past an unsigned int fail, the PCI 32-bit attempt is
// dropped once it fails, reports are capped, and no caller can widen what a device reaches.

import { describe, expect, it } from 'vitest';
import { Device, Iommu, MAX_WARNINGS, PhysicalMemory, dmaMapSegments, dmaUnmapSegments, swiotlbInit, swiotlbPool } from '../src/index.js';
import { expectCode, MiB, pattern } from './helpers.js';

const P = 4096;

describe('iommu_dma_map_sg padding', () => {
  it('maps the padding granules after the previous entry, with its permissions', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const iommu = new Iommu();
    const device = new Device(memory, { iommu, segBoundaryMask: 0xffff, maxSegmentSize: MiB });
    memory.writePhys(103 * P, pattern(P, 3));
    // 3 pages, then 14: the second would cross 64 KiB, so the first is padded to 16 pages
    const m = dmaMapSegments(device, Float64Array.of(100 * P, 200 * P), Float64Array.of(3 * P, 14 * P), 2, 'to-device');
    expect([...m.segments()].map((s) => s.dmaAddress - m.iovaPfn * P)).toEqual([0, 16 * P]);
    expect(iommu.mappedGranules).toBe(16 + 14);
    // the granule after the first entry is the physical page that follows it
    expect(device.dmaRead(m.dmaAddress(0) + 3 * P, P)).toEqual(pattern(P, 3));
    dmaUnmapSegments(device, m);
    expect(iommu.mappedGranules).toBe(0);
  });
});

describe('lengths past an unsigned int through an IOMMU', () => {
  it('fails with EINVAL when an entry widened to granules reaches 2^32, leaving nothing', () => {
    const memory = new PhysicalMemory({ bytes: 8 * 2 ** 30 });
    const iommu = new Iommu();
    const device = new Device(memory, { iommu });
    expectCode(() => dmaMapSegments(device, Float64Array.of(0x200), Float64Array.of(0xfffffe00 + 0x100), 1, 'to-device'), 'EINVAL');
    expect(iommu.iovad.allocatedPages).toBe(0);
    // exactly 2^32 - 4096 after widening still fits
    const m = dmaMapSegments(device, Float64Array.of(0x200), Float64Array.of(0xfffff000 - 0x200), 1, 'to-device');
    expect(m.count).toBe(1);
    dmaUnmapSegments(device, m);
  });
});

describe('pci_32bit_workaround', () => {
  it('is dropped for good when the attempt below 4 GiB fails, even if the retry fails too', () => {
    const memory = new PhysicalMemory({ bytes: 5 * 2 ** 30 });
    const device = new Device(memory, { iommu: new Iommu({ iovaBits: 33 }), pci: true });
    const small = dmaMapSegments(device, Float64Array.of(P), Float64Array.of(P), 1, 'to-device');
    expect(small.dmaAddress(0)).toBe(2 ** 32 - P);
    expect(device.iova32Failed).toBe(false);
    // two entries of nearly 4 GiB: 8 GiB aligned to itself fits neither below 4 GiB nor in the aperture
    const big = Float64Array.of(0xfffff000, 0xfffff000);
    expectCode(() => dmaMapSegments(device, Float64Array.of(0, 0), big, 2, 'to-device'), 'ENOMEM');
    expect(device.iova32Failed).toBe(true);
    dmaUnmapSegments(device, small);
  });
});

describe('DMA-API reports', () => {
  it(`keeps the first ${MAX_WARNINGS} and counts the rest`, () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const device = new Device(memory, { maxSegmentSize: P });
    const n = 1000;
    const phys = Float64Array.from({ length: n }, (_, i) => i * 2 * P);
    const lens = new Float64Array(n).fill(2 * P);
    const m = dmaMapSegments(device, phys, lens, n, 'to-device');
    expect(device.warnings).toHaveLength(MAX_WARNINGS);
    expect(device.errorCount).toBe(n);
    dmaUnmapSegments(device, m);
  });

  it('counts one pending entry per DMA segment at teardown', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const device = new Device(memory);
    const m = dmaMapSegments(device, Float64Array.of(P, 5 * P, 9 * P), Float64Array.of(P, P, P), 3, 'to-device');
    device.teardown();
    expect(device.warnings[0]).toMatch(/\[count=3\]/);
    dmaUnmapSegments(device, m);
  });

  it('records a full swiotlb pool as swiotlb warns it', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    swiotlbInit(memory, { bytes: 256 * 1024 });
    const device = new Device(memory, { forceBounce: true, maxSegmentSize: MiB });
    expectCode(() => dmaMapSegments(device, Float64Array.of(0, 300 * P), Float64Array.of(256 * 1024, P), 2, 'to-device'), 'EIO');
    expect(device.warnings[0]).toMatch(/^dev\d+: swiotlb: swiotlb buffer is full \(sz: 4096 bytes\)/);
    expect(swiotlbPool(memory)!.used).toBe(0);
  });
});

describe('DmaMapping', () => {
  it('exposes no state a caller could change to reach more memory', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const device = new Device(memory);
    const m = dmaMapSegments(device, Float64Array.of(8 * P), Float64Array.of(P), 1, 'from-device');
    const loose = m as unknown as Record<string, unknown>;
    expect(() => {
      loose.live = true;
    }).toThrow(TypeError);
    expect(loose.dmaAddr).toBeUndefined();
    expect(() => device.dmaWrite(0, Uint8Array.of(1))).toThrow(/DMA fault/);
    dmaUnmapSegments(device, m);
    expect(() => device.dmaWrite(8 * P, Uint8Array.of(1))).toThrow(/DMA fault/);
  });
});
