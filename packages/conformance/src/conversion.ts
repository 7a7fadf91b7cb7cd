// The conversion group (capabilities.toFrags): handing a descriptor to the network as skb_frag_t
// entries (include/linux/skbuff.h). The fragments name exactly the descriptor's bytes, in order,
// each inside one folio; spread over buffers they respect MAX_SKB_FRAGS by spilling into more;
// converting takes no reference; and a conversion is counted, only a view is free.

import { describe, it } from 'vitest';
import { kfreeSkb, MAX_SKB_FRAGS, PAGE_SIZE, SKB_FRAG_SIZE, skbsFromFrags } from '@iodesc/core';
import type { ConversionCost, DescriptorBackend, Frag, FragArray, PhysicalMemory } from '@iodesc/core';
import { fromPagesCase, mapUserRange, materialiseLayout, type FromPagesCase } from './arbitraries.js';
import {
  checkCountsRestored, checkNoLeaks, checkPiecesEqual, checkThrowsCode, ConformanceError, piecesOfFrags, piecesOfSegments, piecesOfUserRange,
  snapshotCounts, type PagePiece,
} from './checks.js';
import { guardLeaks, newMachine, probe, resolveOptions, runProperty, type BackendFactory, type ConformanceOptions } from './harness.js';
import { getUserCase, type GetUserCase } from './pinning.js';

/** The `CONFIG_MAX_SKB_FRAGS` values the group spreads fragments at: the default and the most. */
export const SPILL_MAX_FRAGS = [17, 45] as const;

function failCheck(message: string): never {
  throw new ConformanceError(message);
}

/**
 * Checks each fragment of `frags`: a page (not a net_iov), at least one byte, its bytes inside
 * the folio of the page it names (networking never lets a fragment leave its folio, however
 * physically contiguous the next page is).
 */
export function checkFragsWellFormed(memory: PhysicalMemory, frags: FragArray, what = 'toFrags()'): void {
  for (let i = 0; i < frags.count; i++) {
    if (frags.isNetIov(i)) failCheck(`${what} fragment ${i} names a net_iov, not a page`);
    const pfn = frags.pfn(i);
    const off = frags.offset(i);
    const len = frags.length(i);
    if (len < 1) failCheck(`${what} fragment ${i} is empty`);
    if (pfn >= memory.nrPages) failCheck(`${what} fragment ${i} names pfn ${pfn}, beyond memory`);
    const head = memory.folioHead(pfn);
    const last = pfn + Math.floor((off + len - 1) / PAGE_SIZE);
    if (last >= head + memory.folioNrPages(head)) {
      failCheck(`${what} fragment ${i} { pfn ${pfn}, offset ${off}, length ${len} } runs past its folio (pfn ${head}, ${memory.folioNrPages(head)} page(s)) into pfn ${last}`);
    }
  }
}

/**
 * Checks the cost `toFrags` reported: non-negative integers; a view (`capabilities.fragView`)
 * converts nothing; anything else writes fragments of one page each, as `skb_splice_from_iter`
 * hands storage pages over, and counts at least one conversion, `SKB_FRAG_SIZE` bytes per
 * fragment written, and an allocation per network buffer the fragments need (⌈n / MAX_SKB_FRAGS⌉;
 * core's `fragConversionCost` counts two each, the `sk_buff` and its head).
 */
export function checkConversionCost(backend: DescriptorBackend, frags: FragArray, cost: ConversionCost): void {
  for (const k of ['conversions', 'conversionBytes', 'allocations'] as const) {
    if (!Number.isInteger(cost[k]) || cost[k] < 0) failCheck(`toFrags() cost.${k} = ${cost[k]} is not a non-negative integer`);
  }
  if (backend.capabilities.fragView) {
    if (cost.conversions !== 0 || cost.conversionBytes !== 0) failCheck(`toFrags() converted (${cost.conversions} conversions, ${cost.conversionBytes} bytes), but capabilities.fragView promises a view`);
    return;
  }
  // storage pages reach the network through skb_splice_from_iter a page at a time, and
  // skb_append_pagefrags joins only pieces of one page: a conversion's fragments stay in a page
  for (let i = 0; i < frags.count; i++) {
    if (frags.offset(i) + frags.length(i) > PAGE_SIZE) {
      failCheck(`toFrags() fragment ${i} { pfn ${frags.pfn(i)}, offset ${frags.offset(i)}, length ${frags.length(i)} } spans pages: a conversion hands the network a page at a time (skb_splice_from_iter)`);
    }
  }
  if (cost.conversions < 1) failCheck(`toFrags() re-described ${frags.count} entries but counted ${cost.conversions} conversions (not a view: the conversion must be counted)`);
  if (cost.conversionBytes < frags.count * SKB_FRAG_SIZE) failCheck(`toFrags() wrote ${frags.count} fragments but counted ${cost.conversionBytes} conversion bytes, fewer than ${SKB_FRAG_SIZE} each`);
  // the fragments live in network buffers' shared info: at least one allocation per buffer
  const buffers = Math.ceil(frags.count / MAX_SKB_FRAGS);
  if (cost.allocations < buffers) failCheck(`toFrags() made ${frags.count} fragments, ${buffers} network buffers' worth, but counted ${cost.allocations} allocations`);
}

