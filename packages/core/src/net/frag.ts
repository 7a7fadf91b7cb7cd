// Fragment arrays (include/linux/skbuff.h: skb_frag_t and its accessors): 16-byte entries in a
// typed array naming a page or a net_iov, an offset and a length, as a network buffer holds them.

import { PAGE_SIZE } from '../constants.js';
import { checkInt, fail } from '../errors.js';
import { NET_IOV, netmemIsNetIov, type NetmemRef } from './netmem.js';

/** `sizeof(skb_frag_t)`: an 8-byte netmem_ref, then `len` and `offset` (4 bytes each). */
export const SKB_FRAG_SIZE = 16;
/** 32-bit words per entry. */
export const FRAG_STRIDE = SKB_FRAG_SIZE / 4;
/** Word of an entry: the netmem_ref (`frag->netmem`, its low half). */
export const FRAG_NETMEM = 0;
/**
 * Word of an entry: what reference the entry holds, model-only bookkeeping kept where the
 * 64-bit netmem_ref has its (always zero) upper half. One of the `FRAG_REF_*` values.
 */
export const FRAG_REF = 1;
/** Word of an entry: bytes (`frag->len`). */
export const FRAG_LEN = 2;
/** Word of an entry: offset from the start of the named page (`frag->offset`). */
export const FRAG_OFF = 3;

/** The entry holds no reference: its owner keeps the memory alive (SKBFL_MANAGED_FRAG_REFS, views). */
export const FRAG_REF_NONE = 0;
/** The entry holds one page reference (`get_page`), dropped with `put_page` when its buffer is freed. */
export const FRAG_REF_PAGE = 1;
/** The entry holds one reference taken by get_user_pages (FOLL_GET), named by the leak report. */
export const FRAG_REF_GUP = 2;
/** The entry holds one FOLL_PIN pin, dropped with `unpin_user_page`. */
export const FRAG_REF_PIN = 3;

/** Largest `len` or `offset` of a fragment (`unsigned int`). */
export const FRAG_FIELD_MAX = 0xffffffff;

/** One fragment as `skb_frag_t` holds it: for a large folio `pfn` may be the head and `offset` count from it. */
export interface Frag {
  /** The page frame named, or the net_iov index when `netmem` is true. */
  pfn: number;
  /** The reference is a net_iov (no page behind it), not a page. */
  netmem: boolean;
  offset: number;
  length: number;
}

const INITIAL_CAPACITY = 4;

/**
 * A growable array of `skb_frag_t` entries in one Uint32Array (`FRAG_STRIDE` words each, fields
 * at `FRAG_NETMEM`, `FRAG_REF`, `FRAG_LEN`, `FRAG_OFF`). `count` entries are in use of
 * `capacity`; hot loops read `u32` directly, after `reserve` when they append.
 */
export class FragArray {
  u32: Uint32Array;
  count = 0;

  constructor(capacity = INITIAL_CAPACITY) {
    checkInt('capacity', capacity, 0, 1 << 26);
    this.u32 = new Uint32Array(Math.max(capacity, 1) * FRAG_STRIDE);
  }

  /** Entries the array holds before it grows. */
  get capacity(): number {
    return this.u32.length / FRAG_STRIDE;
  }

  /** Makes room for `n` entries in all, growing by doubling. Cost: one copy when it grows. */
  reserve(n: number): void {
    if (n <= this.capacity) return;
    let cap = this.capacity;
    while (cap < n) cap *= 2;
    const grown = new Uint32Array(cap * FRAG_STRIDE);
    grown.set(this.u32.subarray(0, this.count * FRAG_STRIDE));
    this.u32 = grown;
  }

  /** Appends a page fragment (`skb_frag_fill_page_desc`); returns its index. EINVAL for a bad field. */
  push(pfn: number, offset: number, length: number, ref = FRAG_REF_NONE): number {
    checkInt('pfn', pfn, 0, 0x7fffffff);
    return this.pushNetmem(pfn * 2, offset, length, ref);
  }

  /** Appends a fragment naming `netmem`, a page or a net_iov (`skb_frag_fill_netmem_desc`); returns its index. */
  pushNetmem(netmem: NetmemRef, offset: number, length: number, ref = FRAG_REF_NONE): number {
    checkInt('netmem', netmem, 0, 0xffffffff);
    checkInt('offset', offset, 0, FRAG_FIELD_MAX);
    checkInt('length', length, 0, FRAG_FIELD_MAX);
    checkInt('ref', ref, FRAG_REF_NONE, FRAG_REF_PIN);
    this.reserve(this.count + 1);
    this.setUnchecked(this.count, netmem, offset, length, ref);
    return this.count++;
  }

  /** Writes entry `i` without checks (the caller validated; `i` < capacity). */
  setUnchecked(i: number, netmem: NetmemRef, offset: number, length: number, ref: number): void {
    const b = i * FRAG_STRIDE;
    const u = this.u32;
    u[b + FRAG_NETMEM] = netmem;
    u[b + FRAG_REF] = ref;
    u[b + FRAG_LEN] = length;
    u[b + FRAG_OFF] = offset;
  }

  /** Copies entry `j` of `src` into entry `i` of this array (unchecked). */
  copyEntry(i: number, src: FragArray, j: number): void {
    const d = this.u32;
    const s = src.u32;
    const a = i * FRAG_STRIDE;
    const b = j * FRAG_STRIDE;
    d[a + FRAG_NETMEM] = s[b + FRAG_NETMEM]!;
    d[a + FRAG_REF] = s[b + FRAG_REF]!;
    d[a + FRAG_LEN] = s[b + FRAG_LEN]!;
    d[a + FRAG_OFF] = s[b + FRAG_OFF]!;
  }

