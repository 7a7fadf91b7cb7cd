// struct scatterlist and struct sg_table (include/linux/scatterlist.h, lib/scatterlist.c): every
// slot of a table lives in one typed-array store, 32 bytes laid out as the kernel's structure.

import { checkInt, DmaMapping, fail, kmallocSize, PAGE_SIZE } from '@iodesc/core';
import type { AddressSpace, DmaSegment, Footprint, IoDescriptor, PhysicalMemory, Segment } from '@iodesc/core';

/** sizeof(struct scatterlist) on x86-64 with CONFIG_NEED_SG_DMA_LENGTH. */
export const SG_STRIDE = 32;
/** u32 words per slot. */
export const SG_WORDS = SG_STRIDE / 4;
/** u32 word: page_link, low half: `pfn << 2` (a chain slot: the next chunk's slot `<< 2`) with the flag bits. */
export const SG_PAGE_LINK = 0;
/** u32 word: page_link, high half (always 0: PFNs and slots stay below 2^30). */
export const SG_PAGE_LINK_HI = 1;
/** u32 word: offset. */
export const SG_OFFSET = 2;
/** u32 word: length. */
export const SG_LENGTH = 3;
/** f64 index within a slot (bytes 16..23): dma_address (below 2^53, so exact). */
export const SG_DMA_ADDRESS = 2;
/** f64 words per slot. */
export const SG_F64_WORDS = SG_STRIDE / 8;
/** u32 word: dma_length. */
export const SG_DMA_LENGTH = 6;
/** u32 word: dma_flags (the 64-bit padding, CONFIG_NEED_SG_DMA_FLAGS). */
export const SG_DMA_FLAGS = 7;
/** page_link bit: this slot links to the next chunk. */
export const SG_CHAIN = 0x01;
/** page_link bit: this slot is the last entry of the list. */
export const SG_END = 0x02;
/** Both page_link flag bits. */
export const SG_PAGE_LINK_MASK = SG_CHAIN | SG_END;
/** Slots per chunk: one page of 32-byte entries. */
export const SG_MAX_SINGLE_ALLOC = PAGE_SIZE / SG_STRIDE;
/** sizeof(struct sg_table). */
export const SG_TABLE_BYTES = 16;
/** sizeof(struct sg_append_table). */
export const SG_APPEND_TABLE_BYTES = 32;
/** An unsigned int's largest value: the default maxSegment. */
export const UINT_MAX = 0xffffffff;

// The model's slab: buffers of freed tables kept for the next table, as the kernel's slab keeps
// freed scatterlist chunks warm. A fresh ArrayBuffer costs page faults on first touch, several
// times what building the entries costs; a recycled one is zeroed chunk by chunk as it is used.
const slab: ArrayBuffer[] = [];
let slabBytes = 0;
/** Bytes of freed buffers the slab keeps at most. */
const SLAB_MAX_BYTES = 64 * 2 ** 20;

function slabTake(bytes: number): ArrayBuffer {
  let best = -1;
  for (let i = 0; i < slab.length; i++) {
    const len = slab[i]!.byteLength;
    if (len >= bytes && len <= 2 * bytes && (best < 0 || len < slab[best]!.byteLength)) best = i;
  }
  if (best < 0) return new ArrayBuffer(bytes);
  const buf = slab[best]!;
  slab[best] = slab[slab.length - 1]!;
  slab.pop();
  slabBytes -= buf.byteLength;
  return buf;
}

function slabGive(buf: ArrayBuffer): void {
  if (buf.byteLength < SG_STRIDE * SG_MAX_SINGLE_ALLOC || slabBytes + buf.byteLength > SLAB_MAX_BYTES) return;
  slab.push(buf);
  slabBytes += buf.byteLength;
}

/**
 * Empties the slab of freed table buffers (`kmem_cache_shrink`); returns the bytes let go.
 * Memory measurements call it so that only live tables are counted.
 */
export function sgSlabShrink(): number {
  const n = slabBytes;
  slab.length = 0;
  slabBytes = 0;
  return n;
}

// The views of an empty store, shared: of length 0, nothing is ever written through them.
const EMPTY_U32 = new Uint32Array(0);
const EMPTY_F64 = new Float64Array(0);

/**
 * The slots of one table: a growable buffer seen as u32 words and f64 words. Slots are handed
 * out in chunks and never reused within a table; each chunk is zeroed as it is handed out, as
 * sg_init_table does.
 */
export class SgStore {
  u32: Uint32Array;
  f64: Float64Array;
  /** Slots handed out. */
  used = 0;

  constructor(capacity = 4) {
    const buf = capacity >= SG_MAX_SINGLE_ALLOC ? slabTake(capacity * SG_STRIDE) : new ArrayBuffer(capacity * SG_STRIDE);
    this.u32 = new Uint32Array(buf);
    this.f64 = new Float64Array(buf);
  }

