// dmaFindBestPgsz: ib_umem_find_best_pgsz (drivers/infiniband/core/umem.c) over a mapping's segments.

import { describe, expect, it } from 'vitest';
import { Device, dmaFindBestPgsz, dmaMapSegments, dmaUnmapSegments, Iommu, IodescError, PhysicalMemory } from '../src/index.js';

const K4 = 4096;
const K64 = 65536;
const M2 = 2 ** 21;
const G1 = 2 ** 30;
const BITMAP = K4 | K64 | M2 | G1;

const memory = new PhysicalMemory({ bytes: 256 * 2 ** 20, seed: 1 });
const direct = new Device(memory, { name: 'rdma', maxSegmentSize: 0xffffffff });

// Maps entries [phys, len] on the direct device (bus address = physical address).
function mapped(entries: Array<[number, number]>) {
  return dmaMapSegments(direct, Float64Array.from(entries.map((e) => e[0])), Float64Array.from(entries.map((e) => e[1])), entries.length, 'bidirectional');
}

describe('dmaFindBestPgsz', () => {
  // entries, user address, length, virt → best page size
  it.each([
    ['one 2 MiB run at a 2 MiB VA and PA', [[4 * M2, M2]], 7 * M2, M2, 7 * M2, M2],
    ['two 2 MiB runs, discontiguous, VA 2 MiB aligned', [[4 * M2, M2], [10 * M2, M2]], 7 * M2, 2 * M2, 7 * M2, M2],
    ['two DMA-contiguous entries merge into one 4 MiB run', [[4 * M2, M2], [5 * M2, M2]], 8 * M2, 2 * M2, 8 * M2, M2],
    ['scattered 4 KiB pages', [[100 * K4, K4], [300 * K4, K4], [50 * K4, K4]], 7 * M2, 3 * K4, 7 * M2, K4],
    ['64 KiB runs at 64 KiB alignment', [[16 * K64, K64], [40 * K64, K64]], 3 * M2, 2 * K64, 3 * M2, K64],
    ['PA and VA disagree at bit 12', [[4 * M2 + K4, M2]], 7 * M2, M2, 7 * M2, K4],
    ['virt shifted by a page from the address', [[4 * M2, M2]], 7 * M2, M2, 7 * M2 + K4, K4],
    ['an offset into the first page is carried to the first PA', [[4 * M2, M2]], 7 * M2 + 100, M2 - 100, 7 * M2 + 100, M2],
    ['a first entry already starting at the offset is not moved again', [[4 * M2 + 100, M2 - 100]], 7 * M2 + 100, M2 - 100, 7 * M2 + 100, M2],
    ['a first entry starting at the offset, two runs', [[4 * M2 + 100, M2 - 100], [9 * M2, M2]], 7 * M2 + 100, 2 * M2 - 100, 7 * M2 + 100, M2],
    ['length 0 (an ib_umem of size 0): one page registered, the span small', [[4 * M2, K4]], 7 * M2 + 100, 0, 7 * M2 + 100, K4],
    ['length 0 at virt 0: bits_per is 64, GENMASK(63, 64) every bit (x86 shl)', [[4 * M2, K4]], 7 * M2, 0, 0, K4],
  ] as const)('%s', (_label, entries, address, length, virt, want) => {
    const m = mapped(entries.map((e) => [e[0], e[1]] as [number, number]));
    expect(dmaFindBestPgsz(m, address, length, BITMAP, virt)).toBe(want);
    dmaUnmapSegments(direct, m);
  });

  it('returns 0 when no size in the bitmap works, and honours a bigint bitmap', () => {
    const m = mapped([[100 * K4, K4], [300 * K4, K4]]);
    expect(dmaFindBestPgsz(m, 0, 2 * K4, M2, 0)).toBe(0);
    expect(dmaFindBestPgsz(m, 0, 2 * K4, BigInt(K4) | (1n << 60n), 0)).toBe(K4);
    dmaUnmapSegments(direct, m);
  });

  it('refuses with EINVAL a mapping whose first entry starts later in its page than the address', () => {
    const m = mapped([[4 * M2 + 200, K4]]);
    expect(() => dmaFindBestPgsz(m, 7 * M2 + 100, 100, BITMAP, 7 * M2 + 100)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(dmaFindBestPgsz(m, 7 * M2 + 200, 100, BITMAP, 7 * M2 + 200)).toBe(K4);
    dmaUnmapSegments(direct, m);
  });

  it('works over merged IOMMU segments: one 16 KiB IOVA run takes 16 KiB pages, capped by the span of the range', () => {
    const dev = new Device(memory, { name: 'rdma-iommu', iommu: new Iommu(), maxSegmentSize: 0xffffffff });
    const m = dmaMapSegments(dev, Float64Array.of(100 * K4, 300 * K4, 50 * K4, 70 * K4), Float64Array.of(K4, K4, K4, K4), 4, 'bidirectional');
    expect(m.count).toBe(1);
    // the input entries stay readable behind the merged segment
    expect([0, 1, 2, 3].map((i) => m.entryPhys(i))).toEqual([100 * K4, 300 * K4, 50 * K4, 70 * K4]);
    expect(dmaFindBestPgsz(m, 0, 4 * K4, K4 | 4 * K4 | 16 * K4, m.dmaAddress(0))).toBe(4 * K4);
    dmaUnmapSegments(dev, m);
  });

  it('refuses an unmapped mapping and bad arguments with EINVAL', () => {
    const m = mapped([[100 * K4, K4]]);
    expect(() => dmaFindBestPgsz(m, 0, -1, K4, 0)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => dmaFindBestPgsz(m, 0, K4, -1, 0)).toThrow(IodescError);
    expect(() => dmaFindBestPgsz(m, 0, K4, -1, 0)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    dmaUnmapSegments(direct, m);
    expect(() => dmaFindBestPgsz(m, 0, K4, K4, 0)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});