  /** Appends an entry without checks (the caller validated every field); returns its index. */
  pushUnchecked(netmem: NetmemRef, offset: number, length: number, ref: number): number {
    if (this.count === this.capacity) this.reserve(this.count + 1);
    this.setUnchecked(this.count, netmem, offset, length, ref);
    return this.count++;
  }

  /** The netmem_ref of entry `i` (unchecked). */
  netmem(i: number): NetmemRef {
    return this.u32[i * FRAG_STRIDE + FRAG_NETMEM]!;
  }

  /** Whether entry `i` names a net_iov (unchecked index). */
  isNetIov(i: number): boolean {
    return netmemIsNetIov(this.netmem(i));
  }

  /** The page of entry `i` (`skb_frag_page`); EINVAL when it names a net_iov or `i` is out of range. */
  pfn(i: number): number {
    this.checkIndex(i);
    const n = this.netmem(i);
    if (n & NET_IOV) fail('EINVAL', `fragment ${i} holds net_iov ${n >>> 1}, not a page: skb_frag_page() gives NULL`);
    return n >>> 1;
  }

  /** Bytes of entry `i` (`skb_frag_size`, unchecked). */
  length(i: number): number {
    return this.u32[i * FRAG_STRIDE + FRAG_LEN]!;
  }

  /** Offset of entry `i` (`skb_frag_off`, unchecked). */
  offset(i: number): number {
    return this.u32[i * FRAG_STRIDE + FRAG_OFF]!;
  }

  /** The reference entry `i` holds (`FRAG_REF_*`, unchecked). */
  ref(i: number): number {
    return this.u32[i * FRAG_STRIDE + FRAG_REF]!;
  }

  /** Bytes the first `count` entries describe. Cost: O(count). */
  get bytes(): number {
    let t = 0;
    for (let i = 0; i < this.count; i++) t += this.u32[i * FRAG_STRIDE + FRAG_LEN]!;
    return t;
  }

  /** Entry `i` as a fresh `Frag` (raw: a large folio's head and an offset past PAGE_SIZE stay so). */
  entry(i: number): Frag {
    this.checkIndex(i);
    const n = this.netmem(i);
    return { pfn: n >>> 1, netmem: (n & NET_IOV) !== 0, offset: this.offset(i), length: this.length(i) };
  }

  /** Entries `[from, to)` as fresh `Frag` objects. */
  entries(from = 0, to = this.count): Frag[] {
    const out: Frag[] = [];
    for (let i = from; i < to; i++) out.push(this.entry(i));
    return out;
  }

  /** EINVAL unless 0 ≤ i < count. */
  checkIndex(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) fail('EINVAL', `fragment index ${String(i)} is outside [0, ${this.count})`);
  }
}

/** Anything whose fragments are a window of a FragArray: a network buffer. */
export interface FragHolder {
  readonly fragArray: FragArray;
  /** Index in `fragArray` of fragment 0. */
  readonly fragBase: number;
  readonly nrFrags: number;
}

// The array and absolute index of fragment i of `f`, checked against its fragment count.
function slotOf(f: FragArray | FragHolder, i: number): number {
  if (f instanceof FragArray) {
    f.checkIndex(i);
    return i;
  }
  if (typeof f !== 'object' || f === null || !(f.fragArray instanceof FragArray)) fail('EINVAL', 'expected a FragArray or an SkBuff');
  if (!Number.isInteger(i) || i < 0 || i >= f.nrFrags) fail('EINVAL', `fragment index ${String(i)} is outside [0, ${f.nrFrags})`);
  return f.fragBase + i;
}

function arrayOf(f: FragArray | FragHolder): FragArray {
  return f instanceof FragArray ? f : f.fragArray;
}

/** Bytes of fragment `i` of an array or a buffer (`skb_frag_size`). EINVAL for an index out of range. */
export function skbFragSize(f: FragArray | FragHolder, i: number): number {
  const j = slotOf(f, i);
  return arrayOf(f).length(j);
}

/** Offset of fragment `i` (`skb_frag_off`). EINVAL for an index out of range. */
export function skbFragOff(f: FragArray | FragHolder, i: number): number {
  const j = slotOf(f, i);
  return arrayOf(f).offset(j);
}

/** The netmem_ref of fragment `i` (`skb_frag_netmem`). */
export function skbFragNetmem(f: FragArray | FragHolder, i: number): NetmemRef {
  const j = slotOf(f, i);
  return arrayOf(f).netmem(j);
}

/** Whether fragment `i` names a net_iov (`skb_frag_is_net_iov`). */
export function skbFragIsNetIov(f: FragArray | FragHolder, i: number): boolean {
  return netmemIsNetIov(skbFragNetmem(f, i));
}

/**
 * The page of fragment `i` (`skb_frag_page`). The kernel returns NULL for a net_iov; a caller
 * that needs a page has nothing to go on with, so here that is EINVAL.
 */
export function skbFragPage(f: FragArray | FragHolder, i: number): number {
  const j = slotOf(f, i);
  return arrayOf(f).pfn(j);
}

/** Physical address of the first byte of page fragment `i` (`skb_frag_address` as a physical address). */
export function skbFragPhys(f: FragArray | FragHolder, i: number): number {
  return skbFragPage(f, i) * PAGE_SIZE + skbFragOff(f, i);
}
