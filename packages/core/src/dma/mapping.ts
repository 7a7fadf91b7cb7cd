// The backend-neutral mapping layer (include/linux/dma-mapping.h): a list of physical ranges in
// typed arrays mapped for one device, directly or through its IOMMU, with DMA-API debug checks
// (kernel/dma/debug.c) at map, unmap and sync.

import { checkBool, checkInt, checkOptions, fail, hex } from '../errors.js';
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
  /**
   * DMA_ATTR_REQUIRE_COHERENT (as ib_umem_get maps): a direct entry that would have to bounce
   * through swiotlb fails the mapping (EIO) instead. Default false.
   */
  requireCoherent?: boolean;
}

// What a mapping holds, reachable only from this module (through `stateOf`), so that no caller
// can edit the segments a device is allowed to reach or the slots unmap will release.
interface MappingState {
  phys: Float64Array;
  lens: Float64Array;
  dmaAddr: Float64Array;
  dmaLen: Float64Array;
  /** First swiotlb slot of each entry, -1 when not bounced (direct mappings only). */
  slots: Int32Array | null;
  count: number;
  length: number;
  iovaPfn: number;
  iovaPages: number;
  bounceBytes: number;
  bounceSlotBytes: number;
  live: boolean;
  // sorted view of the segments for the direct DMA engine, built on first device access
  byStart: Float64Array | null;
  maxEnd: Float64Array | null;
}

let stateOf: (m: DmaMapping) => MappingState;

/**
 * A live (or unmapped) DMA mapping of a list of physical ranges for one device. Read its DMA
 * segments with `segments()` (objects) or `dmaAddress(i)`/`dmaLength(i)` (hot paths); nothing
 * about it can be changed from outside, so the device reaches exactly what was mapped.
 */
export class DmaMapping {
  readonly id = nextMappingId++;
  /** Entries mapped (the list given to `dmaMapSegments`). */
  readonly nents: number;
  #s: MappingState;

  static {
    stateOf = (m) => m.#s;
  }

  constructor(
    readonly device: Device,
    readonly dir: DmaDirection,
    phys: Float64Array,
    lens: Float64Array,
    readonly owner: string | undefined,
  ) {
    const n = phys.length;
    let length = 0;
    for (let i = 0; i < n; i++) length += lens[i]!;
    this.nents = n;
    this.#s = {
      phys, lens, dmaAddr: new Float64Array(n), dmaLen: new Float64Array(n), slots: device.iommu === null ? new Int32Array(n) : null,
      count: 0, length, iovaPfn: 0, iovaPages: 0, bounceBytes: 0, bounceSlotBytes: 0, live: true, byStart: null, maxEnd: null,
    };
  }

  /** DMA segments the device sees. */
  get count(): number {
    return this.#s.count;
  }

  /** The same, as the descriptor interface names it. */
  get nrSegments(): number {
    return this.#s.count;
  }

  /** Bytes mapped. */
  get length(): number {
    return this.#s.length;
  }

  /** False once unmapped. */
  get live(): boolean {
    return this.#s.live;
  }

  /** IOVA pages the mapping holds (IOMMU), as allocated: sizes under 32 pages rounded up to a power of two. */
  get iovaPages(): number {
    return this.#s.iovaPages;
  }

  /** First IOVA page of the mapping's range (IOMMU); 0 for direct mappings. */
  get iovaPfn(): number {
    return this.#s.iovaPfn;
  }

  /** Bytes bounced through swiotlb (direct entries the device cannot reach, or all with forceBounce). */
  get bounceBytes(): number {
    return this.#s.bounceBytes;
  }

  /** Bytes of swiotlb slots held (2 KiB each). */
  get bounceSlotBytes(): number {
    return this.#s.bounceSlotBytes;
  }

  /** DMA address of segment `i` (0 ≤ i < count; not checked, for hot loops). */
  dmaAddress(i: number): number {
    return this.#s.dmaAddr[i]!;
  }

  /** DMA length of segment `i` (0 ≤ i < count; not checked, for hot loops). */
  dmaLength(i: number): number {
    return this.#s.dmaLen[i]!;
  }

  /**
   * Physical address of input entry `i` (0 ≤ i < nents; not checked), as given to
   * `dmaMapSegments`: read-only, so a caller can relate a DMA segment to the memory behind it.
   */
  entryPhys(i: number): number {
    return this.#s.phys[i]!;
  }

  /** The DMA segments in order, a fresh `{ dmaAddress, dmaLength }` each. */
  *segments(): Generator<DmaSegment> {
    const s = this.#s;
    for (let i = 0; i < s.count; i++) yield { dmaAddress: s.dmaAddr[i]!, dmaLength: s.dmaLen[i]! };
  }

  /** How the leak report and DMA-API warnings name this mapping. */
  describe(): string {
    const owner = this.owner === undefined ? '' : ` (owner ${this.owner})`;
    return `mapping #${this.id}${owner} on ${this.device.name}: ${this.nents} entries, ${this.#s.count} segments, ${this.#s.length} bytes, ${this.dir}`;
  }

  /**
   * @internal For the direct DMA engine: the end of the run of this mapping's segments that
   * covers bus address `a` (> a), or a value ≤ a when none covers it.
   */
  coveredUntil(a: number): number {
    const s = this.#s;
    if (!s.live) return -1;
    if (s.byStart === null) buildIndex(s);
    const starts = s.byStart!;
    let lo = 0;
    let hi = s.count;
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      if (starts[m]! <= a) lo = m + 1;
      else hi = m;
    }
    return lo === 0 ? -1 : s.maxEnd![lo - 1]!;
  }
}

