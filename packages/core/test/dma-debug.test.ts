// DMA-API debugging (kernel/dma/debug.c) and the DMA engine's faults; bad input to the DMA layer.

import { describe, expect, it } from 'vitest';
import {
  DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, Device, Iommu, PhysicalMemory, dmaMapSegments, dmaSyncForCpu,
  dmaUnmapSegments, leakReport,
} from '../src/index.js';
import { expectCode, MiB, pattern } from './helpers.js';

const P = 4096;
const one = (addr: number, len: number) => [Float64Array.of(addr), Float64Array.of(len), 1] as const;

describe('DMA-API debug', () => {
  it('records an oversize entry as a warning naming the mapping, and maps it', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const device = new Device(memory, { name: 'disk', maxSegmentSize: P });
    const m = dmaMapSegments(device, ...one(8 * P, 2 * P), DMA_TO_DEVICE, { owner: 'test-io' });
    expect(m.count).toBe(1);
    expect(device.warnings).toEqual([expect.stringMatching(/^disk: DMA-API: mapping #\d+ \(owner test-io\).*longer than device claims to support \[len=8192\] \[max=4096\]/)]);
    dmaUnmapSegments(device, m);
  });

  it('records a segment crossing the boundary, and maps it', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const device = new Device(memory, { segBoundaryMask: 0xffff });
    const m = dmaMapSegments(device, ...one(0xf000, 2 * P), DMA_TO_DEVICE);
    expect(device.warnings).toHaveLength(1);
    expect(device.warnings[0]).toMatch(/across boundary \[start=0xf000\] \[end=0x10fff\] \[boundary=0xffff\]/);
    dmaUnmapSegments(device, m);
  });

  it('reports an unmap in another direction, then unmaps with it', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const device = new Device(memory, { dmaMaskBits: 24 });
    memory.writePhys(48 * MiB, pattern(64));
    const m = dmaMapSegments(device, ...one(48 * MiB, 64), DMA_TO_DEVICE);
    device.warnings.length = 0;
    dmaUnmapSegments(device, m, DMA_FROM_DEVICE);
    expect(device.warnings[0]).toMatch(/frees DMA memory with different direction \[mapped with to-device\] \[unmapped with from-device\]/);
    expect(device.liveCount).toBe(0);
    // from-device at unmap copies the bounce buffer back, as swiotlb_tbl_unmap_single does
    expect(memory.readPhys(48 * MiB, 64)).toEqual(pattern(64));
  });

  it('refuses a double unmap, a sync after unmap and another device\'s mapping with EINVAL, reporting each', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const a = new Device(memory, { name: 'a' });
    const b = new Device(memory, { name: 'b' });
    const m = dmaMapSegments(a, ...one(P, P), DMA_BIDIRECTIONAL);
    expectCode(() => dmaUnmapSegments(b, m), 'EINVAL');
    expect(b.warnings[0]).toMatch(/^b: DMA-API: device driver tries to free DMA memory it has not allocated/);
    dmaUnmapSegments(a, m);
    expectCode(() => dmaUnmapSegments(a, m), 'EINVAL');
    expectCode(() => dmaSyncForCpu(a, m), 'EINVAL');
    expect(a.warnings).toHaveLength(2);
  });

  it('reports mappings still live at teardown and keeps them in the leak report', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const device = new Device(memory, { name: 'nvme0' });
    const m = dmaMapSegments(device, ...one(P, P), DMA_FROM_DEVICE, { owner: 'forgotten' });
    const pending = device.teardown();
    expect(pending).toHaveLength(1);
    expect(device.warnings[0]).toMatch(/pending DMA allocations while released from device \[count=1\]/);
    expect(leakReport(memory)).toEqual([expect.objectContaining({ kind: 'dma-mapping', owner: 'forgotten', detail: expect.stringContaining(`mapping #${m.id}`) })]);
    expectCode(() => dmaMapSegments(device, ...one(P, P), DMA_FROM_DEVICE), 'ENODEV');
    dmaUnmapSegments(device, m); // the driver may still clean up
    expect(leakReport(memory)).toEqual([]);
  });
});

