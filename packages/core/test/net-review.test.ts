// Regressions from the network review against mainline (net/core/skbuff.c, net/ipv4/tcp.c,
// net/core/net_test.c at 1f0e418bb): each case failed before its fix.

import { describe, expect, it } from 'vitest';
import {
  consumeSkb, folioRefCount, fragConversionCost, fragsFromSegments, GSO_BY_FRAGS, kfreeSkb, kfreeSkbList, leakReport, msgZerocopyAlloc,
  msgZerocopyRealloc, netZcopyPut, NetIovArea, Nic, PAGE_SIZE, PhysicalMemory, PMD_SIZE, pskbTrim, sendmsgZerocopy, SKB_GSO_DODGY, SKB_GSO_PARTIAL,
  SkBuff, skbAppendPagefrags, skbFillNetmemDesc, skbFillPageDesc, skbSegment, skbsFromFrags, skbToSgvec, skbWriteHead, TCP_SIZE_GOAL, ZerocopySocket,
} from '../src/index.js';
import { expectCode, MiB, pattern, setup } from './helpers.js';

const SKB_GSO_TCPV4 = 1 << 0;

// Three fragments of 1000, 904 and 2000 bytes on three pages, spread as one view buffer.
function viewOf(memory: PhysicalMemory) {
  const pages = [memory.allocFolio(0), memory.allocFolio(0), memory.allocFolio(0)];
  const { frags } = fragsFromSegments([
    { pfn: pages[0]!, offset: 0, length: 1000 },
    { pfn: pages[1]!, offset: 100, length: 904 },
    { pfn: pages[2]!, offset: 0, length: 2000 },
  ], { memory });
  const [skb] = skbsFromFrags(frags, { memory });
  return { frags, skb: skb!, pages, before: frags.entries() };
}

describe('a view buffer (skbsFromFrags)', () => {
  it('refuses pskbTrim inside a fragment (EINVAL), the viewed array unchanged; whole fragments may go', () => {
    const memory = new PhysicalMemory({ bytes: 16 * MiB });
    const { frags, skb, before } = viewOf(memory);
    expectCode(() => pskbTrim(skb, 1500), 'EINVAL');
    expect(frags.entries()).toEqual(before);
    expect([skb.len, skb.nrFrags]).toEqual([3904, 3]);
    pskbTrim(skb, 1904);
    expect([skb.len, skb.dataLen, skb.nrFrags]).toEqual([1904, 1904, 2]);
    expect(frags.entries()).toEqual(before);
    kfreeSkb(skb);
  });

  it('refuses skbAppendPagefrags and skbFillPageDesc (EINVAL), even where the last fragment would grow', () => {
    const memory = new PhysicalMemory({ bytes: 16 * MiB });
    const { frags, skb, pages, before } = viewOf(memory);
    const ref = folioRefCount(memory, pages[2]!);
    expectCode(() => skbAppendPagefrags(skb, pages[2]!, 2000, 50), 'EINVAL');
    expectCode(() => skbFillPageDesc(skb, 2, pages[2]!, 0, 10), 'EINVAL');
    expect(frags.entries()).toEqual(before);
    expect(folioRefCount(memory, pages[2]!)).toBe(ref);
    kfreeSkb(skb);
  });
});

describe('msgZerocopyRealloc', () => {
  it('refuses a record that already completed (EINVAL) before charging anything', () => {
    const { mm } = setup();
    const sk = new ZerocopySocket(mm);
    const uarg = msgZerocopyAlloc(sk, PAGE_SIZE);
    netZcopyPut(uarg);
    expect(uarg.completed).toBe(true);
    expect(mm.user.lockedVm).toBe(0);
    expectCode(() => msgZerocopyRealloc(sk, 10 * PAGE_SIZE, uarg), 'EINVAL');
    expect(mm.user.lockedVm).toBe(0);
    expect([sk.zckey, uarg.len]).toEqual([1, 1]);
  });
});

