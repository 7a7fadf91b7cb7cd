// Direct mapping and swiotlb (kernel/dma/direct.c, kernel/dma/swiotlb.c): no merging, bounce
// above the DMA mask, copies in every direction at map, copy-back at unmap and sync-for-cpu.

import { describe, expect, it } from 'vitest';
import {
  Device, IO_TLB_SIZE, PhysicalMemory, dmaMapSegments, dmaSyncForCpu, dmaSyncForDevice, dmaUnmapSegments, leakReport,
  swiotlbInit, swiotlbPool,
} from '../src/index.js';
import { expectCode, MiB, pattern } from './helpers.js';

const P = 4096;
const HIGH = 48 * MiB; // above a 24-bit mask on a 64 MiB memory

function machine(bytes = 64 * MiB) {
  return new PhysicalMemory({ bytes });
}

describe('dmaMapSegments, direct', () => {
  it('maps each entry to its physical address and never merges', () => {
    const memory = machine();
    const device = new Device(memory);
    const phys = Float64Array.from({ length: 20 }, (_, i) => (100 + i) * P);
    const lens = new Float64Array(20).fill(P);
    const m = dmaMapSegments(device, phys, lens, 20, 'to-device');
    expect(m.count).toBe(20);
    expect([...m.segments()]).toEqual(Array.from({ length: 20 }, (_, i) => ({ dmaAddress: (100 + i) * P, dmaLength: P })));
    expect(m.iovaPages).toBe(0);
    expect(m.bounceBytes).toBe(0);
    dmaUnmapSegments(device, m);
    expect(leakReport(memory)).toEqual([]);
  });

  it('lets the device read and write only what is mapped, in the mapped direction', () => {
    const memory = machine();
    const device = new Device(memory, { name: 'nic0' });
    memory.writePhys(10 * P, pattern(P, 3));
    const m = dmaMapSegments(device, Float64Array.of(10 * P), Float64Array.of(P), 1, 'to-device');
    expect(device.dmaRead(10 * P + 100, 50)).toEqual(pattern(P, 3).subarray(100, 150));
    expect(() => device.dmaWrite(10 * P, new Uint8Array(4))).toThrow(/^EFAULT: DMA fault/);
    expect(() => device.dmaRead(11 * P - 2, 4)).toThrow(/^EFAULT: DMA fault/);
    dmaUnmapSegments(device, m);
    expect(() => device.dmaRead(10 * P, 1)).toThrow(/^EFAULT: DMA fault/);
  });

  it('lets one access span two adjacent entries', () => {
    const memory = machine();
    const device = new Device(memory);
    const m = dmaMapSegments(device, Float64Array.of(11 * P, 10 * P), Float64Array.of(P, P), 2, 'from-device');
    device.dmaWrite(10 * P + 4000, pattern(200));
    expect(memory.readPhys(10 * P + 4000, 200)).toEqual(pattern(200));
    dmaUnmapSegments(device, m);
  });
});

