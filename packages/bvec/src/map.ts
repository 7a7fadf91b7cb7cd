// A request's bios on their way to a device, both ways the kernel goes (block/blk-mq-dma.c):
// (a) blk_rq_map_sg into a freshly allocated scatterlist-shaped table, then core's DMA layer;
// (b) blk_rq_dma_map_iter_start/next, the IOVA-coalesced path with its per-segment fallback.

import {
  BlkDmaIter, blkRqDmaMapIterNext, blkRqDmaMapIterStart, blkRqDmaUnmap as coreUnmap, blkRqMapSegments, blkValidateLimits,
  biovecPhysMergeable, bvecSegGap, checkDirection, Device, fail, ffs, kmallocSize, minNotZero, PAGE_SIZE,
  type DmaDirection, type PhysRanges, type QueueLimits, type QueueLimitsOptions,
} from '@iodesc/core';
import { Bio, checkBio } from './bio.js';
import { BvecRanges } from './ranges.js';
import { bioGapBit } from './split.js';

/** `sizeof(struct scatterlist)` with DMA fields, and the slots one page of them holds (SG_MAX_SINGLE_ALLOC). */
export const SG_BYTES = 32;
export const SG_MAX_SINGLE_ALLOC = PAGE_SIZE / SG_BYTES;

/** What building a table cost, as `sg_alloc_table` allocates it: chunks of up to 128 slots, chain slots included. */
export interface SgTableCost {
  bytes: number;
  allocations: number;
  /** Slots, chain slots included. */
  entries: number;
}

/** The cost of a scatterlist of `n` entries (sg_alloc_table: 127 entries and a chain slot per full chunk). */
export function sgTableCost(n: number): SgTableCost {
  if (n <= SG_MAX_SINGLE_ALLOC) return { bytes: kmallocSize(n * SG_BYTES), allocations: 1, entries: n };
  let left = n;
  let bytes = 0;
  let allocations = 0;
  let entries = 0;
  while (left > 0) {
    const slots = left > SG_MAX_SINGLE_ALLOC ? SG_MAX_SINGLE_ALLOC : left;
    bytes += kmallocSize(slots * SG_BYTES);
    allocations++;
    entries += slots;
    left -= left > SG_MAX_SINGLE_ALLOC ? SG_MAX_SINGLE_ALLOC - 1 : left;
  }
  return { bytes, allocations, entries };
}

/** The table `blkRqMapSg` builds: `count` physical segments in typed arrays. */
export class BlkSgTable {
  readonly cost: SgTableCost;
  constructor(readonly count: number, readonly phys: Float64Array, readonly lens: Float64Array) {
    this.cost = sgTableCost(count);
  }

  /**
   * The segments in order, a fresh `{ phys, length }` each, as an array (iterable, indexable,
   * `length`); a convenience for checks: hot paths read `phys` and `lens`.
   */
  segments(): Array<{ phys: number; length: number }> {
    const out: Array<{ phys: number; length: number }> = [];
    for (let i = 0; i < this.count; i++) out.push({ phys: this.phys[i]!, length: this.lens[i]! });
    return out;
  }
}

// The bios of a request: an array, or one bio and those chained after it by biNext.
function requestBios(bios: Bio | readonly Bio[]): Bio[] {
  const list: Bio[] = [];
  if (bios instanceof Bio) for (let b: Bio | null = bios; b !== null; b = b.biNext) list.push(b);
  else if (Array.isArray(bios)) list.push(...(bios as Bio[]));
  else fail('EINVAL', 'bios must be a Bio or an array of Bios');
  if (list.length === 0) fail('EINVAL', 'a request needs at least one bio');
  list.forEach((b, i) => {
    checkBio(`bios[${i}]`, b);
    if (b.biIter.biSize === 0) fail('EINVAL', `bios[${i}] carries no data`);
  });
  return list;
}

const viewsOf = (list: Bio[]): BvecRanges[] => list.map((b) => new BvecRanges().reset(b, b.biIter));

/**
 * `blk_rq_map_sg`: the request's bios (chained as by `bi_next`) walked by `blk_map_iter_next`:
 * each vector clipped by `get_max_segment_size`, and once a vector is used up the following
 * ones (across bio boundaries too) merged while `biovec_phys_mergeable` allows, into a freshly
 * allocated table of physical segments. The virt boundary and `maxSegments` are not applied
 * (the split did that). The table's cost (`table.cost`) is the conversion the kernel pays;
 * map it with core's `dmaMapSegments(device, table.phys, table.lens, table.count, dir)`.
 * EINVAL for bad limits or an empty request. Cost: O(vectors), two walks (count, then fill).
 */
export function blkRqMapSg(bios: Bio | readonly Bio[], limits?: QueueLimitsOptions | QueueLimits): BlkSgTable {
  return mapSgViews(blkValidateLimits(limits), viewsOf(requestBios(bios)));
}

