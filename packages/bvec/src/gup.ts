// The GUP that fills bio_vecs (block/bio.c: bio_iov_iter_get_pages, bio_iov_iter_align_down,
// __bio_release_pages; lib/iov_iter.c: iov_iter_extract_bvecs, get_contig_folio_len): user
// pages pinned with FOLL_PIN straight into the tail of the bio's own vector array, then
// rewritten in place as vectors, one per run of consecutive pages of one folio.

import { BIO_MAX_SIZE, checkBool, checkLenAlignMask, checkOptions, fail, isIodescError, PAGE_SIZE, unpinUserPagesDirtyLock, type PhysicalMemory } from '@iodesc/core';
import { Bio, bioFull, checkBio } from './bio.js';
import { BVEC_LEN, BVEC_OFFSET, BVEC_PAGE, BVEC_STRIDE, bvecSet, bvLen, bvOffset, bvPage } from './bvec.js';
import { extractUserPages, iovIterAdvance, IovIter, iovIterRevert, type ExtractOptions, type ExtractResult } from './iov-iter.js';

/** Options of `bioIovIterGetPages`. */
export interface BioGetPagesOptions {
  /**
   * `len_align_mask`: the bio's size is trimmed down to a multiple of mask + 1 (default 0); a
   * mask 2^k − 1 up to 65535 (`bdev_logical_block_size - 1` with 64 KiB blocks).
   */
  lenAlignMask?: number;
  /** FOLL_LONGTERM. */
  longterm?: boolean;
  /** Tag named by the leak report. */
  owner?: string;
}

const scratchResult: ExtractResult = { bytes: 0, offset: 0, nPages: 0 };

/**
 * `get_contig_folio_len`: bytes of the run starting at byte `offset` of the page at
 * `vecs[at]`, continuing through pages that follow it physically inside the same folio, at
 * most `left`; sets `contigPages` to the pages it covers.
 */
let contigPages = 0;
function getContigFolioLen(memory: PhysicalMemory, vecs: Uint32Array, at: number, left: number, offset: number): number {
  const first = vecs[at]!;
  const order = memory.order[first]!;
  let contig = Math.min(PAGE_SIZE - offset, left);
  // a small folio is its one page: nothing can follow it
  if (order === 0) {
    contigPages = 1;
    return contig;
  }
  const head = memory.folioHead(first);
  const folioOffset = (first - head) * PAGE_SIZE + offset;
  const len = Math.min(2 ** order * PAGE_SIZE - folioOffset, left);
  left -= contig;
  const maxPages = Math.ceil((offset + len) / PAGE_SIZE);
  let i = 1;
  for (; i < maxPages; i++) {
    const p = vecs[at + i]!;
    if (p !== vecs[at + i - 1]! + 1 || memory.folioHead(p) !== head) break;
    const next = Math.min(PAGE_SIZE, left);
    contig += next;
    left -= next;
  }
  contigPages = i;
  return contig;
}

/**
 * `iov_iter_extract_bvecs` for a user iterator: pins up to the free vector slots' worth of
 * pages into the upper part of those slots, then writes vectors from the first free slot up
 * (a vector never overtakes the pages still to be read). Returns bytes added; throws what GUP
 * threw when the first page failed.
 */
function extractBvecs(bio: Bio, it: IovIter, maxSize: number, o: ExtractOptions): number {
  const memory = bio.memory!;
  const left0 = bio.maxVecs - bio.biVcnt;
  const vecs = bio.vecs;
  const slot0 = bio.base + bio.biVcnt * BVEC_STRIDE;
  // page k sits at word pagesAt + k: past where vector k will be written
  const pagesAt = slot0 + left0 * (BVEC_STRIDE - 1);
  const batch = vecs.subarray(pagesAt, pagesAt + left0);
  const r = extractUserPages(it, batch, Math.min(maxSize, it.count), left0, o, scratchResult);
  const size = r.bytes;
  let offset = r.offset;
  let i = 0;
  for (let left = size; left > 0; ) {
    const len = getContigFolioLen(memory, vecs, pagesAt + i, left, offset);
    bvecSet(bio, bio.biVcnt, vecs[pagesAt + i]!, len, offset);
    i += contigPages;
    bio.biVcnt++;
    offset = 0;
    left -= len;
  }
  // pages pinned past the bytes taken (none here: the batch is sized to them) go back
  if (i < r.nPages) unpinUserPagesDirtyLock(memory, batch.subarray(i), r.nPages - i, false);
  return size;
}

