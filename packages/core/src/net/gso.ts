// Generic segmentation offload in software (net/core/skbuff.c: skb_segment): one large buffer
// becomes MSS-sized ones that share its page fragments by reference, copy its linear bytes and
// its headers, and walk its frag_list, including GSO_BY_FRAGS (net/core/net_test.c's cases).

import { checkBool, checkInt, checkOptions, fail, IodescError } from '../errors.js';
import type { PhysicalMemory } from '../mm/memory.js';
import { FRAG_LEN, FRAG_OFF, FRAG_REF, FRAG_REF_NONE, FRAG_STRIDE } from './frag.js';
import { skbCopyBitsInto, skbPut } from './skb-data.js';
import { fragRef, kfreeSkbList, pskbTrim } from './skb-free.js';
import { checkSkb, fragBytes, fragListBytes, GSO_BY_FRAGS, GSO_MAX_SEGS, GSO_MAX_SIZE, SkBuff } from './skbuff.js';

/** `gso_type` bit: the buffer comes from an untrusted source, its `gso_size` unchecked (`SKB_GSO_DODGY`). */
export const SKB_GSO_DODGY = 1 << 1;
/** `gso_type` bit a GSO_PARTIAL segment gets (`SKB_GSO_PARTIAL`). */
export const SKB_GSO_PARTIAL = 1 << 12;

/** Options of `skbSegment`: the MSS and the device features it honours. */
export interface SkbSegmentOptions {
  /** Payload bytes per segment, 1..65535 (`gso_size`; `GSO_BY_FRAGS` cuts at frag_list members). Default `skb.gsoSize`. */
  mss?: number;
  /** The device takes fragments (`NETIF_F_SG`, default true): without it every segment is copied linear. */
  sg?: boolean;
  /** The device finishes segmentation itself (`NETIF_F_GSO_PARTIAL`): cut to a multiple of the MSS instead. */
  partial?: boolean;
  /**
   * Bytes at the front of the linear data that are headers, for a buffer built with them inside
   * `len` (as before net_test.c's `skb_pull`): they are treated as in front of `data` for the
   * call, and the buffer is left as it was. Default 0; EINVAL with `hdrLen` already set on the buffer.
   */
  hdrLen?: number;
}

// The BUG_ON()s of skb_segment: input the kernel does not survive, an error here.
function bug(what: string): never {
  fail('EINVAL', `skb_segment: ${what} (a BUG_ON in the kernel)`);
}

/**
 * Segments `skb` (`skb_segment`, with NETIF_F_HW_CSUM: checksums are left to the device).
 * Each segment starts with a copy of the `macHeaderLen` header bytes in front of `skb.data`
 * (net_test.c's 9-byte "abcdefgh"), then up to `mss` payload bytes: linear bytes copied,
 * page fragments shared (each segment takes its own page reference), a frag_list member that
 * starts a segment cloned (its linear bytes copied, its fragments referenced). A zero-copy
 * buffer's completion is shared by every segment. Returns the segments in order, linked
 * through `next`; `skb` is left as it was (its caller still frees it). With `opts.hdrLen` the
 * headers are the first bytes of the linear data instead.
 *
 * Segments start at their MAC header (`data` there, `networkHeader` as far on as in `skb`)
 * and carry `gso_type` 0 (a cloned frag_list member keeps its own), except the GSO buffers of a split (NETIF_F_GSO_PARTIAL, or a
 * frag_list of equal members): those get `gsoSize`, `gsoSegs` and `skb.gsoType` with
 * SKB_GSO_DODGY cleared, plus SKB_GSO_PARTIAL only with `partial`. A SKB_GSO_DODGY buffer
 * whose MSS is not its linear length and whose frag_list has a member with a kmalloc'd linear
 * part (`headFrag` false) is segmented without SG, as the kernel turns NETIF_F_SG off.
 *
 * Cost: O(segments + fragments); one head allocation per segment. Release each segment with
 * `kfreeSkb`/`consumeSkb`. Throws EINVAL for an MSS of 0 or above 65535, `GSO_BY_FRAGS`
 * without a frag_list, `len`/`dataLen` that disagree with the fragments, a buffer longer than
 * `GSO_MAX_SIZE` or cut into more than `GSO_MAX_SEGS` segments, more fragments in a segment
 * than `maxFrags` ("too many frags"), and the layouts the kernel BUG()s on; ENOMEM when a head
 * cannot be allocated, or when GSO_BY_FRAGS without SG would copy past `len` (the kernel's
 * `skb_copy_bits` fails and `skb_segment` returns its initial -ENOMEM), as when it would copy
 * a net_iov's unreadable bytes. Every segment made is
 * freed before it throws.
 */
