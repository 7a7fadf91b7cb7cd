// The backend-neutral mapping layer (include/linux/dma-mapping.h): a list of physical ranges in
// typed arrays mapped for one device, directly or through its IOMMU, with DMA-API debug checks
// (kernel/dma/debug.c) at map, unmap and sync.

import { checkInt, checkOptions, fail, hex } from '../errors.js';
import { checkDevice, Device } from './device.js';
import { bounceSlotBytes, directMapSg, directSyncSg, directUnmapSg } from './direct.js';
import { dirToProt, iommuMapSg, iommuUnmapSg } from './iommu.js';
import { clearMask } from './mask.js';
import { checkDirection, type DmaDirection, type DmaSegment } from './types.js';

const UINT_MAX = 0xffffffff;
let nextMappingId = 1;

/** Options of `dmaMapSegments`. */
export interface DmaMapOptions {
  /** Tag named by the leak report while the mapping is live. */
  owner?: string;
}

/**
 * A live (or unmapped) DMA mapping of a list of physical ranges for one device. The DMA
 * segments are in `dmaAddr`/`dmaLen[0..count)`; `segments()` yields them as objects.
 */
export class DmaMapping {
  readonly id = nextMappingId++;
  /** Entries mapped (the list given to `dmaMapSegments`). */
  readonly nents: number;
  /** DMA segments the device sees. */
  count = 0;
  /** IOVA pages the mapping holds (IOMMU), as allocated: sizes under 32 pages are rounded up to a power of two. */
  iovaPages = 0;
  /** First IOVA page of the mapping's range (IOMMU), 0 for direct mappings. */
  iovaPfn = 0;
  /** Bytes the mapping bounced through swiotlb (direct mappings above the DMA mask). */
  bounceBytes = 0;
  /** Bytes of swiotlb slots it holds (2 KiB each). */
  bounceSlotBytes = 0;
  /** First swiotlb slot of each entry, -1 when not bounced (direct mappings). */
  readonly slots: Int32Array | null;
  /** False once unmapped. */
  live = true;
  // sorted view of the segments for the direct DMA engine, built on first device access
  private byStart: Float64Array | null = null;
  private maxEnd: Float64Array | null = null;

  constructor(
    readonly device: Device,
    readonly dir: DmaDirection,
    /** Physical address and length of each entry, copied from the caller. */
    readonly phys: Float64Array,
    readonly lens: Float64Array,
    /** DMA address and length of each DMA segment. */
    readonly dmaAddr: Float64Array,
    readonly dmaLen: Float64Array,
    readonly owner: string | undefined,
  ) {
    this.nents = phys.length;
    this.slots = device.iommu === null ? new Int32Array(phys.length) : null;
  }

  /** DMA segments, as `nrSegments` names them in the descriptor interface. */
  get nrSegments(): number {
    return this.count;
  }

  /** Bytes mapped. */
  get length(): number {
    let n = 0;
    for (let i = 0; i < this.nents; i++) n += this.lens[i]!;
    return n;
  }

  /** The DMA segments in order, a fresh `{ dmaAddress, dmaLength }` each. */
  *segments(): Generator<DmaSegment> {
    for (let i = 0; i < this.count; i++) yield { dmaAddress: this.dmaAddr[i]!, dmaLength: this.dmaLen[i]! };
  }

  /** How the leak report and DMA-API warnings name this mapping. */
  describe(): string {
    const owner = this.owner === undefined ? '' : ` (owner ${this.owner})`;
    return `mapping #${this.id}${owner} on ${this.device.name}: ${this.nents} entries, ${this.count} segments, ${this.length} bytes, ${this.dir}`;
  }

  /**
   * @internal For the direct DMA engine: the end of the run of this mapping's segments that
   * covers bus address `a` (> a), or a value ≤ a when none covers it.
   */
  coveredUntil(a: number): number {
    if (!this.live) return -1;
    if (this.byStart === null) this.buildIndex();
    const starts = this.byStart!;
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      if (starts[m]! <= a) lo = m + 1;
      else hi = m;
    }
    return lo === 0 ? -1 : this.maxEnd![lo - 1]!;
  }

  // Segments sorted by start, with the running maximum of their ends: the one reaching furthest
  // among those starting at or before an address covers it if anything does.
  private buildIndex(): void {
    const n = this.count;
    const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => this.dmaAddr[x]! - this.dmaAddr[y]!);
    const starts = new Float64Array(n);
    const maxEnd = new Float64Array(n);
    let reach = -1;
    for (let k = 0; k < n; k++) {
      const i = order[k]!;
      starts[k] = this.dmaAddr[i]!;
      reach = Math.max(reach, this.dmaAddr[i]! + this.dmaLen[i]!);
      maxEnd[k] = reach;
    }
    this.byStart = starts;
    this.maxEnd = maxEnd;
  }
}

