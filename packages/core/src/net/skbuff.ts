// Network buffers (include/linux/skbuff.h: struct sk_buff, struct skb_shared_info,
// skb_fill_page_desc; __alloc_skb in net/core/skbuff.c): a linear head, fragments, a frag_list.

import { MAX_PAGE_ORDER, PAGE_SIZE } from '../constants.js';
import { checkBool, checkInt, checkOptions, fail } from '../errors.js';
import type { Footprint } from '../descriptor/types.js';
import { kmallocSize } from '../descriptor/kmalloc.js';
import { checkMemory, type PhysicalMemory } from '../mm/memory.js';
import { FRAG_FIELD_MAX, FRAG_REF_NONE, FRAG_REF_PAGE, FragArray, type Frag, type FragHolder } from './frag.js';
import { NETMEM_MAX_INDEX, netmemIsNetIov, type NetmemRef } from './netmem.js';

/** Fragments per buffer by default (`MAX_SKB_FRAGS` with the default `CONFIG_MAX_SKB_FRAGS`). */
export const MAX_SKB_FRAGS = 17;
/** Least and most `CONFIG_MAX_SKB_FRAGS` accepts (net/Kconfig: `range 17 45`). */
export const MAX_SKB_FRAGS_MIN = 17;
export const MAX_SKB_FRAGS_MAX = 45;
/** `SMP_CACHE_BYTES` on x86-64: what `SKB_DATA_ALIGN` rounds to. */
export const SMP_CACHE_BYTES = 64;
/** Bytes of `struct skb_shared_info` before `frags[]` on x86-64. */
export const SKB_SHINFO_HEADER = 48;
/**
 * `sizeof(struct sk_buff)` on x86-64, derived from mainline's definition with a distribution
 * configuration (NF_CONNTRACK, SKB_EXTENSIONS, NETWORK_SECMARK, XPS, NET_SCHED; no KCOV):
 * 24 (next, prev, dev) + 8 (sk) + 8 (tstamp) + 48 (cb) + 16 (_skb_refdst, destructor)
 * + 8 (_nfct) + 8 (len, data_len) + 8 (mac_len, hdr_len, queue_mapping, the cloned… and
 * active_extensions bytes) + 60 (the `headers` group: flag bytes, tc_index, alloc_cpu, csum,
 * priority, skb_iif, hash, vlan, napi_id, secmark, mark, inner and outer header offsets)
 * + 8 (tail, end: 32-bit offsets) + 4 (padding to align head) + 16 (head, data)
 * + 8 (truesize, users) + 8 (extensions) = 232 bytes, as pahole reports it; the skbuff cache
 * object is charged as the 256-byte class.
 */
export const SIZEOF_SK_BUFF = 232;
/** `gso_size` that asks `skbSegment` to cut at the frag_list members' own sizes (`GSO_BY_FRAGS`). */
export const GSO_BY_FRAGS = 0xffff;
/** Segments one GSO buffer may become (`GSO_MAX_SEGS`: `gso_segs` is 16 bits). */
export const GSO_MAX_SEGS = 65535;
/** Longest GSO buffer (`GSO_MAX_SIZE` = 8 × GSO_MAX_SEGS: TCP's least MSS times the most segments). */
export const GSO_MAX_SIZE = 8 * GSO_MAX_SEGS;
/** Largest head `__alloc_skb` can have (`KMALLOC_MAX_SIZE`: an order-10 allocation). */
export const KMALLOC_MAX_SIZE = PAGE_SIZE << MAX_PAGE_ORDER;
/** `skb->len` is an `unsigned int`. */
export const SKB_LEN_MAX = 0xffffffff;

/** `SKB_DATA_ALIGN(x)`: `x` rounded up to a cache line. */
export function skbDataAlign(x: number): number {
  return Math.ceil(x / SMP_CACHE_BYTES) * SMP_CACHE_BYTES;
}

/** `sizeof(struct skb_shared_info)` with `maxFrags` fragments: 48 + 16 each (320 for 17). */
export function skbSharedInfoSize(maxFrags: number): number {
  return SKB_SHINFO_HEADER + 16 * maxFrags;
}

/**
 * A zero-copy completion a buffer points at (`skb_shinfo(skb)->destructor_arg`, a `ubuf_info`):
 * every buffer holding it holds one reference, dropped when the buffer is freed. Pages a
 * completion manages (`SKBFL_MANAGED_FRAG_REFS`) are entries recording `FRAG_REF_NONE`: each
 * entry says what it holds, so there is no per-buffer flag to downgrade.
 */
