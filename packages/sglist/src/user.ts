// get_user_sg()/put_user_sg(): one call pins a user range and describes it as a scatterlist
// (with the DMA fields filled when a device is given), one tears it down. Pinning follows
// drivers/infiniband/core/umem.c (ib_umem_get, __ib_umem_release).

import {
  AddressSpace, checkBool, checkDirection, checkInt, checkOptions, Device, fail, FOLL_LONGTERM, FOLL_WRITE, PAGE_SIZE, pinUserPagesFast,
  unpinUserPageRangeDirtyLock, unpinUserPages,
} from '@iodesc/core';
import type { DmaDirection, PhysicalMemory } from '@iodesc/core';
import { appendPagesUnchecked, SgAppendTable } from './alloc.js';
import { deviceSegmentLimit, mapEntries, unmapTable } from './dma.js';
import { checkTable, nextSlot, SG_LENGTH, SG_OFFSET, SG_PAGE_LINK, SG_WORDS, SgTable, UINT_MAX } from './table.js';

/** Pages pinned per pin_user_pages_fast call: one page of page pointers, as ib_umem_get. */
export const PAGES_PER_BATCH = PAGE_SIZE / 8;

/** Options of `getUserSg`. */
export interface GetUserSgOptions {
  /** The device will write the memory (FOLL_WRITE). */
  write: boolean;
  /** The pin may be held indefinitely (FOLL_LONGTERM). */
  longterm?: boolean;
  /** Largest entry in bytes, rounded down to whole pages; default `deviceSegmentLimit(device)`, else UINT_MAX. */
  maxSegment?: number;
  /** Map the table for this device once built (`dma_map_sgtable`). */
  device?: Device;
  /** Direction of that mapping; default bidirectional when `write` (as ib_umem maps), else to-device. */
  dir?: DmaDirection;
  /** Tag the leak report names for the pins and the mapping. */
  owner?: string;
}

/** Options of `putUserSg`. */
export interface PutUserSgOptions {
  /** The device wrote the memory: mark each page dirty before unpinning. */
  dirty: boolean;
}

/**
 * @internal Pins `nrPages` pages from page-aligned `first` in batches of PAGES_PER_BATCH and
 * appends each batch (`offset` into the first page, whole pages after), so entries merge across
 * batch edges. On failure every pin taken is released and the table freed, then the error thrown.
 */
export function pinIntoTable(
  mm: AddressSpace, first: number, nrPages: number, flags: number, offset: number, maxSegment: number, owner: string | undefined,
): SgAppendTable {
  const a = new SgAppendTable();
  const batch = new Uint32Array(Math.min(PAGES_PER_BATCH, nrPages));
  let got = 0;
  try {
    while (got < nrPages) {
      const want = Math.min(PAGES_PER_BATCH, nrPages - got);
      const n = pinUserPagesFast(mm, first + got * PAGE_SIZE, want, flags, batch, owner === undefined ? undefined : { owner });
      if (n <= 0) fail('EFAULT', `pinUserPagesFast took no page at 0x${(first + got * PAGE_SIZE).toString(16)}`);
      try {
        const off = got === 0 ? offset : 0;
        appendPagesUnchecked(a, batch, n, off, n * PAGE_SIZE - off, maxSegment, nrPages - got - n);
      } catch (e) {
        unpinUserPages(mm.memory, batch, n);
        throw e;
      }
      got += n;
    }
  } catch (e) {
    unpinEntries(mm.memory, a.sgt, false);
    a.sgt.release();
    throw e;
  }
  return a;
}

/**
 * @internal Unpins every CPU entry of `t` as one physically contiguous range
 * (`unpin_user_page_range_dirty_lock`, as `__ib_umem_release` walks the table).
 */
export function unpinEntries(memory: PhysicalMemory, t: SgTable, makeDirty: boolean): void {
  const u32 = t.store.u32;
  for (let i = 0, s = t.sgl; i < t.origNents && s >= 0; i++, s = nextSlot(u32, s)) {
    const b = s * SG_WORDS;
    const off = u32[b + SG_OFFSET]!;
    const pfn = (u32[b + SG_PAGE_LINK]! >>> 2) + Math.floor(off / PAGE_SIZE);
    unpinUserPageRangeDirtyLock(memory, pfn, Math.ceil(((off % PAGE_SIZE) + u32[b + SG_LENGTH]!) / PAGE_SIZE), makeDirty);
  }
}

