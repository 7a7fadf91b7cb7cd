// MSG_ZEROCOPY send (net/core/skbuff.c: msg_zerocopy_alloc/realloc, the completion callback,
// skb_zerocopy_iter_stream; tcp_sendmsg_locked's loop): the send is charged to the user's locked
// memory, its pages become fragments by reference (datagram.ts), and a notification says when
// they are the user's again.

import { checkBool, checkInt, checkOptions, fail, IodescError } from '../errors.js';
import { mmAccountPinnedPages, mmUnaccountPinnedPages, newMmPin, type MmPin } from '../mm/accounting.js';
import type { LeakEntry } from '../mm/leak.js';
import type { PhysicalMemory } from '../mm/memory.js';
import { checkMm, type AddressSpace } from '../mm/mm.js';
import { MAX_RW_COUNT, UserIter, zerocopySgFromIter, type ZerocopyOptions } from './datagram.js';
import { kfreeSkb, pskbTrim } from './skb-free.js';
import { checkSkb, GSO_MAX_SIZE, MAX_SKB_FRAGS, MAX_SKB_FRAGS_MAX, MAX_SKB_FRAGS_MIN, SkBuff, type ZcopyRef } from './skbuff.js';

/** `ee_origin` of a zero-copy notification (`SO_EE_ORIGIN_ZEROCOPY`). */
export const SO_EE_ORIGIN_ZEROCOPY = 5;
/** `ee_code` bit: the data was copied after all (`SO_EE_CODE_ZEROCOPY_COPIED`). */
export const SO_EE_CODE_ZEROCOPY_COPIED = 1;
/** A completion record stops growing past this many bytes (`msg_zerocopy_realloc`: "a few TSO"). */
export const ZEROCOPY_BYTE_LIMIT = 1 << 19;
const USHRT_MAX = 0xffff;

/** One notification on the error queue: sends `lo`..`hi` (inclusive) completed. */
export interface ZerocopyNotification {
  lo: number;
  hi: number;
  /** `SO_EE_CODE_ZEROCOPY_COPIED`: the kernel copied the data, the pages were not sent in place. */
  copied: boolean;
}

/** Options of `new ZerocopySocket`. */
export interface ZerocopySocketOptions {
  /** `'stream'` (TCP, the default) or `'dgram'` (UDP): they extend completion records differently. */
  type?: 'stream' | 'dgram';
}

/** The socket state MSG_ZEROCOPY uses: the next send id (`sk_zckey`) and the error queue. */
export class ZerocopySocket {
  readonly mm: AddressSpace;
  readonly type: 'stream' | 'dgram';
  /** Id of the next zero-copy send (`sk_zckey`). */
  zckey = 0;
  /** Notifications not yet read (`sk_error_queue`). */
  readonly errqueue: ZerocopyNotification[] = [];
  /** The socket was closed (`SOCK_DEAD`): completions queue nothing. */
  dead = false;

  constructor(mm: AddressSpace, opts?: ZerocopySocketOptions) {
    checkMm(mm);
    const o = checkOptions('ZerocopySocket options', opts);
    if (o.type !== undefined && o.type !== 'stream' && o.type !== 'dgram') fail('EINVAL', `type must be 'stream' or 'dgram', got ${String(o.type)}`);
    this.mm = mm;
    this.type = o.type ?? 'stream';
  }

  /** Reads and empties the error queue (`recvmsg(MSG_ERRQUEUE)`). */
  recvErrqueue(): ZerocopyNotification[] {
    return this.errqueue.splice(0);
  }
}

/**
 * A zero-copy completion record (`struct ubuf_info_msgzc`): sends `id`..`id + len − 1`,
 * `bytelen` bytes, the locked memory they charged (`mmp`), and a reference per buffer
 * holding it plus one for the send in progress.
 */
export class UbufInfo implements ZcopyRef {
  readonly sk: ZerocopySocket;
  id: number;
  len = 1;
  bytelen: number;
  /** Every buffer was sent in place (cleared when one was copied). */
  zerocopy = true;
  readonly mmp: MmPin = newMmPin();
  refcnt = 1;
  /** The completion ran (refcount reached 0). */
  completed = false;

  constructor(sk: ZerocopySocket, size: number) {
    this.sk = sk;
    this.bytelen = size;
    this.id = 0;
  }

  netZcopyGet(): void {
    if (this.completed) fail('EINVAL', `zero-copy completion ${this.id} already ran`);
    this.refcnt++;
  }