  /** Slots the buffer holds. */
  get capacity(): number {
    return this.u32.length / SG_WORDS;
  }

  /** Grows the buffer to hold `slots` (at least doubling it); views are rebuilt here only. */
  reserve(slots: number): void {
    if (slots <= this.capacity) return;
    // at least double, so that chunk-by-chunk growth stays amortised O(1); a known size exactly
    const cap = Math.max(slots, this.capacity * 2);
    const buf = slabTake(cap * SG_STRIDE);
    const u32 = new Uint32Array(buf);
    u32.set(this.u32.subarray(0, this.used * SG_WORDS));
    slabGive(this.u32.buffer as ArrayBuffer);
    this.u32 = u32;
    this.f64 = new Float64Array(buf);
  }

  /** Hands out `n` zeroed slots with the end mark on the last (`sg_init_table`); returns the first. */
  alloc(n: number): number {
    this.reserve(this.used + n);
    const first = this.used;
    this.used += n;
    this.u32.fill(0, first * SG_WORDS, (first + n) * SG_WORDS);
    this.u32[(first + n - 1) * SG_WORDS + SG_PAGE_LINK] = SG_END;
    return first;
  }

  /** Gives the buffer back to the slab; the store is then empty (capacity 0) and grows again on use. */
  recycle(): void {
    slabGive(this.u32.buffer as ArrayBuffer);
    this.u32 = EMPTY_U32;
    this.f64 = EMPTY_F64;
    this.used = 0;
  }
}

/** What getUserSg (`kind` 'user', released by putUserSg) or ibUmemGet ('umem', released by ibUmemRelease) pinned. */
export interface UserPin {
  kind: 'user' | 'umem';
  mm: AddressSpace;
  write: boolean;
  owner: string | undefined;
}

/**
 * An sg_table: `sgl` (first slot), `nents` (mapped entries, or all before mapping) and
 * `origNents` (CPU entries), its chunks of at most SG_MAX_SINGLE_ALLOC slots chained through
 * their last slot. Read entries with `segments()` / `dmaSegments()`, or on hot paths through
 * `store.u32` / `store.f64` at `slot * SG_WORDS + SG_LENGTH`, ... following `sgNext`.
 */
export class SgTable implements IoDescriptor {
  readonly backend = 'sglist';
  /** @internal The slots. */
  store = new SgStore();
  /** First slot of the list, -1 when nothing is allocated (`sgt->sgl`). */
  sgl = -1;
  /** Entries mapped for DMA; equal to `origNents` until a mapping changes it. */
  nents = 0;
  /** Entries of the list (CPU view). */
  origNents = 0;
  /** @internal First slot and slot count of each allocation, in order. */
  chunkStart: number[] = [];
  /** @internal */
  chunkSlots: number[] = [];
  /** @internal The live DMA mapping whose segments the DMA fields hold. */
  mapping: DmaMapping | null = null;
  /**
   * @internal Entries whose DMA fields hold a mapping's segments (this table's mapped count, or
   * the mapped entries of a split piece); 0 when the fields hold nothing live.
   */
  dmaCount = 0;
  /** @internal Pins taken by getUserSg or ibUmemGet, until putUserSg or ibUmemRelease. */
  user: UserPin | null = null;
  /** @internal Freed tables refuse every use. */
  freed = false;
  /** Memory the entries name, when known (fromPages, getUserSg); copies may use it by default. */
  memory: PhysicalMemory | null = null;
  /** @internal The sg_append_table around this table, whose `prv` indexes its slots; null for a plain table. */
  append: { prv: number; totalNents: number } | null = null;

  /** @internal Use the allocation functions. */
  constructor(public headerBytes: number = SG_TABLE_BYTES) {}

  // the length as last counted, for this sgl and origNents; -1 once an entry changed
  #lengthBytes = -1;
  #lengthSgl = -1;
  #lengthNents = 0;

  /**
   * Bytes the CPU entries describe. Cost: O(1); O(origNents) on the first read after the table
   * is built or changed (the count is kept until an entry, `sgl` or `origNents` changes).
   */
  get length(): number {
    if (this.#lengthBytes < 0 || this.#lengthSgl !== this.sgl || this.#lengthNents !== this.origNents) {
      const u32 = this.store.u32;
      let total = 0;
      for (let i = 0, s = this.sgl; i < this.origNents && s >= 0; i++, s = nextSlot(u32, s)) total += u32[s * SG_WORDS + SG_LENGTH]!;
      this.#lengthBytes = total;
      this.#lengthSgl = this.sgl;
      this.#lengthNents = this.origNents;
    }
    return this.#lengthBytes;
  }

