// Model-based test of the map / write / pin / unpin / munmap lifecycle (fc.commands): after every
// step each folio's refcount is exactly what its mappings, references and pins account for, and
// every byte reads back as written, through the CPU and through the pinned pages.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AddressSpace, FOLL_LONGTERM, FOLL_WRITE, GUP_PIN_COUNTING_BIAS, HPAGE_PMD_NR, PAGE_SIZE, PG_ANY_ZERO, PG_HUGE_ZERO, PG_LIVE, PG_ZERO, PTE_PMD,
  PhysicalMemory, leakReport, pinUserPages, pinUserPagesFast, unpinUserPagesDirtyLock,
} from '../src/index.js';

interface Mapping {
  addr: number;
  nrPages: number;
  /** What the CPU wrote, page by page; `mapped[i]` is 0 once page i is unmapped. */
  shadow: Uint8Array;
  mapped: Uint8Array;
}

interface Pin {
  pages: Uint32Array;
  n: number;
  /** The bytes each pinned page held when pinned, unless the CPU has written it since. */
  expect: Array<Uint8Array | undefined>;
}

interface Real {
  memory: PhysicalMemory;
  mm: AddressSpace;
}

interface Model {
  maps: Mapping[];
  pins: Pin[];
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Refcount and mapcount of every frame, recomputed from the page tables, pins and references. */
function checkInvariants(r: Real, m: Model): void {
  const mem = r.memory;
  const mapRefs = new Int32Array(mem.nrPages);
  const mapcount = new Int32Array(mem.nrPages);
  for (const vma of r.mm.vmas) {
    for (let i = 0; i < vma.nrPages; i++) {
      const e = vma.pt[i]!;
      if (e === 0 || mem.flags[e - 1]! & PG_ANY_ZERO) continue;
      const pfn = e - 1;
      mapcount[pfn]!++;
      const head = mem.folioHead(pfn);
      // a PMD entry holds one reference for its 512 pages; a page entry holds one each
      if (!(vma.pte[i]! & PTE_PMD) || (vma.start / PAGE_SIZE + i) % HPAGE_PMD_NR === 0) mapRefs[head]!++;
    }
  }
  const pins = new Int32Array(mem.nrPages);
  for (const p of m.pins) for (let i = 0; i < p.n; i++) if (p.pages[i] !== mem.zeroPfn) pins[mem.folioHead(p.pages[i]!)]!++;
  const wrong: string[] = [];
  for (let pfn = 1; pfn < mem.nrPages; pfn++) {
    if (mem.mapcount[pfn] !== mapcount[pfn]) wrong.push(`mapcount of ${pfn}: ${mem.mapcount[pfn]}, want ${mapcount[pfn]}`);
    if (!(mem.flags[pfn]! & PG_LIVE) || mem.folioHead(pfn) !== pfn) continue;
    // the huge zero folio holds one reference of its own and no mapping references
    const base = mem.flags[pfn]! & PG_HUGE_ZERO ? 1 : mapRefs[pfn]!;
    const want = base + pins[pfn]! * (mem.order[pfn]! > 0 ? 1 : GUP_PIN_COUNTING_BIAS);
    if (mem.pins[pfn] !== pins[pfn]) wrong.push(`pins of ${pfn}: ${mem.pins[pfn]}, want ${pins[pfn]}`);
    if (mem.refcount[pfn] !== want) wrong.push(`refcount of ${pfn}: ${mem.refcount[pfn]}, want ${want}`);
  }
  expect(wrong).toEqual([]);
}

const mapCmd = (pages: number, thp: boolean): fc.Command<Model, Real> => ({
  check: (m) => m.maps.length < 4,
  run(m, r) {
    const addr = r.mm.mmap(pages * PAGE_SIZE, { thp });
    m.maps.push({ addr, nrPages: pages, shadow: new Uint8Array(pages * PAGE_SIZE), mapped: new Uint8Array(pages).fill(1) });
    checkInvariants(r, m);
  },
  toString: () => `mmap(${pages} pages${thp ? ', thp' : ''})`,
});

const writeCmd = (which: number, page: number, len: number, fill: number): fc.Command<Model, Real> => ({
  check: (m) => m.maps.length > 0,
  run(m, r) {
    const map = m.maps[which % m.maps.length]!;
    const p = page % map.nrPages;
    const n = Math.min(len, map.nrPages - p);
    for (let i = p; i < p + n; i++) if (!map.mapped[i]) return;
    const bytes = new Uint8Array(n * PAGE_SIZE);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (fill + i * 7) & 0xff;
    r.mm.write(map.addr + p * PAGE_SIZE, bytes);
    map.shadow.set(bytes, p * PAGE_SIZE);
    // pages pinned before this write now hold the new bytes too: forget older expectations
    for (const pin of m.pins) pin.expect.fill(undefined);
    checkInvariants(r, m);
  },
  toString: () => `write(map ${which}, page ${page}, ${len} pages, fill ${fill})`,
});

const pinCmd = (which: number, page: number, len: number, flags: number, fast: boolean): fc.Command<Model, Real> => ({
  check: (m) => m.maps.length > 0,
  run(m, r) {
    const map = m.maps[which % m.maps.length]!;
    const p = page % map.nrPages;
    if (!map.mapped[p]) return;
    const pages = new Uint32Array(len);
    const n = (fast ? pinUserPagesFast : pinUserPages)(r.mm, map.addr + p * PAGE_SIZE, len, flags, pages);
    // the count stops exactly where the mappings stop (another mapping may lie beyond ours)
    let avail = 0;
    while (p + avail < map.nrPages && map.mapped[p + avail] && avail < len) avail++;
    if (avail < len && r.mm.findVma(map.addr + (p + avail) * PAGE_SIZE) === undefined) expect(n).toBe(avail);
    else expect(n).toBeGreaterThanOrEqual(avail);
    const expectBytes = Array.from({ length: n }, (_, i) => (i < avail ? map.shadow.slice((p + i) * PAGE_SIZE, (p + i + 1) * PAGE_SIZE) : undefined));
    m.pins.push({ pages, n, expect: expectBytes });
    checkInvariants(r, m);
  },
  toString: () => `pin(map ${which}, page ${page}, ${len} pages, flags ${flags}${fast ? ', fast' : ''})`,
});

const unpinCmd = (which: number, dirty: boolean): fc.Command<Model, Real> => ({
  check: (m) => m.pins.length > 0,
  run(m, r) {
    const [pin] = m.pins.splice(which % m.pins.length, 1);
    for (let i = 0; i < pin!.n; i++) {
      const want = pin!.expect[i];
      if (want !== undefined && !sameBytes(r.memory.readPhys(pin!.pages[i]! * PAGE_SIZE, PAGE_SIZE), want)) {
        expect.fail(`pinned pfn ${pin!.pages[i]} does not hold the bytes it held when pinned`);
      }
    }
    unpinUserPagesDirtyLock(r.memory, pin!.pages, pin!.n, dirty);
    checkInvariants(r, m);
  },
  toString: () => `unpin(${which}, dirty ${dirty})`,
});

const munmapCmd = (which: number, page: number, len: number): fc.Command<Model, Real> => ({
  check: (m) => m.maps.length > 0,
  run(m, r) {
    const map = m.maps[which % m.maps.length]!;
    const p = page % map.nrPages;
    const n = Math.min(len, map.nrPages - p);
    r.mm.munmap(map.addr + p * PAGE_SIZE, n * PAGE_SIZE);
    map.mapped.fill(0, p, p + n);
    checkInvariants(r, m);
  },
  toString: () => `munmap(map ${which}, page ${page}, ${len} pages)`,
});

const readCmd = (which: number): fc.Command<Model, Real> => ({
  check: (m) => m.maps.length > 0,
  run(m, r) {
    const map = m.maps[which % m.maps.length]!;
    for (let i = 0; i < map.nrPages; i++) {
      if (!map.mapped[i]) continue;
      const got = r.mm.read(map.addr + i * PAGE_SIZE, PAGE_SIZE);
      if (!sameBytes(got, map.shadow.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE))) expect.fail(`page ${i} of map ${which} reads wrong bytes`);
    }
    checkInvariants(r, m);
  },
  toString: () => `read(map ${which})`,
});