  // msg_zerocopy_complete(): the last reference runs the callback.
  netZcopyPut(success: boolean): void {
    if (this.completed || this.refcnt <= 0) fail('EINVAL', `zero-copy completion ${this.id} put more often than taken`);
    this.zerocopy &&= success;
    if (--this.refcnt === 0) this.callback();
  }

  // __msg_zerocopy_callback(): return the locked memory, then queue (or extend) a notification.
  private callback(): void {
    this.completed = true;
    trackLive(this, false);
    mmUnaccountPinnedPages(this.mmp);
    const sk = this.sk;
    if (this.len === 0 || sk.dead) return;
    const lo = this.id;
    const hi = (this.id + this.len - 1) >>> 0;
    const tail = sk.errqueue[sk.errqueue.length - 1];
    // skb_zerocopy_notify_extend(): a range continuing the last one extends it
    if (tail !== undefined && lo === ((tail.hi + 1) >>> 0) && tail.hi - tail.lo + 1 + this.len < 2 ** 32) {
      tail.hi = hi;
      return;
    }
    sk.errqueue.push({ lo, hi, copied: !this.zerocopy });
  }
}

// Completion records not yet completed, per memory, for the leak report.
const liveByMemory = new WeakMap<PhysicalMemory, Set<UbufInfo>>();

function trackLive(uarg: UbufInfo, live: boolean): void {
  const memory = uarg.sk.mm.memory;
  let set = liveByMemory.get(memory);
  if (set === undefined) {
    const s = (set = new Set());
    liveByMemory.set(memory, s);
    memory.leakSources.push(() => [...s].map(leakOf));
  }
  if (live) set.add(uarg);
  else set.delete(uarg);
}

function leakOf(u: UbufInfo): LeakEntry {
  const hi = (u.id + u.len - 1) >>> 0;
  return {
    kind: 'other', count: u.refcnt, owner: undefined,
    detail: `zero-copy completion ${u.id}..${hi} (${u.bytelen} bytes) holds ${u.refcnt} reference(s) and ${u.mmp.numPg} locked page(s): a buffer holding it was never freed`,
  };
}

function checkSock(sk: unknown): asserts sk is ZerocopySocket {
  if (!(sk instanceof ZerocopySocket)) fail('EINVAL', 'sk must be a ZerocopySocket');
}

/**
 * A completion record for a send of `size` bytes (`msg_zerocopy_alloc`): charges
 * (size >> PAGE_SHIFT) + 2 pages to the user's locked memory (`mm_account_pinned_pages`) and
 * takes the next id. ENOBUFS when the charge passes RLIMIT_MEMLOCK; nothing is charged then.
 * Release: `netZcopyPut` for the send's own reference; buffers drop theirs when freed.
 */
export function msgZerocopyAlloc(sk: ZerocopySocket, size: number): UbufInfo {
  checkSock(sk);
  checkInt('size', size, 0, MAX_RW_COUNT);
  const uarg = new UbufInfo(sk, size);
  mmAccountPinnedPages(sk.mm, uarg.mmp, size);
  uarg.id = sk.zckey;
  sk.zckey = (sk.zckey + 1) >>> 0;
  trackLive(uarg, true);
  return uarg;
}

/**
 * Extends `uarg` to cover one more send of `size` bytes when it is the socket's latest record
 * and stays under 512 KiB, charging the locked memory again and (for a stream) taking a
 * reference for the caller; otherwise a new record (`msg_zerocopy_realloc`). ENOBUFS when the
 * charge fails, or a datagram record cannot grow; EINVAL for a record that already completed
 * (in the kernel the tail buffer holding it keeps it alive). Nothing is charged when it fails.
 */
export function msgZerocopyRealloc(sk: ZerocopySocket, size: number, uarg: UbufInfo | null): UbufInfo {
  checkSock(sk);
  checkInt('size', size, 0, MAX_RW_COUNT);
  if (uarg !== null) {
    if (!(uarg instanceof UbufInfo) || uarg.sk !== sk) fail('ENOBUFS', 'uarg is not a MSG_ZEROCOPY record of this socket');
    // the caller's buffer holds it, so the kernel's record cannot have completed: refuse before charging
    if (uarg.completed || uarg.refcnt < 1) fail('EINVAL', `zero-copy completion ${uarg.id} already ran: no buffer holds it`);
    const bytelen = uarg.bytelen + size;
    if (uarg.len === USHRT_MAX - 1 || bytelen > ZEROCOPY_BYTE_LIMIT) {
      if (sk.type !== 'stream') fail('ENOBUFS', `a datagram completion record cannot grow to ${bytelen} bytes / ${uarg.len + 1} sends`);
    } else if (((uarg.id + uarg.len) >>> 0) === sk.zckey) {
      mmAccountPinnedPages(sk.mm, uarg.mmp, size);
      uarg.len++;
      uarg.bytelen = bytelen;
      sk.zckey = (sk.zckey + 1) >>> 0;
      if (sk.type === 'stream') uarg.netZcopyGet();
      return uarg;
    }
  }
  return msgZerocopyAlloc(sk, size);
}

