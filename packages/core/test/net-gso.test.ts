// skb_segment against net/core/net_test.c's GSO table: every case, with the segment sizes it
// expects, on a buffer with real bytes and on a lengths-only one.

import { describe, expect, it } from 'vitest';
import {
  consumeSkb, folioRefCount, GSO_BY_FRAGS, kfreeSkb, kfreeSkbList, leakReport, PhysicalMemory, SkBuff, skbCopyBits, skbFillPageDesc,
  skbReadHead, skbSegment, skbWriteHead,
} from '../src/index.js';
import { MiB } from './helpers.js';

// static const char hdr[] = "abcdefgh": sizeof(hdr) = 9, the NUL included
const HDR = new Uint8Array([...new TextEncoder().encode('abcdefgh'), 0]);
const GSO_TEST_SIZE = 1000;

interface GsoCase {
  name: string;
  linear: number;
  frags?: number[];
  fragSkbs?: number[];
  segs: number[];
  /** NETIF_F_GSO_PARTIAL. */
  partial?: boolean;
  /** features &= ~NETIF_F_SG (frag_list_non_uniform: "this should also work with SG"). */
  noSg?: boolean;
  byFrags?: boolean;
}

// net/core/net_test.c: cases[]
const CASES: GsoCase[] = [
  { name: 'no_gso', linear: GSO_TEST_SIZE, segs: [GSO_TEST_SIZE] },
  { name: 'linear', linear: 2 * GSO_TEST_SIZE + 1, segs: [GSO_TEST_SIZE, GSO_TEST_SIZE, 1] },
  { name: 'frags', linear: GSO_TEST_SIZE, frags: [GSO_TEST_SIZE, 1], segs: [GSO_TEST_SIZE, GSO_TEST_SIZE, 1] },
  { name: 'frags_pure', linear: 0, frags: [GSO_TEST_SIZE, GSO_TEST_SIZE, 2], segs: [GSO_TEST_SIZE, GSO_TEST_SIZE, 2] },
  { name: 'gso_partial', linear: GSO_TEST_SIZE, frags: [GSO_TEST_SIZE, 3], segs: [2 * GSO_TEST_SIZE, 3], partial: true },
  { name: 'frag_list', linear: GSO_TEST_SIZE, fragSkbs: [GSO_TEST_SIZE, GSO_TEST_SIZE], segs: [GSO_TEST_SIZE, GSO_TEST_SIZE, GSO_TEST_SIZE] },
  { name: 'frag_list_pure', linear: 0, fragSkbs: [GSO_TEST_SIZE, GSO_TEST_SIZE], segs: [GSO_TEST_SIZE, GSO_TEST_SIZE] },
  {
    name: 'frag_list_non_uniform', linear: GSO_TEST_SIZE, fragSkbs: [GSO_TEST_SIZE, 1, GSO_TEST_SIZE, 2],
    segs: [GSO_TEST_SIZE, GSO_TEST_SIZE, GSO_TEST_SIZE, 3], noSg: true,
  },
  { name: 'gso_by_frags', linear: 0, fragSkbs: [100, 200, 300, 400], segs: [100, 200, 300, 400], byFrags: true },
];

// gso_test_func(): the buffer net_test.c builds, payload bytes numbered so they can be checked.
function build(t: GsoCase, memory: PhysicalMemory | undefined): { skb: SkBuff; payload: number } {
  const skb = new SkBuff({ memory, headLen: t.linear, hdrLen: HDR.length });
  let salt = 1;
  const fill = (s: SkBuff, at: number, n: number) => {
    if (memory === undefined || n === 0) return;
    const bytes = new Uint8Array(n).map(() => salt++ % 251);
    if (at < 0) skbWriteHead(s, 0, bytes);
    else memory.writePhys(at, bytes);
  };
  if (memory !== undefined) skbWriteHead(skb, -HDR.length, HDR);
  fill(skb, -1, t.linear);
  let payload = t.linear;
  if (t.frags !== undefined) {
    const page = memory === undefined ? 4242 : memory.allocFolio(0);
    // page_ref_add(page, nr_frags - 1): one reference per fragment
    if (memory !== undefined) memory.tryRefAdd(page, t.frags.length - 1);
    let pgOff = 0;
    t.frags.forEach((size, i) => {
      skbFillPageDesc(skb, i, page, pgOff, size);
      fill(skb, page * 4096 + pgOff, size);
      pgOff += size;
    });
    skb.dataLen = pgOff;
    skb.len += skb.dataLen;
    payload += pgOff;
  }
  if (t.fragSkbs !== undefined) {
    let prev: SkBuff | null = null;
    let total = 0;
    for (const size of t.fragSkbs) {
      const f = new SkBuff({ memory, headLen: size });
      fill(f, -1, size);
      if (prev === null) skb.fragList = f;
      else prev.next = f;
      prev = f;
      total += size;
    }
    skb.len += total;
    skb.dataLen += total;
    payload += total;
  }
  skb.gsoSize = t.byFrags ? GSO_BY_FRAGS : GSO_TEST_SIZE;
  return { skb, payload };
}