export interface ZcopyRef {
  /** Takes a reference (`net_zcopy_get`). */
  netZcopyGet(): void;
  /** Drops one (`net_zcopy_put` through `skb_zcopy_clear`); `success` false when the data was copied. */
  netZcopyPut(success: boolean): void;
}

/** A window of another FragArray a buffer's fragments are: the frag backend's view. */
export interface FragWindow {
  array: FragArray;
  /** Index of the window's first entry in `array`. */
  offset: number;
  /** Entries in the window (≤ maxFrags): the buffer's `nrFrags`. */
  count: number;
}

/** Options of `new SkBuff`. */
export interface SkBuffOptions {
  /** Fragments the buffer can hold, `CONFIG_MAX_SKB_FRAGS` (17..45; default 17). EINVAL outside. */
  maxFrags?: number;
  /** Bytes of linear data (`skb_headlen`), counted in `len` (default 0). */
  headLen?: number;
  /** When given, the head is a folio of this memory holding real bytes; otherwise lengths only. */
  memory?: PhysicalMemory;
  /** Bytes reserved in front of everything (`skb_reserve`; default 0). */
  headroom?: number;
  /**
   * Bytes of protocol headers in front of `data`, from the MAC header on, not counted in `len`:
   * the buffer net_test.c builds after `skb_pull(skb, sizeof(hdr))`. `skbSegment` copies them
   * into every segment (its `doffset`). Default 0.
   */
  hdrLen?: number;
  /** Room after the linear data for `skbPut` (default 0). */
  tailroom?: number;
  /**
   * Make the fragments a window of another FragArray (a view: no entry is copied or referenced).
   * A view's entries are read-only: calls that would write one (`skbFillPageDesc`,
   * `skbAppendPagefrags`, a `pskbTrim` cutting inside a fragment) are EINVAL.
   */
  frags?: FragWindow;
  /**
   * The head is a page fragment (`head_frag`, as `build_skb` makes it; default true), with or
   * without memory; false for a kmalloc'd head (`__alloc_skb`), which `skbSegment` cannot
   * turn into a fragment of a frag_list member's segment.
   */
  headFrag?: boolean;
}

let nextSkbId = 1;

/**
 * A network buffer (`struct sk_buff` with its `struct skb_shared_info`; the shared info's fields
 * are the buffer's own here: `nrFrags` is `skb_shinfo(skb)->nr_frags`).
 *
 * Invariants: `len = headlen + dataLen`; `dataLen` = bytes of the fragments plus the frag_list
 * members' `len` (kept by whoever changes them, as in the kernel: `len` and `dataLen` are plain
 * writable numbers); `nrFrags ≤ fragCapacity ≤ maxFrags`.
 */
export class SkBuff implements FragHolder {
  readonly id = nextSkbId++;
  /** The memory the head and fragments live in, or null for a lengths-only buffer. */
  readonly memory: PhysicalMemory | null;
  /** `MAX_SKB_FRAGS` of this buffer (`CONFIG_MAX_SKB_FRAGS`). */
  readonly maxFrags: number;
  /** Bytes in the buffer from `data` on: linear plus paged (`skb->len`). */
  len: number;
  /** Paged bytes: fragments and frag_list (`skb->data_len`). */
  dataLen = 0;
  /** Memory charged to the buffer (`skb->truesize`). */
  truesize: number;
  /** MSS of a GSO buffer, 0 when not GSO (`gso_size`). */
  gsoSize = 0;
  /** Segments it will become (`gso_segs`). */
  gsoSegs = 0;
  /** `gso_type` bits (SKB_GSO_*); carried, not interpreted. */
  gsoType = 0;
  /** Buffers chained behind the fragments (`skb_shinfo(skb)->frag_list`), linked through `next`. */
  fragList: SkBuff | null = null;
  /** The next buffer of a list (`skb->next`). */
  next: SkBuff | null = null;
  /** The head is a page fragment (`head_frag`, `opts.headFrag`, default true as build_skb makes it). */
  headFrag: boolean;
  /** Some fragment names a net_iov: the host cannot read the paged data (`skb->unreadable`). */
  unreadable = false;
  /** The zero-copy completion this buffer holds a reference on (`skb_zcopy`), or null. */
  uarg: ZcopyRef | null = null;
  /** Head folio (PFN), -1 without memory. */
  readonly headPfn: number;
  /** Bytes of the head buffer before the shared info (`skb_end_offset`). */
  readonly endOffset: number;
  /** Bytes allocated for head and shared info (a kmalloc size class). */
  readonly headAllocBytes: number;
  /** Offset of `data` in the head. */
  dataOff: number;
  /** Offset of the MAC header in the head, -1 when unset. */
  macHeader: number;
  /** Offset of the network header in the head (`skb_network_header`), -1 when unset. */
  networkHeader: number;
  /** The array holding the fragments; fragment i is entry `fragBase + i`. */
  readonly fragArray: FragArray;
  readonly fragBase: number;
  /** The fragments are a window of a FragArray the buffer does not own. */
  readonly fragView: boolean;
  /** Freed (`kfreeSkb` / `consumeSkb`): every use after is EINVAL. */
  freed = false;
  #nrFrags: number;
  readonly #fragCapacity: number;

