// fast-check generators shared by the suite and by backends' own tests: page layouts (runs of
// PFNs, materialised on a given memory), user ranges inside a mapping, and the helpers that build them.

import fc from 'fast-check';
import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE } from '@iodesc/core';
import type { AddressSpace, MmapOptions, PhysicalMemory } from '@iodesc/core';
import { ConformanceError } from './checks.js';

/**
 * One run of a page layout:
 * - `contiguous`: `pages` physically contiguous pages (the first pages of one folio);
 * - `scattered`: `pages` single pages, no two adjacent, in ascending or descending PFN order;
 * - `folio`: every page of one folio of `order` (order 9: a whole 2 MiB THP-sized folio);
 * - `repeat`: the previous page of the layout once more (an iovec naming a buffer twice).
 */
export type PageRun =
  | { kind: 'contiguous'; pages: number }
  | { kind: 'scattered'; pages: number; descending: boolean }
  | { kind: 'folio'; order: number }
  | { kind: 'repeat' };

/** A page array described as runs; `materialiseLayout` turns it into PFNs of a real memory. */
export type PageLayout = PageRun[];

/** Bounds of `pageLayout`. */
export interface PageLayoutConstraints {
  /** Most runs in a layout (default 6). */
  maxRuns?: number;
  /** Most pages in a contiguous or scattered run (default 40). */
  maxRunPages?: number;
  /** Allow whole 2 MiB folios (default true). */
  hugeFolios?: boolean;
}

/** One run of a page layout (see `PageRun`). */
export function pageRun(c: PageLayoutConstraints = {}): fc.Arbitrary<PageRun> {
  const maxRunPages = c.maxRunPages ?? 40;
  const orders = c.hugeFolios === false ? [1, 2, 4] : [1, 2, 4, HPAGE_PMD_ORDER];
  return fc.oneof(
    { arbitrary: fc.record({ kind: fc.constant('contiguous' as const), pages: fc.integer({ min: 1, max: maxRunPages }) }), weight: 4 },
    { arbitrary: fc.record({ kind: fc.constant('scattered' as const), pages: fc.integer({ min: 1, max: Math.min(maxRunPages, 16) }), descending: fc.boolean() }), weight: 4 },
    { arbitrary: fc.record({ kind: fc.constant('folio' as const), order: fc.constantFrom(...orders) }), weight: 1 },
    { arbitrary: fc.constant({ kind: 'repeat' as const }), weight: 1 },
  );
}

/** A page layout of 1 to `maxRuns` runs. */
export function pageLayout(c: PageLayoutConstraints = {}): fc.Arbitrary<PageLayout> {
  return fc.array(pageRun(c), { minLength: 1, maxLength: c.maxRuns ?? 6 });
}

/** Pages a layout expands to. */
export function layoutPages(layout: PageLayout): number {
  let n = 0;
  for (const r of layout) n += r.kind === 'folio' ? 1 << r.order : r.kind === 'repeat' ? 1 : r.pages;
  return n;
}

/** A layout made real: its PFNs, and the release of the folios allocated for it. */
export interface MaterialisedLayout {
  pages: Uint32Array;
  /** Drops the allocation references, freeing every folio (pages must no longer be pinned). */
  release(): void;
}

/**
 * Allocates folios of `memory` for `layout` and lists their PFNs in layout order. The pages are
 * held by one allocation reference each (as pages a driver owns), never mapped or pinned.
 * Throws ConformanceError when the memory runs out. Cost: O(pages).
 */
export function materialiseLayout(memory: PhysicalMemory, layout: PageLayout): MaterialisedLayout {
  const heads: number[] = [];
  const alloc = (order: number): number => {
    const head = memory.allocFolio(order);
    if (head < 0) throw new ConformanceError(`setup: memory of ${memory.nrPages} pages cannot hold an order-${order} folio for the layout`);
    heads.push(head);
    return head;
  };
  const pages = new Uint32Array(layoutPages(layout));
  let n = 0;
  for (const r of layout) {
    if (r.kind === 'contiguous' || r.kind === 'folio') {
      const nr = r.kind === 'folio' ? 1 << r.order : r.pages;
      const head = alloc(r.kind === 'folio' ? r.order : Math.ceil(Math.log2(nr)));
      for (let i = 0; i < nr; i++) pages[n++] = head + i;
    } else if (r.kind === 'scattered') {
      const run: number[] = [];
      for (let i = 0; i < r.pages; i++) {
        run.push(alloc(0));
        alloc(0); // a spacer, so no two pages of the run are neighbours
      }
      if (r.descending) run.reverse();
      for (const p of run) pages[n++] = p;
    } else {
      pages[n] = n > 0 ? pages[n - 1]! : alloc(0);
      n++;
    }
  }
  return {
    pages,
    release: () => {
      for (const h of heads) memory.folioPutRefs(h, 1);
      heads.length = 0;
    },
  };
}

/** A `fromPages` call over a layout: byte `offset` of the first page, `length` bytes. */
export interface FromPagesCase {
  /** Seed of the memory the layout is materialised on. */
  memorySeed: number;
  layout: PageLayout;
  offset: number;
  length: number;
  /** A `maxSegmentSize` to ask for (a multiple of PAGE_SIZE), or none. */
  maxSegmentSize: number | undefined;
}