/**
 * `bio_iov_iter_get_pages` for a user iterator (`iovIterUbuf`): pins pages with FOLL_PIN
 * (FOLL_WRITE for a 'dest' iterator) straight into the bio's vectors, one vector per run of
 * consecutive pages of one folio (never merged into a vector added before), until the bio is
 * full or the iterator empty, and marks the bio BIO_PAGE_PINNED. A GUP failure after some
 * pages were pinned ends the fill quietly; an error is thrown only when the bio holds no
 * vector (nothing pinned). The size is then trimmed to `lenAlignMask`, unpinning the vectors
 * dropped (EFAULT if none remains). For an ITER_BVEC iterator the bio borrows its vectors
 * (`bio_iov_bvec_set`; the bio must have been made with `maxVecs: 0`). Returns the bytes
 * added. Release with `bioRelease`, then `bioPut`. Cost: O(pages).
 */
export function bioIovIterGetPages(bio: Bio, iter: IovIter, opts?: BioGetPagesOptions): number {
  checkBio('bio', bio);
  if (!(iter instanceof IovIter)) fail('EINVAL', 'iter must be an IovIter');
  const o = checkOptions('bioIovIterGetPages options', opts);
  const mask = o.lenAlignMask === undefined ? 0 : checkLenAlignMask('lenAlignMask', o.lenAlignMask);
  if (o.longterm !== undefined) checkBool('longterm', o.longterm);
  if (bio.cloned) fail('EIO', 'a cloned bio cannot take pages');
  if (iter.type === 'bvec') return bvecSetFromIter(bio, iter);
  if (bio.memory !== null && bio.memory !== iter.memory) fail('EINVAL', "the bio's memory is not the iterator's");
  bio.memory = iter.memory;
  bio.pinned = true;
  const before = bio.biIter.biSize;
  do {
    let got: number;
    try {
      got = bio.biVcnt >= bio.maxVecs ? 0 : extractBvecs(bio, iter, BIO_MAX_SIZE - bio.biIter.biSize, { longterm: o.longterm, owner: o.owner });
    } catch (e) {
      if (!isIodescError(e) || bio.biVcnt === 0) throw e;
      break;
    }
    if (got <= 0) {
      if (bio.biVcnt === 0) fail('EFAULT', 'no page could be pinned');
      break;
    }
    bio.biIter.biSize += got;
  } while (iter.count > 0 && !bioFull(bio, 0));
  alignDown(bio, iter, mask);
  return bio.biIter.biSize - before;
}

// bio_iov_bvec_set: the bio walks the iterator's vectors where they are
function bvecSetFromIter(bio: Bio, iter: IovIter): number {
  if (bio.maxVecs !== 0) fail('EINVAL', 'a bio borrowing an ITER_BVEC iterator must be made with maxVecs: 0');
  bio.vecs = iter.vecs;
  bio.base = iter.base + iter.bvec * BVEC_STRIDE;
  bio.memory = iter.memory;
  bio.cloned = true;
  bio.biIter.biIdx = 0;
  bio.biIter.biBvecDone = iter.iovOffset;
  bio.biIter.biSize = iter.count;
  const n = iter.count;
  iovIterAdvance(iter, n);
  return n;
}

