// The split loop and the map walk over (address, length) sequences (block/blk-merge.c:
// bio_split_io_at, bvec_split_segs, get_max_io_size; block/blk-mq-dma.c: blk_map_iter_next),
// and the IOVA-linking API with the DMA iterator (drivers/iommu/dma-iommu.c, blk-mq-dma.c).

import { describe, expect, it } from 'vitest';
import {
  BlkDmaIter, BlkMapIter, bioSplitIoAt, bioSplitRwAt, blkRqDmaMapIterNext, blkRqDmaMapIterStart, blkRqDmaUnmap, blkRqMapSegments,
  blkValidateLimits, Device, dmaGetMergeBoundary, dmaIovaDestroy, dmaIovaLink, dmaIovaTryAlloc, getMaxIoSize, Iommu, leakReport,
  PhysicalMemory, type PhysRanges, type QueueLimitsOptions,
} from '../src/index.js';
import { expectCode, MiB } from './helpers.js';

const P = 4096;
const ranges = (list: Array<[number, number]>): PhysRanges => ({ count: list.length, phys: (i) => list[i]![0], length: (i) => list[i]![1] });

describe('bioSplitIoAt', () => {
  it.each<[string, QueueLimitsOptions, Array<[number, number]>, number, { sectors: number; segs: number; error?: 'EINVAL' }]>([
    ['fits: no split', {}, [[10 * P, P], [20 * P, P]], 2 ** 20, { sectors: 0, segs: 2 }],
    ['max bytes: split inside the second vector', {}, [[10 * P, P], [20 * P, 2 * P]], 2 * P, { sectors: 16, segs: 2 }],
    ['max segments 2 of 3 scattered pages', { maxSegments: 2 }, [[10 * P, P], [20 * P, P], [30 * P, P]], 2 ** 20, { sectors: 16, segs: 2 }],
    ['one 64 KiB vector cut by 16 KiB segments, 2 segments allowed', { maxSegmentSize: 16384, maxSegments: 2 }, [[16 * P, 65536]], 2 ** 20, { sectors: 64, segs: 2 }],
    ['a vector crossing a 64 KiB boundary counts two segments', { segBoundaryMask: 0xffff, maxSegments: 1 }, [[15 * P, 2 * P]], 2 ** 20, { sectors: 8, segs: 1 }],
    ['virt boundary: a vector ending inside a page splits before the next', { virtBoundaryMask: 4095 }, [[10 * P, P], [20 * P, 2048], [30 * P, P]], 2 ** 20, { sectors: 12, segs: 2 }],
    ['logical block rounding: 6 KiB rounds down to 4 KiB', { virtBoundaryMask: 4095, logicalBlockSize: 4096 }, [[10 * P, P], [20 * P, 2048], [30 * P, P]], 2 ** 20, { sectors: 8, segs: 2 }],
    ['nothing left after rounding: EINVAL', { virtBoundaryMask: 4095, logicalBlockSize: 4096 }, [[20 * P, 2048], [30 * P, P]], 2 ** 20, { sectors: 0, segs: 1, error: 'EINVAL' }],
    ['a vector offset breaking dmaAlignment: EINVAL', {}, [[10 * P + 100, 512]], 2 ** 20, { sectors: 0, segs: 0, error: 'EINVAL' }],
  ])('%s', (_l, opts, list, maxBytes, want) => {
    const d = bioSplitRwAt(blkValidateLimits(opts), ranges(list), maxBytes);
    expect({ sectors: d.sectors, segs: d.segs, error: d.error ?? undefined }).toEqual({ error: undefined, ...want });
  });

  // blk-merge.c bio_split_io_at reads bv.bv_offset of mp_bvec_iter_bvec: bv_offset + bi_bvec_done
  it('reads the offset bio_for_each_bvec shows (past PAGE_SIZE inside a vector) when the ranges give one', () => {
    const lim = blkValidateLimits({ virtBoundaryMask: 0xffff });
    // a 64 KiB vector at pfn 16 entered 8 KiB in, then a page elsewhere
    const list: Array<[number, number, number]> = [[16 * P + 8192, 57344, 8192], [100 * P, P, 0]];
    const withOffset: PhysRanges = { ...ranges(list.map(([a, l]) => [a, l])), offset: (i) => list[i]![2] };
    const d = bioSplitRwAt(lim, withOffset, 2 ** 20);
    expect([d.sectors, d.segs, d.gapBit]).toEqual([0, 2, 17]);
    // from phys % PAGE_SIZE alone the first vector would end off the 64 KiB boundary
    expect(bioSplitRwAt(lim, ranges(list.map(([a, l]) => [a, l])), 2 ** 20).sectors).toBe(112);
    expectCode(() => bioSplitRwAt(lim, { ...withOffset, offset: 3 } as never, 2 ** 20), 'EINVAL');
  });

  it('holds vector lengths to the length mask it is given (bio_split_io_at)', () => {
    const lim = blkValidateLimits();
    expect(bioSplitIoAt(lim, ranges([[10 * P, 100]]), 2 ** 20, 0).error).toBe(null);
    expect(bioSplitRwAt(lim, ranges([[10 * P, 100]]), 2 ** 20).error).toBe('EINVAL');
  });

  // block/fops.c:49 passes bdev_logical_block_size - 1, fs/iomap/direct-io.c:360 alignment - 1: up to 64 KiB - 1
  it('takes a length mask up to 65535 and refuses one that is not 2^k - 1', () => {
    const lim = blkValidateLimits();
    expect(bioSplitIoAt(lim, ranges([[16 * P, 65536]]), 2 ** 20, 65535).error).toBe(null);
    expect(bioSplitIoAt(lim, ranges([[16 * P, 4096], [32 * P, 4096]]), 2 ** 20, 8191).error).toBe('EINVAL');
    expectCode(() => bioSplitIoAt(lim, ranges([[16 * P, 4096]]), 2 ** 20, 65536), 'EINVAL');
    expectCode(() => bioSplitIoAt(lim, ranges([[16 * P, 4096]]), 2 ** 20, 1000), 'EINVAL');
  });

  it('keeps its segment and byte counts in the decision, so a walk inside a walk does not disturb it', () => {
    const lim = blkValidateLimits({ maxSegments: 2 });
    const inner = ranges([[40 * P, P], [50 * P, P], [60 * P, P], [70 * P, P]]);
    const list: Array<[number, number]> = [[10 * P, P], [20 * P, P], [30 * P, P]];
    const outer: PhysRanges = {
      count: list.length,
      phys: (i) => {
        if (i === 1) bioSplitRwAt(blkValidateLimits({ maxSegments: 8 }), inner, 2 ** 20);
        return list[i]![0];
      },
      length: (i) => list[i]![1],
    };
    const d = bioSplitRwAt(lim, outer, 2 ** 20);
    expect([d.sectors, d.segs, d.bytes]).toEqual([16, 2, 2 * P]);
  });

  it('records the gap bit of the vectors it scanned', () => {
    const lim = blkValidateLimits();
    expect(bioSplitRwAt(lim, ranges([[10 * P, P], [20 * P, P]]), 2 ** 20).gapBit).toBe(13);
    expect(bioSplitRwAt(lim, ranges([[10 * P, P], [20 * P, 2048], [30 * P + 2048, 512]]), 2 ** 20).gapBit).toBe(12);
    expect(bioSplitRwAt(lim, ranges([[10 * P, 8 * P]]), 2 ** 20).gapBit).toBe(0);
  });
});

