// MSG_ZEROCOPY (net/core/datagram.c zerocopy_fill_skb_from_iter, net/core/skbuff.c
// msg_zerocopy_*): fragments filled by reference, the locked-memory charge, the notification.

import { describe, expect, it } from 'vitest';
import {
  consumeSkb, folioRefCount, skbCanCoalesce, kfreeSkb, leakReport, msgZerocopyAlloc, netZcopyPut, PAGE_SIZE, PMD_SIZE, sendmsgZerocopy, SkBuff, skbCopyBits,
  skbZerocopyIterStream, UserIter, ZerocopySocket, zerocopySgFromIter,
} from '../src/index.js';
import { expectCode, pattern, setup } from './helpers.js';

describe('zerocopySgFromIter', () => {
  it('fills 17 fragments from 20 order-0 pages, then stops with EMSGSIZE for the next buffer', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(20 * PAGE_SIZE, { populate: true });
    const skb = new SkBuff({ memory });
    const iter = new UserIter(mm, addr, 20 * PAGE_SIZE);
    expectCode(() => zerocopySgFromIter(skb, iter, 20 * PAGE_SIZE), 'EMSGSIZE');
    expect(skb.nrFrags).toBe(17);
    expect([skb.len, skb.dataLen, iter.count]).toEqual([17 * PAGE_SIZE, 17 * PAGE_SIZE, 3 * PAGE_SIZE]);
    // physically adjacent order-0 pages are still one fragment each
    expect(skb.frags().every((f, i) => f.pfn === mm.lookupPfn(addr + i * PAGE_SIZE) && f.offset === 0 && f.length === PAGE_SIZE)).toBe(true);
    expect(leakReport(memory).filter((e) => e.kind === 'referenced-page')).toHaveLength(17);
    const next = new SkBuff({ memory });
    zerocopySgFromIter(next, iter, iter.count);
    expect(next.nrFrags).toBe(3);
    kfreeSkb(skb);
    kfreeSkb(next);
    expect(leakReport(memory)).toEqual([]);
  });

  it('fills 45 fragments with CONFIG_MAX_SKB_FRAGS = 45 from 50 order-0 pages, then EMSGSIZE', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(50 * PAGE_SIZE, { populate: true });
    const skb = new SkBuff({ memory, maxFrags: 45 });
    const iter = new UserIter(mm, addr, 50 * PAGE_SIZE);
    expectCode(() => zerocopySgFromIter(skb, iter, 50 * PAGE_SIZE), 'EMSGSIZE');
    expect([skb.nrFrags, skb.len, iter.count]).toEqual([45, 45 * PAGE_SIZE, 5 * PAGE_SIZE]);
    expect(leakReport(memory).filter((e) => e.kind === 'referenced-page')).toHaveLength(45);
    kfreeSkb(skb);
    expect(leakReport(memory)).toEqual([]);
  });

  it('fills one fragment from 20 pages of one THP: the compound head, the offset counted from it', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(2 * PMD_SIZE, { thp: true });
    const base = Math.ceil(addr / PMD_SIZE) * PMD_SIZE;
    mm.write(base, new Uint8Array([1]));
    const head = mm.lookupPfn(base);
    const from = base + 3 * PAGE_SIZE + 100;
    const skb = new SkBuff({ memory });
    zerocopySgFromIter(skb, new UserIter(mm, from, 20 * PAGE_SIZE), 20 * PAGE_SIZE);
    expect(skb.frags()).toEqual([{ pfn: head, netmem: false, offset: 3 * PAGE_SIZE + 100, length: 20 * PAGE_SIZE }]);
    // the pages combined into it gave their references back: the fragment holds one
    expect(memory.gets[head]).toBe(1);
    kfreeSkb(skb);
    expect(memory.gets[head]).toBe(0);
    expect(leakReport(memory)).toEqual([]);
  });

  it('pins instead of taking references with { pin: true }, and unpins on release', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(4 * PAGE_SIZE, { populate: true });
    const skb = new SkBuff({ memory });
    zerocopySgFromIter(skb, new UserIter(mm, addr, 4 * PAGE_SIZE), 4 * PAGE_SIZE, { pin: true, owner: 'zc' });
    expect(leakReport(memory).map((e) => [e.kind, e.owner])).toEqual(Array(4).fill(['pinned-page', 'zc']));
    kfreeSkb(skb);
    expect(leakReport(memory)).toEqual([]);
  });

  it('refuses an unmapped range with EFAULT, taking nothing', () => {
    const { memory, mm } = setup();
    const skb = new SkBuff({ memory });
    expectCode(() => zerocopySgFromIter(skb, new UserIter(mm, 0x100000, PAGE_SIZE), PAGE_SIZE), 'EFAULT');
    expect([skb.len, skb.nrFrags]).toEqual([0, 0]);
    kfreeSkb(skb);
    expect(leakReport(memory)).toEqual([]);
  });
});

