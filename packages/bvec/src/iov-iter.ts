// struct iov_iter over bio_vecs and over one user buffer (lib/iov_iter.c, include/linux/uio.h):
// iov_iter_bvec, iov_iter_ubuf, copy_to_iter / copy_from_iter moving real bytes
// (iterate_bvec), iov_iter_advance / iov_iter_revert, and iov_iter_extract_pages
// (iov_iter_extract_bvec_pages: no pins; iov_iter_extract_user_pages: FOLL_PIN).

import {
  AddressSpace, checkInt, checkOptions, checkPageArray, fail, FOLL_LONGTERM, FOLL_WRITE, PAGE_SIZE, PhysicalMemory, pinUserPagesFast,
} from '@iodesc/core';
import { Bio } from './bio.js';
import { BVEC_STRIDE, BvecArray, bvLen, bvOffset, bvPage, type BvecVector } from './bvec.js';

/** `MAX_RW_COUNT`: INT_MAX rounded down to a page, the most one extraction takes. */
export const MAX_RW_COUNT = 0x7ffff000;

/** `ITER_DEST` (data is copied into the iterator: a read) or `ITER_SOURCE` (out of it: a write). */
export type IterDirection = 'dest' | 'source';

/** Options of `iovIterBvec`. */
export interface IovIterBvecOptions {
  /** Which way data may flow; absent, both (a model convenience: the kernel fixes one). */
  dir?: IterDirection;
  /** Vectors to walk (default: those the bio's iterator covers, or the array's `count`). */
  nrSegs?: number;
  /** Memory the pages live in (default: the bio's). */
  memory?: PhysicalMemory;
}

/**
 * An `iov_iter` of type ITER_BVEC (`vecs` from vector `bvec` on, `nrSegs` of them, `iovOffset`
 * bytes into the first) or ITER_UBUF (`addr` in `mm`). `count` bytes remain.
 */
export class IovIter implements BvecVector {
  count: number;
  /** ITER_BVEC: index of the current vector in `vecs` (the kernel's `i->bvec`). */
  bvec = 0;
  nrSegs = 0;
  iovOffset = 0;
  /** ITER_UBUF: address of the next byte. */
  addr = 0;
  /** @internal */
  constructor(
    readonly type: 'bvec' | 'ubuf',
    readonly dir: IterDirection | null,
    readonly vecs: Uint32Array,
    readonly base: number,
    readonly memory: PhysicalMemory | null,
    readonly mm: AddressSpace | null,
    count: number,
  ) {
    this.count = count;
  }
}

const EMPTY = new Uint32Array(0);

/**
 * `iov_iter_bvec`: an iterator over `count` bytes of the vectors of `v`. For a BvecArray, from
 * its first vector. For a Bio, from where the bio's iterator stands, as a driver builds one from
 * a bio (drivers/block/loop.c: the vector at `bi_idx`, `iov_offset = bi_bvec_done`, the vectors
 * `bi_size` covers), so a split part or an advanced bio yields its own bytes; `count` is then at
 * most `biSize`. EINVAL when `count` passes what the vectors hold. Allocates the iterator only.
 */
