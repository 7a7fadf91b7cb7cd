// The bio_vec backend: descriptors as chains of bios (or one flat bvec array), filled by the
// GUP that pins into bio_vecs, mapped for a device as blk_rq_map_sg and core's DMA layer map a
// request. Registered in core's registry when the package is imported.

import {
  AddressSpace, blkValidateLimits, checkInt, checkOptions, DmaMapping, dmaMapSegments, dmaUnmapSegments, Device, fail, PAGE_SIZE,
  PhysicalMemory, fragsFromSegments, registerBackend, type ToFragsOptions, type ToFragsResult, type DescriptorBackend, type DmaDirection, type FromPagesOptions, type GetUserOptions, type PutUserOptions,
  type QueueLimits,
} from '@iodesc/core';
import { Bio, bioPut } from './bio.js';
import { BIO_MAX_VECS } from './bvec.js';
import { fillBios, fillFlat } from './fill.js';
import { BvecDescriptor } from './descriptor.js';
import { bioIovIterGetPages, bioRelease } from './gup.js';
import { iovIterUbuf } from './iov-iter.js';
import { mapSgViews } from './map.js';
import { BvecRanges } from './ranges.js';

/** Options of the bvec backend's `fromPages`. */
export interface BvecFromPagesOptions extends FromPagesOptions {
  /** One flat bvec array (as io_uring's registered buffer) rather than a chain of bios. */
  flat?: boolean;
}

function validatePages(memory: PhysicalMemory, pages: Uint32Array, offset: number, length: number, opts?: BvecFromPagesOptions): { cap: number; flat: boolean; need: number } {
  if (!(memory instanceof PhysicalMemory)) fail('EINVAL', 'memory must be a PhysicalMemory');
  if (!(pages instanceof Uint32Array)) fail('EINVAL', 'pages must be a Uint32Array of PFNs');
  checkInt('offset', offset, 0, PAGE_SIZE - 1);
  checkInt('length', length, 1);
  const o = checkOptions('fromPages options', opts);
  const cap = o.maxSegmentSize === undefined ? 0xffffffff : checkInt('maxSegmentSize', o.maxSegmentSize, PAGE_SIZE, 0xffffffff);
  const flat = o.flat === undefined ? false : o.flat === true ? true : o.flat === false ? false : fail('EINVAL', `flat must be a boolean, got ${String(o.flat)}`);
  const need = Math.ceil((offset + length) / PAGE_SIZE);
  if (need > pages.length) fail('EINVAL', `offset ${offset} + length ${length} need ${need} pages, the array holds ${pages.length}`);
  const n = memory.nrPages;
  for (let i = 0; i < need; i++) if (pages[i]! >= n) fail('EINVAL', `pages[${i}] = ${pages[i]} lies beyond memory (${n} pages)`);
  return { cap, flat, need };
}

// Describes the pages in a chain of bios or one flat array (fill.ts).
function build(memory: PhysicalMemory, pages: Uint32Array, offset: number, length: number, cap: number, flat: boolean): BvecDescriptor {
  if (flat) return new BvecDescriptor(memory, null, fillFlat(pages, offset, length, cap), length, false);
  return new BvecDescriptor(memory, fillBios(memory, pages, offset, length, cap), null, length, false);
}

// The queue limits a block driver derives from its DMA device (dma_set_max_seg_size, ...):
// segments also kept within what one mapping can take (swiotlb's 256 KiB when it may bounce).
// A Device has no virt boundary, so none is set.
function limitsOf(device: Device): QueueLimits {
  return blkValidateLimits({
    maxSegmentSize: Math.min(device.maxSegmentSize, device.maxMappingSize()),
    segBoundaryMask: device.segBoundaryMask,
    maxSegments: Math.min(device.maxSegments, 0xffff),
  });
}

const descOfMapping = new WeakMap<DmaMapping, BvecDescriptor>();

function checkDesc(desc: unknown): asserts desc is BvecDescriptor {
  if (!(desc instanceof BvecDescriptor)) fail('EINVAL', 'desc is not a bvec descriptor');
}

/** The backend's type: the interface, with `fromPages` taking the `flat` option. */
export type BvecBackend = DescriptorBackend<BvecDescriptor> & {
  fromPages(memory: PhysicalMemory, pages: Uint32Array, offset: number, length: number, opts?: BvecFromPagesOptions): BvecDescriptor;
};

