// The IOVA-linking DMA API of kernel/dma/mapping.c and drivers/iommu/dma-iommu.c
// (dma_iova_try_alloc, dma_iova_link, dma_iova_sync, dma_iova_unlink, dma_iova_destroy,
// dma_get_merge_boundary): one IOVA range allocated up front, physical ranges linked into it
// at chosen offsets, so that a whole request reaches the device as one DMA segment.

import { checkInt, fail, hex } from '../errors.js';
import type { LeakEntry } from '../mm/leak.js';
import type { PhysicalMemory } from '../mm/memory.js';
import { checkDevice, Device } from './device.js';
import { dirToProt } from './iommu.js';
import { andMask } from './mask.js';
import { checkDirection, type DmaDirection } from './types.js';

const UINT_MAX = 0xffffffff;
let nextStateId = 1;

/**
 * `struct dma_iova_state`: the IOVA range a transaction holds. `addr` is the DMA address of
 * the first byte (the first range's offset in its granule included), `size` the bytes asked for.
 */
export class DmaIovaState {
  readonly id = nextStateId++;
  /** Granules linked so far (mapped in the I/O page table). */
  linkedGranules = 0;
  /** False once destroyed. */
  live = true;
  constructor(
    readonly device: Device,
    readonly addr: number,
    readonly size: number,
    /** First IOVA page and IOVA pages held, as allocated (under 32 rounded up to a power of two). */
    readonly iovaPfn: number,
    readonly iovaPages: number,
  ) {}
}

// Live states per memory, for the leak report.
const liveByMemory = new WeakMap<PhysicalMemory, Set<DmaIovaState>>();

function liveSet(memory: PhysicalMemory): Set<DmaIovaState> {
  let set = liveByMemory.get(memory);
  if (set === undefined) {
    const s = new Set<DmaIovaState>();
    liveByMemory.set(memory, s);
    memory.leakSources.push(() => [...s].map(stateLeak));
    set = s;
  }
  return set;
}

function stateLeak(s: DmaIovaState): LeakEntry {
  return { kind: 'dma-mapping', count: s.linkedGranules, owner: undefined, detail: `IOVA state #${s.id} on ${s.device.name}: ${hex(s.addr)}, ${s.size} bytes, ${s.linkedGranules} granules linked` };
}

/**
 * `dma_get_merge_boundary`: the mask within which the device's DMA layer can merge ranges:
 * granule − 1 behind an IOMMU, 0 (cannot merge) for direct mapping.
 */
export function dmaGetMergeBoundary(device: Device): number {
  checkDevice(device);
  return device.iommu === null ? 0 : device.iommu.granule - 1;
}

/**
 * `dma_iova_try_alloc`: reserves an IOVA range for `size` bytes whose first byte is physical
 * `phys` (its offset in the granule is kept), as `iommu_dma_alloc_iova` allocates (below 4 GiB
 * first for PCI devices). null when the device has no IOMMU or no range is free (the caller
 * then maps segment by segment). Release with `dmaIovaDestroy`. EINVAL for a bad size.
 */
export function dmaIovaTryAlloc(device: Device, phys: number, size: number): DmaIovaState | null {
  checkDevice(device);
  checkInt('phys', phys, 0, device.memory.bytes - 1);
  checkInt('size', size, 1, Number.MAX_SAFE_INTEGER);
  const iommu = device.iommu;
  if (iommu === null) return null;
  const granule = iommu.granule;
  const off = andMask(phys, granule - 1);
  let pages = Math.ceil((size + off) / granule);
  if (pages < 32) {
    let p = 1;
    while (p < pages) p *= 2;
    pages = p;
  }
  const limit = Math.min(device.dmaLimit, iommu.apertureEnd);
  let pfn = 0;
  if (device.pci && !device.iova32Failed && limit > UINT_MAX) {
    pfn = iommu.iovad.alloc(pages, Math.floor(UINT_MAX / granule));
    if (pfn === 0) device.iova32Failed = true;
  }
  if (pfn === 0) pfn = iommu.iovad.alloc(pages, Math.floor(limit / granule));
  if (pfn === 0) return null;
  const state = new DmaIovaState(device, pfn * granule + off, size, pfn, pages);
  liveSet(device.memory).add(state);
  return state;
}

function checkState(device: Device, state: unknown): asserts state is DmaIovaState {
  if (!(state instanceof DmaIovaState)) fail('EINVAL', 'state must be a DmaIovaState from dmaIovaTryAlloc');
  if (state.device !== device) fail('EINVAL', `IOVA state #${state.id} belongs to ${state.device.name}, not ${device.name}`);
  if (!state.live) fail('EINVAL', `IOVA state #${state.id} has been destroyed`);
}

/**
 * `dma_iova_link`: maps `size` bytes at physical `phys` at byte `offset` of the state's range,
 * widened to whole granules, with the permissions `dir` grants the device. EIO when `phys` is
 * not granule-aligned past the first link (the kernel's WARN); EINVAL when `offset` puts the
 * link off a granule of the range (`__iommu_map`'s alignment check) or past the range.
 * Cost: one page-table write per granule.
 */
export function dmaIovaLink(device: Device, state: DmaIovaState, phys: number, offset: number, size: number, dir: DmaDirection): void {
  checkDevice(device);
  checkState(device, state);
  checkDirection('dir', dir);
  checkInt('phys', phys, 0, device.memory.bytes - 1);
  checkInt('offset', offset, 0, state.size - 1);
  checkInt('size', size, 1, state.size - offset);
  const iommu = device.iommu!;
  const granule = iommu.granule;
  const pad = andMask(phys, granule - 1);
  if (pad !== 0 && offset > 0) fail('EIO', `dma_iova_link: phys ${hex(phys)} is not granule-aligned at offset ${offset}`);
  const iova = state.addr + offset - pad;
  // __iommu_map: IS_ALIGNED(iova | paddr | size, min_pagesz) or -EINVAL
  if (andMask(iova, granule - 1) !== 0) fail('EINVAL', `dma_iova_link: offset ${offset} does not fall on a granule of the range`);
  const nr = Math.ceil((size + pad) / granule);
  iommu.mapGranules(iova / granule, (phys - pad) / granule, nr, dirToProt(dir));
  state.linkedGranules += nr;
}

/** `dma_iova_sync`: flushes the IOTLB for what was linked; coherent here, so only checked. */
export function dmaIovaSync(device: Device, state: DmaIovaState, offset: number, size: number): void {
  checkDevice(device);
  checkState(device, state);
  checkInt('offset', offset, 0, state.size);
  checkInt('size', size, 0, state.size - offset);
}

/**
 * `dma_iova_destroy`: unlinks the first `mappedLen` bytes of the range and frees the whole IOVA
 * range. EINVAL for a destroyed state or another device's.
 */
export function dmaIovaDestroy(device: Device, state: DmaIovaState, mappedLen: number, dir: DmaDirection): void {
  if (!(device instanceof Device)) fail('EINVAL', 'device must be a Device');
  checkState(device, state);
  checkDirection('dir', dir);
  checkInt('mappedLen', mappedLen, 0, state.size);
  const iommu = device.iommu!;
  const granule = iommu.granule;
  const pad = andMask(state.addr, granule - 1);
  if (mappedLen > 0) iommu.unmapGranules((state.addr - pad) / granule, Math.ceil((mappedLen + pad) / granule));
  iommu.iovad.free(state.iovaPfn);
  state.live = false;
  liveSet(device.memory).delete(state);
}
