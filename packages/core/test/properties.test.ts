// Invariants as fast-check properties, and the map/pin lifecycle as a model-based test
// (fc.commands + fc.modelRun). Every run is seeded; numRuns is bounded so the suite stays fast.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AddressSpace, FOLL_FORCE, FOLL_LONGTERM, FOLL_PIN, FOLL_WRITE, GUP_PIN_COUNTING_BIAS, HPAGE_PMD_NR, PAGE_SIZE,
  PG_ANY_ZERO, PG_DIRTY, PG_LIVE, PG_PAGECACHE, PG_ZERO, PTE_PMD, PhysicalMemory, dropCaches, writeback,
  folioMaybeDmaPinned, getUserPages, leakReport, pinUserPages, pinUserPagesFast, putPage, unpinUserPages,
  unpinUserPagesDirtyLock, type Prot,
} from '../src/index.js';
import { expectUnchanged, MiB, snapshot, snapshotDiff } from './helpers.js';

const PMD = HPAGE_PMD_NR * PAGE_SIZE;
const SENTINEL = 0xffffffff;
/** RAM for the properties: room for every layout they build, small enough to re-check every frame after each step. */
const PROP_BYTES = 32 * MiB;
/** A generous limit for the property runs (no timing is asserted; this only guards a hang). */
const PROP_TIMEOUT = 60_000;

// --- the invariant every state must satisfy ---

/** What the caller holds: pin batches (FOLL_PIN) and reference batches (FOLL_GET). */
interface Held {
  kind: 'pin' | 'get';
  pages: Uint32Array;
  n: number;
}

/**
 * Recomputes every count from the page tables and the batches held, and lists where memory
 * disagrees: mapcount == page-table entries; a live folio's refcount == mapping references
 * (1 per PMD, 1 per page entry) + FOLL_GET references + pins × (large ? 1 : GUP_PIN_COUNTING_BIAS);
 * pins and gets exact; the zero page holds 1 + its FOLL_GET references and no pins; free frames
 * hold nothing; free + live frames == all frames.
 */
function inconsistencies(memory: PhysicalMemory, mms: AddressSpace[], held: Held[]): string[] {
  const out: string[] = [];
  const N = memory.nrPages;
  const mapRefs = new Int32Array(N);
  const mapcount = new Int32Array(N);
  const pins = new Int32Array(N);
  const gets = new Int32Array(N);
  for (const mm of mms) {
    for (const vma of mm.vmas) {
      for (let i = 0; i < vma.nrPages; i++) {
        const e = vma.pt[i]!;
        if (e === 0) continue;
        const pfn = e - 1;
        if (!(memory.flags[pfn]! & PG_LIVE)) out.push(`pt maps free frame ${pfn}`);
        if (memory.flags[pfn]! & PG_ANY_ZERO) continue; // neither zero page is counted by its mappings
        mapcount[pfn]!++;
        const head = memory.folioHead(pfn);
        if (vma.pte[i]! & PTE_PMD) {
          const off = (vma.start / PAGE_SIZE + i) % HPAGE_PMD_NR;
          if (pfn - head !== off || memory.order[head] !== 9) out.push(`PMD entry ${i} of vma ${vma.start} maps pfn ${pfn} at offset ${off}`);
          if (off === 0) mapRefs[head]!++;
          if (i - off < 0 || i - off + HPAGE_PMD_NR > vma.nrPages) out.push(`PMD at entry ${i} straddles vma ${vma.start}`);
        } else {
          mapRefs[head]!++;
        }
      }
    }
  }
  for (const h of held) {
    for (let j = 0; j < h.n; j++) {
      const head = memory.folioHead(h.pages[j]!);
      if (h.kind === 'get') gets[head]!++;
      else if (head !== memory.zeroPfn) pins[head]!++;
    }
  }
  let live = 0;
  for (let pfn = 0; pfn < N; pfn++) {
    const f = memory.flags[pfn]!;
    if (memory.mapcount[pfn] !== mapcount[pfn]) out.push(`mapcount[${pfn}] = ${memory.mapcount[pfn]}, page tables say ${mapcount[pfn]}`);
    if (!(f & PG_LIVE)) {
      if (memory.refcount[pfn] || memory.pins[pfn] || memory.gets[pfn] || pins[pfn] || gets[pfn]) out.push(`free frame ${pfn} holds counts`);
      continue;
    }
    live++;
    if (memory.folioHead(pfn) !== pfn) {
      if (memory.refcount[pfn] || memory.pins[pfn] || memory.gets[pfn]) out.push(`tail ${pfn} holds counts`);
      continue;
    }
    const large = memory.order[pfn]! > 0;
    // the zero page holds one reference and takes no pins; the huge zero folio holds one and
    // counts its pins as any large folio does
    // a page-cache page also holds the cache's own reference
    const base = f & PG_ANY_ZERO ? 1 : mapRefs[pfn]! + (f & PG_PAGECACHE ? 1 : 0);
    const want = f & PG_ZERO ? 1 + gets[pfn]! : base + gets[pfn]! + pins[pfn]! * (large ? 1 : GUP_PIN_COUNTING_BIAS);
    if (memory.refcount[pfn] !== want) out.push(`refcount[${pfn}] = ${memory.refcount[pfn]}, expected ${want}`);
    if (memory.pins[pfn] !== pins[pfn]) out.push(`pins[${pfn}] = ${memory.pins[pfn]}, expected ${pins[pfn]}`);
    if (memory.gets[pfn] !== gets[pfn]) out.push(`gets[${pfn}] = ${memory.gets[pfn]}, expected ${gets[pfn]}`);
    if (folioMaybeDmaPinned(memory, pfn) !== (large ? pins[pfn]! > 0 : want >= GUP_PIN_COUNTING_BIAS)) out.push(`folioMaybeDmaPinned(${pfn}) wrong`);
  }
  if (live + memory.nrFreePages !== N) out.push(`live ${live} + free ${memory.nrFreePages} != ${N}`);
  return out;
}

