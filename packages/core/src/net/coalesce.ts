// When a new piece of memory extends a buffer's last fragment instead of taking a new one
// (include/linux/skbuff.h: skb_can_coalesce; net/core/skbuff.c: skb_append_pagefrags).
// Networking's rule is narrower than the block layer's: the same page, continued exactly.
// Physically adjacent pages are never merged, as scatterlists and bios merge them.

import { PAGE_SIZE } from '../constants.js';
import { checkInt, fail } from '../errors.js';
import { FRAG_FIELD_MAX, FRAG_LEN, FRAG_REF_NONE, FRAG_REF_PAGE, FRAG_STRIDE } from './frag.js';
import { NETMEM_MAX_INDEX, type NetmemRef } from './netmem.js';
import { checkOwnFrags, checkSkb, type SkBuff } from './skbuff.js';

/**
 * Whether `off` of netmem `netmem` continues fragment `i - 1` exactly (`skb_can_coalesce_netmem`):
 * false for `i` = 0, for a zero-copy buffer (its fragments belong to the completion), and when
 * fragment `i - 1` is not in use (as past the end of a view's window). EINVAL for `i` outside
 * [0, maxFrags]. Cost: O(1).
 */
export function skbCanCoalesceNetmem(skb: SkBuff, i: number, netmem: NetmemRef, off: number): boolean {
  checkSkb(skb);
  if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i > skb.maxFrags) {
    fail('EINVAL', `fragment index ${String(i)} is outside [0, ${skb.maxFrags}] (maxFrags)`);
  }
  checkInt('netmem', netmem, 0, 0xffffffff);
  checkInt('off', off, 0, FRAG_FIELD_MAX);
  if (skb.uarg !== null || i === 0 || i > skb.nrFrags) return false;
  const arr = skb.fragArray;
  const j = skb.fragBase + i - 1;
  return arr.netmem(j) === netmem && off === arr.offset(j) + arr.length(j);
}

/**
 * Whether `off` of page `pfn` continues fragment `i - 1` (`skb_can_coalesce`): the same page,
 * starting where the fragment ends. A fragment ending at the end of page P does not continue
 * into page P + 1, however contiguous. Fails as `skbCanCoalesceNetmem`.
 */
export function skbCanCoalesce(skb: SkBuff, i: number, pfn: number, off: number): boolean {
  checkInt('pfn', pfn, 0, NETMEM_MAX_INDEX);
  return skbCanCoalesceNetmem(skb, i, pfn * 2, off);
}

/**
 * Appends `size` bytes at `offset` of page `pfn` to the buffer's fragments
 * (`skb_append_pagefrags`): extends the last fragment when `skbCanCoalesce` allows, else takes
 * a page reference (`get_page`, in a buffer with memory) and fills a new fragment. `len` and
 * `dataLen` are the caller's to update. EMSGSIZE when a new fragment is needed and
 * `nrFrags` ≥ `maxFrags` (default the buffer's capacity); nothing changes then. EINVAL as
 * `skbFillPageDesc`, and for a view (`skbsFromFrags`: its entries are another array's). A
 * zero-copy buffer's fragments record their own references (`FRAG_REF_*`, none for pages a
 * completion manages), so the kernel's `skb_zcopy_downgrade_managed` has nothing to convert:
 * the new fragment alone takes a reference. Cost: O(1).
 */
export function skbAppendPagefrags(skb: SkBuff, pfn: number, offset: number, size: number, maxFrags?: number): void {
  checkSkb(skb);
  checkOwnFrags(skb);
  const max = maxFrags === undefined ? skb.fragCapacity : checkInt('maxFrags', maxFrags, 0, skb.fragCapacity);
  checkInt('pfn', pfn, 0, NETMEM_MAX_INDEX);
  checkInt('offset', offset, 0, FRAG_FIELD_MAX);
  checkInt('size', size, 0, FRAG_FIELD_MAX);
  const i = skb.nrFrags;
  const mem = skb.memory;
  const arr = skb.fragArray;
  if (skbCanCoalesce(skb, i, pfn, offset)) {
    const j = skb.fragBase + i - 1;
    const merged = arr.length(j) + size;
    if (merged > FRAG_FIELD_MAX) fail('EINVAL', `fragment ${i - 1} would grow to ${merged} bytes, past unsigned int`);
    if (mem !== null) checkInFolio(skb, pfn, arr.offset(j), merged);
    arr.u32[j * FRAG_STRIDE + FRAG_LEN] = merged;
    return;
  }
  if (i >= max) fail('EMSGSIZE', `skb #${skb.id} holds ${i} fragments, the most it may (${max})`);
  let ref = FRAG_REF_NONE;
  if (mem !== null) {
    mem.checkLivePfn('pfn', pfn);
    checkInFolio(skb, pfn, offset, size);
    const head = mem.folioHead(pfn);
    if (!mem.tryRefAdd(head, 1)) fail('ENOMEM', `refcount of pfn ${head} would overflow`);
    ref = FRAG_REF_PAGE;
  }
  arr.setUnchecked(skb.fragBase + i, pfn * 2, offset, size, ref);
  skb.setNrFragsUnchecked(i + 1);
}

function checkInFolio(skb: SkBuff, pfn: number, offset: number, size: number): void {
  const mem = skb.memory!;
  const head = mem.folioHead(pfn);
  if (pfn * PAGE_SIZE + offset + size > (head + mem.folioNrPages(head)) * PAGE_SIZE) {
    fail('EINVAL', `fragment [pfn ${pfn} + ${offset}, ${size} bytes) runs past the end of its folio (pfn ${head})`);
  }
}
