// The NIC: transmit maps head and fragments through the DMA layer and reads the bytes with the
// DMA engine; receive writes page fragments by DMA. What arrives is what was sent; nothing leaks.

import { describe, expect, it } from 'vitest';
import {
  consumeSkb, Iommu, kfreeSkb, leakReport, NetIovArea, Nic, PAGE_SIZE, PhysicalMemory, sendmsgZerocopy, SkBuff, skbCopyBits, skbFillNetmemDesc,
  skbFillPageDesc, skbWriteHead, ZerocopySocket,
} from '../src/index.js';
import type { NicOptions, Wire } from '../src/index.js';
import { expectCode, MiB, pattern, setup } from './helpers.js';

function capture(): Wire & { frames: Uint8Array[] } {
  const frames: Uint8Array[] = [];
  return { frames, send: (f) => frames.push(f) };
}

// A buffer of 200 linear bytes, a fragment inside a page, a fragment across an order-2 folio,
// and a frag_list member: 200 + 1000 + 9000 + 300 bytes.
function mixed(memory: PhysicalMemory): { skb: SkBuff; bytes: Uint8Array } {
  const skb = new SkBuff({ memory, headLen: 200 });
  skbWriteHead(skb, 0, pattern(200, 1));
  const page = memory.allocFolio(0);
  memory.writePhys(page * PAGE_SIZE + 50, pattern(1000, 2));
  skbFillPageDesc(skb, 0, page, 50, 1000);
  const folio = memory.allocFolio(2);
  memory.writePhys(folio * PAGE_SIZE + 3000, pattern(9000, 3));
  skbFillPageDesc(skb, 1, folio, 3000, 9000);
  const member = new SkBuff({ memory, headLen: 300 });
  skbWriteHead(member, 0, pattern(300, 4));
  skb.fragList = member;
  skb.dataLen = 10300;
  skb.len = 10500;
  return { skb, bytes: skbCopyBits(skb, 0, skb.len) };
}

describe('Nic', () => {
  it.each<[string, NicOptions]>([
    ['per-fragment mappings, direct', {}],
    ['one scatterlist mapping, direct', { mapping: 'sgvec' as const }],
    ['per-fragment mappings behind an IOMMU', { iommu: new Iommu() }],
    ['one scatterlist mapping behind an IOMMU', { mapping: 'sgvec' as const, iommu: new Iommu() }],
    ['bouncing through swiotlb (a 32-bit NIC on 8 GiB)', { dmaMaskBits: 32 }],
  ])('transmits with %s: the wire gets exactly the bytes, every mapping is unmapped', (_label, opts) => {
    const memory = new PhysicalMemory({ bytes: opts.dmaMaskBits !== undefined ? 8 * 2 ** 30 : 64 * MiB });
    const wire = capture();
    const nic = new Nic(memory, { ...opts, wire });
    const { skb, bytes } = mixed(memory);
    expect(nic.transmit(skb)).toBe(1);
    expect(wire.frames).toEqual([bytes]);
    expect(skb.freed).toBe(true);
    expect(nic.liveCount).toBe(0);
    expect(nic.warnings).toEqual([]);
    expect(nic.stats.mappings).toBe(opts.mapping === 'sgvec' ? 1 : 4);
    expect(leakReport(memory)).toEqual([]);
  });

  it('segments a GSO buffer in software and sends one frame per segment, headers copied', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const wire = capture();
    const nic = new Nic(memory, { wire });
    const skb = new SkBuff({ memory, headLen: 2500, hdrLen: 14 });
    skbWriteHead(skb, -14, pattern(14, 9));
    skbWriteHead(skb, 0, pattern(2500, 5));
    skb.gsoSize = 1000;
    expect(nic.transmit(skb)).toBe(3);
    expect(wire.frames.map((f) => f.length)).toEqual([1014, 1014, 514]);
    for (const f of wire.frames) expect(f.subarray(0, 14)).toEqual(pattern(14, 9));
    expect(new Uint8Array(wire.frames.flatMap((f) => [...f.subarray(14)]))).toEqual(pattern(2500, 5));
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
  });

  it('delivers a zero-copy send: user bytes on the wire, then the notification and nothing held', () => {
    const { memory, mm } = setup();
    const wire = capture();
    const nic = new Nic(memory, { wire, iommu: new Iommu() });
    const addr = mm.mmap(30 * PAGE_SIZE);
    mm.write(addr + 123, pattern(25 * PAGE_SIZE, 11));
    const sk = new ZerocopySocket(mm);
    for (const skb of sendmsgZerocopy(sk, addr + 123, 25 * PAGE_SIZE).skbs) nic.transmit(skb);
    expect(new Uint8Array(wire.frames.flatMap((f) => [...f]))).toEqual(pattern(25 * PAGE_SIZE, 11));
    expect(sk.recvErrqueue()).toEqual([{ lo: 0, hi: 0, copied: false }]);
    expect(mm.user.lockedVm).toBe(0);
    expect(leakReport(memory)).toEqual([]);
  });

  it('receives a frame into page fragments by DMA, and two NICs on one wire exchange bytes', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const b = new Nic(memory, { name: 'b', iommu: new Iommu() });
    const got: SkBuff[] = [];
    const a = new Nic(memory, { name: 'a', wire: { send: (f) => got.push(b.receive(f)) } });
    const { skb, bytes } = mixed(memory);
    a.transmit(skb);
    expect(got).toHaveLength(1);
    const rx = got[0]!;
    expect(rx.nrFrags).toBe(Math.ceil(bytes.length / PAGE_SIZE));
    expect(skbCopyBits(rx, 0, rx.len)).toEqual(bytes);
    consumeSkb(rx);
    expect(a.liveCount + b.liveCount).toBe(0);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
    expect(leakReport(memory)).toEqual([]);
  });

  it('refuses a frame longer than its receive buffers, and an empty one, allocating nothing', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const nic = new Nic(memory);
    expectCode(() => nic.receive(new Uint8Array(17 * PAGE_SIZE + 1)), 'EMSGSIZE');
    expectCode(() => nic.receive(new Uint8Array(0)), 'EMSGSIZE');
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
    const big = new Nic(memory, { rxMaxFrags: 45 }).receive(new Uint8Array(45 * PAGE_SIZE).fill(1));
    expect(big.nrFrags).toBe(45);
    consumeSkb(big);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
  });

  it('drops a buffer with a net_iov fragment (no page to map): EINVAL, the buffer consumed, nothing held', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const nic = new Nic(memory, { wire: capture() });
    const skb = new SkBuff({ memory, headLen: 10 });
    skbFillNetmemDesc(skb, 0, new NetIovArea(1).netmem(0), 0, 100);
    skb.dataLen = 100;
    skb.len = 110;
    expectCode(() => nic.transmit(skb), 'EINVAL');
    expect(skb.freed).toBe(true);
    expect(nic.stats.txDropped).toBe(1);
    expect(nic.liveCount).toBe(0);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
  });

  it('refuses a buffer of another memory or without a wire, leaving it to the caller', () => {
    const memory = new PhysicalMemory({ bytes: 64 * MiB });
    const nic = new Nic(memory);
    const skb = new SkBuff({ memory, headLen: 10 });
    expectCode(() => nic.transmit(skb), 'EINVAL');
    expectCode(() => new Nic(memory, { wire: capture() }).transmit(new SkBuff({ headLen: 10 })), 'EINVAL');
    expect(skb.freed).toBe(false);
    kfreeSkb(skb);
    expectCode(() => new Nic(memory, { mapping: 'bad' as 'frags' }), 'EINVAL');
  });
});
