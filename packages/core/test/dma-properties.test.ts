// Properties of the DMA layer on random lists: whatever the path (direct, bounce, IOMMU), the
// device's writes land exactly where the entries say, nothing else changes, and unmapping
// frees every IOVA page, page-table entry and bounce slot.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Device, Iommu, NO_SEG_BOUNDARY, PhysicalMemory, dmaMapSegments, dmaUnmapSegments, leakReport, swiotlbPool,
  type DeviceOptions, type DmaDirection,
} from '../src/index.js';
import { MiB } from './helpers.js';

const P = 4096;
const PAGES = (64 * MiB) / P;

const entryArb = fc.record({ slot: fc.integer({ min: 1, max: PAGES / 2 - 1 }), off: fc.integer({ min: 0, max: P - 1 }), len: fc.integer({ min: 1, max: 2 * P }) });
const deviceArb = fc.record({
  kind: fc.constantFrom('direct', 'mask', 'force', 'iommu'),
  maxSegmentSize: fc.constantFrom(4096, 65536, 2 ** 20),
  segBoundaryMask: fc.constantFrom(NO_SEG_BOUNDARY, 0xffff, 0x3fff),
  dir: fc.constantFrom<DmaDirection>('from-device', 'bidirectional'),
});
const caseArb = fc.record({
  entries: fc.uniqueArray(entryArb, { minLength: 1, maxLength: 24, selector: (e) => e.slot }),
  device: deviceArb,
  writes: fc.array(fc.record({ at: fc.double({ min: 0, max: 1, noNaN: true }), len: fc.integer({ min: 1, max: 3 * P }), salt: fc.nat(250) }), { maxLength: 5 }),
});

function bytes(n: number, salt: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + salt + 7) & 0xff;
  return b;
}

describe('dmaMapSegments / dmaUnmapSegments properties', () => {
  it('lands exactly the device-written bytes and frees every resource', () => {
    fc.assert(
      fc.property(caseArb, ({ entries, device: d, writes }) => {
        const memory = new PhysicalMemory({ bytes: 64 * MiB });
        const opts: DeviceOptions = { maxSegmentSize: d.maxSegmentSize, segBoundaryMask: d.segBoundaryMask };
        if (d.kind === 'mask') opts.dmaMaskBits = 25;
        if (d.kind === 'force') opts.forceBounce = true;
        if (d.kind === 'iommu') opts.iommu = new Iommu();
        if (d.kind === 'mask' || d.kind === 'force') expect(swiotlbPool(memory)).not.toBeNull(); // place the pool low, before any entry's bytes
        const device = new Device(memory, opts);
        // each entry sits in its own pair of pages (slot × 2), so no two overlap
        const n = entries.length;
        const phys = Float64Array.from(entries, (e) => e.slot * 2 * P + e.off);
        const lens = Float64Array.from(entries, (e) => Math.min(e.len, 2 * P - e.off));
        const pool = swiotlbPool(memory);
        for (let i = 0; i < n; i++) {
          if (pool !== null && phys[i]! < pool.start + pool.bytes) phys[i] = phys[i]! + pool.start + pool.bytes; // keep clear of the pool
          if (phys[i]! + lens[i]! > 64 * MiB) lens[i] = 64 * MiB - phys[i]!;
        }
        for (let i = 0; i < n; i++) memory.writePhys(phys[i]!, bytes(lens[i]!, i));
        // what each entry's own two pages should hold, written through the stream below
        const base = Array.from(phys, (p, i) => p - entries[i]!.off);
        const shadow = base.map((b) => memory.readPhys(b, Math.min(2 * P, 64 * MiB - b)));
        let m;
        try {
          m = dmaMapSegments(device, phys, lens, n, d.dir);
        } catch (e) {
          // segments past 256 KiB cannot bounce; nothing may be left behind then
          expect((e as { code: string }).code).toBe('EIO');
          expect(pool?.used ?? 0).toBe(0);
          return;
        }
        // the stream of bytes the DMA segments describe, in order, is the entries' bytes in order
        const streamEntry: number[] = [];
        const streamOff: number[] = [];
        for (let i = 0; i < n; i++) {
          for (let k = 0; k < lens[i]!; k++) {
            streamEntry.push(i);
            streamOff.push(phys[i]! - base[i]! + k);
          }
        }
        const streamLen = streamEntry.length;
        const segs = [...m.segments()];
        expect(segs.reduce((t, s) => t + s.dmaLength, 0)).toBe(streamLen);
        for (const w of writes) {
          const at = Math.min(streamLen - 1, Math.floor(w.at * streamLen));
          const data = bytes(Math.min(w.len, streamLen - at), w.salt);
          let pos = 0;
          let done = 0;
          for (const s of segs) {
            const lo = Math.max(at + done, pos);
            if (done < data.length && lo < pos + s.dmaLength) {
              const k = Math.min(pos + s.dmaLength - lo, data.length - done);
              device.dmaWrite(s.dmaAddress + (lo - pos), data.subarray(done, done + k));
              done += k;
            }
            pos += s.dmaLength;
          }
          for (let k = 0; k < data.length; k++) shadow[streamEntry[at + k]!]![streamOff[at + k]!] = data[k]!;
        }
        dmaUnmapSegments(device, m);
        for (let i = 0; i < n; i++) {
          const got = memory.readPhys(base[i]!, shadow[i]!.length);
          for (let a = 0; a < got.length; a++) {
            if (got[a] !== shadow[i]![a]) throw new Error(`entry ${i}: byte ${a} of its pages is ${got[a]}, expected ${shadow[i]![a]} (${d.kind})`);
          }
        }
        expect(device.iommu?.iovad.allocatedPages ?? 0).toBe(0);
        expect(device.iommu?.mappedGranules ?? 0).toBe(0);
        expect(pool?.used ?? 0).toBe(0);
        expect(leakReport(memory)).toEqual([]);
      }),
      { seed: 1212, numRuns: 60 },
    );
  });
});

describe('Device.maxMappingSize (dma_max_mapping_size)', () => {
  it('is 256 KiB when direct mappings may bounce, unlimited otherwise', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    expect(new Device(memory).maxMappingSize()).toBe(Infinity);
    expect(new Device(memory, { dmaMaskBits: 24 }).maxMappingSize()).toBe(256 * 1024);
    expect(new Device(memory, { forceBounce: true }).maxMappingSize()).toBe(256 * 1024);
    expect(new Device(memory, { dmaMaskBits: 24, iommu: new Iommu() }).maxMappingSize()).toBe(Infinity);
  });
});
