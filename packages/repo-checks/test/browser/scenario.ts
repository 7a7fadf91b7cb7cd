// One I/O scenario that runs the same in Node and in a browser: a process maps and fills a buffer;
// each backend, found by name in core's registry, pins it (getUser), maps it for a device behind
// an IOMMU, the device writes a pattern, unmap, dirty release; the process reads the result.
// Imports nothing from Node: the browser test bundles this file for a real browser.

import { AddressSpace, DMA_FROM_DEVICE, Device, Iommu, PhysicalMemory, getBackend, leakReport } from '@iodesc/core';
import type { Footprint, LeakEntry, Segment } from '@iodesc/core';
import '@iodesc/sglist';
import '@iodesc/bvec';

export const BACKENDS = ['sglist', 'bvec'] as const;
const KiB = 1024;
const MiB = 1024 * KiB;
const SIZE = 256 * KiB;
// getUser from a byte inside the first page to a byte inside the last: offsets are exercised
const HEAD = 300;
const TAIL = 700;

export interface BackendRun {
  backend: string;
  /** The descriptor's entries after getUser: first PFN, offset, length. */
  segments: Segment[];
  footprint: Footprint;
  /** The DMA segments the device was given: IOVA and length. */
  dma: Array<{ dmaAddress: number; dmaLength: number }>;
  /** FNV-1a of the whole buffer as the process reads it after the dirty release. */
  checksum: number;
}

export interface ScenarioResult {
  seed: number;
  runs: BackendRun[];
  /** Leaks left after every backend released its descriptor; [] when none. */
  leaks: LeakEntry[];
}

/** FNV-1a, 32 bits: a checksum both sides compute the same way. */
export function fnv1a(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193) >>> 0;
  return h;
}

/** The byte the device writes at offset `at` of the described range for backend number `b`. */
export function devicePattern(b: number, at: number): number {
  return (at * 13 + 29 * (b + 1)) & 0xff;
}

/** What the process must read after backend number `b` ran: its fill, then the device's pattern over the pinned range. */
export function expectedBuffer(b: number): Uint8Array {
  const out = new Uint8Array(SIZE);
  for (let i = 0; i < SIZE; i++) out[i] = i >= HEAD && i < SIZE - TAIL ? devicePattern(b, i - HEAD) : i & 0xff;
  return out;
}

/** Runs the scenario on a fresh machine seeded with `seed`; the same seed gives the same result anywhere. */
export function runScenario(seed: number): ScenarioResult {
  const memory = new PhysicalMemory({ bytes: 64 * MiB, seed });
  memory.fragment({ seed, freeRunPages: 4 }); // runs of 4 frames: some entries merge, most do not
  const mm = new AddressSpace(memory);
  const device = new Device(memory, { name: 'nvme0', iommu: new Iommu(), maxSegmentSize: 64 * KiB });
  const addr = mm.mmap(SIZE);
  const fill = new Uint8Array(SIZE);
  const runs: BackendRun[] = [];
  BACKENDS.forEach((name, b) => {
    for (let i = 0; i < SIZE; i++) fill[i] = i & 0xff;
    mm.write(addr, fill);
    const backend = getBackend(name);
    const desc = backend.getUser(mm, addr + HEAD, SIZE - HEAD - TAIL, { write: true, owner: `browser:${name}` });
    const segments = [...desc.segments()].map(({ pfn, offset, length }) => ({ pfn, offset, length }));
    const footprint = desc.footprint();
    const mapping = backend.dmaMap(desc, device, DMA_FROM_DEVICE);
    const dma: BackendRun['dma'] = [];
    let at = 0;
    for (const s of mapping.segments()) {
      const bytes = new Uint8Array(s.dmaLength);
      for (let i = 0; i < bytes.length; i++) bytes[i] = devicePattern(b, at + i);
      device.dmaWrite(s.dmaAddress, bytes);
      dma.push({ dmaAddress: s.dmaAddress, dmaLength: s.dmaLength });
      at += s.dmaLength;
    }
    backend.dmaUnmap(mapping);
    backend.putUser(desc, { dirty: true });
    runs.push({ backend: name, segments, footprint, dma, checksum: fnv1a(mm.read(addr, SIZE)) });
  });
  mm.munmap(addr, SIZE);
  return { seed, runs, leaks: leakReport(memory) };
}
