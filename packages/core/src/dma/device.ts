// A device that does DMA: the limits a driver declares (dma_set_mask, dma_set_max_seg_size,
// dma_set_seg_boundary), how it reaches memory (directly or through an IOMMU), the warnings
// DMA-API debugging records against it, and a DMA engine that moves real bytes.

import { checkBool, checkInt, checkOptions, fail, hex } from '../errors.js';
import { checkMemory, type PhysicalMemory } from '../mm/memory.js';
import type { LeakEntry } from '../mm/leak.js';
import { Iommu } from './iommu.js';
import { isLowMask } from './mask.js';
import { IO_TLB_SEGSIZE, IO_TLB_SIZE, swiotlbPoolState } from './swiotlb.js';
import { deviceMayRead, deviceMayWrite } from './types.js';
import type { DmaMapping } from './mapping.js';

/** Options of `new Device`; every one may be left out. */
export interface DeviceOptions {
  /** Named in warnings, faults and the leak report (default `dev0`, `dev1`, ...). */
  name?: string;
  /** Address bits the device can drive, 12..64 (`dma_set_mask`; default 64). */
  dmaMaskBits?: number;
  /** Longest DMA segment, 4096..2^32 - 1 (`dma_set_max_seg_size`; default 65536). */
  maxSegmentSize?: number;
  /** A segment may not cross a multiple of mask + 1: 2^k - 1, 12 ≤ k ≤ 53 (default: none). */
  segBoundaryMask?: number;
  /** Segments per request, for the block layer (`max_segments`; default 128, BLK_MAX_SEGMENTS). */
  maxSegments?: number;
  /** `'direct'` (default) or the IOMMU domain the device sits behind. */
  iommu?: 'direct' | Iommu;
  /**
   * Bounce every direct mapping through swiotlb, as `swiotlb=force` or a confidential-computing
   * guest makes the kernel do (`is_swiotlb_force_bounce`); direct devices only (default false).
   */
  forceBounce?: boolean;
  /** A PCI device: IOVAs are tried below 4 GiB first, as dma-iommu does for PCI (default false). */
  pci?: boolean;
}

/** The no-boundary mask (the kernel's ULONG_MAX), as far as a JavaScript number reaches. */
export const NO_SEG_BOUNDARY = Number.MAX_SAFE_INTEGER;

/** Reports a device keeps (`warnings`); later ones are only counted (`errorCount`). */
export const MAX_WARNINGS = 256;

let nextDeviceId = 0;

// Live mappings of every device on one memory, for the leak report.
const liveByMemory = new WeakMap<PhysicalMemory, Set<DmaMapping>>();

/**
 * A DMA-capable device on one `PhysicalMemory`. Construction allocates nothing: the swiotlb
 * pool belongs to the memory and is allocated on first bounce.
 */
export class Device {
  readonly memory: PhysicalMemory;
  readonly name: string;
  readonly dmaMaskBits: number;
  /** Highest bus address the device can drive: 2^dmaMaskBits - 1 (inexact above 2^53, harmlessly). */
  readonly dmaLimit: number;
  readonly maxSegmentSize: number;
  readonly segBoundaryMask: number;
  readonly maxSegments: number;
  /** The IOMMU domain, or null for direct mapping. */
  readonly iommu: Iommu | null;
  readonly pci: boolean;
  readonly forceBounce: boolean;
  /**
   * DMA-API debug reports against this device, each naming the mapping (kernel/dma/debug.c),
   * and swiotlb's warnings; the first `MAX_WARNINGS` are kept, `errorCount` counts them all.
   */
  readonly warnings: string[] = [];
  /** Reports made, kept or not (dma-debug's `error_count`). */
  errorCount = 0;
  readonly #live = new Set<DmaMapping>();
  /** True after `teardown`. */
  removed = false;
  /** Set once a 32-bit IOVA attempt fails (`pci_32bit_workaround` dropped for good). */
  iova32Failed = false;

