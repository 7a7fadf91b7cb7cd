// An IOMMU domain: the IOVA allocator of drivers/iommu/iova.c, an I/O page table from IOVA
// granules to physical granules with read/write permission, and the scatterlist mapping of
// drivers/iommu/dma-iommu.c (iommu_dma_map_sg, __finalise_sg, iommu_dma_unmap_sg).

import { PAGE_SIZE } from '../constants.js';
import { checkInt, checkOptions, fail } from '../errors.js';
import type { PhysicalMemory } from '../mm/memory.js';
import { IovaDomain } from './iova.js';
import { andMask } from './mask.js';
import { deviceMayRead, deviceMayWrite, type DmaDirection } from './types.js';

/** Options of `new Iommu`. */
export interface IommuOptions {
  /**
   * IOVA page size in bytes (default 4096). Only 4096 is accepted: `init_iova_domain` refuses a
   * granule above PAGE_SIZE (BUG_ON), and no IOMMU maps less than 4 KiB.
   */
  granule?: number;
  /** Width of the IOVA space, 32..53 bits (default 48: the aperture a 4-level table covers). */
  iovaBits?: number;
}

/** Permission bits of an I/O page-table entry (IOMMU_READ, IOMMU_WRITE). */
export const IOMMU_READ = 1;
export const IOMMU_WRITE = 2;

const LEAF_SHIFT = 9; // entries per leaf table: 512, as one level of a 4 KiB page table
const LEAF_ENTRIES = 1 << LEAF_SHIFT;
const LEAF_COUNT = LEAF_ENTRIES; // slot holding the leaf's count of live entries

/** `dma_info_to_prot`: what a mapping made for `dir` lets the device do. */
export function dirToProt(dir: DmaDirection): number {
  return (deviceMayRead(dir) ? IOMMU_READ : 0) | (deviceMayWrite(dir) ? IOMMU_WRITE : 0);
}

/**
 * One IOMMU translation domain (`struct iommu_domain` with its DMA cookie). Devices given the
 * same `Iommu` share its IOVA space and page table, as devices of one group do.
 *
 * Page-table entries live in leaf Uint32Arrays of 512, created on first use:
 * entry = (physical granule + 1) × 4 | IOMMU_READ | IOMMU_WRITE, 0 when unmapped.
 */
export class Iommu {
  readonly granule: number;
  readonly granuleShift: number;
  readonly iovaBits: number;
  /** Last IOVA the domain can translate (`geometry.aperture_end`). */
  readonly apertureEnd: number;
  readonly iovad: IovaDomain;
  /** Granules mapped in the page table. */
  mappedGranules = 0;
  private memoryRef: PhysicalMemory | undefined;
  private readonly leaves = new Map<number, Uint32Array>();

  constructor(opts?: IommuOptions) {
    const o = checkOptions('Iommu options', opts);
    const granule = o.granule === undefined ? PAGE_SIZE : checkInt('granule', o.granule, 1, 2 ** 21);
    if (granule !== PAGE_SIZE) fail('EINVAL', `granule = ${granule}: the IOVA granule must be PAGE_SIZE (${PAGE_SIZE}); init_iova_domain refuses more and IOMMUs map no less`);
    this.granule = granule;
    this.granuleShift = Math.log2(granule);
    this.iovaBits = o.iovaBits === undefined ? 48 : checkInt('iovaBits', o.iovaBits, 32, 53);
    this.apertureEnd = 2 ** this.iovaBits - 1;
    this.iovad = new IovaDomain(this.granuleShift);
  }

  /** The memory this domain translates into, fixed by the first device attached. */
  get memory(): PhysicalMemory | undefined {
    return this.memoryRef;
  }

  /** @internal Binds the domain to a memory; EINVAL for a second one. */
  attach(memory: PhysicalMemory): void {
    if (this.memoryRef === undefined) this.memoryRef = memory;
    else if (this.memoryRef !== memory) fail('EINVAL', 'an Iommu translates into one PhysicalMemory; this one is bound to another');
  }

  /** The entry for IOVA granule `g`: 0 when unmapped. */
  entry(g: number): number {
    const leaf = this.leaves.get(Math.floor(g / LEAF_ENTRIES));
    return leaf === undefined ? 0 : leaf[g % LEAF_ENTRIES]!;
  }

