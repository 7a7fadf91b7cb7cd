// The segments and pin checks re-run on THP-backed buffers (mm/huge_memory.c): 2 MiB folios
// behind one PMD each, pinned per page into the folio's exact pin count, ranges crossing folios.

import fc from 'fast-check';
import { describe, it } from 'vitest';
import { HPAGE_PMD_ORDER } from '@iodesc/core';
import type { DescriptorBackend } from '@iodesc/core';
import { mapUserRange, memorySeed, thpUserRange, type UserRange } from './arbitraries.js';
import {
  checkCountsRestored, checkDirty, checkNoLeaks, checkPinnedOnce, checkSegmentLimits, checkSegmentsCover, ConformanceError,
  pfnsOf, piecesOfPages, piecesOfUserRange, snapshotCounts,
} from './checks.js';
import { guardLeaks, newMachine, resolveOptions, runProperty, type BackendFactory, type ConformanceOptions } from './harness.js';

/** One THP case: a range over three 2 MiB folios of a populated `thp` mapping. */
export interface ThpCase {
  memorySeed: number;
  range: UserRange;
  write: boolean;
  longterm: boolean;
  dirty: boolean;
}

/** Arbitrary THP cases over `thpUserRange()`. */
export function thpCase(): fc.Arbitrary<ThpCase> {
  return fc.record({ memorySeed: memorySeed(), range: thpUserRange(), write: fc.boolean(), longterm: fc.boolean(), dirty: fc.boolean() });
}

/**
 * One THP case: getUser covers exactly the range, each page pinned once into its folio's pin
 * count; fromPages over the same PFNs covers the same bytes; putUser restores every count and
 * dirties the folios when asked.
 */
export function checkThpCase(backend: DescriptorBackend, c: ThpCase): void {
  const { memory, mm } = newMachine(c.memorySeed);
  const addr = mapUserRange(mm, c.range, { thp: true, populate: true });
  const expected = piecesOfUserRange(mm, addr, c.range.length);
  const pfns = pfnsOf(expected);
  for (const p of pfns) {
    if (memory.order[p] !== HPAGE_PMD_ORDER) throw new ConformanceError(`setup: pfn ${p} of the thp mapping is not in a 2 MiB folio`);
  }
  const before = snapshotCounts(memory);
  const desc = backend.getUser(mm, addr, c.range.length, { write: c.write, longterm: c.longterm });
  checkSegmentsCover(desc, expected);
  checkSegmentLimits(desc, backend.capabilities);
  checkPinnedOnce(memory, before, pfns);
  const pages = Uint32Array.from(pfns);
  const view = backend.fromPages(memory, pages, c.range.offsetInPage, c.range.length);
  checkSegmentsCover(view, piecesOfPages(pages, c.range.offsetInPage, c.range.length));
  backend.putUser(desc, { dirty: c.dirty });
  checkCountsRestored(memory, before, 'after getUser then putUser on THP-backed memory');
  if (c.dirty) checkDirty(memory, pfns, true);
  checkNoLeaks(memory);
}

/** Registers the THP group. */
export function thpTests(factory: BackendFactory, options?: ConformanceOptions): void {
  const opts = resolveOptions(options);
  describe('THP-backed buffers', () => {
    guardLeaks();

    it('describes ranges across 2 MiB folios exactly, pins each page once, and restores every count', () => {
      runProperty(thpCase(), (c) => checkThpCase(factory(), c), opts);
    });
  });
}
