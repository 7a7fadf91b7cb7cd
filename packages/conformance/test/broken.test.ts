// The suite checks itself: each deliberately broken variant of the reference backend makes the
// check written for that mistake fail, run as the groups run it (a seeded fast-check property).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fail, FragArray, fragsFromSegments, getUserPages, PAGE_SIZE, PhysicalMemory, putPage } from '@iodesc/core';
import type { DescriptorBackend } from '@iodesc/core';
import {
  capabilityTests, checkConversionCost, checkDirtyCase, checkFragsWellFormed, checkFromPagesCase, checkGetUserCase, checkInjectedFaultCase, checkOutOfMemoryCase, checkOwnerCase, checkRunOffCase,
  checkThpCase, checkToFragsCase, checkToFragsUserCase, dirtyCase, fromPagesCase, getUserCase, injectCase, ownerCase, thpCase,
} from '../src/index.js';
import { ReferenceDescriptor, referenceBackend } from './reference-backend.js';

type Ref = DescriptorBackend<ReferenceDescriptor>;
const ref = referenceBackend;
const RUNS = { numRuns: 25, seed: 0x10de5c };

/** Runs `check` over `arb` as a group would; returns the failing check's error ('' when all passed). */
function failureOf<T>(arb: fc.Arbitrary<T>, check: (backend: DescriptorBackend, c: T) => void, backend: Ref): string {
  try {
    fc.assert(fc.property(arb, (c) => check(backend as DescriptorBackend, c)), RUNS);
    return '';
  } catch (e) {
    const cause = (e as Error).cause;
    return cause instanceof Error ? `${cause.name}: ${cause.message}` : String(e);
  }
}

// A descriptor with the same pins as `d` but other entries.
const rewrap = (d: ReferenceDescriptor, entries = d.entries.map((e) => ({ ...e }))) => new ReferenceDescriptor(d.memory, entries, d.pinned);

function dropLastByte(d: ReferenceDescriptor): ReferenceDescriptor {
  const entries = d.entries.map((e) => ({ ...e }));
  const last = entries[entries.length - 1]!;
  if (--last.length === 0) entries.pop();
  return rewrap(d, entries);
}

// Joins every pair of neighbouring entries whether or not their pages are contiguous.
function mergeBlindly(d: ReferenceDescriptor): ReferenceDescriptor {
  const out = [];
  for (let i = 0; i < d.entries.length; i += 2) {
    const a = d.entries[i]!;
    const b = d.entries[i + 1];
    out.push(b !== undefined && a.offset + a.length === PAGE_SIZE ? { ...a, length: a.length + b.length } : { ...a });
  }
  return rewrap(d, out);
}

// Joins neighbouring entries over physically contiguous pages, as a multi-page backend would.
function mergeContiguous(d: ReferenceDescriptor, maxSegmentSize = Infinity): ReferenceDescriptor {
  const out: typeof d.entries = [];
  for (const e of d.entries) {
    const last = out[out.length - 1];
    const endPfn = last === undefined ? -1 : last.pfn + Math.floor((last.offset + last.length) / PAGE_SIZE);
    const fits = last !== undefined && last.length + e.length <= maxSegmentSize;
    if (fits && (last.offset + last.length) % PAGE_SIZE === 0 && e.offset === 0 && e.pfn === endPfn) last.length += e.length;
    else out.push({ ...e });
  }
  return rewrap(d, out);
}

const broken: Record<string, Ref> = {
  dropsAByte: { ...ref, fromPages: (...a) => dropLastByte(ref.fromPages(...a)), getUser: (...a) => dropLastByte(ref.getUser(...a)) },
  mergesBlindly: { ...ref, capabilities: { ...ref.capabilities, multiPage: true }, fromPages: (...a) => mergeBlindly(ref.fromPages(...a)) },
  crossesPagesUndeclared: { ...ref, getUser: (...a) => mergeContiguous(ref.getUser(...a)) },
  forgetsToUnpin: { ...ref, putUser: () => {} },
  ignoresDirty: { ...ref, putUser: (d) => ref.putUser(d, { dirty: false }) },
  dropsOwner: { ...ref, getUser: (mm, addr, len, o) => ref.getUser(mm, addr, len, { ...o, owner: undefined }) },
  // takes FOLL_GET references instead of pins, and releases them with putPage
  getsInsteadOfPins: {
    ...ref,
    getUser(mm, addr, length, o) {
      const first = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
      const pages = new Uint32Array(Math.ceil((addr - first + length) / PAGE_SIZE));
      getUserPages(mm, first, pages.length, 0, pages);
      const d = ref.fromPages(mm.memory, pages, addr - first, length);
      return new ReferenceDescriptor(mm.memory, d.entries, pages);
    },
    putUser(d) {
      for (const p of d.pinned!) putPage(d.memory, p);
      d.pinned = null;
    },
  },
  // pins page by page and keeps what it got when a later page fails
  neverUnwinds: {
    ...ref,
    getUser(mm, addr, length, o) {
      const first = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
      const n = Math.ceil((addr - first + length) / PAGE_SIZE);
      const parts: ReferenceDescriptor[] = [];
      for (let k = 0; k < n; k++) parts.push(ref.getUser(mm, first + k * PAGE_SIZE, PAGE_SIZE, o));
      for (const p of parts) ref.putUser(p, { dirty: false });
      return ref.getUser(mm, addr, length, o);
    },
  },
};