// Segments sorted by start, with the running maximum of their ends: the one reaching furthest
// among those starting at or before an address covers it if anything does.
function buildIndex(s: MappingState): void {
  const n = s.count;
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => s.dmaAddr[x]! - s.dmaAddr[y]!);
  const starts = new Float64Array(n);
  const maxEnd = new Float64Array(n);
  let reach = -1;
  for (let k = 0; k < n; k++) {
    const i = order[k]!;
    starts[k] = s.dmaAddr[i]!;
    reach = Math.max(reach, s.dmaAddr[i]! + s.dmaLen[i]!);
    maxEnd[k] = reach;
  }
  s.byStart = starts;
  s.maxEnd = maxEnd;
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
  const requireCoherent = o.requireCoherent === undefined ? false : checkBool('requireCoherent', o.requireCoherent);
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
  const m = new DmaMapping(device, dir, phys.slice(0, count), lens.slice(0, count), o.owner);
  const st = stateOf(m);
  const iommu = device.iommu;
  if (iommu === null) {
    const failure = directMapSg(device, st.phys, st.lens, count, st.dmaAddr, st.slots!, requireCoherent);
    if (failure !== null) fail('EIO', `${device.name}: entry ${failure.entry} (${hex(st.phys[failure.entry]!)}, ${st.lens[failure.entry]} bytes) cannot be mapped: ${failure.reason}`);
    st.dmaLen.set(st.lens);
    st.count = count;
    st.bounceSlotBytes = bounceSlotBytes(st.slots!, st.lens, count);
    for (let i = 0; i < count; i++) if (st.slots![i]! >= 0) st.bounceBytes += st.lens[i]!;
  } else {
    const try32 = device.pci && !device.iova32Failed;
    const r = iommuMapSg(iommu, st.phys, st.lens, count, dirToProt(dir), device.dmaLimit, device.segBoundaryMask, device.maxSegmentSize, try32, st.dmaAddr, st.dmaLen);
    // dev->iommu->pci_32bit_workaround is dropped for good once a 32-bit attempt fails
    if (r.failed32) device.iova32Failed = true;
    if (r.error === 'ENOMEM') fail('ENOMEM', `${device.name}: no IOVA range left for ${count} entries below ${hex(Math.min(device.dmaLimit, iommu.apertureEnd))}`);
    if (r.error === 'EINVAL') fail('EINVAL', `${device.name}: entry ${r.entry} widened to whole granules (with padding) reaches 2^32 bytes, past what a scatterlist length holds`);
    st.count = r.count;
    st.iovaPfn = r.iovaPfn;
    st.iovaPages = r.iovaPages;
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
  const st = stateOf(m);
  for (let i = 0; i < st.count; i++) {
    const len = st.lens[i]!;
    if (len > maxSeg) device.warn(`${m.describe()}: mapping sg segment longer than device claims to support [len=${len}] [max=${maxSeg}]`);
    const start = st.dmaAddr[i]!;
    const end = start + st.dmaLen[i]! - 1;
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
  const st = stateOf(mapping);
  const iommu = device.iommu;
  if (iommu === null) directUnmapSg(device, st.slots!, st.lens, mapping.nents, d);
  else iommuUnmapSg(iommu, st.iovaPfn, st.iovaPages);
  st.live = false;
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
  const st = stateOf(mapping);
  if (device.iommu === null) directSyncSg(device, st.slots!, st.lens, mapping.nents, d, forCpu);
}
