// struct bio and its vectors (include/linux/blk_types.h, block/bio.c): a bio of fixed vector
// capacity, its bvec_iter, adding pages with the merge rule of bio_add_page /
// bvec_try_merge_page, and bio_add_folio.

import { BIO_MAX_SIZE, checkInt, checkOptions, fail, PAGE_SIZE, PhysicalMemory } from '@iodesc/core';
import { BIO_INLINE_VECS, BIO_MAX_VECS, BVEC_BYTES, BVEC_LEN, BVEC_STRIDE, bvecSet, bvecSlabFor, bvPage, bvLen, bvOffset, type BvecSlab, type BvecVector } from './bvec.js';

/**
 * `sizeof(struct bio)` on x86-64 at mainline 7.1, derived from its definition
 * (include/linux/blk_types.h; `enum rw_hint` is `__packed`, one byte, so `bi_write_hint`,
 * `bi_write_stream`, `bi_status` and `bi_bvec_gap_bit` share one word): 96 bytes with no
 * optional members; 112 with CONFIG_BLK_CGROUP (`bi_blkg`, `issue_time_ns`), 120 adding
 * CONFIG_BLK_CGROUP_IOCOST (`bi_iocost_cost`), 136 adding CONFIG_BLK_INLINE_ENCRYPTION
 * (`bi_crypt_context`) and CONFIG_BLK_DEV_INTEGRITY (`bi_integrity`), as distribution kernels
 * build. We charge 136. The 20-byte `bvec_iter` lies inside it (offset 40, packed).
 */
export const BIO_BYTES = 136;
/** Byte offset of `bi_iter` in `struct bio` on x86-64 (after `bi_io_vec` at 32). */
export const BIO_ITER_OFFSET = 40;
/** `sizeof(struct bvec_iter)`: sector (8), size, idx, bvec_done (4 each), packed. */
export const BVEC_ITER_BYTES = 20;

/**
 * `struct bvec_iter`: where a walk over a bio stands. `biSector` in 512-byte sectors,
 * `biSize` bytes left, `biIdx` the current vector, `biBvecDone` bytes done in it.
 */
export interface BvecIter {
  biSector: number;
  biSize: number;
  biIdx: number;
  biBvecDone: number;
}

/**
 * `bio_set.back_pad` of a set made with BIOSET_NEED_BVECS (fs_bio_set, the block device and
 * iomap direct-I/O sets): room for BIO_INLINE_VECS vectors after every bio of its slab, used
 * or not. The sets split parts come from (`disk->bio_split`, flags 0) have none.
 */
export const BIO_BACK_PAD = BIO_INLINE_VECS * BVEC_BYTES;

/** Options of `new Bio`. */
export interface BioOptions {
  /**
   * Vectors asked for, 0..BIO_MAX_VECS (default BIO_MAX_VECS): up to 4 are inline and the bio
   * holds as many as asked; above 4 the bio holds the whole slab slot (`maxVecs` 16, 64, 128
   * or 256, as `bio_alloc_bioset` upgrades `nr_vecs` to `bvs->nr_vecs`).
   */
  maxVecs?: number;
  /** The memory the pages live in (needed to copy bytes and to release pins). */
  memory?: PhysicalMemory;
  /** First sector of the I/O (default 0). */
  sector?: number;
}

/**
 * A bio: `biVcnt` vectors of `maxVecs` in the pooled typed array `vecs` from word `base`
 * (`bi_io_vec`), the iterator `biIter`, the next bio of a chain (`biNext`). Its vectors come
 * from the bvec pools (inline for up to 4), never from an allocation of its own; `bioPut`
 * returns them. A clone (a split part) shares its parent's vectors and owns none.
 */
export class Bio implements BvecVector {
  vecs: Uint32Array;
  base: number;
  readonly maxVecs: number;
  biVcnt = 0;
  readonly biIter: BvecIter;
  biNext: Bio | null = null;
  /** `bi_bvec_gap_bit`, set by the split (`bio_split_io_at`). */
  biBvecGapBit = 0;
  /** Whether `biBvecGapBit` was recorded by a split (else it is computed when needed). */
  gapBitSet = false;
  memory: PhysicalMemory | null;
  /** BIO_PAGE_PINNED: the pages were pinned (FOLL_PIN) and `bioRelease` unpins them. */
  pinned = false;
  /** Set once `bioRelease` has unpinned the pages. */
  released = false;
  /** BIO_CLONED: the vectors belong to another bio (or an iov_iter). */
  cloned = false;
  /** The bio this clone shares vectors with. */
  parent: Bio | null = null;
  private slab: BvecSlab | null;

