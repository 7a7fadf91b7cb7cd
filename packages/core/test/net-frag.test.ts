// Fragments and network buffers (include/linux/skbuff.h, include/net/netmem.h): the 16-byte
// entry, coalescing, exhaustion at MAX_SKB_FRAGS, net_iov handles, frag_list, views, sizes.

import { describe, expect, it } from 'vitest';
import {
  FRAG_LEN, FRAG_NETMEM, FRAG_OFF, FRAG_STRIDE, FragArray, folioRefCount, kfreeSkb, MAX_SKB_FRAGS, NetIovArea, netmemToPage, PAGE_SIZE,
  PhysicalMemory, SKB_FRAG_SIZE, SkBuff, skbAppendPagefrags, skbCanCoalesce, skbCopyBits, skbFillNetmemDesc, skbFillPageDesc, skbFragOff,
  skbFragPage, skbFragSize, skbSharedInfoSize, skbDataAlign, skbsFromFrags, skbToSgvec, skbWriteHead, skbFragIsNetIov, SIZEOF_SK_BUFF,
} from '../src/index.js';
import { expectCode, MiB, pattern } from './helpers.js';

const fresh = () => new PhysicalMemory({ bytes: 16 * MiB });

describe('FragArray', () => {
  it('holds 16-byte skb_frag_t entries at named word offsets', () => {
    expect(SKB_FRAG_SIZE).toBe(16);
    expect(FRAG_STRIDE * 4).toBe(SKB_FRAG_SIZE);
    const a = new FragArray(1);
    a.push(7, 100, 200);
    a.push(9, 0, 4096);
    expect(a.capacity).toBeGreaterThanOrEqual(2);
    expect(a.u32[FRAG_STRIDE + FRAG_NETMEM]).toBe(18); // pfn 9 as a netmem_ref: the low bit clear
    expect(a.u32[FRAG_STRIDE + FRAG_LEN]).toBe(4096);
    expect(a.u32[FRAG_OFF]).toBe(100);
    expect(a.entries()).toEqual([{ pfn: 7, netmem: false, offset: 100, length: 200 }, { pfn: 9, netmem: false, offset: 0, length: 4096 }]);
    expect([skbFragSize(a, 0), skbFragOff(a, 0), skbFragPage(a, 1)]).toEqual([200, 100, 9]);
    expect(a.bytes).toBe(4296);
  });

  it('refuses a field past unsigned int and an index out of range', () => {
    const a = new FragArray();
    expectCode(() => a.push(1, 0, 2 ** 32), 'EINVAL');
    expectCode(() => a.push(-1, 0, 1), 'EINVAL');
    expectCode(() => skbFragSize(a, 0), 'EINVAL');
  });
});

describe('netmem', () => {
  it('tells a net_iov from a page by the low bit, and refuses it where a page is required', () => {
    const area = new NetIovArea(4);
    const niov = area.netmem(2);
    expect(niov & 1).toBe(1);
    expectCode(() => netmemToPage(niov), 'EINVAL');
    const memory = fresh();
    const skb = new SkBuff({ memory });
    skbFillNetmemDesc(skb, 0, niov, 0, PAGE_SIZE);
    skb.len = skb.dataLen = PAGE_SIZE;
    expect(skb.unreadable).toBe(true);
    expect(skb.frags()).toEqual([{ pfn: area.base + 2, netmem: true, offset: 0, length: PAGE_SIZE }]);
    expect(skbFragIsNetIov(skb, 0)).toBe(true);
    expect(skbFragSize(skb, 0)).toBe(PAGE_SIZE);
    expectCode(() => skbFragPage(skb, 0), 'EINVAL');
    expectCode(() => skbToSgvec(skb), 'EINVAL');
    expectCode(() => skbCopyBits(skb, 0, 1), 'EFAULT');
    kfreeSkb(skb);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
  });
});