/** Drops a reference on `uarg` (`net_zcopy_put`): the send's own once it has queued its buffers. */
export function netZcopyPut(uarg: UbufInfo): void {
  if (!(uarg instanceof UbufInfo)) fail('EINVAL', 'uarg must be a UbufInfo');
  uarg.netZcopyPut(true);
}

/**
 * Undoes the latest send of `uarg` after it failed (`msg_zerocopy_put_abort`): gives its id
 * back, and with `haveUref` drops the send's reference (a record left with no send queues no
 * notification when it completes).
 */
export function netZcopyPutAbort(uarg: UbufInfo, haveUref: boolean): void {
  if (!(uarg instanceof UbufInfo)) fail('EINVAL', 'uarg must be a UbufInfo');
  checkBool('haveUref', haveUref);
  uarg.sk.zckey = (uarg.sk.zckey - 1) >>> 0;
  uarg.len--;
  if (haveUref) uarg.netZcopyPut(true);
}

/** Points `skb` at `uarg`, taking a reference, unless it points at one already (`skb_zcopy_set`). */
export function skbZcopySet(skb: SkBuff, uarg: UbufInfo): void {
  checkSkb(skb);
  if (!(uarg instanceof UbufInfo)) fail('EINVAL', 'uarg must be a UbufInfo');
  if (skb.uarg !== null) return;
  uarg.netZcopyGet();
  skb.uarg = uarg;
}

/**
 * A stream socket's step (`skb_zerocopy_iter_stream`): fills `skb` from `iter` and points it at
 * `uarg`. Returns the bytes added, which may be fewer than `len` when the fragments ran out
 * (the caller opens a new buffer). When nothing could be added (EMSGSIZE on a full buffer) or
 * a page faulted (EFAULT), the buffer and `iter` are put back as they were and the error
 * thrown. EEXIST when the buffer already holds another completion record.
 */
export function skbZerocopyIterStream(sk: ZerocopySocket, skb: SkBuff, iter: UserIter, len: number, uarg: UbufInfo, opts?: ZerocopyOptions): number {
  checkSock(sk);
  checkSkb(skb);
  if (!(uarg instanceof UbufInfo)) fail('EINVAL', 'uarg must be a UbufInfo');
  if (skb.uarg !== null && skb.uarg !== uarg) fail('EEXIST', `skb #${skb.id} already points at another zero-copy completion`);
  const origLen = skb.len;
  try {
    zerocopySgFromIter(skb, iter, len, opts);
  } catch (e) {
    const code = e instanceof IodescError ? e.code : undefined;
    if (code === 'EFAULT' || (code === 'EMSGSIZE' && skb.len === origLen)) {
      iter.revert(skb.len - origLen);
      pskbTrim(skb, origLen);
      throw e;
    }
    if (code !== 'EMSGSIZE') throw e;
  }
  skbZcopySet(skb, uarg);
  return skb.len - origLen;
}

/** `GSO_LEGACY_MAX_SIZE`: the `gso_ipv4_max_size` a device has unless raised (BIG TCP). */
export const GSO_LEGACY_MAX_SIZE = 65536;
/**
 * `MAX_TCP_HEADER` = `L1_CACHE_ALIGN(128 + MAX_HEADER)` with a distribution configuration:
 * `LL_MAX_HEADER` 128 (WLAN with MAC80211_MESH), `MAX_HEADER` 176 (IP tunnels built) → 320.
 */
export const MAX_TCP_HEADER = 320;
/** MSS of a TCP connection over Ethernet with timestamps: 1500 − 20 (IP) − 20 (TCP) − 12 (options). */
export const TCP_ETH_MSS = 1448;
/**
 * Bytes `tcp_sendmsg_locked` puts in one buffer by default (`size_goal`, from
 * `tcp_xmit_size_goal`): `sk_gso_max_size` = 65536 − (MAX_TCP_HEADER + 1) = 65215
 * (`sk_dst_gso_max_size`), rounded down to the MSS: 45 × 1448 = 65160 (a peer window over
 * twice that, so `tcp_bound_to_half_wnd` does not cut it). A minimal configuration
 * (MAX_TCP_HEADER 192) gives the same 45 segments.
 */