function expectConsistent(memory: PhysicalMemory, mms: AddressSpace[], held: Held[]): void {
  expect(inconsistencies(memory, mms, held).slice(0, 5)).toEqual([]);
}

// --- random layouts ---

interface MappingSpec {
  pages: number;
  thp: boolean;
  prot: Prot;
  shared: boolean;
  touch: 'none' | 'read' | 'write' | 'half' | 'populate';
  gapBelow: boolean;
}

const mappingArb: fc.Arbitrary<MappingSpec> = fc.record({
  pages: fc.integer({ min: 1, max: 24 }),
  thp: fc.boolean(),
  prot: fc.constantFrom<Prot>('r', 'rw', 'rw', 'rwx'),
  shared: fc.constantFrom(false, false, false, true),
  touch: fc.constantFrom('none', 'read', 'write', 'half', 'populate'),
  gapBelow: fc.boolean(),
});

interface Layout {
  memory: PhysicalMemory;
  mm: AddressSpace;
  maps: Array<{ addr: number; pages: number; spec: MappingSpec }>;
}

/** Builds the mappings top-down (adjacent unless a spacer page was unmapped between) and touches them. */
function build(specs: MappingSpec[], seed: number): Layout {
  const memory = new PhysicalMemory({ bytes: PROP_BYTES, seed });
  const mm = new AddressSpace(memory);
  const maps: Layout['maps'] = [];
  const spacers: number[] = [];
  for (const spec of specs) {
    const pages = spec.thp ? HPAGE_PMD_NR + spec.pages : spec.pages;
    const addr = mm.mmap(pages * PAGE_SIZE, { prot: spec.prot, shared: spec.shared, thp: spec.thp, populate: spec.touch === 'populate' });
    maps.push({ addr, pages, spec });
    if (spec.gapBelow) spacers.push(mm.mmap(PAGE_SIZE));
    const writable = spec.prot !== 'r' && spec.prot !== 'rx';
    if (spec.touch === 'read') mm.read(addr, pages * PAGE_SIZE);
    if (writable && (spec.touch === 'write' || spec.touch === 'half')) {
      const upto = spec.touch === 'half' ? Math.ceil(pages / 2) : pages;
      for (let k = 0; k < upto; k++) mm.write(addr + k * PAGE_SIZE + (k % 7), Uint8Array.of(k & 255));
    }
  }
  for (const s of spacers) mm.munmap(s, PAGE_SIZE);
  return { memory, mm, maps };
}