  constructor(memory: PhysicalMemory, opts?: DeviceOptions) {
    checkMemory(memory);
    const o = checkOptions('Device options', opts);
    this.memory = memory;
    if (o.name !== undefined && (typeof o.name !== 'string' || o.name.length === 0)) fail('EINVAL', `name must be a non-empty string, got ${String(o.name)}`);
    this.name = o.name ?? `dev${nextDeviceId++}`;
    this.dmaMaskBits = o.dmaMaskBits === undefined ? 64 : checkInt('dmaMaskBits', o.dmaMaskBits, 12, 64);
    this.dmaLimit = 2 ** this.dmaMaskBits - 1;
    this.maxSegmentSize = o.maxSegmentSize === undefined ? 65536 : checkInt('maxSegmentSize', o.maxSegmentSize, 4096, 0xffffffff);
    if (o.segBoundaryMask === undefined) this.segBoundaryMask = NO_SEG_BOUNDARY;
    else if (isLowMask(o.segBoundaryMask, 12)) this.segBoundaryMask = o.segBoundaryMask;
    else fail('EINVAL', `segBoundaryMask = ${String(o.segBoundaryMask)} is not 2^k - 1 with 12 ≤ k ≤ 53`);
    this.maxSegments = o.maxSegments === undefined ? 128 : checkInt('maxSegments', o.maxSegments, 1, 0xffff);
    this.pci = o.pci === undefined ? false : checkBool('pci', o.pci);
    this.forceBounce = o.forceBounce === undefined ? false : checkBool('forceBounce', o.forceBounce);
    if (o.iommu === undefined || o.iommu === 'direct') this.iommu = null;
    else if (o.iommu instanceof Iommu) {
      o.iommu.attach(memory);
      this.iommu = o.iommu;
    } else fail('EINVAL', `iommu must be 'direct' or an Iommu, got ${String(o.iommu)}`);
    if (this.forceBounce && this.iommu !== null) fail('EINVAL', 'forceBounce applies to direct devices only');
    let live = liveByMemory.get(memory);
    if (live === undefined) {
      const set = (live = new Set());
      liveByMemory.set(memory, set);
      memory.leakSources.push(() => [...set].map(mappingLeak));
    }
  }

  /**
   * The longest single mapping the device can take (`dma_max_mapping_size`): 256 KiB when its
   * direct mappings may bounce (forced, or a mask short of the memory's end), else unlimited.
   */
  maxMappingSize(): number {
    // is_swiotlb_active(): a pool exists, or may still be placed on first use
    const poolUsable = swiotlbPoolState(this.memory) !== null;
    if (this.iommu === null && poolUsable && (this.forceBounce || this.dmaLimit < this.memory.bytes - 1)) return IO_TLB_SEGSIZE * IO_TLB_SIZE;
    return Infinity;
  }

  /** Mappings made and not yet unmapped. */
  get liveCount(): number {
    return this.#live.size;
  }