describe('swiotlb', () => {
  it('places its 64 MiB pool at the lowest free frames on first use', () => {
    const memory = machine(256 * MiB);
    const device = new Device(memory, { dmaMaskBits: 32 });
    expect(memory.nrFreePages).toBe(65535);
    const m = dmaMapSegments(device, Float64Array.of(HIGH), Float64Array.of(P), 1, 'to-device');
    const pool = swiotlbPool(memory)!;
    // 4 GiB mask covers all of this memory: nothing bounced, but the pool was not needed yet
    expect(m.bounceBytes).toBe(0);
    expect(pool.start).toBe(P);
    expect(pool.bytes).toBe(64 * MiB);
    expect(memory.nrFreePages).toBe(65535 - 16384);
    dmaUnmapSegments(device, m);
  });

  it('halves the pool until it fits, as boot does', () => {
    const memory = machine(64 * MiB);
    expect(swiotlbPool(memory)!.bytes).toBe(32 * MiB);
  });

  it('bounces an entry that ends above the mask and copies the original in, whatever the direction', () => {
    const memory = machine();
    const device = new Device(memory, { dmaMaskBits: 24 });
    memory.writePhys(HIGH, pattern(P, 9));
    const m = dmaMapSegments(device, Float64Array.of(HIGH), Float64Array.of(P), 1, 'from-device');
    const seg = [...m.segments()][0]!;
    expect(seg.dmaAddress + P - 1).toBeLessThan(2 ** 24);
    expect(m.bounceBytes).toBe(P);
    expect(m.bounceSlotBytes).toBe(P);
    // a partial device write: the bytes it did not write come back unchanged
    device.dmaWrite(seg.dmaAddress + 10, Uint8Array.of(1, 2, 3));
    dmaUnmapSegments(device, m);
    const want = pattern(P, 9);
    want.set([1, 2, 3], 10);
    expect(memory.readPhys(HIGH, P)).toEqual(want);
    expect(swiotlbPool(memory)!.used).toBe(0);
  });

  it('copies back on sync-for-cpu and refills on sync-for-device', () => {
    const memory = machine();
    const device = new Device(memory, { dmaMaskBits: 24 });
    const m = dmaMapSegments(device, Float64Array.of(HIGH), Float64Array.of(64), 1, 'bidirectional');
    const dma = m.dmaAddress(0);
    device.dmaWrite(dma, pattern(64, 1));
    expect(memory.readPhys(HIGH, 64)).toEqual(new Uint8Array(64)); // not yet: still in the bounce buffer
    dmaSyncForCpu(device, m);
    expect(memory.readPhys(HIGH, 64)).toEqual(pattern(64, 1));
    memory.writePhys(HIGH, pattern(64, 2));
    dmaSyncForDevice(device, m);
    expect(device.dmaRead(dma, 64)).toEqual(pattern(64, 2));
    dmaUnmapSegments(device, m);
  });

  it('does not copy back a to-device mapping at unmap', () => {
    const memory = machine();
    const device = new Device(memory, { dmaMaskBits: 24 });
    memory.writePhys(HIGH, pattern(100));
    const m = dmaMapSegments(device, Float64Array.of(HIGH), Float64Array.of(100), 1, 'to-device');
    expect(device.dmaRead(m.dmaAddress(0), 100)).toEqual(pattern(100));
    // the CPU wrote the bounce buffer behind the device's back: unmap must not copy it back
    memory.writePhys(m.dmaAddress(0), new Uint8Array(100));
    dmaUnmapSegments(device, m);
    expect(memory.readPhys(HIGH, 100)).toEqual(pattern(100));
  });

  it('page-aligns a bounce buffer of a page or more and never crosses a 128-slot segment', () => {
    const memory = machine();
    const device = new Device(memory, { dmaMaskBits: 24 });
    const small = dmaMapSegments(device, Float64Array.of(HIGH), Float64Array.of(100), 1, 'to-device');
    const page = dmaMapSegments(device, Float64Array.of(HIGH + P), Float64Array.of(P), 1, 'to-device');
    const pool = swiotlbPool(memory)!;
    expect(small.dmaAddress(0)).toBe(pool.start);
    expect(page.dmaAddress(0)).toBe(pool.start + P); // slot 1 is free but not page-aligned
    const big = dmaMapSegments(device, Float64Array.of(HIGH + 2 * P), Float64Array.of(128 * IO_TLB_SIZE), 1, 'to-device');
    expect(big.dmaAddress(0)).toBe(pool.start + 128 * IO_TLB_SIZE);
    for (const m of [small, page, big]) dmaUnmapSegments(device, m);
    expect(pool.used).toBe(0);
    expect(pool.list[0]).toBe(128);
  });

  it('fails with EIO when the pool is full, unwinding the entries already bounced', () => {
    const memory = machine();
    swiotlbInit(memory, { bytes: 256 * 1024 });
    const device = new Device(memory, { dmaMaskBits: 24 });
    const pool = swiotlbPool(memory)!;
    const held = dmaMapSegments(device, Float64Array.of(HIGH), Float64Array.of(128 * 1024), 1, 'to-device');
    const phys = Float64Array.of(HIGH + 32 * P, HIGH + 64 * P, HIGH + 100 * P);
    const lens = Float64Array.of(64 * 1024, 64 * 1024, P);
    expectCode(() => dmaMapSegments(device, phys, lens, 3, 'to-device'), 'EIO');
    expect(pool.used).toBe(64);
    expect(device.liveCount).toBe(1);
    dmaUnmapSegments(device, held);
    expect(pool.used).toBe(0);
    expect(leakReport(memory)).toEqual([]);
  });

  it('with requireCoherent (DMA_ATTR_REQUIRE_COHERENT) fails with EIO where it would bounce, unwinding the entries before', () => {
    const memory = machine();
    const narrow = new Device(memory, { dmaMaskBits: 24 });
    const phys = Float64Array.of(10 * P, HIGH);
    const lens = Float64Array.of(P, P);
    expectCode(() => dmaMapSegments(narrow, phys, lens, 2, 'bidirectional', { requireCoherent: true }), 'EIO');
    expect(narrow.liveCount).toBe(0);
    expect(swiotlbPool(memory)?.used ?? 0).toBe(0);
    // within the mask nothing bounces, so it maps; forced bouncing refuses every entry
    dmaUnmapSegments(narrow, dmaMapSegments(narrow, phys, lens, 1, 'bidirectional', { requireCoherent: true }));
    const forced = new Device(memory, { forceBounce: true });
    expectCode(() => dmaMapSegments(forced, phys, lens, 1, 'to-device', { requireCoherent: true }), 'EIO');
    expectCode(() => dmaMapSegments(forced, phys, lens, 1, 'to-device', { requireCoherent: 1 as unknown as boolean }), 'EINVAL');
    expect(leakReport(memory)).toEqual([]);
  });

  it('refuses an entry over 256 KiB with EIO', () => {
    const memory = machine();
    const device = new Device(memory, { dmaMaskBits: 24, maxSegmentSize: 2 ** 20 });
    expectCode(() => dmaMapSegments(device, Float64Array.of(HIGH), Float64Array.of(256 * 1024 + 1), 1, 'to-device'), 'EIO');
    expect(swiotlbPool(memory)!.used).toBe(0);
  });

  it('refuses a bounce slot the device still cannot reach, as swiotlb_map does', () => {
    const memory = machine();
    const device = new Device(memory, { dmaMaskBits: 12 });
    expectCode(() => dmaMapSegments(device, Float64Array.of(2 * P), Float64Array.of(100), 1, 'to-device'), 'EIO');
    expect(swiotlbPool(memory)!.used).toBe(0);
    expect(device.warnings[0]).toMatch(/swiotlb addr 0x1000\+100 overflow/);
  });

  it('refuses a second pool with EBUSY', () => {
    const memory = machine();
    swiotlbInit(memory, { bytes: 1 * MiB });
    expectCode(() => swiotlbInit(memory, { bytes: 1 * MiB }), 'EBUSY');
    expectCode(() => swiotlbInit(machine(), { bytes: 1000 }), 'EINVAL');
  });
});
