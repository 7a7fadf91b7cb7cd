// The backends demo: the same user buffers described, DMA-mapped and released through every
// registered backend in turn, chosen by name from core's registry at runtime. The device writes
// real bytes through each mapping; the process must see them after the dirty release.

import {
  AddressSpace, DMA_FROM_DEVICE, Device, Iommu, PAGE_SIZE, PhysicalMemory, getBackend, leakReport, listBackends,
} from '@iodesc/core';

const MiB = 2 ** 20;

function kib(bytes: number): string {
  return bytes >= 10 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} B`;
}

/** Runs the demo over `names` (default: every registered backend). Returns failed checks plus leaks. */
export function runBackendsDemo(out: (line: string) => void, seed = 7, names = listBackends()): number {
  if (names.length === 0) {
    out('Descriptor backends: none registered');
    return 0;
  }
  const memory = new PhysicalMemory({ bytes: 512 * MiB, seed });
  const mm = new AddressSpace(memory);
  const size = 4 * MiB;
  const buffers = [
    ['4 KiB pages', mm.mmap(size)],
    ['2 MiB THP', mm.mmap(size, { thp: true })],
  ] as const;
  for (const [, addr] of buffers) mm.write(addr, new Uint8Array(size).fill(0x11));
  // an NVMe-like device behind an IOMMU, 128 KiB segments (max_segment_size)
  const device = new Device(memory, { name: 'nvme0', iommu: new Iommu(), maxSegmentSize: 128 * 1024 });
  let bad = 0;
  out(`Backends: the same ${size / MiB} MiB buffers through each registered backend (${names.join(', ')}),`);
  out(`pinned with getUser, mapped for ${device.name} (IOMMU, 128 KiB max segment), written by the device,`);
  out('released dirty, and handed to the network (toFrags):');
  const w = Math.max(7, ...names.map((n) => n.length));
  out(`  ${'backend'.padEnd(w)}  buffer        entries  descriptor bytes  allocs  DMA segments  to network: copied  intact`);
  for (const name of names) {
    const backend = getBackend(name);
    for (const [label, addr] of buffers) {
      const desc = backend.getUser(mm, addr, size, { write: true, owner: `demo:${name}` });
      const fp = desc.footprint();
      const entries = desc.nrSegments;
      const mapping = backend.dmaMap(desc, device, DMA_FROM_DEVICE);
      const salt = name.length * 7 + (label.length & 3);
      let at = 0;
      for (const s of mapping.segments()) {
        const bytes = new Uint8Array(s.dmaLength);
        for (let i = 0; i < bytes.length; i++) bytes[i] = ((at + i) * 7 + salt) & 0xff;
        device.dmaWrite(s.dmaAddress, bytes);
        at += s.dmaLength;
      }
      const segments = mapping.count;
      backend.dmaUnmap(mapping);
      const copied = backend.capabilities.toFrags ? kib(backend.toFrags(desc).cost.conversionBytes) : 'n/a';
      backend.putUser(desc, { dirty: true });
      const seen = mm.read(addr, size);
      let ok = at === size;
      for (let i = 0; ok && i < size; i += 509) ok = seen[i] === ((i * 7 + salt) & 0xff);
      if (!ok) bad++;
      out(
        `  ${name.padEnd(w)}  ${label.padEnd(12)}  ${String(entries).padStart(7)}  ${kib(fp.bytes).padStart(16)}  ` +
          `${String(fp.allocations).padStart(6)}  ${String(segments).padStart(12)}  ${copied.padStart(18)}  ${ok ? 'yes' : 'NO'}`,
      );
    }
  }
  out(`  (${size / PAGE_SIZE} pages each; entries and bytes are what the kernel's structures would hold and`);
  out('   allocate; the IOMMU merges contiguous IOVA into segments up to the device limit whatever the backend)');
  for (const [, addr] of buffers) mm.munmap(addr, size);
  const leaks = leakReport(memory).length;
  out(`  leak report after every backend: ${leaks === 0 ? 'empty' : `${leaks} entries`}`);
  return bad + leaks;
}