export function skbSegment(skb: SkBuff, opts?: SkbSegmentOptions): SkBuff[] {
  checkSkb(skb);
  const o = checkOptions('skbSegment options', opts);
  const pulled = o.hdrLen === undefined ? 0 : checkInt('hdrLen', o.hdrLen, 0, skb.headlen);
  if (pulled === 0) return segment(skb, o);
  if (skb.macHeaderLen > 0) fail('EINVAL', `skb #${skb.id} already has ${skb.macHeaderLen} header bytes in front of data`);
  // skb_reset_mac_header() + skb_pull(hdrLen) for the call, undone after it
  const mac = skb.macHeader;
  const net = skb.networkHeader;
  skb.macHeader = skb.dataOff;
  skb.dataOff += pulled;
  skb.len -= pulled;
  skb.networkHeader = skb.dataOff;
  try {
    return segment(skb, o);
  } finally {
    skb.dataOff -= pulled;
    skb.len += pulled;
    skb.macHeader = mac;
    skb.networkHeader = net;
  }
}

function segment(skb: SkBuff, o: Partial<SkbSegmentOptions>): SkBuff[] {
  const origMss = checkInt('mss', o.mss ?? skb.gsoSize, 1, GSO_BY_FRAGS);
  let sg = o.sg === undefined ? true : checkBool('sg', o.sg);
  const partial = o.partial === undefined ? false : checkBool('partial', o.partial);
  checkSegmentable(skb, origMss);
  if ((skb.gsoType & SKB_GSO_DODGY) !== 0 && origMss !== GSO_BY_FRAGS && origMss !== skb.headlen) {
    // an untrusted gso_size and a member with a kmalloc'd linear part: the members may not end
    // on MSS boundaries, so their pages cannot be shared: copy instead (features &= ~NETIF_F_SG)
    for (let m = skb.fragList; m !== null; m = m.next) {
      if (m.headlen > 0 && !m.headFrag) {
        sg = false;
        break;
      }
    }
  }
  const mem = skb.memory;
  const doffset = skb.macHeaderLen;
  const gsoByFrags = origMss === GSO_BY_FRAGS;
  let mss = origMss;
  let listSkb = skb.fragList;
  let partialSegs = 0;
  let len = skb.len;

  if (sg && !gsoByFrags) {
    let cut = partial;
    if (!partial && listSkb !== null) {
      // all GSO features but frag_list: split into GSO buffers without one, when the members
      // have no linear part of their own (or a page one) and all but the last are equal
      const fragLen = listSkb.len;
      cut = true;
      for (let it: SkBuff | null = listSkb; it !== null; it = it.next) {
        if ((fragLen !== it.len && it.next !== null) || (it.headlen > 0 && !it.headFrag)) {
          cut = false;
          break;
        }
        len -= it.len;
      }
      if (len !== fragLen) cut = false;
    }
    if (cut) {
      partialSegs = Math.floor(Math.min(len, GSO_BY_FRAGS - 1) / mss);
      if (partialSegs > 1) mss *= partialSegs;
      else partialSegs = 0;
    }
  }

  // the kernel pushes the headers back onto head_skb: positions below count from the MAC header
  const hLen = skb.len + doffset;
  const hHeadlen = skb.headlen + doffset;
  const headroom = skb.dataOff - doffset;
  const macPhys = mem === null ? -1 : skb.dataPhys - doffset;
  let offset = doffset;
  let pos = hHeadlen;
  let i = 0;
  let fragSkb = skb;
  let nfrags = skb.nrFrags;
  let segLen = 0;
  const segs: SkBuff[] = [];
  try {
    do {
      if (gsoByFrags && listSkb === null) bug('GSO_BY_FRAGS ran out of frag_list members before len');
      segLen = gsoByFrags ? listSkb!.len : Math.min(hLen - offset, mss);
      let hsize = hHeadlen - offset;
      let nskb: SkBuff;
      if (hsize <= 0 && i >= nfrags && listSkb !== null && listSkb.headlen > 0 && (listSkb.headlen === segLen || sg)) {
        if (listSkb.headlen > segLen) bug(`frag_list member of ${listSkb.headlen} linear bytes in a ${segLen}-byte segment`);
        const member: SkBuff = listSkb;
        i = 0;
        nfrags = member.nrFrags;
        fragSkb = member;
        pos += member.headlen;
        while (pos < offset + segLen) {
          if (i >= nfrags) bug(`BUG_ON(i >= nfrags): frag_list member #${member.id} ends before its ${segLen}-byte segment does (non-uniform frag_list with SG)`);
          const size = member.fragArray.length(member.fragBase + i);
          if (pos + size > offset + segLen) break;
          i++;
          pos += size;
        }
        nskb = cloneMember(member, doffset, headroom, segLen);
        segs.push(nskb);
        listSkb = member.next;
      } else {
        if (hsize < 0) hsize = 0;
        if (hsize > segLen || !sg) hsize = segLen;
        nskb = new SkBuff({ memory: mem ?? undefined, maxFrags: skb.maxFrags, headroom, tailroom: hsize + doffset });
        segs.push(nskb);
        skbPut(nskb, doffset);
      }
      if (mem !== null && doffset > 0) copyPhys(mem, macPhys, nskb.dataPhys, doffset);
      if (nskb.len === segLen + doffset) continue;
      if (!sg) {
        // skb_copy_bits() past the end fails, and skb_segment returns err's first value
        if (offset + segLen > hLen) fail('ENOMEM', `skb_segment: a ${segLen}-byte segment at ${offset - doffset} runs past len ${skb.len} (skb_copy_bits fails)`);
        const at = skbPut(nskb, segLen);
        if (mem !== null) {
          const buf = scratchOf(segLen);
          try {
            skbCopyBitsInto(skb, offset - doffset, segLen, buf, 0);
          } catch (e) {
            // an unreadable (net_iov) fragment: skb_copy_bits fails, skb_segment returns -ENOMEM
            if (e instanceof IodescError && e.code === 'EFAULT') fail('ENOMEM', `skb_segment: ${e.message}`);
            throw e;
          }
          mem.copyToPhys(nskb.dataPhys + at, buf, 0, segLen);
        }
        continue;
      }
      const at = skbPut(nskb, hsize);
      if (mem !== null && hsize > 0) copyPhys(mem, macPhys + offset, nskb.dataPhys + at, hsize);
      zerocopyClone(nskb, fragSkb);
      const arr = nskb.fragArray;
      while (pos < offset + segLen) {
        if (i >= nfrags) {
          if (listSkb === null) bug('the fragments end before len does');
          zerocopyClone(nskb, listSkb);
          i = 0;
          nfrags = listSkb.nrFrags;
          fragSkb = listSkb;
          if (listSkb.headlen === 0) {
            if (nfrags === 0) bug(`frag_list member #${listSkb.id} is empty`);
          } else {
            if (!listSkb.headFrag) bug(`frag_list member #${listSkb.id} has a kmalloc'd linear part (headFrag false): BUG_ON(!list_skb->head_frag)`);
            i = -1; // its head goes in as a fragment first (skb_head_frag_to_page_desc)
          }
          listSkb = listSkb.next;
        }
        const k = nskb.nrFrags;
        if (k >= nskb.maxFrags) fail('EINVAL', `skb_segment: too many frags: ${pos} ${mss} (a segment needs more than ${nskb.maxFrags})`);
        if (i < 0) {
          // a lengths-only head has no page: its fragment names page 0
          arr.setUnchecked(k, Math.max(fragSkb.headPfn, 0) * 2, fragSkb.dataOff, fragSkb.headlen, FRAG_REF_NONE);
        } else {
          arr.copyEntry(k, fragSkb.fragArray, fragSkb.fragBase + i);
        }
        arr.u32[k * FRAG_STRIDE + FRAG_REF] = fragRef(mem, arr, k);
        const size = arr.length(k);
        if (pos < offset) {
          arr.u32[k * FRAG_STRIDE + FRAG_OFF] = arr.offset(k) + (offset - pos);
          arr.u32[k * FRAG_STRIDE + FRAG_LEN] = size - (offset - pos);
        }
        if (arr.isNetIov(k)) nskb.unreadable = true;
        nskb.setNrFragsUnchecked(k + 1);
        if (pos + size <= offset + segLen) {
          i++;
          pos += size;
        } else {
          arr.u32[k * FRAG_STRIDE + FRAG_LEN] = arr.length(k) - (pos + size - (offset + segLen));
          break;
        }
      }
      nskb.dataLen = segLen - hsize;
      nskb.len += nskb.dataLen;
      nskb.truesize += nskb.dataLen;
    } while ((offset += segLen) < hLen);
  } catch (e) {
    kfreeSkbList(link(segs));
    throw e;
  }
  link(segs);
  // data at the MAC header; the other header offsets as the original's, moved with the headroom
  // (skb_headers_offset_update)
  for (const s of segs) {
    s.macHeader = s.dataOff;
    s.networkHeader = skb.networkHeader < 0 ? -1 : s.dataOff + skb.networkHeader - (skb.dataOff - doffset);
  }
  if (partialSegs > 0) {
    const tail = segs[segs.length - 1]!;
    // SKB_GSO_PARTIAL only with the device's NETIF_F_GSO_PARTIAL; DODGY cleared either way
    const type = (skb.gsoType | (partial ? SKB_GSO_PARTIAL : 0)) & ~SKB_GSO_DODGY;
    for (const s of segs) {
      s.gsoSize = origMss;
      s.gsoSegs = partialSegs;
      s.gsoType = type;
    }
    if (tail.len - doffset <= origMss) tail.gsoSize = 0;
    else if (tail !== segs[0]) tail.gsoSegs = Math.ceil((tail.len - doffset) / origMss);
  }
  return segs;
}