  /**
   * Translates `iova` for an access that reads (`write` false) or writes memory: the physical
   * address, or -1 when the granule is unmapped or lacks the permission.
   */
  translate(iova: number, write: boolean): number {
    const g = Math.floor(iova / this.granule);
    const e = this.entry(g);
    if (e === 0 || (e & (write ? IOMMU_WRITE : IOMMU_READ)) === 0) return -1;
    return (Math.floor(e / 4) - 1) * this.granule + (iova - g * this.granule);
  }

  /** Maps `nr` granules from IOVA granule `g` to physical granule `pg` onward (`iommu_map`). */
  mapGranules(g: number, pg: number, nr: number, prot: number): void {
    let i = 0;
    while (i < nr) {
      // one leaf table at a time: the Map is consulted once per 512 granules
      const gi = g + i;
      const key = Math.floor(gi / LEAF_ENTRIES);
      let leaf = this.leaves.get(key);
      if (leaf === undefined) this.leaves.set(key, (leaf = new Uint32Array(LEAF_ENTRIES + 1)));
      const end = Math.min(nr, i + (key + 1) * LEAF_ENTRIES - gi);
      let added = 0;
      for (let slot = gi - key * LEAF_ENTRIES; i < end; i++, slot++) {
        if (leaf[slot] === 0) added++;
        leaf[slot] = (pg + i + 1) * 4 + prot;
      }
      leaf[LEAF_COUNT] = leaf[LEAF_COUNT]! + added;
      this.mappedGranules += added;
    }
  }

  /** Clears `nr` granules from IOVA granule `g` (`iommu_unmap`); leaves that empty are freed. */
  unmapGranules(g: number, nr: number): void {
    let i = 0;
    while (i < nr) {
      const gi = g + i;
      const key = Math.floor(gi / LEAF_ENTRIES);
      const leaf = this.leaves.get(key);
      const end = Math.min(nr, i + (key + 1) * LEAF_ENTRIES - gi);
      if (leaf !== undefined) {
        for (let s = gi - key * LEAF_ENTRIES; i < end; i++, s++) {
          if (leaf[s] !== 0) {
            leaf[s] = 0;
            leaf[LEAF_COUNT]!--;
            this.mappedGranules--;
          }
        }
        if (leaf[LEAF_COUNT] === 0) this.leaves.delete(key);
      } else {
        i = end;
      }
    }
  }
}

/** What `iommuMapSg` did: output segments in the first `count` slots and the IOVA range, or why it failed. */
export interface IommuSgResult {
  /** ENOMEM: no IOVA range; EINVAL: an entry's widened length reaches 2^32 (`iommu_map_sg` maps short). */
  error: 'ENOMEM' | 'EINVAL' | undefined;
  /** The entry that overflowed (EINVAL). */
  entry: number;
  count: number;
  /** First IOVA page of the range, and its size in IOVA pages as allocated. */
  iovaPfn: number;
  iovaPages: number;
  /** A PCI device's attempt below 4 GiB failed (the caller drops `pci_32bit_workaround`). */
  failed32: boolean;
}

const TWO_32 = 2 ** 32;

/**
 * `iommu_dma_map_sg` + `__finalise_sg` over `count` entries (physical address, length): each
 * entry widened to whole granules, padding added to the previous entry when one would cross
 * the segment boundary, one IOVA range for the list, every entry's widened (and padded) length
 * mapped from its first granule as `iommu_map_sg` maps it, then entries merged into DMA
 * segments written to `outAddr`/`outLen`. On failure nothing is left allocated.
 */