/** Seeds for `new PhysicalMemory({ seed })`. */
export function memorySeed(): fc.Arbitrary<number> {
  return fc.integer({ min: 0, max: 0xffffffff });
}

/** A layout with an offset and a length inside it (the length may leave trailing pages unused). */
export function fromPagesCase(c: PageLayoutConstraints = {}): fc.Arbitrary<FromPagesCase> {
  return pageLayout(c).chain((layout) =>
    fc.record({
      memorySeed: memorySeed(),
      layout: fc.constant(layout),
      offset: fc.integer({ min: 0, max: PAGE_SIZE - 1 }),
      pagesUsed: fc.integer({ min: 1, max: layoutPages(layout) }),
      tailCut: fc.integer({ min: 0, max: PAGE_SIZE - 1 }),
      maxSegmentSize: fc.option(fc.integer({ min: 1, max: 16 }).map((p) => p * PAGE_SIZE), { nil: undefined }),
    }).map(({ pagesUsed, tailCut, ...rest }) => ({ ...rest, length: spanLength(pagesUsed, rest.offset, tailCut) })),
  );
}

// Bytes of `pages` pages less `offset` at the front and `tailCut` at the back, at least 1.
function spanLength(pages: number, offset: number, tailCut: number): number {
  return Math.max(1, pages * PAGE_SIZE - offset - tailCut);
}

/**
 * A user range inside a mapping: the mapping has `leadPages` pages before the range's first page
 * and `trailPages` after its last; the range starts at `offsetInPage` of its first page.
 */
export interface UserRange {
  leadPages: number;
  offsetInPage: number;
  length: number;
  trailPages: number;
}

/** Bounds of `userRange`. */
export interface UserRangeConstraints {
  /** Most pages the range itself may touch (default 40). */
  maxPages?: number;
  /** Most pages of mapping around it on each side (default 2). */
  maxSlackPages?: number;
}

/** A user range of 1 byte to `maxPages` pages with an offset anywhere in its first page. */
export function userRange(c: UserRangeConstraints = {}): fc.Arbitrary<UserRange> {
  const slack = c.maxSlackPages ?? 2;
  return fc.record({
    leadPages: fc.integer({ min: 0, max: slack }),
    offsetInPage: fc.integer({ min: 0, max: PAGE_SIZE - 1 }),
    pages: fc.integer({ min: 1, max: c.maxPages ?? 40 }),
    tailCut: fc.integer({ min: 0, max: PAGE_SIZE - 1 }),
    trailPages: fc.integer({ min: 0, max: slack }),
  }).map(({ pages, tailCut, ...rest }) => ({ ...rest, length: spanLength(pages, rest.offsetInPage, tailCut) }));
}

/** A user range over up to three 2 MiB folios, starting anywhere in the first two, crossing their boundaries. */
export function thpUserRange(): fc.Arbitrary<UserRange> {
  const total = 3 * HPAGE_PMD_NR;
  return fc.record({
    startPage: fc.integer({ min: 0, max: 2 * HPAGE_PMD_NR - 1 }),
    offsetInPage: fc.integer({ min: 0, max: PAGE_SIZE - 1 }),
    pages: fc.integer({ min: 1, max: HPAGE_PMD_NR + 64 }),
    tailCut: fc.integer({ min: 0, max: PAGE_SIZE - 1 }),
  }).map(({ startPage, offsetInPage, pages, tailCut }) => {
    const n = Math.min(pages, total - startPage);
    return { leadPages: startPage, offsetInPage, length: spanLength(n, offsetInPage, tailCut), trailPages: total - startPage - n };
  });
}

/** Pages touched by `length` bytes from `addr` (any address, aligned or not). */
export function userRangePages(addr: number, length: number): number {
  return Math.ceil(((addr % PAGE_SIZE) + length) / PAGE_SIZE);
}

/** Bytes of mapping `range` needs, its slack pages included. */
export function userRangeMappingBytes(range: UserRange): number {
  return (range.leadPages + userRangePages(range.offsetInPage, range.length) + range.trailPages) * PAGE_SIZE;
}

/** Options of `mapUserRange`: mmap's, and whether to touch every page with a CPU write first. */
export interface MapUserRangeOptions extends MmapOptions {
  /** Write one byte to every page of the mapping, so each is faulted in (default false). */
  prefault?: boolean;
}

/** Maps a buffer for `range` in `mm` and returns the address of the range's first byte. */
export function mapUserRange(mm: AddressSpace, range: UserRange, opts: MapUserRangeOptions = {}): number {
  const { prefault: touch = false, ...mmapOpts } = opts;
  const bytes = userRangeMappingBytes(range);
  const start = mm.mmap(bytes, mmapOpts);
  if (touch) prefault(mm, start, bytes);
  return start + range.leadPages * PAGE_SIZE + range.offsetInPage;
}

/** Writes one byte into every page of [addr, addr + length), as a program touching its buffer would. */
export function prefault(mm: AddressSpace, addr: number, length: number): void {
  const one = Uint8Array.of(0x5a);
  const first = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
  for (let a = first; a < addr + length; a += PAGE_SIZE) mm.write(Math.max(a, addr), one);
}

/** Address of the first byte of page `k` of the range that starts at `addr`. */
export function pageOfRange(addr: number, k: number): number {
  return (Math.floor(addr / PAGE_SIZE) + k) * PAGE_SIZE;
}