/**
 * `bio_iov_iter_align_down`: trims the size to a multiple of mask + 1, shortening the last
 * vector or dropping whole ones, and gives the bytes back to the iterator. Every pin the
 * trimmed bytes held goes: all the pages a dropped vector spans (the kernel unpins its first
 * page only) and the tail pages a shortened vector no longer reaches (the kernel keeps them,
 * and `__bio_release_pages`, walking the shorter vector, never unpins them).
 */
function alignDown(bio: Bio, iter: IovIter, mask: number): void {
  let nbytes = bio.biIter.biSize % (mask + 1);
  if (nbytes === 0) return;
  iovIterRevert(iter, nbytes);
  bio.biIter.biSize -= nbytes;
  while (nbytes > 0) {
    const last = bio.biVcnt - 1;
    const len = bvLen(bio, last);
    if (nbytes < len) {
      const off = bvOffset(bio, last);
      const keep = Math.ceil((off + len - nbytes) / PAGE_SIZE);
      const had = Math.ceil((off + len) / PAGE_SIZE);
      bio.vecs[bio.base + last * BVEC_STRIDE + BVEC_LEN] = len - nbytes;
      if (had > keep) unpinPages(bio, bvPage(bio, last) + keep, had - keep);
      break;
    }
    releaseVector(bio, last);
    bio.biVcnt--;
    nbytes -= len;
  }
  if (bio.biVcnt === 0) fail('EFAULT', `nothing is left once the size is aligned to ${mask + 1} bytes`);
}

// scratch PFN list for releases, grown as needed (never per bio once warm)
let scratch: Uint32Array = new Uint32Array(1024);

function grow(a: Uint32Array, need: number): Uint32Array {
  const b = new Uint32Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

// Unpins every page vector `i` spans.
function releaseVector(bio: Bio, i: number): void {
  unpinPages(bio, bvPage(bio, i), Math.ceil((bvOffset(bio, i) + bvLen(bio, i)) / PAGE_SIZE));
}

// Unpins the `n` consecutive pages from `first` (not dirtied).
function unpinPages(bio: Bio, first: number, n: number): void {
  if (scratch.length < n) scratch = new Uint32Array(n);
  for (let k = 0; k < n; k++) scratch[k] = first + k;
  unpinUserPagesDirtyLock(bio.memory!, scratch, n, false);
}

/**
 * `bio_release_pages` / `__bio_release_pages` over the chain from `bio`: for each folio a
 * vector covers, marks it dirty when `dirty` (under the folio lock, as the kernel does it) and
 * unpins the pages of it the vector spans. Bios that pinned nothing are skipped; releasing a
 * bio twice is EINVAL (the kernel would underflow the pin count). Vectors stay until `bioPut`.
 * Cost: O(pages).
 */
export function bioRelease(bio: Bio, opts: { dirty: boolean }): void {
  checkBio('bio', bio);
  const o = checkOptions('bioRelease options', opts);
  const dirty = checkBool('dirty', o.dirty);
  for (let b: Bio | null = bio; b !== null; b = b.biNext) {
    if (b.released) fail('EINVAL', 'the bio was released already');
  }
  for (let b: Bio | null = bio; b !== null; b = b.biNext) {
    if (!b.pinned || b.cloned) continue;
    // every page each vector spans, in one list: core's unpin groups them per folio
    const vecs = b.vecs;
    let n = 0;
    for (let i = 0, w = b.base; i < b.biVcnt; i++, w += BVEC_STRIDE) {
      const first = vecs[w + BVEC_PAGE]!;
      const pages = Math.ceil((vecs[w + BVEC_OFFSET]! + vecs[w + BVEC_LEN]!) / PAGE_SIZE);
      if (scratch.length < n + pages) scratch = grow(scratch, n + pages);
      for (let p = 0; p < pages; p++) scratch[n++] = first + p;
    }
    unpinUserPagesDirtyLock(b.memory!, scratch, n, dirty);
    b.pinned = false;
    b.released = true;
  }
}