/** @internal `blkRqMapSg` over vector views already made (a flat array's, for one). */
export function mapSgViews(lim: QueueLimits, views: readonly PhysRanges[]): BlkSgTable {
  const n = blkRqMapSegments(lim, views, null, null);
  const phys = new Float64Array(n);
  const lens = new Float64Array(n);
  blkRqMapSegments(lim, views, phys, lens);
  return new BlkSgTable(n, phys, lens);
}

/**
 * The request's `phys_gap_bit`: the first bio's gap bit, then for each bio appended
 * `bio_seg_gap` (both bios' bits, and the seam's gap when the last vector of one and the first
 * of the next are not physically mergeable).
 */
export function requestGapBit(bios: Bio | readonly Bio[], limits?: QueueLimitsOptions | QueueLimits): number {
  const lim = blkValidateLimits(limits);
  const list = requestBios(bios);
  const views = viewsOf(list);
  let gap = bioGapBit(list[0]!);
  for (let k = 1; k < list.length; k++) {
    const p = views[k - 1]!;
    const nx = views[k]!;
    gap = minNotZero(gap, bioGapBit(list[k - 1]!));
    gap = minNotZero(gap, bioGapBit(list[k]!));
    // bio_get_last_bvec / bio_get_first_bvec: the offsets bio_for_each_bvec shows
    const last = p.count - 1;
    const pLen = p.length(last);
    if (!biovecPhysMergeable(lim, p.phys(last), pLen, nx.phys(0), nx.length(0))) gap = minNotZero(gap, ffs(bvecSegGap(p.offset(last), pLen, nx.offset(0))));
  }
  return gap;
}

/** What `blkRqDmaMap` mapped: the DMA segments in order and how. */
export class BlkDmaMap {
  constructor(
    readonly iter: BlkDmaIter,
    private readonly addrs: number[],
    private readonly lens: number[],
  ) {}

  /** Linked into one IOVA range (path b's fast way), rather than mapped segment by segment. */
  get coalesced(): boolean {
    return this.iter.coalesced;
  }

  get count(): number {
    return this.addrs.length;
  }

  dmaAddress(i: number): number {
    return this.addrs[i]!;
  }

  dmaLength(i: number): number {
    return this.lens[i]!;
  }

  /** The DMA segments in order, a fresh `{ dmaAddress, dmaLength }` each. */
  *segments(): Generator<{ dmaAddress: number; dmaLength: number }> {
    for (let i = 0; i < this.addrs.length; i++) yield { dmaAddress: this.addrs[i]!, dmaLength: this.lens[i]! };
  }
}

/**
 * The scatterlist-less path (`blk_rq_dma_map_iter_start` then `_next` until done): behind an
 * IOMMU, when the request's gap mask misses the merge boundary (`blk_can_dma_map_iova`), every
 * segment is linked into one IOVA range and the device sees one DMA segment; otherwise (direct
 * mapping, gaps inside a granule, or no IOVA range free) each segment is mapped on its own.
 * Release with `blkRqDmaUnmap`. Throws the mapping's errno (ENOMEM, EIO) having unmapped
 * everything it mapped. Cost: O(segments), plus page-table writes per granule.
 */
export function blkRqDmaMap(bios: Bio | readonly Bio[], limits: QueueLimitsOptions | QueueLimits | undefined, device: Device, dir: DmaDirection): BlkDmaMap {
  const lim = blkValidateLimits(limits);
  if (!(device instanceof Device)) fail('EINVAL', 'device must be a Device');
  checkDirection('dir', dir);
  const list = requestBios(bios);
  const iter = new BlkDmaIter(lim, viewsOf(list), device, dir, requestGapBit(list, lim));
  const addrs: number[] = [];
  const lens: number[] = [];
  let ok = blkRqDmaMapIterStart(iter);
  while (ok) {
    addrs.push(iter.addr);
    lens.push(iter.len);
    ok = blkRqDmaMapIterNext(iter);
  }
  if (iter.status !== null) {
    const code = iter.status;
    coreUnmap(iter);
    fail(code, `mapping the request for ${device.name} failed after ${addrs.length} segment(s)`);
  }
  return new BlkDmaMap(iter, addrs, lens);
}

/** The name for `blkRqDmaMap`: the whole `blk_rq_dma_map_iter_start`/`_next` loop. */
export const blkRqDmaMapIter = blkRqDmaMap;

/** `blk_rq_dma_unmap`: destroys the IOVA range or unmaps each segment. EINVAL twice. */
export function blkRqDmaUnmap(map: BlkDmaMap): void {
  if (!(map instanceof BlkDmaMap)) fail('EINVAL', 'map must be a BlkDmaMap');
  if (map.iter.state === null && map.iter.mappings.length === 0) fail('EINVAL', 'the request is not mapped');
  coreUnmap(map.iter);
}