  constructor(opts?: BioOptions) {
    const o = checkOptions('Bio options', opts);
    const asked = o.maxVecs === undefined ? BIO_MAX_VECS : checkInt('maxVecs', o.maxVecs, 0, BIO_MAX_VECS);
    // bio_alloc_bioset: a slab bio takes its slot's full count, an inline one what it asked
    this.maxVecs = asked > BIO_INLINE_VECS ? bvecSlabFor(asked).vecsPerSlot : asked;
    if (o.memory !== undefined && !(o.memory instanceof PhysicalMemory)) fail('EINVAL', 'memory must be a PhysicalMemory');
    this.memory = o.memory ?? null;
    const sector = o.sector === undefined ? 0 : checkInt('sector', o.sector);
    this.biIter = { biSector: sector, biSize: 0, biIdx: 0, biBvecDone: 0 };
    if (this.maxVecs === 0) {
      this.slab = null;
      this.vecs = EMPTY;
      this.base = 0;
    } else {
      this.slab = bvecSlabFor(this.maxVecs);
      this.vecs = EMPTY;
      this.base = 0;
      this.slab.take(this);
    }
  }

  /** @internal A clone sharing `parent`'s vectors, with its own iterator (`bio_alloc_clone`). */
  static cloneOf(parent: Bio, iter: BvecIter): Bio {
    const c = new Bio({ maxVecs: 0 });
    c.vecs = parent.vecs;
    c.base = parent.base;
    c.memory = parent.memory;
    c.cloned = true;
    c.parent = parent;
    Object.assign(c.biIter, iter);
    return c;
  }

  /** Vectors inline in the bio (`bi_inline_vecs`), rather than from a bvec slab. */
  get inline(): boolean {
    return this.slab !== null && this.slab.inline;
  }

  /** Slab vectors held (0 when inline or cloned). */
  get slabVecs(): number {
    return this.slab === null || this.slab.inline ? 0 : this.slab.vecsPerSlot;
  }

  /** False once `bioPut` returned the vectors. */
  get live(): boolean {
    return this.vecs !== EMPTY || this.maxVecs === 0;
  }

  /**
   * The vectors the iterator covers (`bio_for_each_bvec`), a fresh `{ pfn, offset, length }`
   * each, with `offset` below PAGE_SIZE (a vector's pfn names the page holding its first byte).
   */
  bvecs(): Array<{ pfn: number; offset: number; length: number }> {
    const out: Array<{ pfn: number; offset: number; length: number }> = [];
    let idx = this.biIter.biIdx;
    let done = this.biIter.biBvecDone;
    let size = this.biIter.biSize;
    while (size > 0) {
      const len = Math.min(bvLen(this, idx) - done, size);
      if (len > 0) {
        const off = bvOffset(this, idx) + done;
        out.push({ pfn: bvPage(this, idx) + Math.floor(off / PAGE_SIZE), offset: off % PAGE_SIZE, length: len });
      }
      size -= len;
      idx++;
      done = 0;
    }
    return out;
  }

  /** @internal Returns the vectors to their pool. */
  releaseVecs(): void {
    if (this.slab !== null && this.vecs !== EMPTY) this.slab.give(this.vecs, this.base);
    this.vecs = EMPTY;
    this.slab = null;
    this.biVcnt = 0;
    this.biIter.biSize = 0;
  }
}

const EMPTY = new Uint32Array(0);

/** Checks `bio` is a live Bio; EINVAL otherwise. */
export function checkBio(name: string, bio: unknown): asserts bio is Bio {
  if (!(bio instanceof Bio)) fail('EINVAL', `${name} must be a Bio`);
  if (!bio.live) fail('EINVAL', `${name} was put (bioPut) and holds no vectors`);
}

/**
 * `bvec_try_merge_page`: extends the last vector by `len` when the new piece starts at the
 * physical byte after it (any folio, no size cap). For a piece past the vector's last page,
 * the page arithmetic `bv_page + bv_end / PAGE_SIZE == page + off / PAGE_SIZE` must hold, which
 * physical contiguity gives here.
 */
function tryMergePage(bio: Bio, pfn: number, len: number, off: number): boolean {
  const last = bio.biVcnt - 1;
  const w = bio.base + last * BVEC_STRIDE;
  const end = bvPage(bio, last) * PAGE_SIZE + bvOffset(bio, last) + bvLen(bio, last);
  if (end !== pfn * PAGE_SIZE + off) return false;
  bio.vecs[w + BVEC_LEN] = bvLen(bio, last) + len;
  return true;
}

/**
 * `bio_add_page`: adds `len` bytes from byte `off` of page `pfn` (the bytes may run on into the
 * physically following pages). Merged into the last vector when physically contiguous with it,
 * even when the bio is full; else a new vector if one is free. Returns the bytes added: `len`,
 * or 0 when refused (a full bio, `bi_size` would pass BIO_MAX_SIZE, a cloned bio, or `len` 0 as
 * the kernel's WARN path). EINVAL for `off ≥ PAGE_SIZE`, a PFN that is not a whole number, or
 * `len` past 2^32 − 1. Cost: O(1).
 */