export function iommuMapSg(
  iommu: Iommu, phys: Float64Array, lens: Float64Array, count: number, prot: number,
  dmaLimit: number, boundaryMask: number, maxSegmentSize: number, try32First: boolean,
  outAddr: Float64Array, outLen: Float64Array,
): IommuSgResult {
  const granule = iommu.granule;
  const noBoundary = boundaryMask >= Number.MAX_SAFE_INTEGER;
  const result: IommuSgResult = { error: undefined, entry: -1, count: 0, iovaPfn: 0, iovaPages: 0, failed32: false };
  // per entry: offset into its first granule and its granule-aligned IOVA length (with padding)
  const iovaOff = new Float64Array(count);
  const iovaLen = new Float64Array(count);
  let total = 0;
  for (let i = 0; i < count; i++) {
    const off = andMask(phys[i]!, granule - 1);
    const sLen = Math.ceil((lens[i]! + off) / granule) * granule;
    // the padding that keeps this entry from straddling a boundary goes onto the previous one;
    // correct only because the whole range is aligned to its own size, as alloc_iova makes it
    // (with no boundary the pad is 2^53 - total, never below the entry's length)
    const pad = noBoundary ? 0 : andMask(boundaryMask + 1 - andMask(total, boundaryMask), boundaryMask);
    if (pad !== 0 && pad < sLen - 1) {
      iovaLen[i - 1] = iovaLen[i - 1]! + pad;
      total += pad;
      if (iovaLen[i - 1]! >= TWO_32) return { ...result, error: 'EINVAL', entry: i - 1 };
    }
    // s->length is an unsigned int: a widened length of 2^32 or more is truncated, and the
    // short iommu_map_sg() that follows fails the call with -EINVAL
    if (sLen >= TWO_32) return { ...result, error: 'EINVAL', entry: i };
    iovaOff[i] = off;
    iovaLen[i] = sLen;
    total += sLen;
  }
  // iommu_dma_alloc_iova(): sizes under 32 pages rounded up to a power of two (alloc_iova_fast)
  let pages = total / granule;
  if (pages < 32) {
    let p = 1;
    while (p < pages) p *= 2;
    pages = p;
  }
  const limit = Math.min(dmaLimit, iommu.apertureEnd);
  let iovaPfn = 0;
  if (try32First && limit > 0xffffffff) {
    iovaPfn = iommu.iovad.alloc(pages, Math.floor(0xffffffff / granule));
    result.failed32 = iovaPfn === 0;
  }
  if (iovaPfn === 0) iovaPfn = iommu.iovad.alloc(pages, Math.floor(limit / granule));
  if (iovaPfn === 0) return { ...result, error: 'ENOMEM' };
  // iommu_map_sg(): each entry's whole IOVA length (padding included) from its first granule;
  // granules past the end of RAM are left out, having no bytes to move
  const ramGranules = Math.floor((iommu.memory?.bytes ?? 0) / granule);
  let g = iovaPfn;
  for (let i = 0; i < count; i++) {
    const first = Math.floor(phys[i]! / granule);
    const nr = Math.min(iovaLen[i]! / granule, ramGranules - first);
    iommu.mapGranules(g, first, nr, prot);
    g += iovaLen[i]! / granule;
  }
  // __finalise_sg(): lengths are unsigned int, so maxLen - curLen is compared modulo 2^32
  let dmaAddr = iovaPfn * granule;
  let cur = -1;
  let curLen = 0;
  for (let i = 0; i < count; i++) {
    const off = iovaOff[i]!;
    const sLen = lens[i]!;
    // (dma_addr & seg_mask) is never 0 without a boundary: IOVA 0 is never handed out
    if (curLen !== 0 && off === 0 && (noBoundary || andMask(dmaAddr, boundaryMask) !== 0) && ((maxSegmentSize - curLen) >>> 0) >= sLen) {
      curLen = (curLen + sLen) >>> 0;
    } else {
      cur++;
      curLen = sLen;
      outAddr[cur] = dmaAddr + off;
    }
    outLen[cur] = curLen;
    dmaAddr += iovaLen[i]!;
    // an entry that ends short of its granule closes the segment
    if (sLen + off < iovaLen[i]!) curLen = 0;
  }
  return { ...result, count: cur + 1, iovaPfn, iovaPages: pages };
}

/** `iommu_dma_unmap_sg`: clears the page table over the range and frees the IOVA. */
export function iommuUnmapSg(iommu: Iommu, iovaPfn: number, iovaPages: number): void {
  iommu.unmapGranules(iovaPfn, iovaPages);
  iommu.iovad.free(iovaPfn);
}
