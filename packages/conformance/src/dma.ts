// dmaMap/dmaUnmap: through direct, bouncing and IOMMU devices, what the device writes lands
// exactly in the described memory, what it reads is exactly the described bytes, bytes it did
// not write are unchanged, and unmapping leaves no IOVA, page-table entry or bounce slot behind.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Device, PAGE_SIZE, swiotlbPoolIfAny } from '@iodesc/core';
import type { DescriptorBackend, DmaMapping } from '@iodesc/core';
import { mapUserRange, memorySeed, userRange, type UserRange } from './arbitraries.js';
import { ConformanceError, checkNoLeaks } from './checks.js';
import { deviceSpec, makeDevice, type DeviceSpec } from './devices.js';
import { guardLeaks, newMachine, probe, resolveOptions, runProperty, type BackendFactory, type ConformanceOptions } from './harness.js';

/** One DMA case: a user range, a device, and device writes as (position in the range, length, seed) triples. */
export interface DmaCase {
  memorySeed: number;
  range: UserRange;
  device: DeviceSpec;
  writes: Array<{ at: number; length: number; salt: number }>;
}

/** Arbitrary DMA cases over ranges of up to 40 pages. */
export function dmaCase(): fc.Arbitrary<DmaCase> {
  return fc.record({
    memorySeed: memorySeed(),
    range: userRange({ maxPages: 40 }),
    device: deviceSpec(),
    writes: fc.array(fc.record({ at: fc.double({ min: 0, max: 1, noNaN: true }), length: fc.integer({ min: 1, max: 3 * PAGE_SIZE }), salt: fc.nat(255) }), { maxLength: 6 }),
  });
}

// Bytes from a salt: a cheap, position-dependent pattern.
function bytesFor(length: number, salt: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 7 + salt * 13 + 1) & 0xff;
  return out;
}

// The DMA segments in order as [start, length] pairs, and where each begins in the byte stream
// they describe together (the described memory, in order).
function segmentsOf(m: DmaMapping): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  let pos = 0;
  for (const s of m.segments()) {
    out.push([s.dmaAddress, s.dmaLength, pos]);
    pos += s.dmaLength;
  }
  return out;
}

/** What the device's DMA path holds: IOVA pages, page-table entries, bounce slots, live mappings. */
export function dmaResources(device: Device): { iovaPages: number; mappedGranules: number; bounceSlots: number; live: number } {
  return {
    iovaPages: device.iommu?.iovad.allocatedPages ?? 0,
    mappedGranules: device.iommu?.mappedGranules ?? 0,
    bounceSlots: swiotlbPoolIfAny(device.memory)?.used ?? 0,
    live: device.liveCount,
  };
}

// A machine with the case's range mapped, faulted in and filled with `salt`'s bytes, the case's
// device, and the range pinned through the backend and mapped for the device in `dir`.
function mapCase(backend: DescriptorBackend, c: DmaCase, salt: number, dir: 'to-device' | 'from-device') {
  const { memory, mm } = newMachine(c.memorySeed);
  const addr = mapUserRange(mm, c.range, { prefault: true });
  const len = c.range.length;
  mm.write(addr, bytesFor(len, salt));
  const device = makeDevice(memory, c.device);
  const desc = backend.getUser(mm, addr, len, { write: dir === 'from-device' });
  const mapping = backend.dmaMap(desc, device, dir);
  const segs = segmentsOf(mapping);
  const total = segs.reduce((t, s) => t + s[1], 0);
  if (total !== len) throw new ConformanceError(`dmaMap: the DMA segments cover ${total} bytes, the descriptor ${len}`);
  return { memory, mm, addr, len, device, desc, mapping, segs };
}

// After unmap and release: the bytes are as expected, and the device's DMA path holds nothing.
function checkAfter(c: DmaCase, got: Uint8Array, want: Uint8Array, device: Device, what: string): void {
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) throw new ConformanceError(`${what} through a ${c.device.kind} device: byte ${i} is ${got[i]}, expected ${want[i]}`);
  }
  const held = dmaResources(device);
  if (held.iovaPages + held.mappedGranules + held.bounceSlots + held.live !== 0) {
    throw new ConformanceError(`dmaUnmap left ${JSON.stringify(held)} on a ${c.device.kind} device`);
  }
}

