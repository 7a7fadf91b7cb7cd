// A deliberately naive DescriptorBackend: a plain array of one segment per page, user memory
// pinned in batches of 512 pages and unwound on failure as ib_umem_get does
// (drivers/infiniband/core/umem.c), converted entry by entry for the network. The yardstick the
// suite runs itself against.

import {
  AddressSpace, DmaMapping, dmaMapSegments, dmaUnmapSegments, FOLL_LONGTERM, FOLL_WRITE, FragArray, checkInt, checkOptions, fail, kmallocSize, PAGE_SIZE,
  fragConversionCost, PhysicalMemory, pinUserPagesFast, unpinUserPages, unpinUserPagesDirtyLock,
} from '@iodesc/core';
import type {
  Device, DmaDirection, DescriptorBackend, Footprint, FromPagesOptions, GetUserOptions, IoDescriptor, PutUserOptions, Segment, ToFragsOptions, ToFragsResult,
} from '@iodesc/core';

/** One page of page pointers: what ib_umem_get pins per pin_user_pages_fast call. */
const PAGES_PER_BATCH = PAGE_SIZE / 8;
/** Bytes charged per entry: a naive { pfn, offset, length } record, as large as a bio_vec. */
const ENTRY_BYTES = 16;

/** Segments in a JS array, one per page; `pinned` holds what getUser pinned until putUser. */
export class ReferenceDescriptor implements IoDescriptor {
  readonly backend = 'reference';
  readonly length: number;
  constructor(
    readonly memory: PhysicalMemory,
    readonly entries: Segment[],
    public pinned: Uint32Array | null,
  ) {
    this.length = entries.reduce((t, e) => t + e.length, 0);
  }

  get nrSegments(): number {
    return this.entries.length;
  }

  *segments(): Iterable<Segment> {
    for (const e of this.entries) yield { pfn: e.pfn, offset: e.offset, length: e.length };
  }

  footprint(): Footprint {
    const bytes = kmallocSize(this.entries.length * ENTRY_BYTES);
    return { bytes, allocations: 1, entries: this.entries.length, breakdown: { segments: bytes } };
  }
}

// One segment per page for `length` bytes from byte `offset` of pages[0].
function perPage(pages: Uint32Array, offset: number, length: number): Segment[] {
  const out: Segment[] = [];
  for (let i = 0, off = offset; length > 0; i++, off = 0) {
    const n = Math.min(length, PAGE_SIZE - off);
    out.push({ pfn: pages[i]!, offset: off, length: n });
    length -= n;
  }
  return out;
}

