// Splitting a bio to a queue's limits at submission (block/blk-merge.c: bio_split_rw,
// bio_split_rw_at, get_max_io_size; block/bio.c: bio_split), through core's split loop.

import {
  bioSplitRwAt, blkValidateLimits, bvecSegGap, fail, ffs, getMaxIoSize, SECTOR_SIZE,
  type QueueLimits, type QueueLimitsOptions, type SplitDecision,
} from '@iodesc/core';
import { Bio, checkBio, type BvecIter } from './bio.js';
import { bvLen, bvOffset } from './bvec.js';
import { BvecRanges } from './ranges.js';

const view = new BvecRanges();
const decision: SplitDecision = { error: null, sectors: 0, segs: 0, bytes: 0, gapBit: 0, reason: '' };

// bio_advance_iter over a plain iterator: sector and bytes together
function advanceIter(v: Bio, it: BvecIter, bytes: number): void {
  it.biSector += bytes / SECTOR_SIZE;
  it.biSize -= bytes;
  let left = bytes + it.biBvecDone;
  while (left > 0 && left >= bvLen(v, it.biIdx)) {
    left -= bvLen(v, it.biIdx);
    it.biIdx++;
  }
  it.biBvecDone = left;
}

/**
 * `bio_may_need_split`: false, so that submission skips `bio_split_rw` altogether, when there
 * is no `chunkSectors` and what the iterator covers is within one vector whose
 * `bv_offset + bv_len` fits `maxFastSegmentSize` (every driver takes such a bio).
 */
function bioMayNeedSplit(lim: QueueLimits, v: Bio, it: BvecIter): boolean {
  if (lim.chunkSectors !== 0) return true;
  const len = bvLen(v, it.biIdx);
  if (it.biSize > len - it.biBvecDone) return true;
  return len + bvOffset(v, it.biIdx) > lim.maxFastSegmentSize;
}

/**
 * Splits `bio` as submission does (`__bio_split_to_limits` → `bio_split_rw`, repeated on the
 * remainder as it is resubmitted): a remainder `bio_may_need_split` passes over (one vector
 * within `maxFastSegmentSize`, no `chunkSectors`) goes as it is, unchecked; otherwise each
 * part holds at most `get_max_io_size` sectors (`maxSectors`, chunk and physical-block
 * alignment from its start sector), `maxSegments` segments of `get_max_segment_size`, and no
 * virt-boundary gap inside; a split point is rounded down to the logical block. Returns the
 * parts in order: clones sharing the bio's vectors (each its own `biIter`, `biSector`
 * advancing by the sizes before it) and last the bio itself, advanced over them.
 *
 * Gap bits as the kernel leaves them: `bio_split_io_at` writes ffs(gaps scanned) into the bio
 * being split, and `bio_split`'s clone starts from `bio_init` (0) without copying it, so every
 * part comes back with `biBvecGapBit` 0 (recorded), and the bio with the bit of the last scan
 * that ran on it: its own when the last round found no split, the previous part's when the
 * last remainder took the shortcut; untouched when no scan ran at all.
 *
 * EINVAL, with the bio unchanged and no part made, for a vector whose page offset or length
 * breaks `dmaAlignment`, or when no whole logical block fits before a split (the kernel fails
 * the bio). Cost: O(vectors) in all, plus one clone (no vector copy) per split.
 */
export function bioSplitToLimits(bio: Bio, limits?: QueueLimitsOptions | QueueLimits): Bio[] {
  checkBio('bio', bio);
  const lim = blkValidateLimits(limits);
  const it: BvecIter = { ...bio.biIter };
  const cuts: number[] = [];
  let scanned = false;
  let lastBit = 0;
  // where the bio's bytes end (vector index, bytes used of it): each round's view in O(1)
  view.reset(bio, it);
  const endIdx = it.biIdx + view.count - 1;
  const endLen = view.count === 1 ? it.biBvecDone + view.lastLength : view.lastLength;
  while (it.biSize > 0) {
    if (!bioMayNeedSplit(lim, bio, it)) break;
    const maxBytes = getMaxIoSize(lim, it.biSector) * SECTOR_SIZE;
    const d = bioSplitRwAt(lim, view.resetTo(bio, it, endIdx, endLen), maxBytes, decision);
    if (d.error !== null) {
      const why = d.reason === '' ? `a vector's offset or length is not aligned to dmaAlignment + 1 = ${lim.dmaAlignment + 1}` : `the bytes that fit before the ${d.reason} split are less than one logical block (${lim.logicalBlockSize})`;
      fail('EINVAL', `bio at sector ${it.biSector} cannot be split: ${why}`);
    }
    scanned = true;
    lastBit = d.gapBit;
    if (d.sectors === 0) break;
    cuts.push(d.sectors * SECTOR_SIZE);
    advanceIter(bio, it, d.sectors * SECTOR_SIZE);
  }
  const parts: Bio[] = [];
  for (let k = 0; k < cuts.length; k++) {
    const part = Bio.cloneOf(bio, { ...bio.biIter, biSize: cuts[k]! });
    // bio_alloc_clone → bio_init zeroes bi_bvec_gap_bit; __bio_clone does not copy it
    part.biBvecGapBit = 0;
    part.gapBitSet = true;
    parts.push(part);
    advanceIter(bio, bio.biIter, cuts[k]!);
  }
  if (scanned) {
    bio.biBvecGapBit = lastBit;
    bio.gapBitSet = true;
  }
  parts.push(bio);
  return parts;
}

/** The gap bit of a bio: recorded by its split, else ffs of the gaps between all its vectors. */
export function bioGapBit(bio: Bio): number {
  if (bio.gapBitSet) return bio.biBvecGapBit;
  const r = view.reset(bio, bio.biIter);
  let gaps = 0;
  for (let i = 1; i < r.count; i++) gaps = (gaps | bvecSegGap(r.offset(i - 1), r.length(i - 1), r.offset(i))) >>> 0;
  return ffs(gaps);
}
