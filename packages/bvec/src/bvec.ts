// struct bio_vec in typed arrays (include/linux/bvec.h): 16 bytes per vector, page, length,
// offset, a vector possibly spanning physically contiguous pages; and the pools vectors come
// from (block/bio.c: bvec_slabs, biovec-16/64/128/max, and a bio's inline vectors).

import { fail, kmallocSize, PAGE_SIZE } from '@iodesc/core';

/** Bytes of one `struct bio_vec` on x86-64: an 8-byte page pointer, `bv_len`, `bv_offset`. */
export const BVEC_BYTES = 16;
/** 32-bit words per vector in the typed arrays. */
export const BVEC_STRIDE = BVEC_BYTES / 4;
/** Word of the page (the PFN stands for `bv_page`). */
export const BVEC_PAGE = 0;
/** Word 1, the page pointer's high half: unused, always written 0 with the vector. */
export const BVEC_PAGE_HI = 1;
/** Word of `bv_len`: bytes in the vector, up to 2^32 − 1. */
export const BVEC_LEN = 2;
/** Word of `bv_offset`: start within the first page, below PAGE_SIZE here. */
export const BVEC_OFFSET = 3;

/** `BIO_MAX_VECS`: the most vectors a bio holds. */
export const BIO_MAX_VECS = 256;
/** `BIO_INLINE_VECS`: bios of up to 4 vectors keep them inside the bio's own allocation. */
export const BIO_INLINE_VECS = 4;
/** The `bvec_slabs` classes: vectors per slab object. */
export const BVEC_SLAB_SIZES: readonly number[] = [16, 64, 128, BIO_MAX_VECS];

/** Anything holding bio_vecs: `vecs[base + i * BVEC_STRIDE + field]` is field of vector `i`. */
export interface BvecVector {
  readonly vecs: Uint32Array;
  readonly base: number;
}

/** `bv_page` of vector `i` (a PFN). Trusts `i`. */
export function bvPage(v: BvecVector, i: number): number {
  return v.vecs[v.base + i * BVEC_STRIDE + BVEC_PAGE]!;
}

/** `bv_len` of vector `i`. Trusts `i`. */
export function bvLen(v: BvecVector, i: number): number {
  return v.vecs[v.base + i * BVEC_STRIDE + BVEC_LEN]!;
}

/** `bv_offset` of vector `i`. Trusts `i`. */
export function bvOffset(v: BvecVector, i: number): number {
  return v.vecs[v.base + i * BVEC_STRIDE + BVEC_OFFSET]!;
}

/** `bvec_phys`: physical address of vector `i`'s first byte. Trusts `i`. */
export function bvPhys(v: BvecVector, i: number): number {
  const w = v.base + i * BVEC_STRIDE;
  return v.vecs[w + BVEC_PAGE]! * PAGE_SIZE + v.vecs[w + BVEC_OFFSET]!;
}

/** `bvec_set_page`: writes vector `i` (word 1 cleared). Trusts its arguments. */
export function bvecSet(v: BvecVector, i: number, pfn: number, len: number, offset: number): void {
  const w = v.base + i * BVEC_STRIDE;
  v.vecs[w + BVEC_PAGE] = pfn;
  v.vecs[w + BVEC_PAGE_HI] = 0;
  v.vecs[w + BVEC_LEN] = len;
  v.vecs[w + BVEC_OFFSET] = offset;
}

/**
 * A flat bvec array of fixed capacity (as io_uring's registered buffer holds one, allocated
 * with kvmalloc): `count` vectors in use.
 */
export class BvecArray implements BvecVector {
  readonly vecs: Uint32Array;
  readonly base = 0;
  count = 0;
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 0 || capacity > 2 ** 26) fail('EINVAL', `capacity = ${capacity} is outside [0, ${2 ** 26}]`);
    this.vecs = new Uint32Array(capacity * BVEC_STRIDE);
  }

  /** Bytes the kernel's kvmalloc of this array would take (kmalloc class, or whole pages). */
  get allocBytes(): number {
    return this.capacity === 0 ? 0 : kmallocSize(this.capacity * BVEC_BYTES);
  }
}

/**
 * One slab class (`struct biovec_slab`): chunks of slots, each slot `vecsPerSlot` vectors; a
 * stack of free slots as (chunk, word base) pairs in two parallel arrays, so taking and returning a slot allocates nothing.
 */
export class BvecSlab {
  private readonly freeChunk: Uint32Array[] = [];
  private readonly freeBase: number[] = [];
  /** Slots handed out and not returned. */
  inUse = 0;
  constructor(readonly vecsPerSlot: number, private readonly slotsPerChunk: number, readonly inline = false) {}

  take(out: { vecs: Uint32Array; base: number }): void {
    if (this.freeBase.length === 0) this.grow();
    out.vecs = this.freeChunk.pop()!;
    out.base = this.freeBase.pop()!;
    this.inUse++;
  }

  give(vecs: Uint32Array, base: number): void {
    this.freeChunk.push(vecs);
    this.freeBase.push(base);
    this.inUse--;
  }

  // a new chunk of slots: the only typed-array allocation, amortised over slotsPerChunk bios
  private grow(): void {
    const words = this.vecsPerSlot * BVEC_STRIDE;
    const chunk = new Uint32Array(words * this.slotsPerChunk);
    for (let s = this.slotsPerChunk - 1; s >= 0; s--) {
      this.freeChunk.push(chunk);
      this.freeBase.push(s * words);
    }
  }
}

// inline vectors ride in the bio's allocation; the slabs hold 16, 64, 128 and 256
const inlineSlab = new BvecSlab(BIO_INLINE_VECS, 256, true);
const slabs = BVEC_SLAB_SIZES.map((n) => new BvecSlab(n, Math.max(4, 4096 / n)));

/**
 * The pool a bio of `maxVecs` vectors takes its vectors from (`biovec_slab`): inline up to 4,
 * then the smallest slab class that fits. Trusts `maxVecs` in [0, BIO_MAX_VECS].
 */
export function bvecSlabFor(maxVecs: number): BvecSlab {
  if (maxVecs <= BIO_INLINE_VECS) return inlineSlab;
  for (const s of slabs) if (maxVecs <= s.vecsPerSlot) return s;
  return fail('EINVAL', `maxVecs = ${maxVecs} is above BIO_MAX_VECS (${BIO_MAX_VECS})`);
}

/** Slots of each pool in use (inline first, then 16, 64, 128, 256 vectors): a leak check for bios not put. */
export function bvecPoolInUse(): number[] {
  return [inlineSlab.inUse, ...slabs.map((s) => s.inUse)];
}
