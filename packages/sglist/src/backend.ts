// The scatterlist backend: DescriptorBackend<SgTable> over this package's model of
// lib/scatterlist.c, registered in core's registry as 'sglist' when this module loads.

import { checkInt, checkOptions, Device, DmaMapping, fail, fragsFromSegments, PAGE_SIZE, PhysicalMemory, registerBackend } from '@iodesc/core';
import type { DescriptorBackend, DmaDirection, FromPagesOptions, GetUserOptions, PutUserOptions, ToFragsOptions, ToFragsResult } from '@iodesc/core';
import { fromPagesUnchecked, resegment } from './alloc.js';
import { deviceSegmentLimit, dmaUnmapSgtable, mapSgtable } from './dma.js';
import { checkTable, SgTable, UINT_MAX } from './table.js';
import { getUserSg, putUserSg } from './user.js';

// The table each live mapping made by dmaMap belongs to, so dmaUnmap(mapping) finds it.
const tableOf = new WeakMap<DmaMapping, SgTable>();

/** The scatterlist backend: entries merge across PFN-adjacent pages, DMA fields live in the entries. */
export const sglistBackend: DescriptorBackend<SgTable> = {
  name: 'sglist',
  capabilities: { dmaInline: true, chaining: true, multiPage: true, dma: true, toFrags: true, fragView: false },

  // sg_alloc_table_from_pages_segment over exactly the pages the bytes need
  fromPages(memory: PhysicalMemory, pages: Uint32Array, offset: number, length: number, opts?: FromPagesOptions): SgTable {
    if (!(memory instanceof PhysicalMemory)) fail('EINVAL', 'memory must be a PhysicalMemory');
    if (!(pages instanceof Uint32Array)) fail('EINVAL', 'pages must be a Uint32Array of PFNs');
    checkInt('offset', offset, 0, PAGE_SIZE - 1);
    checkInt('length', length, 1);
    const max = opts?.maxSegmentSize === undefined ? UINT_MAX : checkInt('maxSegmentSize', opts.maxSegmentSize, PAGE_SIZE, UINT_MAX);
    const need = Math.ceil((offset + length) / PAGE_SIZE);
    if (need > pages.length) fail('EINVAL', `offset ${offset} + length ${length} need ${need} pages, the array holds ${pages.length}`);
    for (let i = 0; i < need; i++) {
      if (pages[i]! >= memory.nrPages) fail('EINVAL', `pages[${i}] = ${pages[i]} lies beyond memory (${memory.nrPages} pages)`);
    }
    const t = fromPagesUnchecked(pages, need, offset, length, Math.floor(max / PAGE_SIZE) * PAGE_SIZE);
    t.memory = memory;
    return t;
  },

  getUser(mm, addr, length, opts: GetUserOptions): SgTable {
    if (typeof opts !== 'object' || opts === null) fail('EINVAL', 'opts must be an object with write');
    return getUserSg(mm, addr, length, { write: opts.write, longterm: opts.longterm, owner: opts.owner });
  },

  putUser(desc: SgTable, opts: PutUserOptions): void {
    putUserSg(desc, opts);
  },

  dmaMap(desc: SgTable, device: Device, dir: DmaDirection): DmaMapping {
    const t = checkTable('desc', desc);
    if (!(device instanceof Device)) fail('EINVAL', 'device must be a Device');
    // honour the device's limits as a driver does when it builds its table for the device
    if (t.mapping === null) resegment(t, deviceSegmentLimit(device));
    const m = mapSgtable(device, t, dir);
    tableOf.set(m, t);
    return m;
  },

  dmaUnmap(mapping: DmaMapping): void {
    if (!(mapping instanceof DmaMapping)) fail('EINVAL', 'mapping must be a DmaMapping');
    const t = tableOf.get(mapping);
    if (t === undefined || t.mapping !== mapping) fail('EINVAL', `${mapping.describe()} is not a live mapping of an sglist table`);
    dmaUnmapSgtable(mapping.device, t, mapping.dir);
    tableOf.delete(mapping);
  },

  // the entries re-described as skb_frag_t entries, a conversion the cost counts. Storage pages
  // reach the network through skb_splice_from_iter, a page at a time, and skb_append_pagefrags
  // merges only within one page: an entry spanning contiguous pages becomes a fragment per page
  toFrags(desc: SgTable, opts?: ToFragsOptions): ToFragsResult {
    const t = checkTable('desc', desc);
    checkOptions('toFrags options', opts);
    return fragsFromSegments(t.segments());
  },
};

registerBackend(sglistBackend);
