// The scatterlist-less road from a request to the device (block/blk-mq-dma.c:
// blk_rq_dma_map_iter_start, blk_rq_dma_map_iter_next, blk_can_dma_map_iova, blk_rq_dma_unmap):
// behind an IOMMU the whole request is linked into one IOVA range when its gaps allow, else
// each segment is mapped on its own.

import { checkDevice, type Device } from '../dma/device.js';
import { dmaGetMergeBoundary, dmaIovaDestroy, dmaIovaLink, dmaIovaSync, dmaIovaTryAlloc, type DmaIovaState } from '../dma/iova-link.js';
import { dmaMapSegments, dmaUnmapSegments, type DmaMapping } from '../dma/mapping.js';
import { checkDirection, type DmaDirection } from '../dma/types.js';
import { fail, isIodescError, type Errno } from '../errors.js';
import { BlkMapIter } from './map-sg.js';
import type { QueueLimits } from './limits.js';
import { blkCanDmaMapIova } from './merge.js';
import type { PhysRanges } from './split.js';

/**
 * `struct blk_dma_iter` with the request's `dma_iova_state`: after a successful start or next,
 * `addr`/`len` hold the DMA segment just mapped; `status` the errno when one failed.
 */
export class BlkDmaIter {
  addr = 0;
  len = 0;
  status: Errno | null = null;
  /** The IOVA range the request was linked into, or null when mapped segment by segment. */
  state: DmaIovaState | null = null;
  /** Bytes linked into `state`. */
  mappedLen = 0;
  /** One mapping per segment on the segment-by-segment path (`dma_map_phys`), to unmap. */
  readonly mappings: DmaMapping[] = [];
  readonly iter: BlkMapIter;
  // one-entry address and length arrays for dma_map_phys, reused for every segment
  private readonly onePhys = new Float64Array(1);
  private readonly oneLen = new Float64Array(1);

  constructor(
    readonly lim: QueueLimits,
    readonly bios: readonly PhysRanges[],
    readonly device: Device,
    readonly dir: DmaDirection,
    /** The request's `phys_gap_bit` (ffs of the gaps between its vectors; 0: none). */
    readonly gapBit: number,
  ) {
    checkDevice(device);
    checkDirection('dir', dir);
    if (!Number.isInteger(gapBit) || gapBit < 0 || gapBit > 32) fail('EINVAL', `gapBit = ${gapBit} is outside [0, 32]`);
    this.iter = new BlkMapIter(lim, bios);
  }

  /** True when the request went through the IOVA-coalesced path. */
  get coalesced(): boolean {
    return this.state !== null;
  }

  /** @internal `blk_dma_map_direct`: `dma_map_phys` of the segment the walk holds. */
  mapDirect(): boolean {
    this.onePhys[0] = this.iter.paddr;
    this.oneLen[0] = this.iter.len;
    try {
      const m = dmaMapSegments(this.device, this.onePhys, this.oneLen, 1, this.dir);
      this.mappings.push(m);
      this.addr = m.dmaAddress(0);
      this.len = m.dmaLength(0);
      return true;
    } catch (e) {
      if (!isIodescError(e)) throw e;
      this.status = e.code;
      return false;
    }
  }
}

/**
 * `blk_rq_dma_map_iter_start`: maps the first DMA segment of the request. When
 * `blk_can_dma_map_iova` (the gap mask misses the device's merge boundary) and
 * `dma_iova_try_alloc` finds a range, every segment is linked into it and the one segment
 * covering the whole payload comes back; otherwise the first segment is mapped alone and
 * `blkRqDmaMapIterNext` maps the rest. False with `iter.status` set on failure (nothing left
 * mapped by this call), or false with status null when there is nothing to map.
 * Release with `blkRqDmaUnmap`.
 */
export function blkRqDmaMapIterStart(iter: BlkDmaIter): boolean {
  if (!(iter instanceof BlkDmaIter)) fail('EINVAL', 'iter must be a BlkDmaIter');
  iter.status = null;
  if (!iter.iter.next()) return false;
  const device = iter.device;
  if (blkCanDmaMapIova(iter.gapBit, dmaGetMergeBoundary(device))) {
    let total = 0;
    for (const b of iter.bios) for (let i = 0; i < b.count; i++) total += b.length(i);
    const state = dmaIovaTryAlloc(device, iter.iter.paddr, total);
    if (state !== null) return linkAll(iter, state, total);
  }
  return iter.mapDirect();
}

// blk_rq_dma_map_iova: link every segment at its running offset, then sync; unwind on error
function linkAll(iter: BlkDmaIter, state: DmaIovaState, total: number): boolean {
  const { device, dir } = iter;
  let mapped = 0;
  try {
    do {
      dmaIovaLink(device, state, iter.iter.paddr, mapped, iter.iter.len, dir);
      mapped += iter.iter.len;
    } while (iter.iter.next());
    dmaIovaSync(device, state, 0, mapped);
  } catch (e) {
    if (!isIodescError(e)) throw e;
    dmaIovaDestroy(device, state, mapped, dir);
    iter.status = e.code;
    return false;
  }
  iter.state = state;
  iter.mappedLen = mapped;
  iter.addr = state.addr;
  iter.len = total;
  return true;
}

/**
 * `blk_rq_dma_map_iter_next`: maps the next segment on the segment-by-segment path; false
 * when the request is done (status null) or a mapping failed (status set).
 */
export function blkRqDmaMapIterNext(iter: BlkDmaIter): boolean {
  if (!(iter instanceof BlkDmaIter)) fail('EINVAL', 'iter must be a BlkDmaIter');
  if (iter.state !== null) return false;
  if (!iter.iter.next()) return false;
  return iter.mapDirect();
}

/**
 * `blk_rq_dma_unmap`: destroys the IOVA range, or unmaps each segment mapped on its own.
 * Safe after a failed start or next (it releases what was mapped). O(segments).
 */
export function blkRqDmaUnmap(iter: BlkDmaIter): void {
  if (!(iter instanceof BlkDmaIter)) fail('EINVAL', 'iter must be a BlkDmaIter');
  if (iter.state !== null) {
    dmaIovaDestroy(iter.device, iter.state, iter.mappedLen, iter.dir);
    iter.state = null;
    iter.mappedLen = 0;
  }
  for (const m of iter.mappings) dmaUnmapSegments(iter.device, m);
  iter.mappings.length = 0;
}