export function iovIterBvec(v: Bio | BvecArray, count: number, opts?: IovIterBvecOptions): IovIter {
  if (!(v instanceof Bio) && !(v instanceof BvecArray)) fail('EINVAL', 'iovIterBvec takes a Bio or a BvecArray');
  const o = checkOptions('iovIterBvec options', opts);
  if (o.dir !== undefined && o.dir !== 'dest' && o.dir !== 'source') fail('EINVAL', `dir must be 'dest' or 'source', got ${String(o.dir)}`);
  if (o.memory !== undefined && !(o.memory instanceof PhysicalMemory)) fail('EINVAL', 'memory must be a PhysicalMemory');
  const memory = o.memory ?? (v instanceof Bio ? v.memory : null);
  if (v instanceof Bio) {
    if (!v.live) fail('EINVAL', 'the bio was put (bioPut) and holds no vectors');
    // the vectors the bio's iterator covers, from bi_idx, the first less bi_bvec_done
    const { biIdx, biBvecDone, biSize } = v.biIter;
    const room = (v.vecs.length - v.base) / BVEC_STRIDE - biIdx;
    let have = 0;
    for (let size = biSize, d = biBvecDone; size > 0; have++, d = 0) {
      if (have >= room) fail('EINVAL', `the bio's iterator (biIdx ${biIdx}, biSize ${biSize}) runs past its vectors`);
      size -= Math.min(bvLen(v, biIdx + have) - d, size);
    }
    const nrSegs = o.nrSegs === undefined ? have : checkInt('nrSegs', o.nrSegs, 0, have);
    let total = 0;
    for (let i = 0; i < nrSegs; i++) total += bvLen(v, biIdx + i);
    checkInt('count', count, 0, Math.min(Math.max(total - biBvecDone, 0), biSize));
    const it = new IovIter('bvec', o.dir ?? null, v.vecs, v.base + biIdx * BVEC_STRIDE, memory, null, count);
    it.nrSegs = nrSegs;
    it.iovOffset = nrSegs === 0 ? 0 : biBvecDone;
    return it;
  }
  const nrSegs = o.nrSegs === undefined ? v.count : checkInt('nrSegs', o.nrSegs, 0, v.count);
  let total = 0;
  for (let i = 0; i < nrSegs; i++) total += bvLen(v, i);
  checkInt('count', count, 0, total);
  const it = new IovIter('bvec', o.dir ?? null, v.vecs, v.base, memory, null, count);
  it.nrSegs = nrSegs;
  return it;
}

/**
 * `iov_iter_ubuf`: an iterator over `count` bytes of user memory at `addr` in `mm`. `dir`
 * 'dest' (a read: the device writes the pages, so they are pinned with FOLL_WRITE) or 'source'.
 */
export function iovIterUbuf(mm: AddressSpace, addr: number, count: number, dir: IterDirection): IovIter {
  if (!(mm instanceof AddressSpace)) fail('EINVAL', 'mm must be an AddressSpace');
  checkInt('addr', addr);
  checkInt('count', count, 0, MAX_RW_COUNT);
  if (dir !== 'dest' && dir !== 'source') fail('EINVAL', `dir must be 'dest' or 'source', got ${String(dir)}`);
  if (!Number.isSafeInteger(addr + count)) fail('EINVAL', `addr ${addr} + count ${count} overflows`);
  const it = new IovIter('ubuf', dir, EMPTY, 0, mm.memory, mm, count);
  it.addr = addr;
  return it;
}

function checkIter(iter: unknown): asserts iter is IovIter {
  if (!(iter instanceof IovIter)) fail('EINVAL', 'iter must be an IovIter');
}

/** `iov_iter_advance`: moves on by `bytes` (at most `count`; more is clamped, as the kernel does). */
export function iovIterAdvance(iter: IovIter, bytes: number): void {
  checkIter(iter);
  checkInt('bytes', bytes);
  advance(iter, Math.min(bytes, iter.count));
}

function advance(it: IovIter, size: number): void {
  if (it.count === 0) return;
  it.count -= size;
  if (it.type === 'ubuf') {
    it.addr += size;
    return;
  }
  // iov_iter_bvec_advance: skip whole vectors while size reaches past them
  size += it.iovOffset;
  let k = 0;
  while (k < it.nrSegs && size >= bvLen(it, it.bvec + k)) {
    size -= bvLen(it, it.bvec + k);
    k++;
  }
  it.iovOffset = size;
  it.nrSegs -= k;
  it.bvec += k;
}

/** `iov_iter_revert`: steps back `bytes` (what a caller took but did not use). */
export function iovIterRevert(iter: IovIter, bytes: number): void {
  checkIter(iter);
  checkInt('bytes', bytes);
  revert(iter, bytes);
}