  constructor(opts?: SkBuffOptions) {
    const o = checkOptions('SkBuff options', opts);
    this.maxFrags = o.maxFrags === undefined ? MAX_SKB_FRAGS : checkMaxFrags(o.maxFrags);
    const headLen = o.headLen === undefined ? 0 : checkInt('headLen', o.headLen, 0, KMALLOC_MAX_SIZE);
    const headroom = o.headroom === undefined ? 0 : checkInt('headroom', o.headroom, 0, KMALLOC_MAX_SIZE);
    const hdrLen = o.hdrLen === undefined ? 0 : checkInt('hdrLen', o.hdrLen, 0, KMALLOC_MAX_SIZE);
    const tailroom = o.tailroom === undefined ? 0 : checkInt('tailroom', o.tailroom, 0, KMALLOC_MAX_SIZE);
    if (o.memory !== undefined) checkMemory(o.memory);
    const end = skbDataAlign(headroom + hdrLen + headLen + tailroom);
    const total = end + skbDataAlign(skbSharedInfoSize(this.maxFrags));
    if (total > KMALLOC_MAX_SIZE) fail('EINVAL', `a head of ${headroom + hdrLen + headLen + tailroom} bytes needs ${total} with its shared info, over KMALLOC_MAX_SIZE (${KMALLOC_MAX_SIZE}): longer than __alloc_skb allows`);
    let window: FragWindow | undefined;
    if (o.frags !== undefined) window = checkWindow(o.frags, this.maxFrags);
    this.memory = o.memory ?? null;
    this.endOffset = end;
    this.headAllocBytes = kmallocSize(total);
    this.headFrag = o.headFrag === undefined ? true : checkBool('headFrag', o.headFrag);
    this.dataOff = headroom + hdrLen;
    this.macHeader = hdrLen > 0 ? headroom : -1;
    // net_test.c's __init_skb(): skb_pull(sizeof(hdr)), then skb_reset_network_header()
    this.networkHeader = hdrLen > 0 ? this.dataOff : -1;
    if (this.memory !== null) {
      const pages = Math.ceil(total / PAGE_SIZE);
      const order = Math.ceil(Math.log2(pages));
      const head = this.memory.allocFolio(order, false);
      if (head < 0) fail('ENOMEM', `no order-${order} folio for a head of ${total} bytes`);
      this.headPfn = head;
    } else {
      this.headPfn = -1;
    }
    this.len = headLen;
    this.truesize = this.headAllocBytes + skbDataAlign(SIZEOF_SK_BUFF);
    if (window === undefined) {
      this.fragArray = new FragArray(this.maxFrags);
      this.fragBase = 0;
      this.fragView = false;
      this.#nrFrags = 0;
      this.#fragCapacity = this.maxFrags;
    } else {
      this.fragArray = window.array;
      this.fragBase = window.offset;
      this.fragView = true;
      this.#nrFrags = window.count;
      this.#fragCapacity = window.count;
      let bytes = 0;
      for (let i = 0; i < window.count; i++) {
        bytes += window.array.length(window.offset + i);
        if (window.array.isNetIov(window.offset + i)) this.unreadable = true;
      }
      this.dataLen = bytes;
      this.len = headLen + bytes;
      this.truesize += bytes;
    }
  }

  /** Linear bytes (`skb_headlen`: len − dataLen). */
  get headlen(): number {
    return this.len - this.dataLen;
  }

