// fromPages: a descriptor over pages already held describes exactly their bytes, takes no
// reference, and refuses malformed arguments (lib/scatterlist.c: sg_alloc_table_from_pages_segment).

import { describe, it } from 'vitest';
import { PAGE_SIZE } from '@iodesc/core';
import type { DescriptorBackend, PhysicalMemory } from '@iodesc/core';
import { fromPagesCase, materialiseLayout, type FromPagesCase } from './arbitraries.js';
import {
  checkCountsRestored, checkFootprint, checkNoLeaks, checkSegmentLimits, checkSegmentsCover, checkSegmentsFresh,
  checkThrowsCode, piecesOfPages, snapshotCounts,
} from './checks.js';
import { guardLeaks, newMachine, resolveOptions, runProperty, type BackendFactory, type ConformanceOptions } from './harness.js';

/**
 * One fromPages case: materialises the layout on a fresh memory, describes it, and checks the
 * segments cover exactly the described bytes, honour the backend's limits and `maxSegmentSize`,
 * come fresh per walk, that the footprint is consistent, and that no count changed.
 */
export function checkFromPagesCase(backend: DescriptorBackend, c: FromPagesCase): void {
  const { memory } = newMachine(c.memorySeed);
  const layout = materialiseLayout(memory, c.layout);
  const before = snapshotCounts(memory);
  const opts = c.maxSegmentSize === undefined ? undefined : { maxSegmentSize: c.maxSegmentSize };
  const desc = backend.fromPages(memory, layout.pages, c.offset, c.length, opts);
  checkSegmentsCover(desc, piecesOfPages(layout.pages, c.offset, c.length));
  checkSegmentLimits(desc, backend.capabilities, c.maxSegmentSize);
  checkSegmentsFresh(desc, backend.name);
  checkFootprint(desc);
  checkCountsRestored(memory, before, 'after fromPages (it takes no reference)');
  layout.release();
  checkNoLeaks(memory);
}

type FromPagesCall = (b: DescriptorBackend, memory: PhysicalMemory, pages: Uint32Array) => unknown;

// Malformed calls over a valid array of four pages; each must be EINVAL and change nothing.
const BAD_CALLS: Array<[string, FromPagesCall]> = [
  ['length is 0', (b, m, p) => b.fromPages(m, p, 0, 0)],
  ['length is -1', (b, m, p) => b.fromPages(m, p, 0, -1)],
  ['length is 1.5', (b, m, p) => b.fromPages(m, p, 0, 1.5)],
  ['length is NaN', (b, m, p) => b.fromPages(m, p, 0, NaN)],
  ['offset is -1', (b, m, p) => b.fromPages(m, p, -1, 100)],
  ['offset is PAGE_SIZE', (b, m, p) => b.fromPages(m, p, PAGE_SIZE, 100)],
  ['offset + length need a fifth page', (b, m, p) => b.fromPages(m, p, 1, 4 * PAGE_SIZE)],
  ['a PFN lies beyond memory', (b, m, p) => b.fromPages(m, Uint32Array.of(p[0]!, m.nrPages), 0, 2 * PAGE_SIZE)],
  ['pages is a plain array', (b, m, p) => b.fromPages(m, Array.from(p) as unknown as Uint32Array, 0, PAGE_SIZE)],
];

/** Registers the fromPages group: coverage over random page layouts, and argument validation. */
export function fromPagesTests(factory: BackendFactory, options?: ConformanceOptions): void {
  const opts = resolveOptions(options);
  describe('fromPages', () => {
    guardLeaks();

    it('describes exactly the bytes of the page array from offset, and takes no reference', () => {
      runProperty(fromPagesCase(), (c) => checkFromPagesCase(factory(), c), opts);
    });

    it('describes a layout of whole 2 MiB folios and scattered pages as exactly their bytes', () => {
      const c: FromPagesCase = {
        memorySeed: opts.seed,
        layout: [{ kind: 'folio', order: 9 }, { kind: 'scattered', pages: 3, descending: true }, { kind: 'folio', order: 9 }, { kind: 'repeat' }],
        offset: PAGE_SIZE - 1,
        length: 1028 * PAGE_SIZE - (PAGE_SIZE - 1) - 1,
        maxSegmentSize: undefined,
      };
      checkFromPagesCase(factory(), c);
    });

    it.each(BAD_CALLS)('throws EINVAL when %s, changing nothing', (label, call) => {
      const { memory } = newMachine(opts.seed);
      const layout = materialiseLayout(memory, [{ kind: 'contiguous', pages: 4 }]);
      const before = snapshotCounts(memory);
      checkThrowsCode(() => call(factory(), memory, layout.pages), 'EINVAL', `fromPages when ${label}`);
      checkCountsRestored(memory, before, `after fromPages refused ${label}`);
      layout.release();
    });
  });
}