export const TCP_SIZE_GOAL = Math.floor((GSO_LEGACY_MAX_SIZE - (MAX_TCP_HEADER + 1)) / TCP_ETH_MSS) * TCP_ETH_MSS;

/** Options of `sendmsgZerocopy`. */
export interface SendmsgZerocopyOptions extends ZerocopyOptions {
  /** `CONFIG_MAX_SKB_FRAGS` of the buffers made (default 17). */
  maxFrags?: number;
  /** Extend this completion record if it is the socket's latest (`msg_zerocopy_realloc`). */
  uarg?: UbufInfo;
  /** Most bytes per buffer (TCP's `size_goal`, 1..GSO_MAX_SIZE; default `TCP_SIZE_GOAL`, 65160). */
  sizeGoal?: number;
}

/** What `sendmsgZerocopy` queued. */
export interface SendmsgZerocopyResult {
  /** The buffers filled, in order, each holding a reference on the completion record. */
  skbs: SkBuff[];
  /** Bytes queued (`tcp_sendmsg`'s return value): the sum of the buffers' `len`. */
  copied: number;
  /** The error that ended the send early after some bytes were queued, or null. */
  error: IodescError | null;
}

/**
 * `send(fd, buf, size, MSG_ZEROCOPY)` on a stream socket, as `tcp_sendmsg_locked` does it:
 * one completion record for the call (charging the locked memory once, ENOBUFS past the
 * limit), then buffers filled by reference, each up to `sizeGoal` bytes (each step takes
 * min(sizeGoal − skb.len, bytes left)); a buffer that runs out of fragments is closed and a
 * new one opened. The send's own reference on the record is dropped before returning, so the
 * notification comes once every buffer is freed (`consumeSkb`, or a NIC's transmit).
 *
 * A step that fails (EFAULT on a page that cannot be taken, ENOMEM for a head) undoes itself;
 * then, as the kernel's `do_error` with bytes copied, the buffers filled before it are
 * returned with `copied` and the `error`; the empty buffer is freed. Only when nothing was
 * queued is the record aborted (`net_zcopy_put_abort`: its id given back, its charge returned)
 * and the error thrown, nothing left referenced or charged. Cost: O(pages); one buffer per
 * `sizeGoal` bytes or `maxFrags` fragments. Release: every buffer returned.
 */
export function sendmsgZerocopy(sk: ZerocopySocket, addr: number, size: number, opts?: SendmsgZerocopyOptions): SendmsgZerocopyResult {
  checkSock(sk);
  const o = checkOptions('sendmsgZerocopy options', opts);
  checkInt('size', size, 1, MAX_RW_COUNT);
  const sizeGoal = o.sizeGoal === undefined ? TCP_SIZE_GOAL : checkInt('sizeGoal', o.sizeGoal, 1, GSO_MAX_SIZE);
  const maxFrags = o.maxFrags === undefined ? MAX_SKB_FRAGS : checkInt('maxFrags', o.maxFrags, MAX_SKB_FRAGS_MIN, MAX_SKB_FRAGS_MAX);
  const iter = new UserIter(sk.mm, addr, size);
  const uarg = msgZerocopyRealloc(sk, size, o.uarg ?? null);
  const skbs: SkBuff[] = [];
  let copied = 0;
  let skb: SkBuff | null = null;
  try {
    while (iter.count > 0) {
      if (skb === null || skb.len >= sizeGoal) {
        skb = new SkBuff({ memory: sk.mm.memory, maxFrags });
        skbs.push(skb);
      }
      const copy = Math.min(sizeGoal - skb.len, iter.count);
      try {
        copied += skbZerocopyIterStream(sk, skb, iter, copy, uarg, { pin: o.pin, owner: o.owner });
      } catch (e) {
        // a full buffer: tcp_mark_push(), then new_segment
        if (e instanceof IodescError && e.code === 'EMSGSIZE' && skb.len > 0) {
          skb = null;
          continue;
        }
        throw e;
      }
    }
  } catch (e) {
    // do_error: tcp_remove_empty_skb(), then out with what was queued, or out_err
    const kept = skbs.filter((s) => s.len > 0);
    for (const s of skbs) if (s.len === 0 && !s.freed) kfreeSkb(s);
    if (copied === 0 || !(e instanceof IodescError)) {
      for (const s of kept) if (!s.freed) kfreeSkb(s);
      netZcopyPutAbort(uarg, true);
      throw e;
    }
    netZcopyPut(uarg);
    return { skbs: kept, copied, error: e };
  }
  netZcopyPut(uarg);
  return { skbs, copied, error: null };
}