export function bioAddPage(bio: Bio, pfn: number, len: number, off: number): number {
  checkBio('bio', bio);
  checkInt('pfn', pfn, 0, 2 ** 32 - 1);
  checkInt('len', len, 0, BIO_MAX_SIZE);
  checkInt('off', off, 0, PAGE_SIZE - 1);
  if (bio.memory !== null && pfn * PAGE_SIZE + off + len > bio.memory.bytes) fail('EINVAL', `pfn ${pfn} + ${off + len} bytes run past the end of memory (${bio.memory.bytes} bytes)`);
  return bioAddPageUnchecked(bio, pfn, len, off);
}

/** `bioAddPage` without the checks, for hot loops that validated once. */
export function bioAddPageUnchecked(bio: Bio, pfn: number, len: number, off: number): number {
  if (bio.cloned || len === 0) return 0;
  if (bio.biIter.biSize > BIO_MAX_SIZE - len) return 0;
  if (bio.biVcnt > 0 && tryMergePage(bio, pfn, len, off)) {
    bio.biIter.biSize += len;
    return len;
  }
  if (bio.biVcnt >= bio.maxVecs) return 0;
  bvecSet(bio, bio.biVcnt, pfn, len, off);
  bio.biVcnt++;
  bio.biIter.biSize += len;
  return len;
}

/**
 * `bio_add_folio`: adds `len` bytes from byte `off` of the folio whose head is `headPfn`
 * (`off` may pass PAGE_SIZE: the vector starts in page `off / PAGE_SIZE` of the folio).
 * Returns whether it was added. EINVAL for a PFN that is not a folio head of `bio.memory`,
 * or a range past the folio's end.
 */
export function bioAddFolio(bio: Bio, headPfn: number, len: number, off: number): boolean {
  checkBio('bio', bio);
  const memory = bio.memory;
  if (memory === null) fail('EINVAL', 'bioAddFolio needs a bio made with { memory }');
  memory.checkLivePfn('headPfn', headPfn);
  if (memory.folioHead(headPfn) !== headPfn) fail('EINVAL', `pfn ${headPfn} is not the head of its folio (head ${memory.folioHead(headPfn)})`);
  const size = memory.folioNrPages(headPfn) * PAGE_SIZE;
  checkInt('off', off, 0, size - 1);
  checkInt('len', len, 0, size - off);
  if (len > BIO_MAX_SIZE) return false;
  return bioAddPageUnchecked(bio, headPfn + Math.floor(off / PAGE_SIZE), len, off % PAGE_SIZE) > 0;
}

/**
 * `bio_put` for every bio of the chain from `bio`: returns pooled vectors (a clone's belong to
 * its parent and stay). Does not release pins: `bioRelease` first. Idempotent per bio.
 */
export function bioPut(bio: Bio): void {
  if (!(bio instanceof Bio)) fail('EINVAL', 'bio must be a Bio');
  for (let b: Bio | null = bio; b !== null; b = b.biNext) if (!b.cloned) b.releaseVecs();
}

/** `bio_chain`-style link: `next` follows `bio` (`bi_next`), as a request strings its bios. Returns `next`. */
export function bioChain(bio: Bio, next: Bio): Bio {
  checkBio('bio', bio);
  checkBio('next', next);
  if (bio.biNext !== null) fail('EINVAL', 'bio already has a next bio');
  bio.biNext = next;
  return next;
}

/** `bio_full`: no free vector and `len` more bytes would pass BIO_MAX_SIZE. */
export function bioFull(bio: Bio, len: number): boolean {
  return bio.biVcnt >= bio.maxVecs || bio.biIter.biSize > BIO_MAX_SIZE - len;
}

/**
 * Bytes the kernel allocates for `bio`: the bio slab object and its slab vectors. Every bio
 * but a split part comes from a BIOSET_NEED_BVECS set, whose slab objects are
 * `sizeof(struct bio)` + BIO_BACK_PAD (the inline vectors live in that pad, used or not); a
 * split part (`bio_split` from `disk->bio_split`) is a bare `struct bio` sharing its parent's
 * vectors.
 */
export function bioAllocBytes(bio: Bio): { bio: number; bvec: number; allocations: number } {
  if (bio.parent !== null) return { bio: BIO_BYTES, bvec: 0, allocations: 1 };
  const vecs = bio.slabVecs;
  return { bio: BIO_BYTES + BIO_BACK_PAD, bvec: vecs * BVEC_BYTES, allocations: vecs > 0 ? 2 : 1 };
}
