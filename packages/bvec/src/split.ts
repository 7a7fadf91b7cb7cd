// Splitting a bio to a queue's limits at submission (block/blk-merge.c: bio_split_rw,
// bio_split_rw_at, get_max_io_size; block/bio.c: bio_split), through core's split loop.

import {
  bioSplitRwAt, blkValidateLimits, bvecSegGap, fail, ffs, getMaxIoSize, PAGE_SIZE, SECTOR_SIZE,
  type QueueLimits, type QueueLimitsOptions, type SplitDecision,
} from '@iodesc/core';
import { Bio, checkBio, type BvecIter } from './bio.js';
import { bvLen } from './bvec.js';
import { BvecRanges } from './ranges.js';

const view = new BvecRanges();
const decision: SplitDecision = { error: null, sectors: 0, segs: 0, gapBit: 0, reason: '' };

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
 * Splits `bio` as submission does (`__bio_split_to_limits` → `bio_split_rw`, repeated on the
 * remainder): each part holds at most `get_max_io_size` sectors (`maxSectors`, chunk and
 * physical-block alignment from its start sector), `maxSegments` segments of
 * `get_max_segment_size`, and no virt-boundary gap inside; a split point is rounded down to
 * the logical block. Returns the parts in order: clones sharing the bio's vectors (each its
 * own `biIter`, `biSector` advancing by the sizes before it, its gap bit recorded) and last the
 * bio itself, advanced over them. A bio needing no split comes back alone, its gap bit
 * recorded. EINVAL, with the bio unchanged and no part made, for a vector whose page offset or
 * length breaks `dmaAlignment`, or when no whole logical block fits before a split (the kernel
 * fails the bio). Cost: O(vectors) per part; one clone (no vector copy) per split.
 */
export function bioSplitToLimits(bio: Bio, limits?: QueueLimitsOptions | QueueLimits): Bio[] {
  checkBio('bio', bio);
  const lim = blkValidateLimits(limits);
  const it: BvecIter = { ...bio.biIter };
  const cuts: number[] = [];
  const bits: number[] = [];
  let lastBit = 0;
  while (it.biSize > 0) {
    const maxBytes = getMaxIoSize(lim, it.biSector) * SECTOR_SIZE;
    const d = bioSplitRwAt(lim, view.reset(bio, it), maxBytes, decision);
    if (d.error !== null) {
      const why = d.reason === '' ? `a vector's offset or length is not aligned to dmaAlignment + 1 = ${lim.dmaAlignment + 1}` : `the bytes that fit before the ${d.reason} split are less than one logical block (${lim.logicalBlockSize})`;
      fail('EINVAL', `bio at sector ${it.biSector} cannot be split: ${why}`);
    }
    if (d.sectors === 0) {
      lastBit = d.gapBit;
      break;
    }
    cuts.push(d.sectors * SECTOR_SIZE);
    bits.push(d.gapBit);
    advanceIter(bio, it, d.sectors * SECTOR_SIZE);
  }
  const parts: Bio[] = [];
  for (let k = 0; k < cuts.length; k++) {
    const part = Bio.cloneOf(bio, { ...bio.biIter, biSize: cuts[k]! });
    part.biBvecGapBit = bits[k]!;
    part.gapBitSet = true;
    parts.push(part);
    advanceIter(bio, bio.biIter, cuts[k]!);
  }
  bio.biBvecGapBit = lastBit;
  bio.gapBitSet = true;
  parts.push(bio);
  return parts;
}

/** The gap bit of a bio: recorded by its split, else ffs of the gaps between all its vectors. */
export function bioGapBit(bio: Bio): number {
  if (bio.gapBitSet) return bio.biBvecGapBit;
  const r = view.reset(bio, bio.biIter);
  let gaps = 0;
  for (let i = 1; i < r.count; i++) gaps = (gaps | bvecSegGap(r.phys(i - 1) % PAGE_SIZE, r.length(i - 1), r.phys(i) % PAGE_SIZE)) >>> 0;
  return ffs(gaps);
}