// A correct multi-page variant: the checks must accept entries spanning contiguous pages, and
// converted to fragments a page at a time.
const merging: Ref = {
  ...ref,
  capabilities: { ...ref.capabilities, multiPage: true },
  fromPages: (m, p, o, l, opts) => mergeContiguous(ref.fromPages(m, p, o, l, opts), opts?.maxSegmentSize),
  getUser: (...a) => mergeContiguous(ref.getUser(...a)),
  toFrags: (d) => fragsFromSegments(d.segments()),
};

// A broken backend, the property that must catch it, and what the failure must say.
type BrokenCase = [string, fc.Arbitrary<any>, (b: DescriptorBackend, c: any) => void, Ref, RegExp];

function expectCaught(_label: string, arb: fc.Arbitrary<any>, check: (b: DescriptorBackend, c: any) => void, backend: Ref, message: RegExp): void {
  const failure = failureOf(arb, check, backend);
  expect(failure).toMatch(/^ConformanceError: /);
  expect(failure).toMatch(message);
}

describe('the checks catch a broken backend', () => {
  it('passes the reference backend, and a variant merging contiguous pages', () => {
    for (const b of [ref, merging]) {
      expect(failureOf(fromPagesCase(), checkFromPagesCase, b)).toBe('');
      expect(failureOf(getUserCase(), checkGetUserCase, b)).toBe('');
      expect(failureOf(thpCase(), checkThpCase, b)).toBe('');
      expect(failureOf(fromPagesCase(), checkToFragsCase, b)).toBe('');
      expect(failureOf(getUserCase(), checkToFragsUserCase, b)).toBe('');
    }
  });

  it.each([
    ['fromPages segments drop the last byte', fromPagesCase(), checkFromPagesCase, broken.dropsAByte!, /segments\(\) cover \d+ bytes, \d+ expected/],
    ['getUser segments drop the last byte', getUserCase(), checkGetUserCase, broken.dropsAByte!, /segments\(\) cover \d+ bytes, \d+ expected/],
    ['entries join pages that are not contiguous', fromPagesCase(), checkFromPagesCase, broken.mergesBlindly!, /segments\(\) differ at page piece/],
    ['entries cross pages without multiPage', getUserCase(), checkGetUserCase, broken.crossesPagesUndeclared!, /crosses a page boundary/],
    ['putUser forgets to unpin', getUserCase(), checkGetUserCase, broken.forgetsToUnpin!, /after getUser then putUser: pins of pfn/],
    ['putUser forgets to unpin THP pages', thpCase(), checkThpCase, broken.forgetsToUnpin!, /pins of pfn \d+ is \d+, was 0/],
    ['putUser ignores dirty: true', dirtyCase(), checkDirtyCase, broken.ignoresDirty!, /is clean, expected dirty/],
    ['getUser loses the owner tag', ownerCase(), checkOwnerCase, broken.dropsOwner!, /pinned under owner undefined/],
    ['getUser takes FOLL_GET references', getUserCase(), checkGetUserCase, broken.getsInsteadOfPins!, /FOLL_GET reference/],
    ['getUser keeps its pins when page k faults', injectCase(), checkInjectedFaultCase, broken.neverUnwinds!, /after getUser failed at page \d+: pins/],
    ['getUser keeps its pins when memory runs out', injectCase(), checkOutOfMemoryCase, broken.neverUnwinds!, /ran out of memory at page \d+: pins/],
    ['getUser keeps its pins when it runs off the mapping', injectCase(), checkRunOffCase, broken.neverUnwinds!, /ran \d+ page\(s\) off its mapping: pins/],
  ] as BrokenCase[])('fails when %s', expectCaught);
});