describe('sendmsgZerocopy', () => {
  it('caps each buffer at TCP size_goal (45 × 1448 = 65160): a 2 MiB THP send is 33 buffers, not one', () => {
    expect(TCP_SIZE_GOAL).toBe(65160);
    const { memory, mm } = setup();
    const raw = mm.mmap(2 * PMD_SIZE, { thp: true });
    const base = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    mm.write(base, pattern(PMD_SIZE, 5));
    const sk = new ZerocopySocket(mm);
    const { skbs, copied, error } = sendmsgZerocopy(sk, base, PMD_SIZE);
    expect([copied, error]).toEqual([PMD_SIZE, null]);
    expect(skbs).toHaveLength(Math.ceil(PMD_SIZE / TCP_SIZE_GOAL));
    expect(skbs.slice(0, -1).every((s) => s.len === TCP_SIZE_GOAL && s.nrFrags === 1)).toBe(true);
    expect(skbs.at(-1)!.len).toBe(PMD_SIZE % TCP_SIZE_GOAL);
    for (const s of skbs) consumeSkb(s);
    expect(sk.recvErrqueue()).toEqual([{ lo: 0, hi: 0, copied: false }]);
    expect(leakReport(memory)).toEqual([]);
  });

  it('takes min(sizeGoal − skb.len, bytes left) per step with opts.sizeGoal', () => {
    const { mm } = setup();
    const addr = mm.mmap(8 * PAGE_SIZE, { populate: true });
    const sk = new ZerocopySocket(mm);
    const { skbs } = sendmsgZerocopy(sk, addr, 5 * PAGE_SIZE, { sizeGoal: 2 * PAGE_SIZE });
    expect(skbs.map((s) => s.len)).toEqual([2 * PAGE_SIZE, 2 * PAGE_SIZE, PAGE_SIZE]);
    for (const s of skbs) consumeSkb(s);
    expectCode(() => sendmsgZerocopy(sk, addr, PAGE_SIZE, { sizeGoal: 0 }), 'EINVAL');
    expect(mm.user.lockedVm).toBe(0);
  });

  it('returns the buffers filled before a fault and the bytes queued; the record completes with them', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(20 * PAGE_SIZE, { populate: true });
    const sk = new ZerocopySocket(mm);
    const { skbs, copied, error } = sendmsgZerocopy(sk, addr, 40 * PAGE_SIZE);
    expect(skbs.map((s) => s.len)).toEqual([TCP_SIZE_GOAL]);
    expect(copied).toBe(TCP_SIZE_GOAL);
    expect(error?.code).toBe('EFAULT');
    expect(sk.zckey).toBe(1); // the send keeps its id: it queued bytes
    expect(mm.user.lockedVm).toBe(42);
    consumeSkb(skbs[0]!);
    expect(sk.recvErrqueue()).toEqual([{ lo: 0, hi: 0, copied: false }]);
    expect(mm.user.lockedVm).toBe(0);
    expect(leakReport(memory)).toEqual([]);
  });
});

// A lengths-only buffer of `hdr` header bytes and `linear` payload, then linear frag_list members.
function withMembers(linear: number, members: number[], opts: { memory?: PhysicalMemory; headFrag?: boolean } = {}): SkBuff {
  const skb = new SkBuff({ memory: opts.memory, headLen: linear, hdrLen: 9 });
  let prev: SkBuff | null = null;
  for (const n of members) {
    const m = new SkBuff({ memory: opts.memory, headLen: n, headFrag: opts.headFrag });
    if (prev === null) skb.fragList = m;
    else prev.next = m;
    prev = m;
    skb.len += n;
    skb.dataLen += n;
  }
  return skb;
}