/**
 * Maps `count` physical ranges (`phys[i]`, `lens[i]`) for `device` in direction `dir`
 * (`dma_map_sg_attrs`). Direct devices get one segment per entry, bouncing through swiotlb
 * any entry whose last byte lies above the DMA mask; IOMMU devices get one IOVA range and the
 * entries merged as `__finalise_sg` merges them. DMA-API debug records entries longer than
 * the device's `maxSegmentSize` and segments crossing its boundary as warnings, and maps them.
 *
 * Cost: O(count) plus, behind an IOMMU, one page-table write per granule. Release with
 * `dmaUnmapSegments`. Throws EINVAL (bad list or direction), EIO (a direct entry that cannot
 * be bounced), ENOMEM (IOVA space exhausted), ENODEV (device torn down); nothing stays
 * allocated then.
 */
export function dmaMapSegments(
  device: Device, phys: Float64Array, lens: Float64Array, count: number, dir: DmaDirection, opts?: DmaMapOptions,
): DmaMapping {
  checkDevice(device);
  checkDirection('dir', dir);
  const o = checkOptions('dmaMapSegments options', opts);
  if (o.owner !== undefined && typeof o.owner !== 'string') fail('EINVAL', `owner must be a string, got ${String(o.owner)}`);
  if (!(phys instanceof Float64Array)) fail('EINVAL', 'phys must be a Float64Array of physical addresses');
  if (!(lens instanceof Float64Array)) fail('EINVAL', 'lens must be a Float64Array of lengths');
  checkInt('count', count, 0, Math.min(phys.length, lens.length));
  if (count === 0) fail('EINVAL', 'count = 0: an empty list cannot be mapped');
  const ramEnd = device.memory.bytes;
  for (let i = 0; i < count; i++) {
    const p = phys[i]!;
    const l = lens[i]!;
    if (!Number.isInteger(p) || p < 0 || p >= ramEnd) fail('EINVAL', `phys[${i}] = ${p} is not a physical address in RAM [0, ${ramEnd})`);
    if (!Number.isInteger(l) || l < 1 || l > UINT_MAX) fail('EINVAL', `lens[${i}] = ${l} is outside [1, ${UINT_MAX}] (a scatterlist length is an unsigned int)`);
    if (p + l > ramEnd) fail('EINVAL', `entry ${i} [${hex(p)}, ${hex(p + l)}) runs past the end of RAM (${ramEnd} bytes)`);
  }
  const m = new DmaMapping(device, dir, phys.slice(0, count), lens.slice(0, count), new Float64Array(count), new Float64Array(count), o.owner);
  const iommu = device.iommu;
  if (iommu === null) {
    const failure = directMapSg(device, m.phys, m.lens, count, m.dmaAddr, m.slots!);
    if (failure !== null) fail('EIO', `${device.name}: entry ${failure.entry} (${hex(m.phys[failure.entry]!)}, ${m.lens[failure.entry]} bytes) cannot be mapped: ${failure.reason}`);
    m.dmaLen.set(m.lens);
    m.count = count;
    m.bounceSlotBytes = bounceSlotBytes(m.slots!, m.lens, count);
    for (let i = 0; i < count; i++) if (m.slots![i]! >= 0) m.bounceBytes += m.lens[i]!;
  } else {
    const try32 = device.pci && !device.iova32Failed;
    const r = iommuMapSg(iommu, m.phys, m.lens, count, dirToProt(dir), device.dmaLimit, device.segBoundaryMask, device.maxSegmentSize, try32, m.dmaAddr, m.dmaLen);
    if (r === null) fail('ENOMEM', `${device.name}: no IOVA range left for ${count} entries below ${hex(Math.min(device.dmaLimit, iommu.apertureEnd))}`);
    if (try32 && r.iovaPfn * iommu.granule + r.iovaPages * iommu.granule - 1 > 0xffffffff) device.iova32Failed = true;
    m.count = r.count;
    m.iovaPfn = r.iovaPfn;
    m.iovaPages = r.iovaPages;
  }
  debugMapSg(device, m);
  device.track(m);
  return m;
}