describe('argument checks', () => {
  it('throws EINVAL for malformed ranges, budgets, limits and iterators', () => {
    const lim = blkValidateLimits();
    expectCode(() => bioSplitIoAt(lim, {} as never, 1, 0), 'EINVAL');
    expectCode(() => bioSplitIoAt(lim, ranges([]), -1, 0), 'EINVAL');
    expectCode(() => bioSplitIoAt({ ...lim, segBoundaryMask: 5 }, ranges([]), 1, 0), 'EINVAL');
    expectCode(() => getMaxIoSize(lim, -1), 'EINVAL');
    expectCode(() => new BlkMapIter(lim, {} as never), 'EINVAL');
    expectCode(() => new BlkMapIter(lim, [{} as never]), 'EINVAL');
    const device = new Device(new PhysicalMemory({ bytes: 16 * MiB }));
    expectCode(() => new BlkDmaIter(lim, [], device, 'to-device', 33), 'EINVAL');
    expectCode(() => new BlkDmaIter(lim, [], device, 'up' as never, 0), 'EINVAL');
    expectCode(() => new BlkDmaIter(lim, [], {} as never, 'to-device', 0), 'EINVAL');
  });
});

describe('getMaxIoSize', () => {
  it.each([
    ['max_sectors alone', {}, 0, 255],
    ['rounded to the physical block when enough remain', { physicalBlockSize: 4096 }, 0, 248],
    ['ends on a physical block from an unaligned start: 3 + 253 = 256', { physicalBlockSize: 4096 }, 3, 253],
    ['cut at the next chunk boundary', { chunkSectors: 64 }, 60, 4],
  ])('%s', (_l, opts, sector, want) => {
    expect(getMaxIoSize(blkValidateLimits(opts), sector)).toBe(want);
  });
});