describe('skbSegment', () => {
  it('splits a frag_list into GSO buffers without SKB_GSO_PARTIAL unless the device has NETIF_F_GSO_PARTIAL; DODGY cleared', () => {
    const skb = withMembers(1000, [1000, 1000, 1000]);
    skb.gsoType = SKB_GSO_TCPV4 | SKB_GSO_DODGY;
    skb.gsoSize = 500;
    const segs = skbSegment(skb);
    expect(segs.map((s) => s.len)).toEqual([1009, 1009, 1009, 1009]);
    expect(segs.map((s) => [s.gsoType, s.gsoSize, s.gsoSegs])).toEqual(Array(4).fill([SKB_GSO_TCPV4, 500, 2]));
    kfreeSkbList(segs[0]!);
    const whole = withMembers(2000, []);
    whole.gsoType = SKB_GSO_TCPV4;
    const parts = skbSegment(whole, { mss: 500, partial: true });
    expect(parts.map((s) => s.gsoType)).toEqual([SKB_GSO_TCPV4 | SKB_GSO_PARTIAL]);
    expect(SKB_GSO_PARTIAL).toBe(1 << 12);
  });

  it('leaves gso_type 0 on plain segments (__copy_skb_header does not copy the shared info)', () => {
    const skb = withMembers(2500, []);
    skb.gsoType = SKB_GSO_TCPV4;
    expect(skbSegment(skb, { mss: 1000 }).map((s) => s.gsoType)).toEqual([0, 0, 0]);
  });

  it('turns SG off for a DODGY buffer whose members have kmalloc linear parts, instead of BUG()ing', () => {
    const plain = withMembers(1000, [1000, 1000], { headFrag: false });
    expectCode(() => skbSegment(plain, { mss: 600 }), 'EINVAL');
    const dodgy = withMembers(1000, [1000, 1000], { headFrag: false });
    dodgy.gsoType = SKB_GSO_DODGY;
    const segs = skbSegment(dodgy, { mss: 600 });
    expect(segs.map((s) => [s.len, s.nrFrags])).toEqual([...Array(5).fill([609, 0])]);
  });

  it('fails with ENOMEM when GSO_BY_FRAGS without SG would copy past the end, with or without memory', () => {
    for (const memory of [undefined, new PhysicalMemory({ bytes: 16 * MiB })]) {
      const skb = new SkBuff({ memory, hdrLen: 9 });
      const a = new SkBuff({ memory });
      const page = memory === undefined ? 7 : memory.allocFolio(0);
      skbFillPageDesc(a, 0, page, 0, 300);
      a.len = a.dataLen = 300;
      const b = new SkBuff({ memory, headLen: 50 });
      a.next = b;
      skb.fragList = a;
      skb.len = skb.dataLen = 350;
      expectCode(() => skbSegment(skb, { mss: GSO_BY_FRAGS, sg: false }), 'ENOMEM');
      kfreeSkb(skb);
      if (memory !== undefined) expect(leakReport(memory)).toEqual([]);
    }
  });

  it('fails with ENOMEM when copying without SG would read a net_iov (skb_copy_bits fails)', () => {
    const memory = new PhysicalMemory({ bytes: 16 * MiB });
    const skb = new SkBuff({ memory, hdrLen: 9, headLen: 100 });
    skbFillNetmemDesc(skb, 0, new NetIovArea(1).netmem(0), 0, 1000);
    skb.len += 1000;
    skb.dataLen += 1000;
    expectCode(() => skbSegment(skb, { mss: 500, sg: false }), 'ENOMEM');
    kfreeSkb(skb);
    expect(leakReport(memory)).toEqual([]);
  });

  it('segments a lengths-only buffer as one with memory: heads are page fragments by default (build_skb)', () => {
    expect(new SkBuff().headFrag).toBe(true);
    expect(new SkBuff({ headFrag: false }).headFrag).toBe(false);
    const memory = new PhysicalMemory({ bytes: 16 * MiB });
    const shapes = [undefined, memory].map((mem) => {
      const skb = withMembers(500, [1000, 1000], { memory: mem });
      if (mem !== undefined) {
        skbWriteHead(skb, -9, pattern(509, 1));
        for (let m = skb.fragList; m !== null; m = m.next) skbWriteHead(m, 0, pattern(m.headlen, 2));
      }
      const segs = skbSegment(skb, { mss: 1000 });
      const shape = segs.map((s) => [s.len, s.headlen, s.nrFrags]);
      kfreeSkbList(segs[0]!);
      kfreeSkb(skb);
      return shape;
    });
    expect(shapes[0]).toEqual(shapes[1]);
    expect(shapes[0]).toEqual([[1009, 509, 1], [1009, 9, 2], [509, 9, 1]]);
    expect(leakReport(memory)).toEqual([]);
  });
});

describe('skbAppendPagefrags on a zero-copy buffer', () => {
  it('takes a reference for the new fragment only, and freeing drops every reference', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(2 * PAGE_SIZE, { populate: true });
    const sk = new ZerocopySocket(mm);
    const { skbs } = sendmsgZerocopy(sk, addr, PAGE_SIZE);
    const page = memory.allocFolio(0);
    skbAppendPagefrags(skbs[0]!, page, 0, 100);
    expect(folioRefCount(memory, page)).toBe(2);
    memory.folioPutRefs(page, 1);
    consumeSkb(skbs[0]!);
    expect(leakReport(memory)).toEqual([]);
  });
});

describe('fragConversionCost', () => {
  it.each([
    [0, 0, 0],
    [1, 16, 2],
    [17, 272, 2],
    [18, 288, 4],
  ])('counts %i fragments as %i bytes written and %i allocations (an sk_buff and a head per 17)', (n, bytes, allocations) => {
    expect(fragConversionCost(n)).toEqual({ conversions: n === 0 ? 0 : 1, conversionBytes: bytes, allocations });
  });

  it('is what fragsFromSegments reports', () => {
    const { cost, frags } = fragsFromSegments([{ pfn: 10, offset: 0, length: 18 * PAGE_SIZE }]);
    expect(frags.count).toBe(18);
    expect(cost).toEqual(fragConversionCost(18));
  });
});

describe('skbToSgvec', () => {
  it('gives one zero-length entry for length 0 where bytes follow, none at the end (__skb_to_sgvec)', () => {
    const memory = new PhysicalMemory({ bytes: 16 * MiB });
    const skb = new SkBuff({ memory, headLen: 100 });
    const one = skbToSgvec(skb, { offset: 10, length: 0 });
    expect([one.count, [...one.lens]]).toEqual([1, [0]]);
    expect(one.phys[0]).toBe(skb.dataPhys + 10);
    expect(skbToSgvec(skb, { offset: 100, length: 0 }).count).toBe(0);
    kfreeSkb(skb);
  });
});

describe('Nic.dmaReadInto', () => {
  it('refuses a destination range that does not fit (EINVAL)', () => {
    const memory = new PhysicalMemory({ bytes: 16 * MiB });
    const nic = new Nic(memory);
    expectCode(() => nic.dmaReadInto(0, new Uint8Array(8), 4, 5), 'EINVAL');
    expectCode(() => nic.dmaReadInto(0, new Uint8Array(8), 9, 0), 'EINVAL');
  });
});
