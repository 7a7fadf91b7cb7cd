// The mapping iterator and the copies built on it (lib/scatterlist.c: sg_miter_start/next/skip/
// stop, sg_copy_buffer and its four wrappers): page by page over the entries, real bytes.

import { checkBool, checkInt, fail, PAGE_SIZE, PhysicalMemory } from '@iodesc/core';
import { checkTable, nextSlot, SG_LENGTH, SG_OFFSET, SG_PAGE_LINK, SG_WORDS, SgTable } from './table.js';

/** kmap_atomic in the kernel; accepted and changes nothing here. */
export const SG_MITER_ATOMIC = 1 << 0;
/** The caller writes the pages: the window is written back when the iterator moves on. */
export const SG_MITER_TO_SG = 1 << 1;
/** The caller reads the pages. */
export const SG_MITER_FROM_SG = 1 << 2;
/** kmap_local in the kernel; accepted and changes nothing here. */
export const SG_MITER_LOCAL = 1 << 3;
const MITER_FLAGS = SG_MITER_ATOMIC | SG_MITER_TO_SG | SG_MITER_FROM_SG | SG_MITER_LOCAL;

/**
 * An sg_mapping_iter: after `sgMiterNext` returns true, `addr` holds the bytes of the current
 * window (at most one page, `length` bytes of page `pfn` from `offset`) and the caller sets
 * `consumed` if it used fewer. The window is a copy of the page, as kmap gives the CPU the page:
 * with SG_MITER_TO_SG whatever the caller wrote into `addr` reaches memory when the iterator
 * moves on or stops.
 */
export class SgMiter {
  /** Page of the current window, -1 when none. */
  pfn = -1;
  /** Offset of the window in its page. */
  offset = 0;
  /** Bytes of the window, null when none is mapped. */
  addr: Uint8Array | null = null;
  length = 0;
  /** Bytes used of the window; the next window starts after them. */
  consumed = 0;

  // __sg_page_iter state: current slot, page index within its entry, advance, entries left
  /** @internal */ slot: number;
  /** @internal */ pgOffset = 0;
  /** @internal */ pgAdvance = 0;
  /** @internal */ nentsLeft: number;
  /** @internal */ winOffset = 0;
  /** @internal */ remaining = 0;
  /** @internal The kmap: one page of scratch, allocated by the first `sgMiterNext` (sgCopyBuffer never needs it). */
  page: Uint8Array | null = null;

  /** @internal Use `sgMiterStart`. */
  constructor(readonly memory: PhysicalMemory, readonly table: SgTable, nents: number, readonly flags: number) {
    this.slot = table.sgl;
    this.nentsLeft = nents;
  }
}

// Pages an entry touches (sg_page_count).
function pageCount(u32: Uint32Array, s: number): number {
  const b = s * SG_WORDS;
  return Math.ceil((u32[b + SG_OFFSET]! + u32[b + SG_LENGTH]!) / PAGE_SIZE);
}

// __sg_page_iter_next: to the next page of the walk, skipping entries of no pages.
function pageIterNext(m: SgMiter): boolean {
  if (m.nentsLeft === 0 || m.slot < 0) return false;
  const u32 = m.table.store.u32;
  m.pgOffset += m.pgAdvance;
  m.pgAdvance = 1;
  while (m.pgOffset >= pageCount(u32, m.slot)) {
    m.pgOffset -= pageCount(u32, m.slot);
    m.slot = nextSlot(u32, m.slot);
    if (--m.nentsLeft === 0 || m.slot < 0) return false;
  }
  return true;
}

// sg_miter_get_next_page: the window of the current page that belongs to the entry.
function getNextPage(m: SgMiter): boolean {
  if (m.remaining === 0) {
    if (!pageIterNext(m)) return false;
    const u32 = m.table.store.u32;
    const b = m.slot * SG_WORDS;
    const off = u32[b + SG_OFFSET]!;
    let o = m.pgOffset ? 0 : off;
    m.pgOffset += Math.floor(o / PAGE_SIZE);
    o %= PAGE_SIZE;
    m.winOffset = o;
    m.remaining = Math.min(off + u32[b + SG_LENGTH]! - m.pgOffset * PAGE_SIZE - o, PAGE_SIZE - o);
  }
  return true;
}

// The PFN of the current page, checked against memory.
function currentPfn(m: SgMiter): number {
  const pfn = (m.table.store.u32[m.slot * SG_WORDS + SG_PAGE_LINK]! >>> 2) + m.pgOffset;
  if (pfn >= m.memory.nrPages) fail('EINVAL', `the table names pfn ${pfn}, beyond memory (${m.memory.nrPages} pages)`);
  return pfn;
}

/**
 * Starts a mapping iteration over `nents` entries of `table` (`sg_miter_start`) in `memory`
 * (default the table's). `flags` must hold SG_MITER_TO_SG or SG_MITER_FROM_SG. Stop it with
 * `sgMiterStop` (that writes back a TO_SG window). EINVAL for bad arguments.
 */
export function sgMiterStart(table: SgTable, nents: number, flags: number, memory?: PhysicalMemory): SgMiter {
  const t = checkTable('table', table);
  checkInt('nents', nents, 0, 0xffffffff);
  checkInt('flags', flags, 0, MITER_FLAGS);
  if (!(flags & (SG_MITER_TO_SG | SG_MITER_FROM_SG))) fail('EINVAL', `flags 0x${flags.toString(16)} hold neither SG_MITER_TO_SG nor SG_MITER_FROM_SG`);
  return new SgMiter(memoryFor(t, memory), t, nents, flags);
}