describe('BlkMapIter (blk_map_iter_next)', () => {
  const segs = (opts: QueueLimitsOptions, bios: Array<Array<[number, number]>>) => {
    const it = new BlkMapIter(blkValidateLimits(opts), bios.map(ranges));
    const out: Array<[number, number]> = [];
    while (it.next()) out.push([it.paddr, it.len]);
    return out;
  };
  it.each<[string, QueueLimitsOptions, Array<Array<[number, number]>>, Array<[number, number]>]>([
    ['merges contiguous vectors', {}, [[[10 * P, P], [11 * P, P], [20 * P, P]]], [[10 * P, 2 * P], [20 * P, P]]],
    ['merges across bio boundaries', {}, [[[10 * P, P]], [[11 * P, P]]], [[10 * P, 2 * P]]],
    ['clips a vector by the segment size, merges its tail with the next only once it is used up',
      { maxSegmentSize: 8192 }, [[[10 * P, 3 * P], [13 * P, P]]], [[10 * P, 2 * P], [12 * P, 2 * P]]],
    ['stops at the boundary', { segBoundaryMask: 0xffff }, [[[15 * P, 2 * P]]], [[15 * P, P], [16 * P, P]]],
    ['does not merge across a boundary', { segBoundaryMask: 0xffff }, [[[15 * P, P], [16 * P, P]]], [[15 * P, P], [16 * P, P]]],
    ['ignores the virt boundary and max segments', { virtBoundaryMask: 4095, maxSegments: 1 }, [[[10 * P, 2048], [20 * P, 100]]], [[10 * P, 2048], [20 * P, 100]]],
  ])('%s', (_l, opts, bios, want) => {
    expect(segs(opts, bios)).toEqual(want);
  });

  it('blkRqMapSegments counts, then fills, and refuses a short table', () => {
    const lim = blkValidateLimits();
    const bios = [ranges([[10 * P, P], [20 * P, P]])];
    expect(blkRqMapSegments(lim, bios, null, null)).toBe(2);
    expectCode(() => blkRqMapSegments(lim, bios, new Float64Array(1), new Float64Array(1)), 'EINVAL');
  });
});

