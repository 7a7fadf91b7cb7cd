// Filling a buffer's fragments from user memory by reference (net/core/datagram.c:
// __zerocopy_sg_from_iter, zerocopy_fill_skb_from_iter; lib/iov_iter.c: iov_iter_get_pages2).

import { PAGE_SIZE } from '../constants.js';
import { checkBool, checkInt, checkOptions, fail, hex, IodescError } from '../errors.js';
import { getUserPagesFast, pinUserPagesFast } from '../mm/gup.js';
import { checkMm, type AddressSpace } from '../mm/mm.js';
import { putPage, unpinUserPage } from '../mm/unpin.js';
import { FRAG_LEN, FRAG_REF_GUP, FRAG_REF_PIN, FRAG_STRIDE } from './frag.js';
import { checkSkb, type SkBuff } from './skbuff.js';

/** Most bytes `iov_iter_get_pages2` takes in one call (`MAX_RW_COUNT`: INT_MAX & PAGE_MASK). */
export const MAX_RW_COUNT = 0x7ffff000;

/** A user-memory iterator a send reads from (`struct iov_iter`, ITER_UBUF, source direction). */
export class UserIter {
  readonly mm: AddressSpace;
  /** Next user address to read. */
  addr: number;
  /** Bytes left (`iov_iter_count`). */
  count: number;

  constructor(mm: AddressSpace, addr: number, count: number) {
    checkMm(mm);
    this.mm = mm;
    this.addr = checkInt('addr', addr);
    this.count = checkInt('count', count, 0, MAX_RW_COUNT);
    if (!Number.isSafeInteger(addr + count)) fail('EINVAL', `addr ${addr} + count ${count} overflows`);
  }

  /** Moves on by `n` bytes (`iov_iter_advance`). */
  advance(n: number): void {
    checkInt('n', n, 0, this.count);
    this.addr += n;
    this.count -= n;
  }

  /** Moves back by `n` bytes (`iov_iter_revert`). */
  revert(n: number): void {
    checkInt('n', n, 0, this.addr);
    this.addr -= n;
    this.count += n;
  }
}

/** Options of the zero-copy fill. */
export interface ZerocopyOptions {
  /** Pin the pages (FOLL_PIN, as `iov_iter_extract_pages` would) instead of mainline's FOLL_GET references. */
  pin?: boolean;
  /** Tag the leak report names for the pages taken. */
  owner?: string;
}

/**
 * Appends up to `length` bytes of user memory at `iter` to `skb`'s fragments by reference
 * (`zerocopy_fill_skb_from_iter`). Per batch it first checks for a free fragment (EMSGSIZE when
 * none is left: the bytes taken so far stay, `iter` has moved past them, the caller continues
 * in the next buffer), takes references on as many pages as fragments remain
 * (`iov_iter_get_pages2`: `getUserPagesFast`, FOLL_GET; FOLL_PIN with `opts.pin`), and fills
 * fragments by compound head, offsets counted from the head, extending the last fragment when
 * a page continues it in the same folio and dropping that page's extra reference. Adds to
 * `len`, `dataLen` and `truesize` (PAGE_ALIGN per batch). EFAULT when no page can be taken or
 * the buffer is unreadable; EINVAL for a buffer without memory or on another memory.
 * Cost: O(pages). The fragments' references are dropped when the buffer is freed.
 */
export function zerocopyFillSkbFromIter(skb: SkBuff, iter: UserIter, length: number, opts?: ZerocopyOptions): void {
  checkSkb(skb);
  if (!(iter instanceof UserIter)) fail('EINVAL', 'iter must be a UserIter');
  checkInt('length', length, 0, MAX_RW_COUNT);
  const o = checkOptions('zero-copy options', opts);
  const pin = o.pin === undefined ? false : checkBool('pin', o.pin);
  if (o.owner !== undefined && typeof o.owner !== 'string') fail('EINVAL', `owner must be a string, got ${String(o.owner)}`);
  const mem = skb.memory;
  if (mem === null) fail('EINVAL', `skb #${skb.id} has no memory: zero-copy needs pages`);
  if (mem !== iter.mm.memory) fail('EINVAL', 'skb and iter live in different memories');
  if (skb.fragView) fail('EINVAL', `skb #${skb.id} is a view of another fragment array`);
  if (skb.unreadable) fail('EFAULT', `skb #${skb.id} is unreadable (net_iov fragments)`);
  const cap = skb.fragCapacity;
  const arr = skb.fragArray;
  const refKind = pin ? FRAG_REF_PIN : FRAG_REF_GUP;
  const pages = new Uint32Array(cap);
  let frag = skb.nrFrags;
  while (length > 0 && iter.count > 0) {
    if (frag === cap) fail('EMSGSIZE', `skb #${skb.id} has all ${cap} fragments in use with ${length} bytes left to send`);
    // iov_iter_get_pages2(from, pages, length, MAX_SKB_FRAGS - frag, &start)
    const maxsize = Math.min(length, iter.count, MAX_RW_COUNT);
    let start = iter.addr % PAGE_SIZE;
    const first = iter.addr - start;
    const want = Math.min(Math.ceil((maxsize + start) / PAGE_SIZE), cap - frag);
    let res: number;
    try {
      res = pin ? pinUserPagesFast(iter.mm, first, want, 0, pages, { owner: o.owner }) : getUserPagesFast(iter.mm, first, want, 0, pages, { owner: o.owner });
    } catch (e) {
      if (e instanceof IodescError) fail('EFAULT', `no page could be taken at ${hex(first)}: ${e.message}`);
      throw e;
    }
    if (res <= 0) fail('EFAULT', `no page could be taken at ${hex(first)}`);
    let copied = Math.min(maxsize, res * PAGE_SIZE - start);
    iter.advance(copied);
    length -= copied;
    skb.dataLen += copied;
    skb.len += copied;
    skb.truesize += Math.ceil((copied + start) / PAGE_SIZE) * PAGE_SIZE;
    let head = mem.folioHead(pages[0]!);
    let nr = mem.folioNrPages(head);
    for (let n = 0; copied !== 0; start = 0) {
      const size = Math.min(copied, PAGE_SIZE - start);
      const p = pages[n]!;
      if (p < head || p - head > nr - 1) {
        head = mem.folioHead(p);
        nr = mem.folioNrPages(head);
      }
      start += (p - head) * PAGE_SIZE;
      copied -= size;
      n++;
      if (frag > 0) {
        const last = skb.fragBase + frag - 1;
        if (arr.netmem(last) === head * 2 && start === arr.offset(last) + arr.length(last)) {
          arr.u32[last * FRAG_STRIDE + FRAG_LEN] = arr.length(last) + size;
          // combined with the last fragment: its reference is the one this page needs
          if (pin) unpinUserPage(mem, p);
          else putPage(mem, p);
          continue;
        }
      }
      arr.setUnchecked(skb.fragBase + frag, head * 2, start, size, refKind);
      frag++;
      skb.setNrFragsUnchecked(frag);
    }
  }
}

/**
 * `__zerocopy_sg_from_iter`: the fill above, the path every MSG_ZEROCOPY send of pages takes
 * (the socket's write-memory accounting of `truesize` is not modelled). Fails as
 * `zerocopyFillSkbFromIter`.
 */
export function zerocopySgFromIter(skb: SkBuff, iter: UserIter, length: number, opts?: ZerocopyOptions): void {
  zerocopyFillSkbFromIter(skb, iter, length, opts);
}