/** Moves to the next window (`sg_miter_next`); false at the end of the list. */
export function sgMiterNext(miter: SgMiter): boolean {
  checkMiter(miter);
  sgMiterStop(miter);
  if (!getNextPage(miter)) return false;
  const pfn = currentPfn(miter);
  miter.pfn = pfn;
  miter.offset = miter.winOffset;
  miter.length = miter.consumed = miter.remaining;
  const page = miter.page ?? (miter.page = new Uint8Array(PAGE_SIZE));
  miter.memory.copyFromPhys(pfn * PAGE_SIZE + miter.offset, page, miter.offset, miter.length);
  miter.addr = page.subarray(miter.offset, miter.offset + miter.length);
  return true;
}

/** Moves `offset` bytes on from the current position (`sg_miter_skip`); false if the list ends first. */
export function sgMiterSkip(miter: SgMiter, offset: number): boolean {
  checkMiter(miter);
  checkInt('offset', offset);
  sgMiterStop(miter);
  while (offset > 0) {
    if (!getNextPage(miter)) return false;
    const n = Math.min(offset, miter.remaining);
    miter.winOffset += n;
    miter.remaining -= n;
    offset -= n;
  }
  return true;
}

/** Ends the current window (`sg_miter_stop`): with SG_MITER_TO_SG its bytes go back to the page. */
export function sgMiterStop(miter: SgMiter): void {
  checkMiter(miter);
  if (miter.addr === null) return;
  checkInt('miter.consumed', miter.consumed, 0, miter.length);
  miter.winOffset += miter.consumed;
  miter.remaining -= miter.consumed;
  // addr is a view of the scratch page
  if (miter.flags & SG_MITER_TO_SG) miter.memory.copyToPhys(miter.pfn * PAGE_SIZE + miter.offset, miter.addr, 0, miter.length);
  miter.pfn = -1;
  miter.addr = null;
  miter.length = 0;
  miter.consumed = 0;
}

function checkMiter(m: unknown): asserts m is SgMiter {
  if (!(m instanceof SgMiter)) fail('EINVAL', 'miter must be an SgMiter from sgMiterStart');
}

function memoryFor(t: SgTable, memory: PhysicalMemory | undefined): PhysicalMemory {
  const mem = memory ?? t.memory;
  if (!(mem instanceof PhysicalMemory)) fail('EINVAL', 'memory must be a PhysicalMemory (the table was built without one)');
  return mem;
}

/**
 * Copies between `buf` and the bytes of `nents` entries after skipping `skip` of them
 * (`sg_copy_buffer`): into the buffer when `toBuffer`, else out of it. Returns the bytes copied
 * (0 when the list is shorter than `skip`). Cost: O(bytes), no allocation per page.
 */
export function sgCopyBuffer(table: SgTable, nents: number, buf: Uint8Array, skip: number, toBuffer: boolean, memory?: PhysicalMemory): number {
  const t = checkTable('table', table);
  checkInt('nents', nents, 0, 0xffffffff);
  if (!(buf instanceof Uint8Array)) fail('EINVAL', 'buf must be a Uint8Array');
  checkInt('skip', skip);
  checkBool('toBuffer', toBuffer);
  const m = new SgMiter(memoryFor(t, memory), t, nents, toBuffer ? SG_MITER_FROM_SG : SG_MITER_TO_SG);
  if (!sgMiterSkip(m, skip)) return 0;
  let done = 0;
  // the miter's walk, copying straight between RAM and the buffer instead of through a window
  while (done < buf.length && getNextPage(m)) {
    const pfn = currentPfn(m);
    const n = Math.min(m.remaining, buf.length - done);
    const phys = pfn * PAGE_SIZE + m.winOffset;
    if (toBuffer) m.memory.copyFromPhys(phys, buf, done, n);
    else m.memory.copyToPhys(phys, buf, done, n);
    done += n;
    // the kernel consumes the whole window even when the buffer ends inside it
    m.winOffset += m.remaining;
    m.remaining = 0;
  }
  return done;
}

/** Copies `buf` into the list's bytes (`sg_copy_from_buffer`); returns the bytes copied. */
export function sgCopyFromBuffer(table: SgTable, nents: number, buf: Uint8Array, memory?: PhysicalMemory): number {
  return sgCopyBuffer(table, nents, buf, 0, false, memory);
}

/** Copies the list's bytes into `buf` (`sg_copy_to_buffer`); returns the bytes copied. */
export function sgCopyToBuffer(table: SgTable, nents: number, buf: Uint8Array, memory?: PhysicalMemory): number {
  return sgCopyBuffer(table, nents, buf, 0, true, memory);
}

/** Copies `buf` into the list's bytes from byte `skip` (`sg_pcopy_from_buffer`). */
export function sgPcopyFromBuffer(table: SgTable, nents: number, buf: Uint8Array, skip: number, memory?: PhysicalMemory): number {
  return sgCopyBuffer(table, nents, buf, skip, false, memory);
}

/** Copies the list's bytes from byte `skip` into `buf` (`sg_pcopy_to_buffer`). */
export function sgPcopyToBuffer(table: SgTable, nents: number, buf: Uint8Array, skip: number, memory?: PhysicalMemory): number {
  return sgCopyBuffer(table, nents, buf, skip, true, memory);
}