describe('sendmsgZerocopy', () => {
  it('charges (size >> PAGE_SHIFT) + 2 pages, and releases pages and charge on the completion', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(20 * PAGE_SIZE);
    mm.write(addr, pattern(20 * PAGE_SIZE, 7));
    const sk = new ZerocopySocket(mm);
    const { skbs, copied } = sendmsgZerocopy(sk, addr, 20 * PAGE_SIZE);
    // size_goal 65160: 15 pages and 3720 bytes, then the 16760 left (376 + 4 pages)
    expect(copied).toBe(20 * PAGE_SIZE);
    expect(skbs.map((s) => s.len)).toEqual([65160, 20 * PAGE_SIZE - 65160]);
    expect(skbs.map((s) => s.nrFrags)).toEqual([16, 5]);
    expect(mm.user.lockedVm).toBe(22);
    // a zero-copy buffer's fragments belong to the completion: nothing coalesces into them
    const last = skbs[1]!.frags()[4]!;
    expect(last.offset + last.length).toBe(PAGE_SIZE);
    expect(skbCanCoalesce(skbs[1]!, 5, last.pfn, 0)).toBe(false);
    const first = skbs[0]!.frags()[0]!;
    expect(skbCanCoalesce(skbs[0]!, 1, first.pfn, first.offset + first.length)).toBe(false);
    const sent = new Uint8Array([...skbCopyBits(skbs[0]!, 0, skbs[0]!.len), ...skbCopyBits(skbs[1]!, 0, skbs[1]!.len)]);
    expect(sent).toEqual(pattern(20 * PAGE_SIZE, 7));
    consumeSkb(skbs[0]!);
    expect(sk.recvErrqueue()).toEqual([]); // one buffer still holds the pages, and the record
    expect(leakReport(memory).map((e) => e.kind)).toEqual([...Array(5).fill("referenced-page"), "other"]);
    expect(mm.user.lockedVm).toBe(22);
    consumeSkb(skbs[1]!);
    expect(sk.recvErrqueue()).toEqual([{ lo: 0, hi: 0, copied: false }]);
    expect(mm.user.lockedVm).toBe(0);
    expect(leakReport(memory)).toEqual([]);
  });

  it('is ENOBUFS past RLIMIT_MEMLOCK, charging and taking nothing; CAP_IPC_LOCK is not charged', () => {
    const { memory, mm } = setup({ mm: { rlimitMemlock: 8 * PAGE_SIZE } });
    const addr = mm.mmap(16 * PAGE_SIZE, { populate: true });
    const sk = new ZerocopySocket(mm);
    expectCode(() => sendmsgZerocopy(sk, addr, 7 * PAGE_SIZE), 'ENOBUFS'); // 7 + 2 > 8
    expect(mm.user.lockedVm).toBe(0);
    expect(leakReport(memory)).toEqual([]);
    const ok = sendmsgZerocopy(sk, addr, 6 * PAGE_SIZE).skbs; // 6 + 2 = 8
    expect(mm.user.lockedVm).toBe(8);
    for (const s of ok) consumeSkb(s);
    expect(mm.user.lockedVm).toBe(0);
    mm.capIpcLock = true;
    for (const s of sendmsgZerocopy(sk, addr, 16 * PAGE_SIZE).skbs) consumeSkb(s);
    expect(mm.user.lockedVm).toBe(0);
    expect(sk.recvErrqueue()).toEqual([{ lo: 0, hi: 1, copied: false }]); // consecutive completions merged
  });

  it('extends the latest completion record for the next send, one notification for both', () => {
    const { mm } = setup();
    const addr = mm.mmap(4 * PAGE_SIZE, { populate: true });
    const sk = new ZerocopySocket(mm);
    const uarg = msgZerocopyAlloc(sk, PAGE_SIZE);
    const skb = new SkBuff({ memory: mm.memory });
    expect(skbZerocopyIterStream(sk, skb, new UserIter(mm, addr, PAGE_SIZE), PAGE_SIZE, uarg)).toBe(PAGE_SIZE);
    netZcopyPut(uarg);
    const more = sendmsgZerocopy(sk, addr + PAGE_SIZE, PAGE_SIZE, { uarg }).skbs;
    expect(uarg.len).toBe(2);
    expect(more[0]!.uarg).toBe(uarg);
    consumeSkb(skb);
    consumeSkb(more[0]!);
    expect(sk.recvErrqueue()).toEqual([{ lo: 0, hi: 1, copied: false }]);
    expect(mm.user.lockedVm).toBe(0);
  });

  it('undoes a send that faults: no page referenced, nothing charged, no notification', () => {
    const { memory, mm } = setup();
    const addr = mm.mmap(2 * PAGE_SIZE, { populate: true });
    const sk = new ZerocopySocket(mm);
    expectCode(() => sendmsgZerocopy(sk, addr, 40 * PAGE_SIZE), 'EFAULT');
    expect(mm.user.lockedVm).toBe(0);
    expect(sk.recvErrqueue()).toEqual([]);
    expect(sk.zckey).toBe(0);
    expect(leakReport(memory)).toEqual([]);
    expect(folioRefCount(memory, mm.lookupPfn(addr))).toBe(1);
  });
});