/**
 * Spreads `frags` over buffers of `maxFrags` (`skbsFromFrags`) and checks the spill: ⌈count /
 * maxFrags⌉ buffers, none over `maxFrags`, each a view of the backend's array, together naming
 * `expected` in order with `total` bytes; then frees them, which must leave every count as it
 * was. This checks core's spreading on the backend's fragments (a sanity check); the backend's
 * own output is checked by `checkFragsWellFormed` (no empty fragment, none leaving its folio)
 * and by comparing its pieces with the descriptor's exact bytes (`checkToFragsCase`).
 */
export function checkSpill(memory: PhysicalMemory, frags: FragArray, maxFrags: number, expected: PagePiece[], total: number): void {
  const before = snapshotCounts(memory);
  const skbs = skbsFromFrags(frags, { maxFrags, memory });
  try {
    const want = Math.ceil(frags.count / maxFrags);
    if (skbs.length !== want) failCheck(`${frags.count} fragments at MAX_SKB_FRAGS ${maxFrags} spread over ${skbs.length} buffers, ${want} expected`);
    let bytes = 0;
    const all: Frag[] = [];
    for (const skb of skbs) {
      if (skb.nrFrags > maxFrags) failCheck(`a buffer holds ${skb.nrFrags} fragments, over MAX_SKB_FRAGS ${maxFrags}`);
      if (skb.fragArray !== frags) failCheck(`buffer #${skb.id} copied the fragments instead of viewing the backend's array`);
      bytes += skb.len;
      all.push(...skb.frags());
    }
    if (bytes !== total) failCheck(`the buffers hold ${bytes} bytes, the descriptor ${total}`);
    checkPiecesEqual(piecesOfFrags(all), expected, `buffers of ${maxFrags} fragments`);
  } finally {
    for (const skb of skbs) kfreeSkb(skb);
  }
  checkCountsRestored(memory, before, `after freeing buffers of ${maxFrags} fragments`);
}

/**
 * One conversion of a fromPages descriptor: the fragments cover exactly the segments' bytes in
 * order, each well formed; converting changes no count (the fragments take no reference); the
 * cost is counted as `checkConversionCost` says; the spill at 17 and 45 fragments is exact.
 */
export function checkToFragsCase(backend: DescriptorBackend, c: FromPagesCase): void {
  const { memory } = newMachine(c.memorySeed);
  const layout = materialiseLayout(memory, c.layout);
  const desc = backend.fromPages(memory, layout.pages, c.offset, c.length);
  const expected = piecesOfSegments(desc.segments());
  const before = snapshotCounts(memory);
  const { frags, cost } = backend.toFrags(desc);
  checkCountsRestored(memory, before, 'after toFrags (a conversion takes no reference)');
  checkFragsWellFormed(memory, frags);
  checkPiecesEqual(piecesOfFrags(frags), expected, 'toFrags() fragments');
  checkConversionCost(backend, frags, cost);
  for (const maxFrags of SPILL_MAX_FRAGS) checkSpill(memory, frags, maxFrags, expected, desc.length);
  layout.release();
}

/**
 * One conversion of a getUser descriptor: the fragments name exactly the user range's bytes as
 * the address space maps them; putUser then leaves nothing held.
 */
export function checkToFragsUserCase(backend: DescriptorBackend, c: GetUserCase): void {
  const { memory, mm } = newMachine(c.memorySeed);
  const addr = mapUserRange(mm, c.range, { prefault: c.populated });
  const desc = backend.getUser(mm, addr, c.range.length, { write: c.write, longterm: c.longterm });
  try {
    const { frags, cost } = backend.toFrags(desc);
    checkFragsWellFormed(memory, frags);
    checkPiecesEqual(piecesOfFrags(frags), piecesOfUserRange(mm, addr, c.range.length), 'toFrags() fragments of user memory');
    checkConversionCost(backend, frags, cost);
  } finally {
    backend.putUser(desc, { dirty: c.dirty });
  }
  checkNoLeaks(memory);
}

/**
 * `toFrags(desc, opts?)` at its boundary: EINVAL for something that is not this backend's
 * descriptor and for options that are not an object; nothing is referenced after either.
 */
export function checkToFragsBadInput(backend: DescriptorBackend): void {
  const { memory } = newMachine(1);
  const page = memory.allocFolio(0);
  const desc = backend.fromPages(memory, Uint32Array.of(page), 0, 100);
  const before = snapshotCounts(memory);
  checkThrowsCode(() => backend.toFrags({} as never), 'EINVAL', 'toFrags({})');
  for (const bad of [5, 'x', null]) checkThrowsCode(() => backend.toFrags(desc, bad as never), 'EINVAL', `toFrags(desc, ${String(bad)})`);
  checkCountsRestored(memory, before, 'after a refused toFrags');
  backend.toFrags(desc, {});
  memory.folioPutRefs(page, 1);
}

/** Registers the conversion group when the backend declares `capabilities.toFrags`; nothing otherwise. */
export function conversionTests(factory: BackendFactory, options?: ConformanceOptions): void {
  if (!probe(factory).capabilities.toFrags) return;
  const opts = resolveOptions(options);
  describe('conversion (toFrags)', () => {
    guardLeaks();

    it('hands the network exactly the bytes segments() describes, spilling past MAX_SKB_FRAGS', () => {
      runProperty(fromPagesCase(), (c) => checkToFragsCase(factory(), c), opts);
    });

    it('converts pinned user memory without taking a reference of its own', () => {
      runProperty(getUserCase(), (c) => checkToFragsUserCase(factory(), c), opts);
    });

    it('refuses a foreign descriptor and options that are not an object (EINVAL)', () => {
      checkToFragsBadInput(factory());
    });
  });
}

/** The conversion group under its earlier name. */
export const toFragsTests = conversionTests;