  /** Fragments in use (`skb_shinfo(skb)->nr_frags`). Set it within [0, fragCapacity]. */
  get nrFrags(): number {
    return this.#nrFrags;
  }

  set nrFrags(n: number) {
    this.setNrFragsUnchecked(checkInt('nrFrags', n, 0, this.#fragCapacity));
  }

  /** Fragments the buffer can hold: `maxFrags`, or the window's size for a view. */
  get fragCapacity(): number {
    return this.#fragCapacity;
  }

  /** Bytes between `data` and the MAC header (`skb->data - skb_mac_header(skb)`), 0 when unset. */
  get macHeaderLen(): number {
    return this.macHeader < 0 ? 0 : this.dataOff - this.macHeader;
  }

  /** Bytes free after the linear data (`skb_tailroom`, without fragments). */
  get tailroom(): number {
    return this.endOffset - this.dataOff - this.headlen;
  }

  /** Physical address of `data`, -1 without memory. */
  get dataPhys(): number {
    return this.headPfn < 0 ? -1 : this.headPfn * PAGE_SIZE + this.dataOff;
  }

  /**
   * The fragments as `skb_frag_t` holds them, a fresh `{ pfn, netmem, offset, length }` each: a
   * zero-copy fragment of a large folio names its head page with an offset from it.
   */
  frags(): Frag[] {
    return this.fragArray.entries(this.fragBase, this.fragBase + this.#nrFrags);
  }

  /**
   * What the kernel allocates for the buffer: the `sk_buff` from its cache (232 bytes, charged
   * as its 256-byte class) and the head with the shared info (`SKB_HEAD_ALIGN`, a kmalloc class).
   * Fragments live in the shared info; a frag_list member is counted with its own footprint.
   */
  footprint(): Footprint {
    const skbBytes = kmallocSize(SIZEOF_SK_BUFF);
    return {
      bytes: skbBytes + this.headAllocBytes,
      allocations: 2,
      entries: this.#nrFrags,
      breakdown: { sk_buff: skbBytes, head: this.headAllocBytes },
    };
  }

  /** @internal Sets the fragment count without the capacity check's error text (trusted callers). */
  setNrFragsUnchecked(n: number): void {
    this.#nrFrags = n;
    // a buffer's own array counts what is in use, so its entries can be read through it
    if (!this.fragView) this.fragArray.count = n;
  }
}

function checkMaxFrags(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < MAX_SKB_FRAGS_MIN || v > MAX_SKB_FRAGS_MAX) {
    fail('EINVAL', `maxFrags = ${String(v)}: CONFIG_MAX_SKB_FRAGS must be in [${MAX_SKB_FRAGS_MIN}, ${MAX_SKB_FRAGS_MAX}]`);
  }
  return v;
}

function checkWindow(w: FragWindow, maxFrags: number): FragWindow {
  if (typeof w !== 'object' || w === null || !(w.array instanceof FragArray)) fail('EINVAL', 'frags must be { array: FragArray, offset, count }');
  const offset = checkInt('frags.offset', w.offset, 0, w.array.count);
  const count = checkInt('frags.count', w.count, 0, w.array.count - offset);
  if (count > maxFrags) fail('EINVAL', `a window of ${count} fragments is more than maxFrags (${maxFrags}) allows`);
  return { array: w.array, offset, count };
}

/** Checks that `skb` is a live SkBuff; EINVAL otherwise. */
export function checkSkb(skb: unknown, name = 'skb'): asserts skb is SkBuff {
  if (!(skb instanceof SkBuff)) fail('EINVAL', `${name} must be an SkBuff`);
  if (skb.freed) fail('EINVAL', `${name} #${skb.id} has been freed`);
}

// Checks a page fragment against the buffer's memory: a live page, the bytes inside its folio.
function checkPageFrag(skb: SkBuff, pfn: number, offset: number, size: number): void {
  checkOwnFrags(skb);
  const mem = skb.memory;
  if (mem === null) {
    checkInt('pfn', pfn, 0, NETMEM_MAX_INDEX);
    return;
  }
  mem.checkLivePfn('pfn', pfn);
  const head = mem.folioHead(pfn);
  const folioEnd = (head + mem.folioNrPages(head)) * PAGE_SIZE;
  const start = pfn * PAGE_SIZE + offset;
  if (start + size > folioEnd) {
    fail('EINVAL', `fragment [pfn ${pfn} + ${offset}, ${size} bytes) runs past the end of its folio (pfn ${head}, ${mem.folioNrPages(head)} pages): skb_frag_foreach_page would walk into another folio`);
  }
}

/**
 * Writes fragment `i` to name `size` bytes at `offset` of page `pfn` and sets `nrFrags = i + 1`
 * (`skb_fill_page_desc`); `len`, `dataLen` and `truesize` are the caller's to update. The
 * buffer takes no reference: in a buffer with memory the fragment now owns one page reference
 * the caller held, dropped when the buffer is freed (an entry overwritten passes its own to
 * nobody, as in the kernel). EINVAL for `i` outside [0, fragCapacity), a freed page, a field
 * past `unsigned int`, bytes running past the page's folio, or a view (`skbsFromFrags`: its
 * entries are the viewed array's, so they are never written). Cost: O(1).
 */
export function skbFillPageDesc(skb: SkBuff, i: number, pfn: number, offset: number, size: number): void {
  checkSkb(skb);
  checkFragIndex(skb, i);
  checkInt('offset', offset, 0, FRAG_FIELD_MAX);
  checkInt('size', size, 0, FRAG_FIELD_MAX);
  checkPageFrag(skb, pfn, offset, size);
  skb.fragArray.setUnchecked(skb.fragBase + i, pfn * 2, offset, size, skb.memory === null ? FRAG_REF_NONE : FRAG_REF_PAGE);
  skb.setNrFragsUnchecked(i + 1);
}

/**
 * `skb_fill_netmem_desc`: as `skbFillPageDesc` for a netmem_ref; a net_iov makes the buffer
 * unreadable (`skb->unreadable`) and holds no page reference (its provider's pool owns it).
 */
export function skbFillNetmemDesc(skb: SkBuff, i: number, netmem: NetmemRef, offset: number, size: number): void {
  checkSkb(skb);
  checkInt('netmem', netmem, 0, 0xffffffff);
  if (!netmemIsNetIov(netmem)) return skbFillPageDesc(skb, i, netmem >>> 1, offset, size);
  checkOwnFrags(skb);
  checkFragIndex(skb, i);
  checkInt('offset', offset, 0, FRAG_FIELD_MAX);
  checkInt('size', size, 0, FRAG_FIELD_MAX);
  skb.fragArray.setUnchecked(skb.fragBase + i, netmem, offset, size, FRAG_REF_NONE);
  skb.setNrFragsUnchecked(i + 1);
  skb.unreadable = true;
}

/**
 * `skb_add_rx_frag`: fills fragment `i` and adds `size` to `len` and `dataLen`, `truesize` to
 * `truesize`, as a driver's receive path does. Fails as `skbFillPageDesc`.
 */
export function skbAddRxFrag(skb: SkBuff, i: number, pfn: number, offset: number, size: number, truesize: number): void {
  checkInt('truesize', truesize, 0, SKB_LEN_MAX);
  skbFillPageDesc(skb, i, pfn, offset, size);
  skb.len += size;
  skb.dataLen += size;
  skb.truesize += truesize;
}

/**
 * EINVAL when the buffer's fragments are a view (`skbsFromFrags`): its entries belong to the
 * array it looks into, so nothing may write them (refused rather than copied on write).
 */
export function checkOwnFrags(skb: SkBuff): void {
  if (skb.fragView) fail('EINVAL', `skb #${skb.id}'s fragments are a view of another FragArray: its entries are read-only`);
}

/** EINVAL unless 0 ≤ i < skb.fragCapacity. */
export function checkFragIndex(skb: SkBuff, i: number): void {
  if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= skb.fragCapacity) {
    fail('EINVAL', `fragment index ${String(i)} is outside [0, ${skb.fragCapacity}) (maxFrags ${skb.maxFrags}${skb.fragView ? ', a view' : ''})`);
  }
}

/** Bytes the fragments in use describe. */
export function fragBytes(skb: SkBuff): number {
  let t = 0;
  for (let k = 0; k < skb.nrFrags; k++) t += skb.fragArray.length(skb.fragBase + k);
  return t;
}

/** Bytes of the frag_list members (`len` of each). */
export function fragListBytes(skb: SkBuff): number {
  let t = 0;
  for (let m = skb.fragList; m !== null; m = m.next) t += m.len;
  return t;
}