describe('the IOVA-linking API and the DMA iterator', () => {
  const machine = (opts: { iommu?: boolean; dmaMaskBits?: number } = {}) => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const iommu = new Iommu();
    const device = new Device(memory, { iommu: opts.iommu === false ? 'direct' : iommu, ...(opts.dmaMaskBits ? { dmaMaskBits: opts.dmaMaskBits } : {}) });
    return { memory, iommu, device };
  };

  it('links scattered pages into one IOVA range the device reads and writes through', () => {
    const { memory, iommu, device } = machine();
    memory.writePhys(20 * P, new Uint8Array(P).fill(2));
    const state = dmaIovaTryAlloc(device, 10 * P + 512, 3 * P - 512)!;
    expect(state.addr % P).toBe(512);
    dmaIovaLink(device, state, 10 * P + 512, 0, P - 512, 'bidirectional');
    dmaIovaLink(device, state, 20 * P, P - 512, P, 'bidirectional');
    dmaIovaLink(device, state, 30 * P, 2 * P - 512, P, 'bidirectional');
    expect(device.dmaRead(state.addr + P - 512, P)).toEqual(new Uint8Array(P).fill(2));
    device.dmaWrite(state.addr, new Uint8Array(3 * P - 512).fill(7));
    expect(memory.readPhys(30 * P, P)).toEqual(new Uint8Array(P).fill(7));
    expect(leakReport(memory).map((e) => e.kind)).toEqual(['dma-mapping']);
    dmaIovaDestroy(device, state, 3 * P - 512, 'bidirectional');
    expect([iommu.iovad.allocatedPages, iommu.mappedGranules]).toEqual([0, 0]);
    expect(leakReport(memory)).toEqual([]);
  });

  it('refuses an unaligned link past the first, and a destroyed state', () => {
    const { device } = machine();
    const state = dmaIovaTryAlloc(device, 10 * P, 2 * P)!;
    expectCode(() => dmaIovaLink(device, state, 20 * P + 8, P, 100, 'to-device'), 'EIO');
    // __iommu_map's IS_ALIGNED(iova | paddr | size) check (iommu.c:2607): -EINVAL
    expectCode(() => dmaIovaLink(device, state, 20 * P, 100, P, 'to-device'), 'EINVAL');
    dmaIovaDestroy(device, state, 0, 'to-device');
    expectCode(() => dmaIovaLink(device, state, 20 * P, 0, P, 'to-device'), 'EINVAL');
  });

  it('gives no IOVA state to a direct device; its merge boundary is 0', () => {
    const { device } = machine({ iommu: false });
    expect(dmaIovaTryAlloc(device, 0, P)).toBe(null);
    expect(dmaGetMergeBoundary(device)).toBe(0);
  });

  it('coalesces a gap-free request behind an IOMMU into one DMA segment', () => {
    const { iommu, device } = machine();
    const it = new BlkDmaIter(blkValidateLimits(), [ranges([[10 * P, P], [20 * P, 2 * P]]), ranges([[40 * P, P]])], device, 'to-device', 13);
    expect(blkRqDmaMapIterStart(it)).toBe(true);
    expect([it.coalesced, it.len]).toEqual([true, 4 * P]);
    expect(blkRqDmaMapIterNext(it)).toBe(false);
    blkRqDmaUnmap(it);
    expect([iommu.iovad.allocatedPages, iommu.mappedGranules]).toEqual([0, 0]);
  });

  it('maps segment by segment when a gap falls inside a granule, or without an IOMMU', () => {
    for (const { device, gap } of [{ device: machine().device, gap: 12 }, { device: machine({ iommu: false }).device, gap: 13 }]) {
      const it = new BlkDmaIter(blkValidateLimits(), [ranges([[10 * P, 2048], [20 * P, P]])], device, 'to-device', gap);
      const lens: number[] = [];
      for (let ok = blkRqDmaMapIterStart(it); ok; ok = blkRqDmaMapIterNext(it)) lens.push(it.len);
      expect([it.coalesced, lens, it.status]).toEqual([false, [2048, P], null]);
      blkRqDmaUnmap(it);
      expect(device.liveCount).toBe(0);
    }
  });

  it('falls back to per-segment mapping when no IOVA range fits the whole request', () => {
    // a 16-bit mask leaves 15 IOVA pages: 16 pages cannot be one range, single pages can
    const { iommu, device } = machine({ dmaMaskBits: 16 });
    const list: Array<[number, number]> = Array.from({ length: 16 }, (_, k) => [(10 + 2 * k) * P, P]);
    const it = new BlkDmaIter(blkValidateLimits(), [ranges(list.slice(0, 4))], device, 'to-device', 13);
    for (let ok = blkRqDmaMapIterStart(it); ok; ok = blkRqDmaMapIterNext(it));
    expect(it.coalesced).toBe(true);
    blkRqDmaUnmap(it);
    const big = new BlkDmaIter(blkValidateLimits(), [ranges(list)], device, 'to-device', 13);
    let n = 0;
    for (let ok = blkRqDmaMapIterStart(big); ok; ok = blkRqDmaMapIterNext(big)) n++;
    expect([big.coalesced, n, big.status]).toEqual([false, 15, 'ENOMEM']);
    blkRqDmaUnmap(big);
    expect([iommu.iovad.allocatedPages, iommu.mappedGranules, device.liveCount]).toEqual([0, 0, 0]);
  });
});