// Validation at the boundary: lengths that agree with the fragments, within the kernel's limits.
function checkSegmentable(skb: SkBuff, mss: number): void {
  if (skb.dataLen !== fragBytes(skb) + fragListBytes(skb)) {
    fail('EINVAL', `skb #${skb.id}: dataLen ${skb.dataLen} is not its fragments' ${fragBytes(skb)} bytes plus its frag_list's ${fragListBytes(skb)}`);
  }
  if (skb.len < skb.dataLen) fail('EINVAL', `skb #${skb.id}: len ${skb.len} is less than dataLen ${skb.dataLen}`);
  if (skb.headlen > skb.endOffset - skb.dataOff) fail('EINVAL', `skb #${skb.id}: ${skb.headlen} linear bytes, the head holds ${skb.endOffset - skb.dataOff}`);
  if (skb.len === 0) fail('EINVAL', `skb #${skb.id} is empty`);
  if (skb.len > GSO_MAX_SIZE) fail('EINVAL', `skb #${skb.id} is ${skb.len} bytes, longer than the kernel allows a GSO buffer (GSO_MAX_SIZE ${GSO_MAX_SIZE})`);
  if (mss !== GSO_BY_FRAGS && Math.ceil(skb.len / mss) > GSO_MAX_SEGS) fail('EINVAL', `${skb.len} bytes at MSS ${mss} make more than GSO_MAX_SEGS (${GSO_MAX_SEGS}) segments`);
  if (mss === GSO_BY_FRAGS && skb.fragList === null) fail('EINVAL', 'GSO_BY_FRAGS needs a frag_list to cut at');
  if (mss === GSO_BY_FRAGS && (skb.headlen > 0 || skb.nrFrags > 0)) fail('EINVAL', 'GSO_BY_FRAGS: the payload must all be in frag_list members (a cover buffer holding headers only)');
  for (let m = skb.fragList; m !== null; m = m.next) {
    checkSkb(m, 'frag_list member');
    if (m.memory !== skb.memory) fail('EINVAL', `frag_list member #${m.id} lives in another memory`);
    if (m.fragList !== null) fail('EINVAL', `frag_list member #${m.id} has a frag_list of its own (not modelled)`);
    if (m.dataLen !== fragBytes(m) || m.len < m.dataLen) fail('EINVAL', `frag_list member #${m.id}: len ${m.len} / dataLen ${m.dataLen} disagree with its fragments`);
    if (m.len === 0) fail('EINVAL', `frag_list member #${m.id} is empty`);
  }
}