/** The bio_vec backend. */
export const bvecBackend: BvecBackend = {
  name: 'bvec',
  capabilities: { dmaInline: false, chaining: true, multiPage: true, dma: true, toFrags: true, fragView: false },

  /** Describes the pages in bios of up to 256 pooled vectors (or one flat array), merging physically contiguous pages; no reference taken. */
  fromPages(memory: PhysicalMemory, pages: Uint32Array, offset: number, length: number, opts?: BvecFromPagesOptions): BvecDescriptor {
    const { cap, flat } = validatePages(memory, pages, offset, length, opts);
    return build(memory, pages, offset, length, cap, flat);
  },

  /**
   * Pins the range with `bioIovIterGetPages` into a chain of bios (each up to 256 vectors, as
   * `bio_iov_vecs_to_alloc` sizes them); any failure releases every pin taken and rethrows.
   */
  getUser(mm: AddressSpace, addr: number, length: number, opts: GetUserOptions): BvecDescriptor {
    if (!(mm instanceof AddressSpace)) fail('EINVAL', 'mm must be an AddressSpace');
    checkInt('addr', addr, 0);
    checkInt('length', length, 1);
    if (typeof opts !== 'object' || opts === null || typeof opts.write !== 'boolean') fail('EINVAL', 'opts.write must be a boolean');
    if (opts.longterm !== undefined && typeof opts.longterm !== 'boolean') fail('EINVAL', 'opts.longterm must be a boolean');
    if (opts.owner !== undefined && typeof opts.owner !== 'string') fail('EINVAL', 'opts.owner must be a string');
    const iter = iovIterUbuf(mm, addr, length, opts.write ? 'dest' : 'source');
    let head: Bio | null = null;
    let tail: Bio | null = null;
    try {
      while (iter.count > 0) {
        const pagesLeft = Math.ceil(((iter.addr % PAGE_SIZE) + iter.count) / PAGE_SIZE);
        const bio = new Bio({ maxVecs: Math.min(BIO_MAX_VECS, pagesLeft), memory: mm.memory });
        if (tail === null) head = bio;
        else tail.biNext = bio;
        tail = bio;
        bioIovIterGetPages(bio, iter, { longterm: opts.longterm, owner: opts.owner });
      }
    } catch (e) {
      if (head !== null) {
        bioRelease(head, { dirty: false });
        bioPut(head);
      }
      throw e;
    }
    return new BvecDescriptor(mm.memory, head, null, length, true);
  },

  /** `bioRelease` over the chain (dirtying first when asked), then `bioPut`: the vectors go back to their pools. */
  putUser(desc: BvecDescriptor, opts: PutUserOptions): void {
    checkDesc(desc);
    if (typeof opts !== 'object' || opts === null || typeof opts.dirty !== 'boolean') fail('EINVAL', 'opts.dirty must be a boolean');
    if (!desc.pinned || desc.bio === null) fail('EINVAL', 'descriptor holds no pins (made by fromPages, or already released)');
    bioRelease(desc.bio, { dirty: opts.dirty });
    desc.pinned = false;
    bioPut(desc.bio);
  },

  /**
   * Maps the descriptor as one request: `blk_rq_map_sg` over the bios (the conversion, charged
   * to the footprint while mapped), then core's `dmaMapSegments`. Segments respect the
   * device's segment size and boundary. EINVAL, with nothing mapped, when the request needs
   * more than `device.maxSegments` segments: the block layer would have split it into several
   * requests at submission (`bioSplitToLimits`, then `blkRqMapSg` or `blkRqDmaMap` per part),
   * and one mapping cannot stand for them.
   */
  dmaMap(desc: BvecDescriptor, device: Device, dir: DmaDirection): DmaMapping {
    checkDesc(desc);
    if (!(device instanceof Device)) fail('EINVAL', 'device must be a Device');
    const lim = limitsOf(device);
    const views = desc.flat !== null
      ? [new BvecRanges().reset(desc.flat, { biSector: 0, biSize: desc.length, biIdx: 0, biBvecDone: 0 })]
      : desc.bios().map((b) => new BvecRanges().reset(b, b.biIter));
    const table = mapSgViews(lim, views);
    if (table.count > lim.maxSegments) fail('EINVAL', `the request needs ${table.count} segments, ${device.name} takes ${lim.maxSegments} (maxSegments): split it first (bioSplitToLimits)`);
    const m = dmaMapSegments(device, table.phys, table.lens, table.count, dir);
    desc.sgTable = table;
    descOfMapping.set(m, desc);
    return m;
  },

  dmaUnmap(mapping: DmaMapping): void {
    if (!(mapping instanceof DmaMapping)) fail('EINVAL', 'mapping must be a DmaMapping');
    dmaUnmapSegments(mapping.device, mapping);
    const desc = descOfMapping.get(mapping);
    if (desc !== undefined) desc.sgTable = null;
  },

  // the bvecs re-described as skb_frag_t entries written into the network's own array (same
  // 16-byte layout, but a copy: a conversion the cost counts). Storage pages reach the network
  // through skb_splice_from_iter (MSG_SPLICE_PAGES: sendfile, nvmet-tcp), a page at a time, and
  // skb_append_pagefrags merges only within one page: a multi-page bvec becomes a fragment per page
  toFrags(desc: BvecDescriptor, opts?: ToFragsOptions): ToFragsResult {
    checkDesc(desc);
    checkOptions('toFrags options', opts);
    return fragsFromSegments(desc.segments());
  },
};

registerBackend(bvecBackend);

