// The bvec backend's descriptor: a chain of bios (pooled vectors, as bvec_slabs hands them
// out) or one flat bvec array (as io_uring's registered buffer holds one), with what the
// kernel would allocate for it.

import { fail, PAGE_SIZE, type Footprint, type IoDescriptor, type PhysicalMemory, type Segment } from '@iodesc/core';
import { Bio, bioAllocBytes, bioPut } from './bio.js';
import { BVEC_BYTES, BvecArray, bvLen, bvOffset, bvPage } from './bvec.js';
import type { BlkSgTable } from './map.js';

/** Bytes described by bios or a flat array, as one descriptor. */
export class BvecDescriptor implements IoDescriptor {
  readonly backend = 'bvec';
  /** The conversion table `dmaMap` built (blk_rq_map_sg) while its mapping is live. */
  sgTable: BlkSgTable | null = null;
  /** Whether `getUser` pinned the pages (until `putUser`). */
  pinned: boolean;

  constructor(
    readonly memory: PhysicalMemory,
    /** The first bio of the chain (null for a flat array). */
    readonly bio: Bio | null,
    /** The flat array (null for bios). */
    readonly flat: BvecArray | null,
    readonly length: number,
    pinned: boolean,
  ) {
    this.pinned = pinned;
  }

  /**
   * Returns the vectors of a `fromPages` descriptor to their pools (`bio_put`); the descriptor
   * is empty afterwards. EINVAL while it holds pins (`putUser` does both for those).
   */
  put(): void {
    if (this.pinned) fail('EINVAL', 'the descriptor still holds pins: putUser releases them');
    if (this.bio !== null) bioPut(this.bio);
  }

  /** Bios of the chain, in order. */
  bios(): Bio[] {
    const out: Bio[] = [];
    for (let b = this.bio; b !== null; b = b.biNext) out.push(b);
    return out;
  }

  get nrSegments(): number {
    if (this.flat !== null) return this.flat.count;
    let n = 0;
    for (let b = this.bio; b !== null; b = b.biNext) n += b.biVcnt;
    return n;
  }

  *segments(): Iterable<Segment> {
    if (this.flat !== null) {
      for (let i = 0; i < this.flat.count; i++) yield normalised(bvPage(this.flat, i), bvOffset(this.flat, i), bvLen(this.flat, i));
      return;
    }
    for (let b = this.bio; b !== null; b = b.biNext) for (const s of b.bvecs()) yield s;
  }

  /**
   * Per bio: its slab object, `struct bio` (136 bytes with its 20-byte `bvec_iter`) and the
   * bio set's 64-byte back pad (the inline vectors' room), and its slab of vectors (16 bytes
   * each, the slab class's count); for a flat array, its kvmalloc; plus the scatterlist
   * `dmaMap` built, while mapped.
   */
  footprint(): Footprint {
    const breakdown: Record<string, number> = {};
    let bytes = 0;
    let allocations = 0;
    let entries = 0;
    const add = (k: string, b: number): void => {
      breakdown[k] = (breakdown[k] ?? 0) + b;
      bytes += b;
    };
    if (this.flat !== null) {
      add('bio_vec', this.flat.allocBytes);
      allocations += 1;
      entries += this.flat.count;
    } else {
      for (let b = this.bio; b !== null; b = b.biNext) {
        const a = bioAllocBytes(b);
        add('bio', a.bio);
        if (a.bvec > 0) add('bio_vec', a.bvec);
        allocations += a.allocations;
        entries += b.biVcnt;
      }
    }
    if (this.sgTable !== null) {
      add('scatterlist', this.sgTable.cost.bytes);
      allocations += this.sgTable.cost.allocations;
    }
    return { bytes, allocations, entries, breakdown };
  }
}

// A vector as a Segment: the page holding its first byte and the offset in it.
function normalised(pfn: number, offset: number, length: number): Segment {
  return { pfn: pfn + Math.floor(offset / PAGE_SIZE), offset: offset % PAGE_SIZE, length };
}

/** Bytes of per-bvec bookkeeping: 16 per vector (the `bvec_iter`, 20 bytes, lives in the bio). */
export const BYTES_PER_BVEC = BVEC_BYTES;