  /** @internal An entry's length or the list's links changed: `length` counts again on its next read. */
  entriesChanged(): void {
    this.#lengthBytes = -1;
  }

  get nrSegments(): number {
    return this.origNents;
  }

  /** Slots allocated, chain slots included (an append table's `totalNents` leaves the chain links out). */
  get totalSlots(): number {
    let t = 0;
    for (const n of this.chunkSlots) t += n;
    return t;
  }

  /**
   * The CPU entries in order (`for_each_sgtable_sg`), a fresh `{ pfn, offset, length }` each:
   * an offset of a page or more (a split piece keeps its original offset) is carried into the PFN.
   */
  *segments(): Generator<Segment> {
    const u32 = this.store.u32;
    for (let i = 0, s = this.sgl; i < this.origNents && s >= 0; i++, s = nextSlot(u32, s)) {
      const b = s * SG_WORDS;
      const off = u32[b + SG_OFFSET]!;
      yield { pfn: (u32[b + SG_PAGE_LINK]! >>> 2) + Math.floor(off / PAGE_SIZE), offset: off % PAGE_SIZE, length: u32[b + SG_LENGTH]! };
    }
  }

  /**
   * The DMA fields of each mapped entry (`for_each_sgtable_dma_sg`), a fresh
   * `{ dmaAddress, dmaLength }` each; none when not mapped. After `dmaMapSgtable` these are the
   * `nents` mapped segments. `dmaMapSg` leaves `nents` alone (as dma_map_sg does), so then only
   * the count it returned comes: the entries past it hold DMA length 0 or, past the `nents` it
   * was given, whatever an earlier mapping left there, and are not mapped.
   */
  *dmaSegments(): Generator<DmaSegment> {
    const { u32, f64 } = this.store;
    const n = Math.min(this.nents, this.dmaCount);
    for (let i = 0, s = this.sgl; i < n && s >= 0; i++, s = nextSlot(u32, s)) {
      yield { dmaAddress: f64[s * SG_F64_WORDS + SG_DMA_ADDRESS]!, dmaLength: u32[s * SG_WORDS + SG_DMA_LENGTH]! };
    }
  }

  /**
   * What the kernel allocates: each chunk as the kmalloc size class of its 32-byte slots (a full
   * chunk of 128 is one page from `__get_free_page`), chain slots included, and the header.
   */
  footprint(): Footprint {
    let slots = 0;
    let list = 0;
    for (const n of this.chunkSlots) {
      slots += n;
      list += kmallocSize(n * SG_STRIDE);
    }
    // a split piece is a bare array of entries, with no sg_table around it
    if (this.headerBytes === 0) return { bytes: list, allocations: this.chunkSlots.length, entries: slots, breakdown: { scatterlist: list } };
    const header = kmallocSize(this.headerBytes);
    const name = this.headerBytes === SG_APPEND_TABLE_BYTES ? 'sg_append_table' : 'sg_table';
    return { bytes: list + header, allocations: this.chunkSlots.length + 1, entries: slots, breakdown: { scatterlist: list, [name]: header } };
  }

  /** @internal Gives up every slot (`__sg_free_table`); the store stays, empty, for a table used again. */
  release(): void {
    this.store.recycle();
    this.chunkStart.length = 0;
    this.chunkSlots.length = 0;
    this.entriesChanged();
    this.sgl = -1;
    this.nents = 0;
    this.origNents = 0;
    this.dmaCount = 0;
  }

  /** @internal Allocates one chunk of `n` slots (`sg_kmalloc` + `sg_init_table`); returns its first slot. */
  allocChunk(n: number): number {
    const first = this.store.alloc(n);
    this.entriesChanged();
    this.chunkStart.push(first);
    this.chunkSlots.push(n);
    return first;
  }
}

/** @internal `sg_next` on raw words: the slot after `s`, following a chain link; -1 after the last. */
export function nextSlot(u32: Uint32Array, s: number): number {
  if (u32[s * SG_WORDS + SG_PAGE_LINK]! & SG_END) return -1;
  const n = s + 1;
  const link = u32[n * SG_WORDS + SG_PAGE_LINK]!;
  return link & SG_CHAIN ? link >>> 2 : n;
}

/** @internal A live table; EINVAL otherwise. */
export function checkTable(name: string, t: unknown): SgTable {
  if (!(t instanceof SgTable)) fail('EINVAL', `${name} must be an SgTable`);
  if (t.freed) fail('EINVAL', `${name} has been freed`);
  return t;
}

/** @internal A slot handed out in `t`; EINVAL otherwise. */
export function checkSlot(t: SgTable, name: string, slot: unknown): number {
  return checkInt(name, slot, 0, t.store.used - 1);
}