describe('the DMA engine through an IOMMU', () => {
  it('moves bytes through the I/O page table and faults on unmapped or read-only IOVAs', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const device = new Device(memory, { iommu: new Iommu(), name: 'gpu' });
    memory.writePhys(7 * P, pattern(P, 4));
    const m = dmaMapSegments(device, Float64Array.of(9 * P + 100, 7 * P), Float64Array.of(P - 100, P), 2, DMA_TO_DEVICE);
    expect(m.count).toBe(1);
    const seg = [...m.segments()][0]!;
    expect(device.dmaRead(seg.dmaAddress + P - 100, P)).toEqual(pattern(P, 4));
    expect(() => device.dmaWrite(seg.dmaAddress, Uint8Array.of(1))).toThrow(/^EFAULT: IOMMU fault: device gpu write to .* mapped only for the device to read/);
    expect(() => device.dmaRead(seg.dmaAddress + 2 * P - 100, 1)).toThrow(/^EFAULT: IOMMU fault/);
    dmaUnmapSegments(device, m);
    expect(() => device.dmaRead(seg.dmaAddress, 1)).toThrow(/^EFAULT: IOMMU fault/);
  });

  it('writes nothing when part of the access faults', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const device = new Device(memory, { iommu: new Iommu() });
    const m = dmaMapSegments(device, ...one(3 * P, P), DMA_FROM_DEVICE);
    expect(() => device.dmaWrite(m.dmaAddress(0) + P - 4, new Uint8Array(8).fill(7))).toThrow(/IOMMU fault/);
    expect(memory.readPhys(3 * P, P)).toEqual(new Uint8Array(P));
    dmaUnmapSegments(device, m);
  });
});

describe('bad input', () => {
  const memory = new PhysicalMemory({ bytes: 64 * MiB });
  const device = new Device(memory);

  it.each([
    ['maxSegmentSize below 4096', { maxSegmentSize: 2048 }],
    ['boundary mask not 2^k - 1', { segBoundaryMask: 0x10000 }],
    ['boundary mask below a page', { segBoundaryMask: 0x7ff }],
    ['dmaMaskBits 65', { dmaMaskBits: 65 }],
    ['dmaMaskBits 11', { dmaMaskBits: 11 }],
    ['an unknown iommu', { iommu: 'passthrough' }],
    ['maxSegments 0', { maxSegments: 0 }],
    ['an empty name', { name: '' }],
  ])('new Device refuses %s with EINVAL', (_, opts) => {
    expectCode(() => new Device(memory, opts as never), 'EINVAL');
  });

  it.each([
    ['granule 3000', { granule: 3000 }],
    ['granule 2048', { granule: 2048 }],
    ['granule 16384 (above PAGE_SIZE)', { granule: 16384 }],
    ['iovaBits 60', { iovaBits: 60 }],
  ])('new Iommu refuses %s with EINVAL', (_, opts) => {
    expectCode(() => new Iommu(opts), 'EINVAL');
  });

  it.each([
    ['an empty list', Float64Array.of(P), Float64Array.of(P), 0, 'to-device'],
    ['a zero length', Float64Array.of(P), Float64Array.of(0), 1, 'to-device'],
    ['a length over UINT_MAX', Float64Array.of(0), Float64Array.of(2 ** 32), 1, 'to-device'],
    ['a range past the end of RAM', Float64Array.of(64 * MiB - 10), Float64Array.of(11), 1, 'to-device'],
    ['a fractional address', Float64Array.of(1.5), Float64Array.of(1), 1, 'to-device'],
    ['count past the arrays', Float64Array.of(P), Float64Array.of(P), 2, 'to-device'],
    ['an unknown direction', Float64Array.of(P), Float64Array.of(P), 1, 'none'],
    ['plain arrays', [P], [P], 1, 'to-device'],
  ])('dmaMapSegments refuses %s with EINVAL and maps nothing', (_, phys, lens, count, dir) => {
    expectCode(() => dmaMapSegments(device, phys as Float64Array, lens as Float64Array, count as number, dir as never), 'EINVAL');
    expect(device.liveCount).toBe(0);
  });

  it('refuses an unknown direction at unmap', () => {
    const m = dmaMapSegments(device, ...one(P, P), DMA_TO_DEVICE);
    expectCode(() => dmaUnmapSegments(device, m, 'sideways' as never), 'EINVAL');
    dmaUnmapSegments(device, m);
  });

  it('exports the directions as the strings', () => {
    expect([DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_BIDIRECTIONAL]).toEqual(['to-device', 'from-device', 'bidirectional']);
  });
});
