// Bad input to the network side: an IodescError with the kernel's code, and nothing referenced.

import { describe, expect, it } from 'vitest';
import {
  folioRefCount, GSO_BY_FRAGS, GSO_MAX_SIZE, kfreeSkb, leakReport, NetIovArea, PAGE_SIZE, PhysicalMemory, SkBuff, skbFillNetmemDesc,
  skbFillPageDesc, skbFragPage, skbSegment, skbsFromFrags, FragArray, fragsFromSegments, UserIter, ZerocopySocket, sendmsgZerocopy,
  zerocopySgFromIter,
} from '../src/index.js';
import { expectCode, MiB, setup } from './helpers.js';

// A buffer of `pages` page fragments, one reference each, `len` set to match.
function paged(memory: PhysicalMemory, pages: number, maxFrags = 17): SkBuff {
  const skb = new SkBuff({ memory, maxFrags });
  for (let i = 0; i < pages; i++) skbFillPageDesc(skb, i, memory.allocFolio(0), 0, PAGE_SIZE);
  skb.len = skb.dataLen = pages * PAGE_SIZE;
  return skb;
}

describe('bad input', () => {
  it.each([
    ['an MSS of 0', { mss: 0 }],
    ['an MSS past 16 bits', { mss: GSO_BY_FRAGS + 1 }],
    ['a fractional MSS', { mss: 1.5 }],
    ['GSO_BY_FRAGS without a frag_list', { mss: GSO_BY_FRAGS }],
    ['no MSS and no gsoSize', {}],
  ])('skbSegment refuses %s with EINVAL, making no segment', (_label, opts) => {
    const memory = new PhysicalMemory({ bytes: 16 * MiB });
    const skb = paged(memory, 3);
    const free = memory.nrFreePages;
    expectCode(() => skbSegment(skb, opts), 'EINVAL');
    expect(memory.nrFreePages).toBe(free);
    kfreeSkb(skb);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
  });

  it('refuses a buffer longer than the kernel allows a GSO buffer, and lengths that disagree with the fragments', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const big = new SkBuff({ memory });
    const folio = memory.allocFolio(9); // 2 MiB
    skbFillPageDesc(big, 0, folio, 0, 256 * PAGE_SIZE);
    memory.tryRefAdd(folio, 1);
    skbFillPageDesc(big, 1, folio, 256 * PAGE_SIZE, 256 * PAGE_SIZE);
    big.len = big.dataLen = 512 * PAGE_SIZE;
    expect(big.len).toBeGreaterThan(GSO_MAX_SIZE);
    expectCode(() => skbSegment(big, { mss: 1448 }), 'EINVAL');
    big.len = big.dataLen = 100; // len no longer what the fragments hold
    expectCode(() => skbSegment(big, { mss: 1448 }), 'EINVAL');
    big.len = big.dataLen = 512 * PAGE_SIZE;
    kfreeSkb(big);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
  });

  it('refuses a segment needing more fragments than MAX_SKB_FRAGS ("too many frags"), freeing what it made', () => {
    const memory = new PhysicalMemory({ bytes: 16 * MiB });
    const skb = new SkBuff({ memory });
    const page = memory.allocFolio(0);
    memory.tryRefAdd(page, 16);
    for (let i = 0; i < 17; i++) skbFillPageDesc(skb, i, page, i * 100, 100);
    const member = new SkBuff({ memory });
    skbFillPageDesc(member, 0, memory.allocFolio(0), 0, 100);
    member.len = member.dataLen = 100;
    skb.fragList = member;
    skb.len = skb.dataLen = 1800;
    const free = memory.nrFreePages;
    expectCode(() => skbSegment(skb, { mss: 1800 }), 'EINVAL'); // 17 fragments, then the member's
    expect(memory.nrFreePages).toBe(free);
    expect(folioRefCount(memory, page)).toBe(17);
    expect(skbSegment(skb, { mss: 1700 }).map((g) => (kfreeSkb(g), g.nrFrags))).toEqual([17, 1]);
    kfreeSkb(skb);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
  });

  it('refuses a fragment index out of range everywhere it is taken', () => {
    const skb = new SkBuff({ maxFrags: 45 });
    expectCode(() => skbFillPageDesc(skb, 45, 1, 0, 1), 'EINVAL');
    expectCode(() => skbFillPageDesc(skb, 1.5, 1, 0, 1), 'EINVAL');
    expectCode(() => skbFragPage(skb, 0), 'EINVAL');
    expectCode(() => skbFillNetmemDesc(skb, 45, new NetIovArea(1).netmem(0), 0, 1), 'EINVAL');
    expectCode(() => (skb.nrFrags = 46), 'EINVAL');
  });

  it('refuses a net_iov where a page is required', () => {
    const memory = new PhysicalMemory({ bytes: 16 * MiB });
    const frags = new FragArray();
    frags.pushNetmem(new NetIovArea(2).netmem(1), 0, 100);
    expectCode(() => frags.pfn(0), 'EINVAL');
    expectCode(() => skbFragPage(frags, 0), 'EINVAL');
    const skbs = skbsFromFrags(frags, { memory });
    expect(skbs[0]!.unreadable).toBe(true);
    kfreeSkb(skbs[0]!);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
  });

  it('refuses zero-copy into a buffer without memory (EINVAL), a view (EINVAL), an unreadable one (EFAULT)', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE, { populate: true });
    const iter = () => new UserIter(mm, addr, PAGE_SIZE);
    expectCode(() => sendmsgZerocopy(new ZerocopySocket(mm), addr, 0), 'EINVAL');
    expectCode(() => zerocopySgFromIter(new SkBuff(), iter(), PAGE_SIZE), 'EINVAL');
    const arr = new FragArray();
    arr.push(1, 0, 1);
    const view = new SkBuff({ memory, frags: { array: arr, offset: 0, count: 1 } });
    expectCode(() => zerocopySgFromIter(view, iter(), PAGE_SIZE), 'EINVAL');
    const unreadable = new SkBuff({ memory });
    skbFillNetmemDesc(unreadable, 0, new NetIovArea(1).netmem(0), 0, 1);
    expectCode(() => zerocopySgFromIter(unreadable, iter(), PAGE_SIZE), 'EFAULT');
    expectCode(() => new UserIter(mm, addr, -1), 'EINVAL');
    for (const s of [view, unreadable]) kfreeSkb(s);
    expect(leakReport(memory)).toEqual([]);
    expect(mm.user.lockedVm).toBe(0);
  });

  it('refuses segments that are not pages of the memory when converting', () => {
    const memory = new PhysicalMemory({ bytes: 16 * MiB });
    expectCode(() => fragsFromSegments([{ pfn: 1, offset: 0, length: 10 }], { memory }), 'EINVAL'); // a free page
    expectCode(() => fragsFromSegments([{ pfn: 1, offset: 0, length: 0 }]), 'EINVAL');
    expectCode(() => skbsFromFrags(new FragArray()), 'EINVAL');
    expectCode(() => skbsFromFrags(fragsFromSegments([{ pfn: 1, offset: 0, length: 1 }]).frags, { maxFrags: 16 }), 'EINVAL');
  });
});