// Fragments as the reference makes them, less the last `drop` entries, or built from other entries.
function fragsOf(entries: Array<{ pfn: number; offset: number; length: number }>, drop = 0): FragArray {
  const frags = new FragArray();
  for (const e of entries.slice(0, entries.length - drop)) frags.push(e.pfn, e.offset, e.length);
  return frags;
}
const counted = (frags: FragArray) => ({ conversions: 1, conversionBytes: 16 * frags.count, allocations: 2 * Math.ceil(frags.count / 17) });
const brokenFrags: Record<string, Ref> = {
  dropsAFragment: { ...ref, toFrags: (d) => ({ frags: fragsOf(d.entries, 1), cost: counted(fragsOf(d.entries, 1)) }) },
  fakeView: { ...ref, capabilities: { ...ref.capabilities, fragView: true } },
  countsNothing: { ...ref, toFrags: (d) => ({ frags: fragsOf(d.entries), cost: { conversions: 0, conversionBytes: 0, allocations: 0 } }) },
  emptyFragment: {
    ...ref,
    toFrags: (d) => {
      const frags = fragsOf(d.entries);
      frags.push(d.entries[0]!.pfn, 0, 0);
      return { frags, cost: counted(frags) };
    },
  },
  // fragments cut only where folios end: what zero-copy send builds, not what a conversion writes
  foliosNotPages: { ...merging, toFrags: (d) => fragsFromSegments(d.segments(), { memory: d.memory }) },
  noAllocations: { ...ref, toFrags: (d) => ({ frags: fragsOf(d.entries), cost: { ...counted(fragsOf(d.entries)), allocations: 0 } }) },
  takesAReference: {
    ...ref,
    toFrags: (d) => {
      const r = ref.toFrags(d);
      const head = d.memory.folioHead(d.entries[0]!.pfn);
      d.memory.tryRefAdd(head, 1);
      return r;
    },
  },
};

describe('the conversion checks catch a broken toFrags', () => {
  it.each([
    ['the fragments drop an entry', fromPagesCase(), checkToFragsCase, brokenFrags.dropsAFragment!, /toFrags\(\) fragments differ/],
    ['the fragments drop an entry of user memory', getUserCase(), checkToFragsUserCase, brokenFrags.dropsAFragment!, /fragments of user memory differ/],
    ['a view claims conversion', fromPagesCase(), checkToFragsCase, brokenFrags.fakeView!, /promises a view/],
    ['a conversion is not counted', fromPagesCase(), checkToFragsCase, brokenFrags.countsNothing!, /counted 0 conversions/],
    ['the backend emits an empty fragment', fromPagesCase(), checkToFragsCase, brokenFrags.emptyFragment!, /fragment \d+ is empty/],
    ['the buffers holding the fragments are not counted', fromPagesCase(), checkToFragsCase, brokenFrags.noAllocations!, /counted 0 allocations/],
    ['toFrags takes a page reference', fromPagesCase(), checkToFragsCase, brokenFrags.takesAReference!, /after toFrags \(a conversion takes no reference\): refcount/],
  ] as BrokenCase[])('fails when %s', expectCaught);
});

describe('checkConversionCost', () => {
  it('fails a conversion joining the pages of one folio into a fragment (splice hands over a page at a time)', () => {
    const memory = new PhysicalMemory({ bytes: 16 * 2 ** 20 });
    const head = memory.allocFolio(2);
    const b = brokenFrags.foliosNotPages!;
    const desc = b.fromPages(memory, Uint32Array.of(head, head + 1, head + 2, head + 3), 0, 4 * PAGE_SIZE);
    const { frags, cost } = b.toFrags(desc);
    expect(frags.count).toBe(1);
    expect(() => checkConversionCost(b, frags, cost)).toThrow(/spans pages: a conversion hands the network a page at a time/);
    const good = merging.toFrags(desc);
    expect(good.frags.count).toBe(4);
    expect(() => checkConversionCost(merging, good.frags, good.cost)).not.toThrow();
    memory.folioPutRefs(head, 1);
  });
});

describe('checkFragsWellFormed', () => {
  it('fails a fragment joining two physically adjacent pages of different folios, as a scatterlist would join them', () => {
    const memory = new PhysicalMemory({ bytes: 16 * 2 ** 20 });
    const a = memory.allocFolio(0);
    const b = memory.allocFolio(0);
    expect(b).toBe(a + 1);
    const frags = new FragArray();
    frags.push(a, 100, 2 * PAGE_SIZE - 100);
    expect(() => checkFragsWellFormed(memory, frags)).toThrow(/runs past its folio/);
    const whole = new FragArray();
    whole.push(a, 100, PAGE_SIZE - 100);
    whole.push(b, 0, PAGE_SIZE);
    checkFragsWellFormed(memory, whole);
  });
});

describe('a backend without toFrags', () => {
  // the capabilities group then checks the refusal instead of running the conversion group
  const noFrags: Ref = { ...ref, capabilities: { ...ref.capabilities, toFrags: false }, toFrags: () => fail('EOPNOTSUPP', 'no fragments here') };
  capabilityTests(() => noFrags as DescriptorBackend);
});