// skb_clone() + pskb_trim() + skb_cow_head() + __skb_push() of a frag_list member: a buffer
// whose head holds the headers and a copy of the member's linear bytes, sharing its fragments.
function cloneMember(member: SkBuff, doffset: number, headroom: number, segLen: number): SkBuff {
  const mem = member.memory;
  const nskb = new SkBuff({ memory: mem ?? undefined, maxFrags: member.maxFrags, headroom, tailroom: doffset + member.headlen });
  try {
    skbPut(nskb, doffset);
    const at = skbPut(nskb, member.headlen);
    if (mem !== null && member.headlen > 0) copyPhys(mem, member.dataPhys, nskb.dataPhys + at, member.headlen);
    const arr = nskb.fragArray;
    for (let k = 0; k < member.nrFrags; k++) {
      arr.copyEntry(k, member.fragArray, member.fragBase + k);
      arr.u32[k * FRAG_STRIDE + FRAG_REF] = fragRef(mem, arr, k);
      if (arr.isNetIov(k)) nskb.unreadable = true;
      nskb.setNrFragsUnchecked(k + 1);
    }
    nskb.dataLen = member.dataLen;
    nskb.len += member.dataLen;
    nskb.truesize += member.dataLen;
    // a clone shares the member's shared info, copied by pskb_expand_head: its gso fields too
    nskb.gsoSize = member.gsoSize;
    nskb.gsoSegs = member.gsoSegs;
    nskb.gsoType = member.gsoType;
    zerocopyClone(nskb, member);
    pskbTrim(nskb, doffset + segLen);
  } catch (e) {
    kfreeSkbList(nskb);
    throw e;
  }
  return nskb;
}

// skb_zerocopy_clone(): a segment shares the zero-copy completion of the buffer its fragments
// come from; two different completions in one segment would need skb_copy_ubufs.
function zerocopyClone(nskb: SkBuff, orig: SkBuff): void {
  const u = orig.uarg;
  if (u === null || nskb.uarg === u) return;
  if (nskb.uarg !== null) fail('EOPNOTSUPP', `a segment would hold two zero-copy completions (skb_copy_ubufs copies them: not modelled)`);
  u.netZcopyGet();
  nskb.uarg = u;
}

// One bounce buffer for every copy, grown by doubling: no allocation per segment.
let scratch = new Uint8Array(4096);

function scratchOf(n: number): Uint8Array {
  if (scratch.length < n) scratch = new Uint8Array(2 ** Math.ceil(Math.log2(n)));
  return scratch;
}

function copyPhys(mem: PhysicalMemory, from: number, to: number, n: number): void {
  const buf = scratchOf(n);
  mem.copyFromPhys(from, buf, 0, n);
  mem.copyToPhys(to, buf, 0, n);
}

function link(segs: SkBuff[]): SkBuff | null {
  for (let k = 0; k < segs.length; k++) segs[k]!.next = segs[k + 1] ?? null;
  return segs[0] ?? null;
}