function revert(it: IovIter, unroll: number): void {
  if (unroll === 0) return;
  it.count += unroll;
  if (it.type === 'ubuf') {
    it.addr -= unroll;
    return;
  }
  if (unroll <= it.iovOffset) {
    it.iovOffset -= unroll;
    return;
  }
  unroll -= it.iovOffset;
  for (;;) {
    it.bvec--;
    it.nrSegs++;
    const n = bvLen(it, it.bvec);
    if (unroll <= n) {
      it.iovOffset = n - unroll;
      return;
    }
    unroll -= n;
  }
}

// iterate_bvec with a memcpy step: page piece by page piece, through the memory's bytes
function copyBvec(it: IovIter, buf: Uint8Array, len: number, toIter: boolean): number {
  const memory = it.memory ?? fail('EINVAL', 'the iterator has no memory to copy through (give { memory })');
  let progress = 0;
  let skip = it.iovOffset;
  let k = it.bvec;
  while (len > 0) {
    const blen = bvLen(it, k);
    const offset = bvOffset(it, k) + skip;
    const part = Math.min(len, blen - skip, PAGE_SIZE - (offset % PAGE_SIZE));
    const phys = bvPage(it, k) * PAGE_SIZE + offset;
    if (toIter) memory.copyToPhys(phys, buf, progress, part);
    else memory.copyFromPhys(phys, buf, progress, part);
    len -= part;
    progress += part;
    skip += part;
    if (skip >= blen) {
      skip = 0;
      k++;
    }
  }
  it.nrSegs -= k - it.bvec;
  it.bvec = k;
  it.iovOffset = skip;
  it.count -= progress;
  return progress;
}

function copy(iter: IovIter, buf: Uint8Array, bytes: number | undefined, toIter: boolean): number {
  checkIter(iter);
  if (!(buf instanceof Uint8Array)) fail('EINVAL', 'the buffer must be a Uint8Array');
  const n = bytes === undefined ? buf.length : checkInt('bytes', bytes, 0, buf.length);
  // copy_to_iter refuses a source iterator (and copy_from_iter a destination): WARN, 0 bytes
  if (iter.dir === (toIter ? 'source' : 'dest')) return 0;
  const len = Math.min(n, iter.count);
  if (len === 0) return 0;
  if (iter.type === 'ubuf') {
    const mm = iter.mm!;
    if (toIter) mm.write(iter.addr, buf.subarray(0, len));
    else buf.set(mm.read(iter.addr, len));
    advance(iter, len);
    return len;
  }
  return copyBvec(iter, buf, len, toIter);
}

/**
 * `copy_to_iter`: copies up to `bytes` (default all) of `src` into the memory the iterator
 * describes and advances it. Returns the bytes copied (0 for an ITER_SOURCE iterator, as the
 * kernel's WARN path). EINVAL without a memory. Cost: O(bytes), per page piece.
 */
export function copyToIter(iter: IovIter, src: Uint8Array, bytes?: number): number {
  return copy(iter, src, bytes, true);
}

/** `copy_from_iter`: the other way, into `dst`; 0 for an ITER_DEST iterator. */
export function copyFromIter(iter: IovIter, dst: Uint8Array, bytes?: number): number {
  return copy(iter, dst, bytes, false);
}

/** What one extraction gave: `bytes` from byte `offset` of `pages[0]`, over `nPages` pages. */
export interface ExtractResult {
  bytes: number;
  offset: number;
  nPages: number;
}

/** Options of `iovIterExtractPages` on a user iterator. */
export interface ExtractOptions {
  longterm?: boolean;
  owner?: string;
}