interface PinRequest {
  map: number;
  page: number;
  offset: number;
  extra: number;
  flags: number;
  api: 'pin' | 'fast' | 'gup';
}

const pinArb: fc.Arbitrary<PinRequest> = fc.record({
  map: fc.nat(),
  page: fc.nat(),
  offset: fc.integer({ min: 0, max: PAGE_SIZE - 1 }),
  extra: fc.integer({ min: -30, max: 40 }),
  flags: fc.subarray([FOLL_WRITE, FOLL_LONGTERM, FOLL_FORCE]).map((fs) => fs.reduce((a, b) => a | b, 0)),
  api: fc.constantFrom('pin', 'fast', 'gup'),
});

/** Resolves a request against a layout: start address, page count, and the count GUP must return. */
function resolve(layout: Layout, req: PinRequest) {
  const { mm } = layout;
  const m = layout.maps[req.map % layout.maps.length]!;
  const page = req.page % m.pages;
  const start = m.addr + page * PAGE_SIZE + req.offset;
  const nrPages = Math.max(0, Math.min(m.pages - page + req.extra, 600));
  // model: pages are taken while mapped and the access is allowed (check_vma_flags)
  let expected = 0;
  for (; expected < nrPages; expected++) {
    const vma = mm.findVma(m.addr + (page + expected) * PAGE_SIZE);
    if (vma === undefined) break;
    if (req.flags & FOLL_WRITE && !(vma.prot.includes('w') || (req.flags & FOLL_FORCE && !vma.shared))) break;
  }
  return { start, nrPages, expected };
}

function doPin(mm: AddressSpace, api: PinRequest['api'], start: number, n: number, flags: number, pages: Uint32Array): number {
  if (api === 'pin') return pinUserPages(mm, start, n, flags, pages);
  if (api === 'fast') return pinUserPagesFast(mm, start, n, flags, pages);
  return getUserPages(mm, start, n, flags | FOLL_PIN, pages);
}

const layoutArb = fc.array(mappingArb, { minLength: 1, maxLength: 4 });

// --- properties ---