describe('skbCanCoalesce', () => {
  const memory = fresh();
  const pages = memory.allocFolio(1); // two physically adjacent pages
  const skb = new SkBuff({ memory });
  skbFillPageDesc(skb, 0, pages, 0, PAGE_SIZE);

  it.each<[string, number, number, number]>([
    ['the same page where the fragment does not end', pages, 100, 1],
    ['the next page, physically adjacent', pages + 1, 0, 1],
    ['fragment 0 (nothing before it)', pages, 0, 0],
    ['fragment 2 (fragment 1 not in use)', pages, PAGE_SIZE, 2],
  ])('says no for %s', (_label, pfn, off, i) => {
    expect(skbCanCoalesce(skb, i, pfn, off)).toBe(false);
  });

  it('says yes when the same page continues exactly where the fragment ends', () => {
    const s = new SkBuff();
    skbFillPageDesc(s, 0, 50, 100, 200);
    expect(skbCanCoalesce(s, 1, 50, 300)).toBe(true);
    expect(skbCanCoalesce(s, 1, 50, 301)).toBe(false);
    expect(skbCanCoalesce(s, 1, 51, 0)).toBe(false);
  });

  it('refuses an index outside [0, maxFrags]', () => {
    const s = new SkBuff();
    expect(skbCanCoalesce(s, MAX_SKB_FRAGS, 1, 0)).toBe(false);
    expectCode(() => skbCanCoalesce(s, MAX_SKB_FRAGS + 1, 1, 0), 'EINVAL');
    expectCode(() => skbCanCoalesce(s, -1, 1, 0), 'EINVAL');
    const s45 = new SkBuff({ maxFrags: 45 });
    expect(skbCanCoalesce(s45, 45, 1, 0)).toBe(false);
    expectCode(() => skbCanCoalesce(s45, 46, 1, 0), 'EINVAL');
  });

  it('takes any i up to maxFrags on a view, false past its window', () => {
    const arr = new FragArray();
    arr.push(1, 0, 10);
    arr.push(2, 0, 10);
    const view = new SkBuff({ frags: { array: arr, offset: 0, count: 2 } });
    expect(skbCanCoalesce(view, 2, 2, 10)).toBe(true);
    expect(skbCanCoalesce(view, MAX_SKB_FRAGS, 2, 10)).toBe(false);
    expectCode(() => skbCanCoalesce(view, MAX_SKB_FRAGS + 1, 2, 10), 'EINVAL');
  });
});

describe('skbAppendPagefrags', () => {
  it('extends the last fragment on the same page and takes a new one (with a reference) otherwise', () => {
    const memory = fresh();
    const run = memory.allocFolio(1);
    const skb = new SkBuff({ memory });
    skbAppendPagefrags(skb, run, 0, 1000);
    skbAppendPagefrags(skb, run, 1000, 3096);
    skbAppendPagefrags(skb, run + 1, 0, 10); // adjacent, yet a new fragment
    expect(skb.frags()).toEqual([
      { pfn: run, netmem: false, offset: 0, length: PAGE_SIZE },
      { pfn: run + 1, netmem: false, offset: 0, length: 10 },
    ]);
    expect(folioRefCount(memory, run)).toBe(3);
    skb.len = skb.dataLen = PAGE_SIZE + 10;
    kfreeSkb(skb);
    expect(folioRefCount(memory, run)).toBe(1);
    memory.folioPutRefs(run, 1);
  });

  it.each([17, 45])('runs out of fragments at %i with EMSGSIZE, changing nothing', (maxFrags) => {
    const memory = fresh();
    const skb = new SkBuff({ memory, maxFrags });
    const pages: number[] = [];
    for (let i = 0; i < maxFrags + 1; i++) pages.push(memory.allocFolio(0));
    for (let i = 0; i < maxFrags; i++) skbAppendPagefrags(skb, pages[i]!, 0, 64);
    expect(skb.nrFrags).toBe(maxFrags);
    expectCode(() => skbAppendPagefrags(skb, pages[maxFrags]!, 0, 64), 'EMSGSIZE');
    expect(skb.nrFrags).toBe(maxFrags);
    expect(folioRefCount(memory, pages[maxFrags]!)).toBe(1);
    // the last page can still be extended: coalescing needs no new fragment
    skbAppendPagefrags(skb, pages[maxFrags - 1]!, 64, 64);
    skb.len = skb.dataLen = maxFrags * 64 + 64;
    kfreeSkb(skb);
    for (const p of pages) memory.folioPutRefs(p, 1);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
  });
});

describe('skbFillPageDesc', () => {
  it.each([17, 45])('fills fragments 0..%i - 1, setting nrFrags = i + 1 and leaving len to the caller', (maxFrags) => {
    const skb = new SkBuff({ maxFrags, headLen: 10 });
    for (let i = 0; i < maxFrags; i++) {
      skbFillPageDesc(skb, i, 100 + i, 0, 1);
      expect(skb.nrFrags).toBe(i + 1);
    }
    expect([skb.len, skb.dataLen]).toEqual([10, 0]);
    expectCode(() => skbFillPageDesc(skb, maxFrags, 1, 0, 1), 'EINVAL');
  });

  it('refuses a CONFIG_MAX_SKB_FRAGS outside 17..45, a bad index, a free page, bytes past the folio', () => {
    for (const maxFrags of [16, 46, 17.5]) expectCode(() => new SkBuff({ maxFrags }), 'EINVAL');
    const memory = fresh();
    const skb = new SkBuff({ memory });
    const page = memory.allocFolio(0);
    expectCode(() => skbFillPageDesc(skb, -1, page, 0, 1), 'EINVAL');
    expectCode(() => skbFillPageDesc(skb, 17, page, 0, 1), 'EINVAL');
    expectCode(() => skbFillPageDesc(skb, 0, page + 1, 0, 1), 'EINVAL');
    expectCode(() => skbFillPageDesc(skb, 0, page, 4000, 200), 'EINVAL');
    expect(skb.nrFrags).toBe(0);
    expect(folioRefCount(memory, page)).toBe(1);
    kfreeSkb(skb);
    memory.folioPutRefs(page, 1);
    expectCode(() => kfreeSkb(skb), 'EINVAL');
  });

  it('keeps a large folio fragment whole, its offset past the first page', () => {
    const memory = fresh();
    const folio = memory.allocFolio(4);
    const skb = new SkBuff({ memory });
    skbFillPageDesc(skb, 0, folio, 3 * PAGE_SIZE + 5, 5 * PAGE_SIZE);
    expect(skb.frags()).toEqual([{ pfn: folio, netmem: false, offset: 3 * PAGE_SIZE + 5, length: 5 * PAGE_SIZE }]);
    expectCode(() => skbFillPageDesc(skb, 1, folio, 15 * PAGE_SIZE, PAGE_SIZE + 1), 'EINVAL');
    skb.len = skb.dataLen = 5 * PAGE_SIZE;
    kfreeSkb(skb);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
  });
});