describe('skbSegment', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('segments net_test.c case %s as the kernel does', (_name, t) => {
    for (const memory of [undefined, new PhysicalMemory({ bytes: 16 * MiB })]) {
      const { skb, payload } = build(t, memory);
      const original = memory === undefined ? null : skbCopyBits(skb, 0, payload);
      const segs = skbSegment(skb, { mss: skb.gsoSize, sg: !t.noSg, partial: t.partial === true });
      expect(segs.map((s) => s.len)).toEqual(t.segs.map((n) => HDR.length + n));
      segs.forEach((s, i) => expect(s.next).toBe(segs[i + 1] ?? null));
      // "segs have skb->data pointing to the mac header", the network header sizeof(hdr) on;
      // the last segment (net_test.c finds it through segs->prev) ends the next chain
      for (const s of segs) {
        expect([s.macHeader, s.macHeaderLen]).toEqual([s.dataOff, 0]);
        expect(s.networkHeader - s.dataOff).toBe(HDR.length);
      }
      let tail = segs[0]!;
      while (tail.next !== null) tail = tail.next;
      expect(tail).toBe(segs.at(-1));
      if (memory !== undefined) {
        // the header was copied to every segment, and the payloads concatenate to the original
        for (const s of segs) expect(skbReadHead(s, 0, HDR.length)).toEqual(HDR);
        const joined = new Uint8Array(payload);
        let at = 0;
        for (const s of segs) {
          joined.set(skbCopyBits(s, HDR.length, s.len - HDR.length), at);
          at += s.len - HDR.length;
        }
        expect(joined).toEqual(original);
      }
      for (const s of segs) consumeSkb(s);
      consumeSkb(skb);
      if (memory !== undefined) {
        expect(leakReport(memory)).toEqual([]);
        expect(memory.nrFreePages).toBe(memory.nrPages - 1);
      }
    }
  });

  it('sets the GSO_PARTIAL segments up as the kernel does', () => {
    const { skb } = build(CASES.find((c) => c.name === 'gso_partial')!, undefined);
    const [a, b] = skbSegment(skb, { mss: GSO_TEST_SIZE, partial: true });
    expect(a!.gsoSize).toBe(GSO_TEST_SIZE);
    expect(a!.gsoSegs).toBe(2);
    expect(b!.gsoSize).toBe(0); // the tail holds less than an MSS
  });

  it('shares page fragments by reference: one page reference per segment fragment', () => {
    const memory = new PhysicalMemory({ bytes: 16 * MiB });
    const { skb } = build(CASES.find((c) => c.name === 'frags_pure')!, memory);
    const page = skb.frags()[0]!.pfn;
    expect(folioRefCount(memory, page)).toBe(3);
    const segs = skbSegment(skb, { mss: GSO_TEST_SIZE });
    expect(segs.map((s) => s.frags())).toEqual([
      [{ pfn: page, netmem: false, offset: 0, length: 1000 }],
      [{ pfn: page, netmem: false, offset: 1000, length: 1000 }],
      [{ pfn: page, netmem: false, offset: 2000, length: 2 }],
    ]);
    expect(folioRefCount(memory, page)).toBe(6);
    kfreeSkbList(segs[0]!);
    kfreeSkb(skb);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
  });

  it('fails as the kernel BUG()s on a non-uniform frag_list with SG, leaving nothing behind', () => {
    const memory = new PhysicalMemory({ bytes: 16 * MiB });
    const { skb } = build(CASES.find((c) => c.name === 'frag_list_non_uniform')!, memory);
    expect(() => skbSegment(skb, { mss: GSO_TEST_SIZE })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    kfreeSkb(skb);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
  });
});

describe('skbSegment with opts.hdrLen', () => {
  it('takes the headers from the front of the linear data, and leaves the buffer as it was', () => {
    const memory = new PhysicalMemory({ bytes: 16 * MiB });
    const skb = new SkBuff({ memory, headLen: HDR.length + 2001 });
    skbWriteHead(skb, 0, HDR);
    const segs = skbSegment(skb, { mss: GSO_TEST_SIZE, hdrLen: HDR.length });
    expect(segs.map((s) => s.len)).toEqual([1009, 1009, 10]);
    for (const s of segs) expect(skbReadHead(s, 0, HDR.length)).toEqual(HDR);
    expect([skb.len, skb.headlen, skb.macHeaderLen]).toEqual([HDR.length + 2001, HDR.length + 2001, 0]);
    kfreeSkbList(segs[0]!);
    kfreeSkb(skb);
    expect(memory.nrFreePages).toBe(memory.nrPages - 1);
    const lengthsOnly = new SkBuff({ headLen: 9 + 1000 });
    expect(skbSegment(lengthsOnly, { mss: 1000, hdrLen: 9 }).map((s) => s.len)).toEqual([1009]);
  });
});