describe('pin then unpin (property)', () => {
  it('restores every refcount, pin count and mapcount, and hands out exactly the pages it counts', () => {
    fc.assert(
      fc.property(layoutArb, pinArb, fc.boolean(), fc.nat(1000), (specs, req, dirty, seed) => {
        const layout = build(specs, seed);
        const { memory, mm } = layout;
        const { start, nrPages, expected } = resolve(layout, req);
        expectConsistent(memory, [mm], []);
        const before = snapshot(memory);
        const pages = new Uint32Array(nrPages + 4).fill(SENTINEL);

        if (expected === 0 && nrPages > 0) {
          expect(() => doPin(mm, req.api, start, nrPages, req.flags, pages)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
          expectUnchanged(memory, before);
          expect(pages.every((p) => p === SENTINEL)).toBe(true);
          return;
        }
        const got = doPin(mm, req.api, start, nrPages, req.flags, pages);
        // a short count hands exactly its pages, and nothing past them
        expect(got).toBe(expected);
        for (let i = got; i < pages.length; i++) expect(pages[i]).toBe(SENTINEL);
        const base = Math.floor(start / PAGE_SIZE) * PAGE_SIZE;
        for (let i = 0; i < got; i++) expect(pages[i]).toBe(mm.lookupPfn(base + i * PAGE_SIZE));
        // FOLL_WRITE and long-term pins of COW mappings never hand out the zero page
        if (req.flags & FOLL_WRITE || req.flags & FOLL_LONGTERM) {
          for (let i = 0; i < got; i++) {
            const vma = mm.findVma(base + i * PAGE_SIZE)!;
            if (req.flags & FOLL_WRITE || !vma.shared) expect(pages[i]).not.toBe(memory.zeroPfn);
          }
        }
        const held: Held[] = [{ kind: 'pin', pages, n: got }];
        expectConsistent(memory, [mm], held);
        const pinnedState = snapshot(memory);
        // FOLL_TOUCH: a write through a clean entry dirtied the folio at pin time already
        const dirtyAtPin = Array.from(pages.subarray(0, got), (p) => memory.isDirty(p));
        const acquired = memory.stats.nrFollPinAcquired;
        expect(acquired).toBe(Array.from(pages.subarray(0, got)).filter((p) => p !== memory.zeroPfn).length);

        unpinUserPagesDirtyLock(memory, pages, got, dirty);
        expectConsistent(memory, [mm], []);
        expect(memory.stats.nrFollPinReleased).toBe(acquired);
        const after = snapshot(memory);
        expect(snapshotDiff({ ...pinnedState, refcount: after.refcount, pins: after.pins }, after)).toEqual([]);
        expect(Math.max(...after.pins)).toBe(0);
        // no fault allocated anything: every count is back exactly
        if (pinnedState.nrFreePages === before.nrFreePages) expect(snapshotDiff(before, after)).toEqual([]);
        // folio_mark_dirty() also marks the zero page, before gup_put_folio() skips it
        for (let i = 0; i < got; i++) expect(memory.isDirty(pages[i]!)).toBe(dirty || dirtyAtPin[i]);
        expect(leakReport(memory)).toEqual([]);
      }),
      { seed: 42, numRuns: 80 },
    );
  }, PROP_TIMEOUT);

  it('pins through a fault injected at page k as a short count of k (EFAULT at k = 0)', () => {
    fc.assert(
      fc.property(layoutArb, pinArb, fc.nat(40), fc.nat(1000), (specs, req, k, seed) => {
        const layout = build(specs, seed);
        const { memory, mm } = layout;
        const { start, nrPages, expected } = resolve(layout, req);
        const base = Math.floor(start / PAGE_SIZE) * PAGE_SIZE;
        mm.injectFault(base + k * PAGE_SIZE);
        const want = Math.min(expected, k);
        const pages = new Uint32Array(nrPages).fill(SENTINEL);
        if (want === 0 && nrPages > 0) {
          const before = snapshot(memory);
          expect(() => doPin(mm, req.api, start, nrPages, req.flags, pages)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
          expectUnchanged(memory, before);
          return;
        }
        expect(doPin(mm, req.api, start, nrPages, req.flags, pages)).toBe(want);
        expectConsistent(memory, [mm], [{ kind: 'pin', pages, n: want }]);
        unpinUserPages(memory, pages, want);
        expect(leakReport(memory)).toEqual([]);
      }),
      { seed: 7, numRuns: 60 },
    );
  }, PROP_TIMEOUT);
});

describe('THP pins (property)', () => {
  it('pins each THP folio as one folio with an exact pin count, and unpin in any order', () => {
    const rangeArb = fc.record({ from: fc.nat(3 * HPAGE_PMD_NR - 1), len: fc.integer({ min: 1, max: 700 }), api: fc.constantFrom<PinRequest['api']>('pin', 'fast', 'gup') });
    fc.assert(
      fc.property(
        fc.array(rangeArb, { minLength: 1, maxLength: 6 }),
        fc.option(fc.nat(3 * HPAGE_PMD_NR - 1), { nil: undefined }),
        fc.nat(),
        (ranges, split, order) => {
          const memory = new PhysicalMemory({ bytes: PROP_BYTES, seed: 1 });
          const mm = new AddressSpace(memory);
          const total = 3 * HPAGE_PMD_NR;
          const addr = mm.mmap(total * PAGE_SIZE, { thp: true, populate: true });
          // optionally split one PMD by unmapping a page in it
          if (split !== undefined) mm.munmap(addr + split * PAGE_SIZE, PAGE_SIZE);
          const heads = [0, 1, 2].map((k) => memory.folioHead(mm.lookupPfn(addr + (k * HPAGE_PMD_NR + (split === k * HPAGE_PMD_NR ? 1 : 0)) * PAGE_SIZE)));
          for (const h of heads) expect(memory.order[h]).toBe(9);
          const held: Held[] = [];
          for (const r of ranges) {
            const n = Math.min(r.len, total - r.from);
            const pages = new Uint32Array(n);
            let got: number;
            try {
              got = doPin(mm, r.api, addr + r.from * PAGE_SIZE, n, FOLL_WRITE, pages);
            } catch (e) {
              expect(e).toMatchObject({ code: 'EFAULT' });
              expect(r.from).toBe(split);
              continue;
            }
            // runs into the unmapped page at most
            const hole = split !== undefined && split >= r.from && split < r.from + n ? split - r.from : n;
            expect(got).toBe(hole);
            held.push({ kind: 'pin', pages, n: got });
          }
          const perFolio = new Map<number, number>(heads.map((h) => [h, 0]));
          for (const h of held) for (let j = 0; j < h.n; j++) {
            const head = memory.folioHead(h.pages[j]!);
            perFolio.set(head, perFolio.get(head)! + 1);
          }
          heads.forEach((h, k) => {
            const n = perFolio.get(h)!;
            expect(memory.pins[h]).toBe(n);
            expect(folioMaybeDmaPinned(memory, h + 17)).toBe(n > 0);
            // still PMD-mapped: one mapping reference plus one per page pinned
            if (split === undefined || Math.floor(split / HPAGE_PMD_NR) !== k) expect(memory.refcount[h]).toBe(1 + n);
          });
          expectConsistent(memory, [mm], held);
          // release in a shuffled order, checking after each
          while (held.length > 0) {
            const [h] = held.splice(order % held.length, 1);
            unpinUserPages(memory, h!.pages, h!.n);
            expectConsistent(memory, [mm], held);
          }
          mm.munmap(addr, total * PAGE_SIZE);
          // all but the zero page, and the huge zero folio once a THP read fault took it
          expect(memory.nrFreePages).toBe(memory.nrPages - 1 - (memory.hugeZeroPfn >= 0 ? HPAGE_PMD_NR : 0));
        },
      ),
      { seed: 99, numRuns: 40 },
    );
  }, PROP_TIMEOUT);
});

describe('unpinUserPagesDirtyLock (property)', () => {
  it('dirties exactly the folios it releases when makeDirty is true, none when false', () => {
    fc.assert(
      fc.property(layoutArb, fc.array(pinArb, { minLength: 1, maxLength: 4 }), fc.boolean(), fc.nat(1000), (specs, reqs, dirty, seed) => {
        const layout = build(specs, seed);
        const { memory, mm } = layout;
        const batches: Held[] = [];
        for (const req of reqs) {
          const { start, nrPages, expected } = resolve(layout, req);
          if (expected === 0) continue;
          const pages = new Uint32Array(nrPages);
          batches.push({ kind: 'pin', pages, n: doPin(mm, req.api, start, nrPages, req.flags, pages) });
        }
        const released = batches.filter((_, i) => i % 2 === 0);
        const dirtyFolios = () => {
          const set = new Set<number>();
          for (let pfn = 0; pfn < memory.nrPages; pfn++) if (memory.flags[pfn]! & PG_DIRTY) set.add(memory.folioHead(pfn));
          return set;
        };
        // folios dirtied at pin time (FOLL_TOUCH on a clean entry) stay dirty; the release adds
        // every folio it names, the zero page included, when makeDirty is set
        const expectDirty = dirtyFolios();
        for (const b of released) unpinUserPagesDirtyLock(memory, b.pages, b.n, dirty);
        if (dirty) for (const b of released) for (let j = 0; j < b.n; j++) expectDirty.add(memory.folioHead(b.pages[j]!));
        const actual = dirtyFolios();
        expect([...actual].sort((a, b) => a - b)).toEqual([...expectDirty].sort((a, b) => a - b));
        expectConsistent(memory, [mm], batches.filter((_, i) => i % 2 === 1));
      }),
      { seed: 5, numRuns: 60 },
    );
  }, PROP_TIMEOUT);
});

// --- model-based: random interleavings of map, write, read, pin, get, unpin, put, munmap ---

interface Model {
  /** Mapped pages by page index: prot, shared, and whether a (temporary) file backs them. */
  mapped: Map<number, { prot: Prot; shared: boolean; file: boolean }>;
  /** Bytes written, per page index (absent: zeros). */
  bytes: Map<number, Uint8Array>;
  /** Mappings made, for picking targets: [first page index, page count]. */
  regions: Array<[number, number]>;
  held: Held[];
  /** Batches released, for double-unpin checks. */
  released: Held[];
}

interface Real {
  memory: PhysicalMemory;
  mm: AddressSpace;
}

type Cmd = fc.Command<Model, Real>;

function check(real: Real, model: Model): void {
  expectConsistent(real.memory, [real.mm], model.held);
}

function region(model: Model, pick: number): [number, number] | undefined {
  return model.regions.length === 0 ? undefined : model.regions[pick % model.regions.length];
}

class MmapCmd implements Cmd {
  constructor(readonly pages: number, readonly prot: Prot, readonly shared: boolean, readonly thp: boolean, readonly populate: boolean, readonly file = false) {}
  check = (m: Readonly<Model>) => m.regions.length < 6;
  run(m: Model, r: Real): void {
    const pages = this.thp ? HPAGE_PMD_NR + this.pages : this.pages;
    const backing = this.file ? 'file' : 'anon';
    const addr = r.mm.mmap(pages * PAGE_SIZE, { prot: this.prot, shared: this.shared, thp: this.thp, populate: this.populate, backing });
    const first = addr / PAGE_SIZE;
    for (let k = 0; k < pages; k++) {
      expect(m.mapped.has(first + k)).toBe(false);
      m.mapped.set(first + k, { prot: this.prot, shared: this.shared, file: this.file });
    }
    m.regions.push([first, pages]);
    check(r, m);
  }
  toString = () => `mmap(${this.pages}${this.thp ? '+512 thp' : ''}, ${this.prot}${this.shared ? ' shared' : ''}${this.file ? ' file' : ''}${this.populate ? ' populate' : ''})`;
}

// writeback and drop_caches change no byte a process reads, and keep every count consistent
class CacheCmd implements Cmd {
  constructor(readonly op: 'writeback' | 'drop') {}
  check = () => true;
  run(m: Model, r: Real): void {
    if (this.op === 'writeback') writeback(r.memory);
    else dropCaches(r.memory);
    check(r, m);
  }
  toString = () => this.op;
}

class WriteCmd implements Cmd {
  constructor(readonly pick: number, readonly page: number, readonly off: number, readonly len: number, readonly salt: number) {}
  check = () => true;
  run(m: Model, r: Real): void {
    const reg = region(m, this.pick);
    if (reg === undefined) return;
    const addr = (reg[0] + (this.page % reg[1])) * PAGE_SIZE + this.off;
    const data = new Uint8Array(this.len).map((_, i) => (i * 31 + this.salt) & 255 || 1);
    let ok = true;
    for (let p = Math.floor(addr / PAGE_SIZE); p < Math.ceil((addr + this.len) / PAGE_SIZE); p++) {
      const e = m.mapped.get(p);
      if (e === undefined || !e.prot.includes('w')) ok = false;
    }
    if (!ok) {
      expect(() => r.mm.write(addr, data)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    } else {
      r.mm.write(addr, data);
      for (let i = 0; i < this.len; i++) {
        const p = Math.floor((addr + i) / PAGE_SIZE);
        let page = m.bytes.get(p);
        if (page === undefined) m.bytes.set(p, (page = new Uint8Array(PAGE_SIZE)));
        page[(addr + i) % PAGE_SIZE] = data[i]!;
      }
    }
    check(r, m);
  }
  toString = () => `write(region ${this.pick}, page ${this.page}, +${this.off}, ${this.len})`;
}

class ReadCmd implements Cmd {
  constructor(readonly pick: number, readonly page: number, readonly pages: number) {}
  check = () => true;
  run(m: Model, r: Real): void {
    const reg = region(m, this.pick);
    if (reg === undefined) return;
    const first = reg[0] + (this.page % reg[1]);
    let n = 0;
    while (n < this.pages && m.mapped.has(first + n)) n++;
    const got = r.mm.read(first * PAGE_SIZE, n * PAGE_SIZE);
    for (let k = 0; k < n; k++) {
      const want = m.bytes.get(first + k) ?? new Uint8Array(PAGE_SIZE);
      const view = got.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE);
      let same = true;
      for (let i = 0; i < PAGE_SIZE; i++) if (view[i] !== want[i]) same = false;
      expect(same).toBe(true);
    }
    check(r, m);
  }
  toString = () => `read(region ${this.pick}, page ${this.page}, ${this.pages} pages)`;
}

class PinCmd implements Cmd {
  constructor(readonly pick: number, readonly page: number, readonly n: number, readonly flags: number, readonly kind: 'pin' | 'fast' | 'get') {}
  check = () => true;
  run(m: Model, r: Real): void {
    const reg = region(m, this.pick);
    if (reg === undefined) return;
    const first = reg[0] + (this.page % reg[1]);
    const flags = this.kind === 'get' ? this.flags & ~FOLL_LONGTERM : this.flags;
    let expected = 0;
    for (; expected < this.n; expected++) {
      const e = m.mapped.get(first + expected);
      if (e === undefined) break;
      if (flags & FOLL_WRITE && !e.prot.includes('w') && !(flags & FOLL_FORCE && !e.shared)) break;
      // writable_file_mapping_allowed(): no long-term write pin of a dirty-tracked file mapping
      if (e.file && e.shared && e.prot.includes('w') && (flags & (FOLL_LONGTERM | FOLL_WRITE)) === (FOLL_LONGTERM | FOLL_WRITE)) break;
    }
    const pages = new Uint32Array(this.n);
    const call = () =>
      this.kind === 'get' ? getUserPages(r.mm, first * PAGE_SIZE, this.n, flags, pages)
      : this.kind === 'fast' ? pinUserPagesFast(r.mm, first * PAGE_SIZE, this.n, flags, pages)
      : pinUserPages(r.mm, first * PAGE_SIZE, this.n, flags, pages);
    if (expected === 0) {
      expect(call).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    } else {
      expect(call()).toBe(expected);
      m.held.push({ kind: this.kind === 'get' ? 'get' : 'pin', pages, n: expected });
    }
    check(r, m);
  }
  toString = () => `${this.kind}(region ${this.pick}, page ${this.page}, ${this.n}, flags 0x${this.flags.toString(16)})`;
}

class ReleaseCmd implements Cmd {
  constructor(readonly pick: number, readonly dirty: boolean) {}
  check = (m: Readonly<Model>) => m.held.length > 0;
  run(m: Model, r: Real): void {
    const [h] = m.held.splice(this.pick % m.held.length, 1);
    if (h!.kind === 'get') for (let j = 0; j < h!.n; j++) putPage(r.memory, h!.pages[j]!);
    else {
      unpinUserPagesDirtyLock(r.memory, h!.pages, h!.n, this.dirty);
      if (this.dirty) for (let j = 0; j < h!.n; j++) {
        const p = h!.pages[j]!;
        if (p !== r.memory.zeroPfn && r.memory.flags[p]! & PG_LIVE) expect(r.memory.isDirty(p)).toBe(true);
      }
    }
    m.released.push(h!);
    check(r, m);
  }
  toString = () => `release(${this.pick}${this.dirty ? ', dirty' : ''})`;
}

class DoubleReleaseCmd implements Cmd {
  constructor(readonly pick: number) {}
  check = (m: Readonly<Model>) => m.released.some((h) => h.kind === 'pin' && Array.from(h.pages.subarray(0, h.n)).some((p) => p !== 0));
  run(m: Model, r: Real): void {
    const cands = m.released.filter((h) => h.kind === 'pin' && Array.from(h.pages.subarray(0, h.n)).some((p) => p !== 0));
    const h = cands[this.pick % cands.length]!;
    // only a page whose folio now holds fewer pins than the batch names is certain to fail
    const need = new Map<number, number>();
    for (let j = 0; j < h.n; j++) {
      const p = h.pages[j]!;
      if (p === 0 || !(r.memory.flags[p]! & PG_LIVE)) continue;
      const head = r.memory.folioHead(p);
      need.set(head, (need.get(head) ?? 0) + 1);
    }
    const freed = Array.from(h.pages.subarray(0, h.n)).some((p) => p !== 0 && !(r.memory.flags[p]! & PG_LIVE));
    const short = [...need].some(([head, n]) => r.memory.pins[head]! < n);
    const before = snapshot(r.memory);
    if (freed || short) {
      expect(() => unpinUserPages(r.memory, h.pages, h.n)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      expectUnchanged(r.memory, before);
    }
    check(r, m);
  }
  toString = () => `doubleRelease(${this.pick})`;
}

class MunmapCmd implements Cmd {
  constructor(readonly pick: number, readonly page: number, readonly pages: number) {}
  check = (m: Readonly<Model>) => m.regions.length > 0;
  run(m: Model, r: Real): void {
    const reg = region(m, this.pick)!;
    const first = reg[0] + (this.page % reg[1]);
    r.mm.munmap(first * PAGE_SIZE, this.pages * PAGE_SIZE);
    for (let k = 0; k < this.pages; k++) {
      m.mapped.delete(first + k);
      m.bytes.delete(first + k);
    }
    check(r, m);
  }
  toString = () => `munmap(region ${this.pick}, page ${this.page}, ${this.pages})`;
}

const mmapCmdArb = fc.tuple(fc.integer({ min: 1, max: 20 }), fc.constantFrom<Prot>('r', 'rw', 'rw'), fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean())
  .map(([p, prot, shared, thp, pop, file]) => new MmapCmd(p, prot, shared && !thp, thp && !file, pop, file));

const commandArbs = [
  mmapCmdArb,
  fc.tuple(fc.nat(), fc.nat(600), fc.nat(PAGE_SIZE - 1), fc.integer({ min: 1, max: 2 * PAGE_SIZE }), fc.nat(255))
    .map(([a, b, c, d, e]) => new WriteCmd(a, b, c, d, e)),
  fc.tuple(fc.nat(), fc.nat(600), fc.integer({ min: 1, max: 4 })).map(([a, b, c]) => new ReadCmd(a, b, c)),
  fc.tuple(
    fc.nat(), fc.nat(600), fc.integer({ min: 1, max: 40 }),
    fc.subarray([FOLL_WRITE, FOLL_LONGTERM, FOLL_FORCE]).map((fs) => fs.reduce((x, y) => x | y, 0)),
    fc.constantFrom<'pin' | 'fast' | 'get'>('pin', 'fast', 'get'),
  ).map(([a, b, c, d, e]) => new PinCmd(a, b, c, d, e)),
  fc.tuple(fc.nat(), fc.boolean()).map(([a, b]) => new ReleaseCmd(a, b)),
  fc.nat().map((a) => new DoubleReleaseCmd(a)),
  fc.tuple(fc.nat(), fc.nat(600), fc.integer({ min: 1, max: 40 })).map(([a, b, c]) => new MunmapCmd(a, b, c)),
  fc.constantFrom<'writeback' | 'drop'>('writeback', 'drop').map((op) => new CacheCmd(op)),
];

describe('map/pin lifecycle (model-based)', () => {
  it('keeps refcount == mapping refs + page-cache ref + pins (× bias for small folios) + gets through any interleaving of anonymous and file mappings, writeback and drop_caches, and frees everything at the end', () => {
    fc.assert(
      fc.property(fc.array(mmapCmdArb, { minLength: 1, maxLength: 3 }), fc.commands(commandArbs, { maxCommands: 40, size: 'large' }), fc.nat(1000), (initial, cmds, seed) => {
        const memory = new PhysicalMemory({ bytes: PROP_BYTES, seed });
        const real: Real = { memory, mm: new AddressSpace(memory) };
        const model: Model = { mapped: new Map(), bytes: new Map(), regions: [], held: [], released: [] };
        fc.modelRun(() => ({ model, real }), [...initial, ...cmds]);
        // release what is still held, unmap everything: memory is as it was
        for (const h of model.held.splice(0)) {
          if (h.kind === 'pin') unpinUserPages(memory, h.pages, h.n);
          else for (let j = 0; j < h.n; j++) putPage(memory, h.pages[j]!);
        }
        for (const [first, pages] of model.regions) real.mm.munmap(first * PAGE_SIZE, pages * PAGE_SIZE);
        expect(real.mm.vmas).toHaveLength(0);
        expect(leakReport(memory)).toEqual([]);
        expectConsistent(memory, [real.mm], []);
        // as built, but for the huge zero folio, which stays once a THP read fault took it
        const fresh = new PhysicalMemory({ bytes: PROP_BYTES, seed });
        const hugeZero = memory.hugeZeroPfn >= 0 ? HPAGE_PMD_NR : 0;
        expect(memory.nrFreePages).toBe(fresh.nrFreePages - hugeZero);
        if (hugeZero === 0) expect(memory.buddyinfo()).toEqual(fresh.buddyinfo());
        expect(memory.stats.nrFollPinAcquired).toBe(memory.stats.nrFollPinReleased);
      }),
      { seed: 42, numRuns: 80 },
    );
  }, PROP_TIMEOUT);
});