/**
 * One DMA case: the range is pinned with `getUser`, mapped from-device, the device writes its
 * bytes at positions spread over the DMA segments, then unmap and `putUser({ dirty: true })`;
 * the process must read exactly its old bytes with the device's writes applied, and the
 * device's DMA path must hold nothing afterwards.
 */
export function checkDmaWriteCase(backend: DescriptorBackend, c: DmaCase): void {
  const { memory, mm, addr, len, device, desc, mapping, segs } = mapCase(backend, c, 99, 'from-device');
  const want = bytesFor(len, 99);
  for (const w of c.writes) {
    const pos = Math.min(len - 1, Math.floor(w.at * len));
    const n = Math.min(w.length, len - pos);
    const bytes = bytesFor(n, w.salt);
    // the device writes segment by segment, as its scatter-gather engine would
    let done = 0;
    for (const [start, slen, spos] of segs) {
      if (spos + slen <= pos + done || done >= n) continue;
      const from = pos + done - spos;
      const k = Math.min(slen - from, n - done);
      device.dmaWrite(start + from, bytes.subarray(done, done + k));
      done += k;
    }
    want.set(bytes, pos);
  }
  backend.dmaUnmap(mapping);
  backend.putUser(desc, { dirty: true });
  checkAfter(c, mm.read(addr, len), want, device, 'device writes');
  checkNoLeaks(memory);
}

/** One read case: the device reads, segment by segment, exactly the bytes the range holds. */
export function checkDmaReadCase(backend: DescriptorBackend, c: DmaCase): void {
  const { memory, len, device, desc, mapping, segs } = mapCase(backend, c, 5, 'to-device');
  const got = new Uint8Array(len);
  for (const [start, slen, spos] of segs) got.set(device.dmaRead(start, slen), spos);
  backend.dmaUnmap(mapping);
  backend.putUser(desc, { dirty: false });
  checkAfter(c, got, bytesFor(len, 5), device, 'a device read');
  checkNoLeaks(memory);
}

/** Registers the DMA group (backends with `capabilities.dma`). */
export function dmaTests(factory: BackendFactory, options?: ConformanceOptions): void {
  const opts = resolveOptions(options);
  if (!probe(factory).capabilities.dma) return;
  describe('dmaMap', () => {
    guardLeaks();

    it('lands every device write exactly in the described memory, and unmapping frees the DMA path', () => {
      runProperty(dmaCase(), (c) => checkDmaWriteCase(factory(), c), opts);
    });

    it('lets the device read exactly the described bytes', () => {
      runProperty(dmaCase(), (c) => checkDmaReadCase(factory(), c), opts);
    });

    it.each(['direct', 'bounce', 'iommu'] as const)('maps a 40-page range through a %s device and unmaps it cleanly', (kind) => {
      runProperty(dmaCase().map((c) => ({ ...c, device: { ...c.device, kind }, range: { ...c.range, length: 40 * PAGE_SIZE - c.range.offsetInPage } })), (c) => checkDmaWriteCase(factory(), c), { ...opts, numRuns: Math.max(3, opts.numRuns >> 3) });
    });

    it('leaves nothing mapped and the descriptor usable when the IOVA space is exhausted', () => {
      const backend = factory();
      const { memory, mm } = newMachine(opts.seed);
      const addr = mapUserRange(mm, { leadPages: 0, offsetInPage: 0, length: 32 * PAGE_SIZE, trailPages: 0 }, { prefault: true });
      const desc = backend.getUser(mm, addr, 32 * PAGE_SIZE, { write: true });
      const device = makeDevice(memory, { kind: 'iommu', maxSegmentSize: 65536, segBoundaryMask: Number.MAX_SAFE_INTEGER });
      // a 16-bit mask leaves 15 IOVA pages: 32 pages cannot fit
      const narrow = new Device(memory, { name: 'conformance-narrow', iommu: device.iommu!, dmaMaskBits: 16 });
      let code: unknown;
      try {
        backend.dmaMap(desc, narrow, 'from-device');
      } catch (e) {
        code = (e as { code?: unknown }).code;
      }
      expect(code).toBe('ENOMEM');
      expect(dmaResources(narrow)).toEqual({ iovaPages: 0, mappedGranules: 0, bounceSlots: 0, live: 0 });
      const m = backend.dmaMap(desc, device, 'from-device');
      backend.dmaUnmap(m);
      backend.putUser(desc, { dirty: false });
      checkNoLeaks(memory);
    });
  });
}