/**
 * `iov_iter_extract_pages`: fills `pages` with the pages of one virtually contiguous,
 * page-aligned run and advances the iterator over it. ITER_BVEC (`iov_iter_extract_bvec_pages`):
 * no reference or pin is taken; the run may cover several vectors while each ends on a page
 * boundary and the next starts at offset 0. ITER_UBUF: the pages are pinned (FOLL_PIN, plus
 * FOLL_WRITE for a 'dest' iterator); the caller unpins them. `maxSize` is capped at `count`
 * and MAX_RW_COUNT. Throws what GUP throws when the first page cannot be pinned.
 * Cost: O(pages).
 */
export function iovIterExtractPages(iter: IovIter, pages: Uint32Array, maxSize: number, maxPages: number, opts?: ExtractOptions): ExtractResult {
  checkIter(iter);
  checkInt('maxSize', maxSize);
  checkInt('maxPages', maxPages, 0, 2 ** 32 - 1);
  checkPageArray('pages', pages, Math.min(maxPages, pages.length));
  const o = checkOptions('extract options', opts);
  const max = Math.min(maxSize, iter.count, MAX_RW_COUNT);
  const out: ExtractResult = { bytes: 0, offset: 0, nPages: 0 };
  if (max === 0 || maxPages === 0) return out;
  if (iter.type === 'ubuf') return extractUserPages(iter, pages, max, Math.min(maxPages, pages.length), o, out);
  return extractBvecPages(iter, pages, max, Math.min(maxPages, pages.length), out);
}

// iov_iter_extract_bvec_pages: walk single-page pieces of the vectors from where the iterator stands
function extractBvecPages(it: IovIter, pages: Uint32Array, maxSize: number, maxPages: number, out: ExtractResult): ExtractResult {
  if (it.nrSegs === 0) return out;
  if (it.iovOffset === bvLen(it, it.bvec)) {
    it.iovOffset = 0;
    it.nrSegs--;
    it.bvec++;
  }
  let skip = it.iovOffset;
  maxPages = Math.min(maxPages, Math.ceil((maxSize + skip) / PAGE_SIZE));
  let idx = 0;
  let size = maxSize;
  let total = 0;
  let k = 0;
  while (size > 0 && idx < it.nrSegs) {
    const w = it.bvec + idx;
    const mpOff = bvOffset(it, w) + skip;
    const off = mpOff % PAGE_SIZE;
    const len = Math.min(size, bvLen(it, w) - skip, PAGE_SIZE - off);
    if (k > 0) {
      if (off !== 0) break;
    } else {
      out.offset = off;
    }
    pages[k++] = bvPage(it, w) + Math.floor(mpOff / PAGE_SIZE);
    total += len;
    if (k >= maxPages) break;
    if (off + len !== PAGE_SIZE) break;
    // bvec_iter_advance_single
    skip += len;
    size -= len;
    if (skip === bvLen(it, w)) {
      skip = 0;
      idx++;
    }
  }
  advance(it, total);
  out.bytes = total;
  out.nPages = k;
  return out;
}

/** @internal `iov_iter_extract_user_pages`: pins into `pages`; returns what was taken. */
export function extractUserPages(it: IovIter, pages: Uint32Array, maxSize: number, maxPages: number, o: ExtractOptions, out: ExtractResult): ExtractResult {
  const mm = it.mm!;
  const offset = it.addr % PAGE_SIZE;
  const n = Math.min(maxPages, Math.ceil((maxSize + offset) / PAGE_SIZE));
  const flags = (it.dir === 'dest' ? FOLL_WRITE : 0) | (o.longterm ? FOLL_LONGTERM : 0);
  const got = pinUserPagesFast(mm, it.addr - offset, n, flags, pages, { owner: o.owner });
  if (got <= 0) fail('EFAULT', `no page could be pinned at ${it.addr}`);
  const bytes = Math.min(maxSize, got * PAGE_SIZE - offset);
  advance(it, bytes);
  out.bytes = bytes;
  out.offset = offset;
  out.nPages = got;
  return out;
}

