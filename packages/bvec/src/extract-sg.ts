// extract_iter_to_sg (lib/scatterlist.c) for the iterators this package builds: ITER_BVEC
// (extract_bvec_to_sg: one entry per vector, multi-page, no pin) and ITER_UBUF
// (extract_user_to_sg: one entry per page, pinned with FOLL_PIN), appended to a
// caller-allocated scatterlist.

import { checkInt, fail, PAGE_SIZE, unpinUserPage } from '@iodesc/core';
import { bvLen, bvOffset, bvPage } from './bvec.js';
import { extractUserPages, iovIterAdvance, IovIter, type ExtractResult } from './iov-iter.js';

/**
 * A caller-allocated scatterlist as `extract_iter_to_sg` fills it (`struct sg_table`'s `sgl`,
 * `nents` in use, `orig_nents` left alone): entry `i` is `length[i]` bytes from byte
 * `offset[i]` of page `pfn[i]` (the offset may pass PAGE_SIZE for a multi-page bvec, as
 * `sg_set_page` takes it).
 */
export class SgEntryTable {
  readonly pfn: Uint32Array;
  readonly offset: Uint32Array;
  readonly length: Uint32Array;
  /** Entries in use (`nents`). */
  nents = 0;
  /** `orig_nents`: entries a failed user extraction keeps (it unpins those past it). */
  origNents = 0;

  constructor(readonly capacity: number) {
    checkInt('capacity', capacity, 0, 2 ** 26);
    this.pfn = new Uint32Array(capacity);
    this.offset = new Uint32Array(capacity);
    this.length = new Uint32Array(capacity);
  }

  /** The entries in use, a fresh `{ pfn, offset, length }` each. */
  entries(): Array<{ pfn: number; offset: number; length: number }> {
    const out: Array<{ pfn: number; offset: number; length: number }> = [];
    for (let i = 0; i < this.nents; i++) out.push({ pfn: this.pfn[i]!, offset: this.offset[i]!, length: this.length[i]! });
    return out;
  }
}

function sgSetPage(t: SgEntryTable, pfn: number, len: number, off: number): void {
  const k = t.nents++;
  t.pfn[k] = pfn;
  t.offset[k] = off;
  t.length[k] = len;
}

/**
 * `extract_iter_to_sg`: appends up to `sgMax` entries covering up to `maxSize` bytes of `iter`
 * to `table` from `table.nents` on, advancing the iterator; returns the bytes added (0 when
 * `maxSize` or `sgMax` is 0). ITER_BVEC: one entry per vector from where the iterator stands,
 * no pin. ITER_UBUF: pages pinned in batches, one entry per page; the caller unpins them
 * (`unpinUserPage` per entry); when a batch fails, every entry past `origNents` is unpinned
 * and dropped and the error is thrown (or 0 returned when the iterator ran empty before
 * `maxSize`, as the kernel does). EINVAL when the table has fewer than `sgMax` free
 * entries. Cost: O(entries).
 */
export function extractIterToSg(iter: IovIter, maxSize: number, table: SgEntryTable, sgMax: number): number {
  if (!(iter instanceof IovIter)) fail('EINVAL', 'iter must be an IovIter');
  if (!(table instanceof SgEntryTable)) fail('EINVAL', 'table must be an SgEntryTable');
  checkInt('maxSize', maxSize);
  checkInt('sgMax', sgMax, 0, table.capacity - table.nents);
  if (maxSize === 0 || sgMax === 0) return 0;
  return iter.type === 'bvec' ? extractBvecToSg(iter, maxSize, table, sgMax) : extractUserToSg(iter, maxSize, table, sgMax);
}

// extract_bvec_to_sg: whole vectors (the first less iov_offset), cut by maxSize
function extractBvecToSg(it: IovIter, maxSize: number, t: SgEntryTable, sgMax: number): number {
  let start = it.iovOffset;
  let ret = 0;
  for (let i = 0; i < it.nrSegs; i++) {
    const k = it.bvec + i;
    let len = bvLen(it, k);
    if (start >= len) {
      start -= len;
      continue;
    }
    len = Math.min(maxSize, len - start);
    sgSetPage(t, bvPage(it, k), len, bvOffset(it, k) + start);
    sgMax--;
    ret += len;
    maxSize -= len;
    if (maxSize <= 0 || sgMax === 0) break;
    start = 0;
  }
  if (ret > 0) iovIterAdvance(it, ret);
  return ret;
}

const scratch: ExtractResult = { bytes: 0, offset: 0, nPages: 0 };
let batch = new Uint32Array(64);

// extract_user_to_sg: pin a batch of pages, one entry per page, until maxSize or sgMax runs out
function extractUserToSg(it: IovIter, maxSize: number, t: SgEntryTable, sgMax: number): number {
  if (batch.length < sgMax) batch = new Uint32Array(sgMax);
  let ret = 0;
  do {
    // iov_iter_extract_pages returns 0 once the iterator is empty: the kernel takes that as a
    // failure too (a caller asking for more than the iterator holds loses its entries)
    let bytes = 0;
    if (it.count > 0) {
      try {
        bytes = extractUserPages(it, batch, Math.min(maxSize, it.count), sgMax, {}, scratch).bytes;
      } catch (e) {
        unpinPastOrig(it, t);
        throw e;
      }
    }
    if (bytes <= 0) {
      unpinPastOrig(it, t);
      return 0;
    }
    let len = bytes;
    let off = scratch.offset;
    maxSize -= len;
    ret += len;
    const n = Math.ceil((off + len) / PAGE_SIZE);
    sgMax -= n;
    for (let p = 0; p < n; p++) {
      const seg = Math.min(PAGE_SIZE - off, len);
      sgSetPage(t, batch[p]!, seg, off);
      len -= seg;
      off = 0;
    }
  } while (maxSize > 0 && sgMax > 0);
  return ret;
}

// the failed: label: every entry past orig_nents unpinned and dropped
function unpinPastOrig(it: IovIter, t: SgEntryTable): void {
  while (t.nents > t.origNents) unpinUserPage(it.memory!, t.pfn[--t.nents]!);
}
