// Network invariants as seeded fast-check properties: segmentation keeps the payload, and every
// reference a zero-copy send takes is dropped once its buffers are done with.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  consumeSkb, GSO_BY_FRAGS, Iommu, IodescError, kfreeSkb, leakReport, Nic, PAGE_SIZE, PhysicalMemory, PMD_SIZE, sendmsgZerocopy, SkBuff,
  skbCopyBits, skbFillPageDesc, skbReadHead, skbSegment, skbWriteHead, ZerocopySocket, AddressSpace,
} from '../src/index.js';
import { expectUnchanged, firstDiff, MiB, pattern, snapshot } from './helpers.js';

const PROP_TIMEOUT = 60_000;

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((t, p) => t + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const fragArb = fc.record({ order: fc.constantFrom(0, 1, 2), start: fc.nat({ max: 4 * PAGE_SIZE - 1 }), len: fc.integer({ min: 1, max: 3000 }) });
const memberArb = fc.record({ linear: fc.nat({ max: 2000 }), frags: fc.array(fragArb, { maxLength: 3 }) });
const bufferArb = fc.record({
  hdrLen: fc.nat({ max: 40 }),
  linear: fc.nat({ max: 3000 }),
  frags: fc.array(fragArb, { maxLength: 6 }),
  members: fc.array(memberArb, { maxLength: 4 }),
  mss: fc.integer({ min: 100, max: 4000 }),
  byFrags: fc.boolean(),
  sg: fc.boolean(),
  partial: fc.boolean(),
});
type BufferCase = typeof bufferArb extends fc.Arbitrary<infer T> ? T : never;

// Builds the buffer a case describes on `memory`, every byte numbered differently.
function build(memory: PhysicalMemory, c: BufferCase): SkBuff {
  let salt = 0;
  const addFrags = (skb: SkBuff, frags: BufferCase['frags']) => {
    frags.forEach((f, i) => {
      const folio = memory.allocFolio(f.order);
      const bytes = PAGE_SIZE << f.order;
      const start = f.start % bytes;
      const len = Math.min(f.len, bytes - start);
      memory.writePhys(folio * PAGE_SIZE + start, pattern(len, ++salt));
      skbFillPageDesc(skb, i, folio, start, len);
      skb.dataLen += len;
      skb.len += len;
    });
  };
  const linear = c.byFrags && c.members.length > 0 ? 0 : c.linear || (c.frags.length === 0 && c.members.length === 0 ? 1 : c.linear);
  const skb = new SkBuff({ memory, headLen: linear, hdrLen: c.hdrLen });
  skbWriteHead(skb, -c.hdrLen, pattern(c.hdrLen, 200));
  skbWriteHead(skb, 0, pattern(linear, ++salt));
  if (!(c.byFrags && c.members.length > 0)) addFrags(skb, c.frags);
  let prev: SkBuff | null = null;
  for (const m of c.members) {
    const member = new SkBuff({ memory, headLen: m.linear || (m.frags.length === 0 ? 1 : 0) });
    skbWriteHead(member, 0, pattern(member.headlen, ++salt));
    addFrags(member, m.frags);
    if (prev === null) skb.fragList = member;
    else prev.next = member;
    prev = member;
    skb.len += member.len;
    skb.dataLen += member.len;
  }
  return skb;
}

describe('skbSegment (property)', () => {
  it('gives back the payload, in order, when the segments are concatenated; the header heads each one', () => {
    let segmented = 0;
    fc.assert(
      fc.property(bufferArb, (c) => {
        const memory = new PhysicalMemory({ bytes: 16 * MiB });
        const skb = build(memory, c);
        const payload = skbCopyBits(skb, 0, skb.len);
        const mss = c.byFrags && c.members.length > 0 ? GSO_BY_FRAGS : c.mss;
        let segs: SkBuff[] = [];
        try {
          segs = skbSegment(skb, { mss, sg: c.sg, partial: c.partial });
        } catch (e) {
          // what the kernel BUG()s on, a segment needing more than MAX_SKB_FRAGS (EINVAL), or
          // GSO_BY_FRAGS without SG copying past the end, as skb_copy_bits refuses it (EFAULT)
          if (!(e instanceof IodescError) || (e.code !== 'EINVAL' && e.code !== 'EFAULT')) throw e;
        }
        if (segs.length > 0) {
          segmented++;
          const joined: Uint8Array[] = [];
          for (const s of segs) {
            expect(skbReadHead(s, 0, c.hdrLen)).toEqual(pattern(c.hdrLen, 200));
            joined.push(skbCopyBits(s, c.hdrLen, s.len - c.hdrLen));
          }
          expect(firstDiff(concat(joined), payload)).toBe(-1);
        }
        for (const s of segs) consumeSkb(s);
        consumeSkb(skb);
        expect(memory.nrFreePages).toBe(memory.nrPages - 1);
        expect(leakReport(memory)).toEqual([]);
      }),
      { seed: 0x5e6, numRuns: 200 },
    );
    expect(segmented).toBeGreaterThan(100);
  }, PROP_TIMEOUT);
});

const sendArb = fc.record({ off: fc.nat({ max: 8 * PAGE_SIZE }), len: fc.integer({ min: 1, max: 30 * PAGE_SIZE }), pin: fc.boolean() });
const zcArb = fc.record({
  thp: fc.boolean(),
  sends: fc.array(sendArb, { minLength: 1, maxLength: 4 }),
  // what becomes of each buffer: consumed, transmitted (directly or behind an IOMMU), or segmented first
  fate: fc.array(fc.constantFrom('consume', 'nic', 'iommu', 'segment'), { minLength: 1, maxLength: 8 }),
  mss: fc.integer({ min: 500, max: 20000 }),
});

describe('zero-copy send (property)', () => {
  it('drops every reference and every charge once the buffers are done, with one notification per send', () => {
    fc.assert(
      fc.property(zcArb, (c) => {
        const memory = new PhysicalMemory({ bytes: 32 * MiB });
        const mm = new AddressSpace(memory);
        const len = 2 * PMD_SIZE;
        const raw = mm.mmap(len + PMD_SIZE, { thp: c.thp });
        const base = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
        mm.write(base, pattern(48 * PAGE_SIZE, 3));
        const before = snapshot(memory);
        const sk = new ZerocopySocket(mm);
        const wire: Uint8Array[] = [];
        const nics = { nic: new Nic(memory, { wire: { send: (f) => wire.push(f) } }), iommu: new Nic(memory, { iommu: new Iommu(), wire: { send: (f) => wire.push(f) } }) };
        let k = 0;
        for (const s of c.sends) {
          const skbs = sendmsgZerocopy(sk, base + s.off, s.len, { pin: s.pin });
          const sent: Uint8Array[] = [];
          for (const skb of skbs) {
            const fate = c.fate[k++ % c.fate.length]!;
            if (fate === 'consume') {
              sent.push(skbCopyBits(skb, 0, skb.len));
              consumeSkb(skb);
            } else if (fate === 'segment') {
              const segs = skbSegment(skb, { mss: c.mss });
              kfreeSkb(skb); // the original goes first: the segments still hold the pages
              for (const g of segs) {
                sent.push(skbCopyBits(g, 0, g.len));
                consumeSkb(g);
              }
            } else {
              wire.length = 0;
              nics[fate].transmit(skb);
              sent.push(...wire);
            }
          }
          expect(firstDiff(concat(sent), mm.read(base + s.off, s.len))).toBe(-1);
        }
        const notes = sk.recvErrqueue();
        expect(notes.reduce((t, n) => t + n.hi - n.lo + 1, 0)).toBe(c.sends.length);
        expect(mm.user.lockedVm).toBe(0);
        expect(leakReport(memory)).toEqual([]);
        expectUnchanged(memory, before);
      }),
      { seed: 0x2c0, numRuns: 40 },
    );
  }, PROP_TIMEOUT);
});