/** The reference backend: correct, obvious and slow. */
export const referenceBackend: DescriptorBackend<ReferenceDescriptor> = {
  name: 'reference',
  capabilities: { dmaInline: false, chaining: false, multiPage: false, dma: true, toFrags: true, fragView: false },

  fromPages(memory: PhysicalMemory, pages: Uint32Array, offset: number, length: number, opts?: FromPagesOptions): ReferenceDescriptor {
    if (!(memory instanceof PhysicalMemory)) fail('EINVAL', 'memory must be a PhysicalMemory');
    if (!(pages instanceof Uint32Array)) fail('EINVAL', 'pages must be a Uint32Array of PFNs');
    checkInt('offset', offset, 0, PAGE_SIZE - 1);
    checkInt('length', length, 1);
    if (opts?.maxSegmentSize !== undefined) checkInt('maxSegmentSize', opts.maxSegmentSize, PAGE_SIZE);
    const need = Math.ceil((offset + length) / PAGE_SIZE);
    if (need > pages.length) fail('EINVAL', `offset ${offset} + length ${length} need ${need} pages, the array holds ${pages.length}`);
    for (let i = 0; i < need; i++) {
      if (pages[i]! >= memory.nrPages) fail('EINVAL', `pages[${i}] = ${pages[i]} lies beyond memory (${memory.nrPages} pages)`);
    }
    return new ReferenceDescriptor(memory, perPage(pages, offset, length), null);
  },

  getUser(mm: AddressSpace, addr: number, length: number, opts: GetUserOptions): ReferenceDescriptor {
    if (!(mm instanceof AddressSpace)) fail('EINVAL', 'mm must be an AddressSpace');
    checkInt('addr', addr, 0);
    checkInt('length', length, 1);
    if (typeof opts !== 'object' || opts === null || typeof opts.write !== 'boolean') fail('EINVAL', 'opts.write must be a boolean');
    if (opts.longterm !== undefined && typeof opts.longterm !== 'boolean') fail('EINVAL', 'opts.longterm must be a boolean');
    if (!Number.isSafeInteger(addr + length)) fail('EINVAL', `addr ${addr} + length ${length} overflows`);
    const flags = (opts.write ? FOLL_WRITE : 0) | (opts.longterm ? FOLL_LONGTERM : 0);
    const first = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
    const nrPages = Math.ceil((addr - first + length) / PAGE_SIZE);
    const pages = new Uint32Array(nrPages);
    let got = 0;
    try {
      while (got < nrPages) {
        const batch = pages.subarray(got, got + Math.min(PAGES_PER_BATCH, nrPages - got));
        const n = pinUserPagesFast(mm, first + got * PAGE_SIZE, batch.length, flags, batch, { owner: opts.owner });
        if (n <= 0) fail('EFAULT', `pinUserPagesFast took no page at 0x${(first + got * PAGE_SIZE).toString(16)}`);
        got += n;
      }
    } catch (e) {
      if (got > 0) unpinUserPages(mm.memory, pages, got);
      throw e;
    }
    return new ReferenceDescriptor(mm.memory, perPage(pages, addr - first, length), pages);
  },

  putUser(desc: ReferenceDescriptor, opts: PutUserOptions): void {
    if (!(desc instanceof ReferenceDescriptor)) fail('EINVAL', 'desc is not a reference descriptor');
    if (typeof opts !== 'object' || opts === null || typeof opts.dirty !== 'boolean') fail('EINVAL', 'opts.dirty must be a boolean');
    const pages = desc.pinned;
    if (pages === null) fail('EINVAL', 'descriptor holds no pins (made by fromPages, or already released)');
    unpinUserPagesDirtyLock(desc.memory, pages, pages.length, opts.dirty);
    desc.pinned = null;
  },

  // one entry per segment, mapped by core's layer (dma_map_sg over a list built from the segments)
  dmaMap(desc: ReferenceDescriptor, device: Device, dir: DmaDirection): DmaMapping {
    if (!(desc instanceof ReferenceDescriptor)) fail('EINVAL', 'desc is not a reference descriptor');
    const n = desc.entries.length;
    const phys = new Float64Array(n);
    const lens = new Float64Array(n);
    desc.entries.forEach((e, i) => {
      phys[i] = e.pfn * PAGE_SIZE + e.offset;
      lens[i] = e.length;
    });
    return dmaMapSegments(device, phys, lens, n, dir);
  },
  dmaUnmap(mapping: DmaMapping): void {
    if (!(mapping instanceof DmaMapping)) fail('EINVAL', 'mapping must be a DmaMapping');
    dmaUnmapSegments(mapping.device, mapping);
  },
  // its entries are not fragments: each per-page segment is written again as an skb_frag_t
  // (one array allocated), a conversion counted in full
  toFrags(desc: ReferenceDescriptor, opts?: ToFragsOptions): ToFragsResult {
    if (!(desc instanceof ReferenceDescriptor)) fail('EINVAL', 'desc is not a reference descriptor');
    checkOptions('toFrags options', opts);
    const frags = new FragArray(desc.entries.length);
    for (const e of desc.entries) frags.push(e.pfn, e.offset, e.length);
    return { frags, cost: fragConversionCost(frags.count) };
  },
};