// debug_dma_map_sg() → check_sg_segment() for each of the first `count` entries: the input
// entry's length against max_seg_size, the DMA segment of the same index against the boundary.
function debugMapSg(device: Device, m: DmaMapping): void {
  const maxSeg = device.maxSegmentSize;
  const mask = device.segBoundaryMask;
  for (let i = 0; i < m.count; i++) {
    const len = m.lens[i]!;
    if (len > maxSeg) device.warn(`${m.describe()}: mapping sg segment longer than device claims to support [len=${len}] [max=${maxSeg}]`);
    const start = m.dmaAddr[i]!;
    const end = start + m.dmaLen[i]! - 1;
    if (clearMask(start, mask) !== clearMask(end, mask)) {
      device.warn(`${m.describe()}: mapping sg segment across boundary [start=${hex(start)}] [end=${hex(end)}] [boundary=${hex(mask)}]`);
    }
  }
}

// Unmap and sync still work on a torn-down device, so its driver can clean up late.
function checkDeviceAny(device: unknown): asserts device is Device {
  if (!(device instanceof Device)) fail('EINVAL', 'device must be a Device');
}

// The checks unmap and sync share (check_unmap / check_sync): the mapping must be this
// device's and still live. Reported, then refused, since there is nothing left to act on.
function checkLiveMapping(device: Device, mapping: unknown, what: string): asserts mapping is DmaMapping {
  if (!(mapping instanceof DmaMapping)) fail('EINVAL', 'mapping must be a DmaMapping from dmaMapSegments');
  if (mapping.device !== device) {
    device.warn(`device driver tries to ${what} DMA memory it has not allocated: ${mapping.describe()}`);
    fail('EINVAL', `${mapping.describe()} belongs to device ${mapping.device.name}, not ${device.name}`);
  }
  if (!mapping.live) {
    device.warn(`device driver tries to ${what} DMA memory it has not allocated (already unmapped): ${mapping.describe()}`);
    fail('EINVAL', `${mapping.describe()} is already unmapped`);
  }
}

/**
 * Unmaps `mapping` (`dma_unmap_sg_attrs`): bounce buffers are copied back for from-device and
 * bidirectional and released, IOVA and page-table entries freed. `dir` defaults to the
 * mapping's; another one is reported as a DMA-API error and then used, as the kernel does.
 * EINVAL for another device's mapping or a second unmap (reported too).
 */
export function dmaUnmapSegments(device: Device, mapping: DmaMapping, dir?: DmaDirection): void {
  checkDeviceAny(device);
  checkLiveMapping(device, mapping, 'free');
  const d = dir === undefined ? mapping.dir : checkDirection('dir', dir);
  if (d !== mapping.dir) {
    device.warn(`device driver frees DMA memory with different direction [mapped with ${mapping.dir}] [unmapped with ${d}]: ${mapping.describe()}`);
  }
  const iommu = device.iommu;
  if (iommu === null) directUnmapSg(device, mapping.slots!, mapping.lens, mapping.nents, d);
  else iommuUnmapSg(iommu, mapping.iovaPfn, mapping.iovaPages);
  mapping.live = false;
  device.untrack(mapping);
}

/**
 * Hands the memory back to the CPU between transfers (`dma_sync_sg_for_cpu`): bounce buffers
 * are copied back for from-device and bidirectional. Coherent IOMMU mappings need nothing.
 */
export function dmaSyncForCpu(device: Device, mapping: DmaMapping, dir?: DmaDirection): void {
  syncMapping(device, mapping, dir, true);
}

/** Hands the memory to the device (`dma_sync_sg_for_device`): bounce buffers refilled for to-device and bidirectional. */
export function dmaSyncForDevice(device: Device, mapping: DmaMapping, dir?: DmaDirection): void {
  syncMapping(device, mapping, dir, false);
}

function syncMapping(device: Device, mapping: DmaMapping, dir: DmaDirection | undefined, forCpu: boolean): void {
  checkDeviceAny(device);
  checkLiveMapping(device, mapping, 'sync');
  const d = dir === undefined ? mapping.dir : checkDirection('dir', dir);
  // check_sync(): nothing to say for a bidirectional mapping
  if (mapping.dir !== 'bidirectional') {
    if (d !== mapping.dir) device.warn(`device driver syncs DMA memory with different direction [mapped with ${mapping.dir}] [synced with ${d}]: ${mapping.describe()}`);
    if (forCpu && mapping.dir !== 'from-device' && d !== 'to-device') device.warn(`device driver syncs device read-only DMA memory for cpu [mapped with ${mapping.dir}] [synced with ${d}]: ${mapping.describe()}`);
    if (!forCpu && mapping.dir !== 'to-device' && d !== 'from-device') device.warn(`device driver syncs device write-only DMA memory to device [mapped with ${mapping.dir}] [synced with ${d}]: ${mapping.describe()}`);
  }
  if (device.iommu === null) directSyncSg(device, mapping.slots!, mapping.lens, mapping.nents, d, forCpu);
}