/**
 * Pins `length` bytes of user memory at `addr` and describes them as a scatterlist: pinned with
 * `pinUserPagesFast` (FOLL_WRITE when `write`, FOLL_LONGTERM when `longterm`) 512 pages a call,
 * each batch appended with `sgAllocAppendTableFromPages` so entries merge across batch edges,
 * entries of at most `maxSegment` bytes; the first entry starts at `addr`, the last is clipped to
 * the range's end. With `device`, the table is then mapped (`dmaMapSgtable`) and its DMA fields
 * filled. Cost: O(pages). Release with `putUserSg`. Throws EINVAL (bad arguments), EFAULT (a
 * page cannot be pinned, the range leaves its mapping), ENOMEM, the DMA layer's codes; a failure
 * part-way leaves no pin, mapping or table.
 */
export function getUserSg(mm: AddressSpace, addr: number, length: number, opts: GetUserSgOptions): SgTable {
  if (!(mm instanceof AddressSpace)) fail('EINVAL', 'mm must be an AddressSpace');
  checkInt('addr', addr);
  checkInt('length', length, 1);
  if (!Number.isSafeInteger(addr + length + PAGE_SIZE)) fail('EINVAL', `addr ${addr} + length ${length} overflows`);
  if (typeof opts !== 'object' || opts === null) fail('EINVAL', 'opts must be an object with write');
  const o = checkOptions('opts', opts);
  const write = checkBool('opts.write', o.write);
  const longterm = o.longterm === undefined ? false : checkBool('opts.longterm', o.longterm);
  if (o.device !== undefined && !(o.device instanceof Device)) fail('EINVAL', 'opts.device must be a Device');
  if (o.owner !== undefined && typeof o.owner !== 'string') fail('EINVAL', `opts.owner must be a string, got ${String(o.owner)}`);
  const dir = o.dir === undefined ? (write ? 'bidirectional' : 'to-device') : checkDirection('opts.dir', o.dir);
  const rawMax = o.maxSegment === undefined ? (o.device === undefined ? UINT_MAX : deviceSegmentLimit(o.device)) : checkInt('opts.maxSegment', o.maxSegment, 0, UINT_MAX);
  const maxSegment = Math.floor(rawMax / PAGE_SIZE) * PAGE_SIZE;
  if (maxSegment < PAGE_SIZE) fail('EINVAL', `opts.maxSegment ${rawMax} is less than one page once rounded down`);
  if (o.device !== undefined && o.device.memory !== mm.memory) fail('EINVAL', `opts.device ${o.device.name} is attached to another memory`);

  const offset = addr % PAGE_SIZE;
  const first = addr - offset;
  const nrPages = Math.ceil((offset + length) / PAGE_SIZE);
  if (nrPages > UINT_MAX) fail('EINVAL', `${nrPages} pages is more than an unsigned int counts`);
  const flags = (write ? FOLL_WRITE : 0) | (longterm ? FOLL_LONGTERM : 0);
  const a = pinIntoTable(mm, first, nrPages, flags, offset, maxSegment, o.owner);
  const t = a.sgt;
  // batches are appended as whole pages, so that merges across their edges stay exact; clip the tail here
  const tail = nrPages * PAGE_SIZE - offset - length;
  if (tail > 0) {
    t.store.u32[a.prv * SG_WORDS + SG_LENGTH] = t.store.u32[a.prv * SG_WORDS + SG_LENGTH]! - tail;
    t.entriesChanged();
  }
  t.memory = mm.memory;
  if (o.device !== undefined) {
    try {
      t.nents = mapEntries(o.device, t, t.origNents, dir, o.owner).count;
    } catch (e) {
      unpinEntries(mm.memory, t, false);
      t.release();
      throw e;
    }
  }
  t.user = { kind: 'user', mm, write, owner: o.owner };
  return t;
}

/**
 * Tears down what `getUserSg` built: unmaps the table if it is mapped (whichever of
 * `dmaMapSgtable` or `dmaMapSg` mapped it, with the count it was mapped with), then unpins each
 * entry as one physically contiguous range, dirtying first when `dirty` (`__ib_umem_release`;
 * the caller says whether the device wrote), and frees the table. Cost: O(entries). EINVAL for
 * a table getUserSg did not make (an ib_umem's goes to `ibUmemRelease`) or one already released.
 */
export function putUserSg(table: SgTable, opts: PutUserSgOptions): void {
  const t = checkTable('table', table);
  if (typeof opts !== 'object' || opts === null) fail('EINVAL', 'opts must be an object with dirty');
  const dirty = checkBool('opts.dirty', opts.dirty);
  const user = t.user;
  if (user === null) fail('EINVAL', 'the table holds no getUserSg pins (built from pages, or already released)');
  if (user.kind !== 'user') fail('EINVAL', 'the table belongs to an ib_umem: release it with ibUmemRelease');
  unmapTable(t);
  unpinEntries(user.mm.memory, t, dirty);
  t.user = null;
  t.release();
  t.freed = true;
}