  /** The mappings made and not yet unmapped, oldest first (a copy). */
  liveMappings(): DmaMapping[] {
    return [...this.#live];
  }

  /**
   * @internal Records a report (`err_printk` for 'DMA-API', `dev_warn` for 'swiotlb'): every one
   * is counted, the first MAX_WARNINGS kept, as dma-debug prints only the first few.
   */
  warn(message: string, source: 'DMA-API' | 'swiotlb' = 'DMA-API'): void {
    this.errorCount++;
    if (this.warnings.length < MAX_WARNINGS) this.warnings.push(`${this.name}: ${source}: ${message}`);
  }

  /** @internal Tracks a new mapping as live. */
  track(m: DmaMapping): void {
    this.#live.add(m);
    liveByMemory.get(this.memory)!.add(m);
  }

  /** @internal Forgets an unmapped mapping. */
  untrack(m: DmaMapping): void {
    this.#live.delete(m);
    liveByMemory.get(this.memory)!.delete(m);
  }

  /**
   * The driver lets go of the device (`BUS_NOTIFY_UNBOUND_DRIVER`): each mapping still live is
   * reported as pending, as dma-debug reports it, and stays in the leak report. Later mapping
   * calls fail with ENODEV. Returns the leak entries of those mappings.
   */
  teardown(): LeakEntry[] {
    const pending = [...this.#live];
    // device_dma_allocations() counts dma-debug entries: one per DMA segment
    const entries = pending.reduce((t, m) => t + m.count, 0);
    if (pending.length > 0) this.warn(`device driver has pending DMA allocations while released from device [count=${entries}]`);
    for (const m of pending) this.warn(`${m.describe()} still mapped at teardown`);
    this.removed = true;
    return pending.map(mappingLeak);
  }

  /**
   * The device reads `length` bytes at bus address `dmaAddr` through its translation.
   * EFAULT ("IOMMU fault" / "DMA fault") when any byte is unmapped or mapped only for the
   * device to write; nothing is read then.
   */
  dmaRead(dmaAddr: number, length: number): Uint8Array {
    checkInt('dmaAddr', dmaAddr);
    checkInt('length', length, 0, this.memory.bytes);
    const out = new Uint8Array(length);
    this.transfer(dmaAddr, out, 0, length, false);
    return out;
  }

  /**
   * As `dmaRead`, into `out` at `at` (no allocation: a driver's receive ring, a frame being
   * assembled). EINVAL when `length` bytes at `at` do not fit in `out`; EFAULT as `dmaRead`.
   */
  dmaReadInto(dmaAddr: number, out: Uint8Array, at: number, length: number): void {
    checkInt('dmaAddr', dmaAddr);
    if (!(out instanceof Uint8Array)) fail('EINVAL', 'out must be a Uint8Array');
    checkInt('at', at, 0, out.length);
    checkInt('length', length, 0, out.length - at);
    this.transfer(dmaAddr, out, at, length, false);
  }

  /**
   * The device writes `bytes` at bus address `dmaAddr` through its translation. EFAULT when
   * any byte is unmapped or mapped only for the device to read; nothing is written then.
   */
  dmaWrite(dmaAddr: number, bytes: Uint8Array): void {
    checkInt('dmaAddr', dmaAddr);
    if (!(bytes instanceof Uint8Array)) fail('EINVAL', 'bytes must be a Uint8Array');
    this.transfer(dmaAddr, bytes, 0, bytes.length, true);
  }

  // Checks the whole access first, so a faulting transfer moves nothing, then copies piecewise.
  private transfer(dmaAddr: number, buf: Uint8Array, at: number, len: number, write: boolean): void {
    if (len === 0) return;
    const iommu = this.iommu;
    if (iommu !== null) {
      const g = iommu.granule;
      for (let a = dmaAddr; a < dmaAddr + len; a = (Math.floor(a / g) + 1) * g) {
        if (iommu.translate(a, write) < 0) this.fault('IOMMU fault', a, write, iommu.translate(a, !write) >= 0);
      }
      let done = 0;
      while (done < len) {
        const a = dmaAddr + done;
        const n = Math.min(len - done, (Math.floor(a / g) + 1) * g - a);
        const phys = iommu.translate(a, write);
        if (write) this.memory.copyToPhys(phys, buf, at + done, n);
        else this.memory.copyFromPhys(phys, buf, at + done, n);
        done += n;
      }
      return;
    }
    // direct: bus address = physical address, valid only inside a live mapping of this device
    for (let a = dmaAddr; a < dmaAddr + len; ) {
      let reach = -1;
      let otherDir = false;
      for (const m of this.#live) {
        const end = m.coveredUntil(a);
        if (end <= a) continue;
        if (write ? deviceMayWrite(m.dir) : deviceMayRead(m.dir)) reach = Math.max(reach, end);
        else otherDir = true;
      }
      if (reach < 0) this.fault('DMA fault', a, write, otherDir);
      a = reach;
    }
    if (dmaAddr + len > this.memory.bytes) this.fault('DMA fault', this.memory.bytes, write, false);
    if (write) this.memory.copyToPhys(dmaAddr, buf, at, len);
    else this.memory.copyFromPhys(dmaAddr, buf, at, len);
  }

  private fault(kind: string, addr: number, write: boolean, otherDir: boolean): never {
    const what = otherDir ? `is mapped only for the device to ${write ? 'read' : 'write'}` : 'is not mapped';
    fail('EFAULT', `${kind}: device ${this.name} ${write ? 'write to' : 'read from'} ${hex(addr)}: the address ${what}`);
  }
}

/** Checks that `device` is a Device still bound to its driver; EINVAL / ENODEV otherwise. */
export function checkDevice(device: unknown): asserts device is Device {
  if (!(device instanceof Device)) fail('EINVAL', 'device must be a Device');
  if (device.removed) fail('ENODEV', `device ${device.name} has been torn down`);
}

function mappingLeak(m: DmaMapping): LeakEntry {
  return { kind: 'dma-mapping', count: m.count, owner: m.owner ?? m.device.name, detail: `${m.describe()} still mapped` };
}