describe('frag_list', () => {
  it('chains buffers behind the fragments: bytes, scatterlist and release follow the chain', () => {
    const memory = fresh();
    const head = new SkBuff({ memory, headLen: 100 });
    skbWriteHead(head, 0, pattern(100, 1));
    const page = memory.allocFolio(0);
    memory.writePhys(page * PAGE_SIZE, pattern(300, 2));
    skbFillPageDesc(head, 0, page, 0, 300);
    const a = new SkBuff({ memory, headLen: 50 });
    skbWriteHead(a, 0, pattern(50, 3));
    const b = new SkBuff({ memory, headLen: 70 });
    skbWriteHead(b, 0, pattern(70, 4));
    head.fragList = a;
    a.next = b;
    head.dataLen = 300 + 50 + 70;
    head.len = 100 + head.dataLen;
    expect(skbCopyBits(head, 0, head.len)).toEqual(new Uint8Array([...pattern(100, 1), ...pattern(300, 2), ...pattern(50, 3), ...pattern(70, 4)]));
    const sg = skbToSgvec(head);
    expect([...sg.lens]).toEqual([100, 300, 50, 70]);
    expect(sg.phys[1]).toBe(page * PAGE_SIZE);
    expect(sg.phys[2]).toBe(a.dataPhys);
    expectCode(() => skbToSgvec(head, { maxEntries: 3 }), 'EMSGSIZE');
    kfreeSkb(head);
    expect(a.freed && b.freed).toBe(true);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
  });
});

describe('SkBuff', () => {
  it('can be a view of a window of another FragArray: no copy, no reference', () => {
    const memory = fresh();
    const pages = memory.allocFolio(2);
    const arr = new FragArray();
    for (let i = 0; i < 4; i++) arr.push(pages + i, 0, PAGE_SIZE);
    const skb = new SkBuff({ memory, frags: { array: arr, offset: 1, count: 2 } });
    expect([skb.nrFrags, skb.len, skb.dataLen, skb.fragCapacity]).toEqual([2, 2 * PAGE_SIZE, 2 * PAGE_SIZE, 2]);
    expect(skb.frags().map((f) => f.pfn)).toEqual([pages + 1, pages + 2]);
    expectCode(() => skbFillPageDesc(skb, 2, pages, 0, 1), 'EINVAL');
    expectCode(() => new SkBuff({ frags: { array: arr, offset: 3, count: 2 } }), 'EINVAL');
    const before = folioRefCount(memory, pages);
    kfreeSkb(skb);
    expect(folioRefCount(memory, pages)).toBe(before);
    const spread = skbsFromFrags(arr, { maxFrags: 17 });
    expect(spread.map((s) => s.nrFrags)).toEqual([4]);
    memory.folioPutRefs(pages, 1);
  });

  it('charges sk_buff and shared info as x86-64 does: 232 → 256, 320 for 17 fragments, 384 for 18', () => {
    expect(SIZEOF_SK_BUFF).toBe(232);
    expect(skbSharedInfoSize(17)).toBe(320);
    expect(skbDataAlign(skbSharedInfoSize(18))).toBe(384);
    const f = new SkBuff({ headLen: 1000 }).footprint();
    expect(f.breakdown).toEqual({ sk_buff: 256, head: 2048 }); // 1024 + 320 → the 2048 class
    expect(new SkBuff({ headLen: 100, maxFrags: 45 }).footprint().breakdown.head).toBe(1024); // 128 + 768
  });

  it('refuses a head longer than __alloc_skb allows', () => {
    expectCode(() => new SkBuff({ headLen: 4 * MiB }), 'EINVAL');
  });
});
