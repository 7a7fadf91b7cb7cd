// Releasing a buffer (net/core/skbuff.c: skb_release_data, __skb_frag_ref/unref, kfree_skb,
// consume_skb, ___pskb_trim): the zero-copy completion, each fragment's reference, the
// frag_list, the head.

import { checkInt, fail } from '../errors.js';
import type { PhysicalMemory } from '../mm/memory.js';
import { putPage, unpinUserPage } from '../mm/unpin.js';
import { FRAG_LEN, FRAG_REF, FRAG_REF_GUP, FRAG_REF_NONE, FRAG_REF_PAGE, FRAG_REF_PIN, FRAG_STRIDE, type FragArray } from './frag.js';
import { checkOwnFrags, checkSkb, fragBytes, fragListBytes, type SkBuff } from './skbuff.js';

/** Drops the reference fragment entry `j` of `arr` holds, as its kind says (`__skb_frag_unref`). */
export function fragUnref(memory: PhysicalMemory, arr: FragArray, j: number): void {
  const kind = arr.ref(j);
  if (kind === FRAG_REF_NONE) return;
  const pfn = arr.netmem(j) >>> 1;
  if (kind === FRAG_REF_PAGE) memory.folioPutRefs(pfn, 1);
  else if (kind === FRAG_REF_GUP) putPage(memory, pfn);
  else if (kind === FRAG_REF_PIN) unpinUserPage(memory, pfn);
  arr.u32[j * FRAG_STRIDE + FRAG_REF] = FRAG_REF_NONE;
}

/** Takes one page reference on the page fragment `j` names (`__skb_frag_ref`); returns the kind to record. */
export function fragRef(memory: PhysicalMemory | null, arr: FragArray, j: number): number {
  if (memory === null || arr.isNetIov(j)) return FRAG_REF_NONE;
  const head = memory.folioHead(arr.netmem(j) >>> 1);
  if (!memory.tryRefAdd(head, 1)) fail('ENOMEM', `refcount of pfn ${head} would overflow`);
  return FRAG_REF_PAGE;
}

/**
 * Frees the buffer (`kfree_skb`, a drop): the zero-copy completion is released first
 * (`skb_zcopy_clear`), then the reference each fragment entry records (`FRAG_REF_*`; a view's
 * entries are its array owner's), the frag_list members, and the head. EINVAL for a buffer already freed. Cost: O(fragments).
 */
export function kfreeSkb(skb: SkBuff): void {
  checkSkb(skb);
  releaseSkb(skb, true);
}

/** Frees a buffer that was used as intended (`consume_skb`); as `kfreeSkb`. */
export function consumeSkb(skb: SkBuff): void {
  kfreeSkb(skb);
}

/** Frees every buffer of the list starting at `skb`, linked through `next` (`kfree_skb_list`). */
export function kfreeSkbList(skb: SkBuff | null): void {
  while (skb !== null) {
    const next = skb.next;
    kfreeSkb(skb);
    skb = next;
  }
}

// skb_release_data() then the head, for a buffer its caller checked.
function releaseSkb(skb: SkBuff, zcopySuccess: boolean): void {
  skb.freed = true;
  const uarg = skb.uarg;
  if (uarg !== null) {
    skb.uarg = null;
    uarg.netZcopyPut(zcopySuccess);
  }
  const mem = skb.memory;
  if (mem !== null && !skb.fragView) for (let k = 0; k < skb.nrFrags; k++) fragUnref(mem, skb.fragArray, skb.fragBase + k);
  let m = skb.fragList;
  skb.fragList = null;
  while (m !== null) {
    const next = m.next;
    if (!m.freed) releaseSkb(m, zcopySuccess);
    m = next;
  }
  if (mem !== null) mem.folioPutRefs(skb.headPfn, 1);
}

/**
 * Trims the buffer to `len` bytes (`pskb_trim` / `___pskb_trim`): fragments past it are dropped
 * with their references, the one it cuts is shortened, then the linear part. EINVAL for `len`
 * past the buffer, a cut inside the frag_list (not modelled), or a cut inside a fragment of a
 * view (`skbsFromFrags`: its entries are the viewed array's; whole fragments may be dropped).
 * Nothing changes when it fails. Cost: O(fragments).
 */
export function pskbTrim(skb: SkBuff, len: number): void {
  checkSkb(skb);
  checkInt('len', len, 0, skb.len);
  if (len === skb.len) return;
  const headlen = skb.headlen;
  const paged = headlen + fragBytes(skb);
  if (skb.fragList !== null && len > paged) fail('EINVAL', 'pskb_trim inside a frag_list member is not modelled');
  const arr = skb.fragArray;
  let pos = headlen;
  let keep = 0;
  let cut = -1;
  for (let k = 0; k < skb.nrFrags && pos < len; k++) {
    const n = arr.length(skb.fragBase + k);
    keep = k + 1;
    if (pos + n > len) cut = k;
    pos += n;
  }
  if (cut >= 0) {
    checkOwnFrags(skb);
    const j = skb.fragBase + cut;
    arr.u32[j * FRAG_STRIDE + FRAG_LEN] = arr.length(j) - (pos - len);
  }
  if (skb.fragList !== null) {
    kfreeSkbList(skb.fragList);
    skb.fragList = null;
  }
  if (skb.memory !== null && !skb.fragView) {
    for (let k = keep; k < skb.nrFrags; k++) fragUnref(skb.memory, arr, skb.fragBase + k);
  }
  skb.setNrFragsUnchecked(keep);
  skb.len = len;
  skb.dataLen = Math.max(0, len - Math.min(headlen, len));
}