const commands = [
  fc.tuple(fc.integer({ min: 1, max: 1100 }), fc.boolean()).map(([p, t]) => mapCmd(p, t)),
  fc.tuple(fc.nat(3), fc.nat(1100), fc.integer({ min: 1, max: 600 }), fc.nat(255)).map(([w, p, l, f]) => writeCmd(w, p, l, f)),
  fc
    .tuple(fc.nat(3), fc.nat(1100), fc.integer({ min: 1, max: 700 }), fc.constantFrom(0, FOLL_WRITE, FOLL_LONGTERM, FOLL_WRITE | FOLL_LONGTERM), fc.boolean())
    .map(([w, p, l, f, fast]) => pinCmd(w, p, l, f, fast)),
  fc.tuple(fc.nat(7), fc.boolean()).map(([w, d]) => unpinCmd(w, d)),
  fc.tuple(fc.nat(3), fc.nat(1100), fc.integer({ min: 1, max: 600 })).map(([w, p, l]) => munmapCmd(w, p, l)),
  fc.nat(3).map((w) => readCmd(w)),
];

describe('the page lifecycle', () => {
  it('keeps refcounts, pins, mapcounts and bytes exact through map/write/pin/unpin/munmap', () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 40 }), (cmds) => {
        const memory = new PhysicalMemory({ bytes: 32 * 2 ** 20, seed: 11 });
        const real: Real = { memory, mm: new AddressSpace(memory) };
        const model: Model = { maps: [], pins: [] };
        const free0 = memory.nrFreePages;
        fc.modelRun(() => ({ model, real }), cmds);
        // tear down: unpin everything, unmap everything, and nothing is left behind
        for (const p of model.pins) unpinUserPagesDirtyLock(memory, p.pages, p.n, false);
        for (const map of model.maps) real.mm.munmap(map.addr, map.nrPages * PAGE_SIZE);
        expect(leakReport(memory)).toEqual([]);
        expect(memory.nrFreePages).toBe(free0 - (memory.hugeZeroPfn >= 0 ? HPAGE_PMD_NR : 0));
      }),
      { seed: 20261125, numRuns: 100 },
    );
  }, 60_000);
});
