// The DMA demo: one pinned buffer mapped for four devices (direct, an old device that needs
// bounce buffers, and two behind an IOMMU), each writing real bytes into it; then what DMA-API
// debugging, IOMMU faults and the leak report say when a driver gets it wrong.

import {
  AddressSpace, DMA_FROM_DEVICE, Device, FOLL_WRITE, IodescError, Iommu, PAGE_SIZE, PhysicalMemory, dmaMapSegments,
  dmaUnmapSegments, leakReport, swiotlbInit, pinUserPagesFast, unpinUserPagesDirtyLock, type DeviceOptions,
} from '@iodesc/core';

const MiB = 2 ** 20;

function checksum(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

// What a device writes: bytes that depend on the device and the position.
function deviceBytes(length: number, salt: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 13 + salt * 101 + (i >>> 9)) & 0xff;
  return out;
}

/** Runs the DMA demo, writing its lines through `out`. Returns the number of failed checks and leaks (0 when all is well). */
export function runDmaDemo(out: (line: string) => void, seed = 7): number {
  const memory = new PhysicalMemory({ bytes: 512 * MiB, seed });
  const mm = new AddressSpace(memory);
  let bad = 0;
  // boot places swiotlb's pool low, before anything else runs: later there may be no room there
  swiotlbInit(memory);
  // something else holds the lowest 64 MiB, so the buffer lies above what an old device reaches
  const ballast = mm.mmap(64 * MiB, { populate: true });
  const size = MiB;
  const nr = size / PAGE_SIZE;
  const buf = mm.mmap(size);
  mm.write(buf, new Uint8Array(size).fill(0xee));
  const pages = new Uint32Array(nr);
  pinUserPagesFast(mm, buf, nr, FOLL_WRITE, pages, { owner: 'demo:dma' });
  // one entry per page, as a scatterlist built without merging would give
  const phys = Float64Array.from(pages, (p) => p * PAGE_SIZE);
  const lens = new Float64Array(nr).fill(PAGE_SIZE);
  out(`DMA: a process pins a ${size / MiB} MiB buffer (${nr} pages, PFNs from ${Math.min(...pages)}) and four devices write into it in turn.`);
  out('  device                                      segments  IOVA pages  bounced  written intact');
  const devices: Array<[string, DeviceOptions]> = [
    ['direct, 64-bit mask', {}],
    ['direct, 26-bit mask (64 MiB): swiotlb', { dmaMaskBits: 26 }],
    ['IOMMU, 64 KiB max segment', { iommu: new Iommu() }],
    ['IOMMU, 1 MiB max segment', { iommu: new Iommu(), maxSegmentSize: MiB }],
  ];
  devices.forEach(([label, opts], k) => {
    const device = new Device(memory, { name: `dev${k}`, ...opts });
    const m = dmaMapSegments(device, phys, lens, nr, DMA_FROM_DEVICE, { owner: `demo:${device.name}` });
    const want = deviceBytes(size, k);
    let at = 0;
    for (const s of m.segments()) {
      device.dmaWrite(s.dmaAddress, want.subarray(at, at + s.dmaLength));
      at += s.dmaLength;
    }
    dmaUnmapSegments(device, m);
    const ok = checksum(mm.read(buf, size)) === checksum(want);
    if (!ok) bad++;
    const bounced = m.bounceBytes > 0 ? `${m.bounceBytes / MiB} MiB` : '-';
    out(`  ${label.padEnd(42)}  ${String(m.count).padStart(8)}  ${String(m.iovaPages || '-').padStart(10)}  ${bounced.padStart(7)}  ${ok ? 'yes' : 'NO'}`);
  });
  out('  (the IOMMU merges pages into segments as iommu_dma_map_sg does; direct mapping never merges;');
  out('   the old device reaches only swiotlb\'s low bounce buffers, copied back at unmap)');
  unpinUserPagesDirtyLock(memory, pages, nr, true);

  out('');
  out('When a driver gets it wrong:');
  const iommu = new Iommu();
  const dev = new Device(memory, { name: 'nvme0', iommu, maxSegmentSize: 65536 });
  const big = dmaMapSegments(dev, Float64Array.of(pages[0]! * PAGE_SIZE), Float64Array.of(128 * 1024), 1, DMA_FROM_DEVICE);
  out(`  a 128 KiB entry for a device that takes 64 KiB: mapped, and DMA-API debug says:`);
  out(`    ${dev.warnings[0]}`);
  try {
    dev.dmaWrite(big.dmaAddress(0) + 128 * 1024, new Uint8Array(16));
  } catch (e) {
    out(`  the device writes past the mapping: ${e instanceof IodescError ? `${e.code}: ${e.message.slice(e.code.length + 2)}` : String(e)}`);
  }
  out(`  the driver forgets to unmap, the leak report says: ${leakReport(memory).map((l) => l.detail).join('; ')}`);
  dev.teardown();
  out(`  and at teardown: ${dev.warnings.slice(-1)[0]}`);
  dmaUnmapSegments(dev, big);
  mm.munmap(ballast, 64 * MiB);
  mm.munmap(buf, size);
  const leaks = leakReport(memory).length;
  out(`  after the late unmap: leak report ${leaks === 0 ? 'empty' : `${leaks} entries`}`);
  return bad + leaks;
}
