// putUser's dirty flag: unpin_user_pages_dirty_lock(pages, n, make_dirty) marks the folios a
// device wrote dirty before dropping the pins, and leaves them alone when it did not write.

import fc from 'fast-check';
import { describe, it } from 'vitest';
import { PAGE_SIZE } from '@iodesc/core';
import type { DescriptorBackend } from '@iodesc/core';
import { mapUserRange, memorySeed, userRange, userRangeMappingBytes, type UserRange } from './arbitraries.js';
import {
  checkCountsRestored, checkDirty, checkNoLeaks, checkThrowsCode, pfnsOf, piecesOfUserRange, snapshotCounts,
} from './checks.js';
import { guardLeaks, newMachine, resolveOptions, runProperty, type BackendFactory, type ConformanceOptions } from './harness.js';

/** One dirty case: a write pin of a touched range, released with `dirty`. */
export interface DirtyCase {
  memorySeed: number;
  range: UserRange;
  dirty: boolean;
}

/** Arbitrary dirty cases. */
export function dirtyCase(): fc.Arbitrary<DirtyCase> {
  return fc.record({ memorySeed: memorySeed(), range: userRange(), dirty: fc.boolean() });
}

/**
 * One dirty case: after `putUser({ dirty: true })` every anon page of the range is dirty; after
 * `{ dirty: false }` every page that was clean is still clean; pages of the mapping outside the
 * range are never dirtied.
 */
export function checkDirtyCase(backend: DescriptorBackend, c: DirtyCase): void {
  const { memory, mm } = newMachine(c.memorySeed);
  const addr = mapUserRange(mm, c.range, { prefault: true });
  const start = addr - c.range.offsetInPage - c.range.leadPages * PAGE_SIZE;
  const all = pfnsOf(piecesOfUserRange(mm, start, userRangeMappingBytes(c.range)));
  const inRange = new Set(pfnsOf(piecesOfUserRange(mm, addr, c.range.length)));
  const cleanBefore = all.filter((p) => !memory.isDirty(p));
  const desc = backend.getUser(mm, addr, c.range.length, { write: true });
  backend.putUser(desc, { dirty: c.dirty });
  if (c.dirty) checkDirty(memory, inRange, true);
  checkDirty(memory, cleanBefore.filter((p) => !c.dirty || !inRange.has(p)), false);
  checkNoLeaks(memory);
}

/** Registers the dirty group. */
export function dirtyTests(factory: BackendFactory, options?: ConformanceOptions): void {
  const opts = resolveOptions(options);
  describe('putUser dirty', () => {
    guardLeaks();

    it('marks every page of the range dirty with { dirty: true }, and none with { dirty: false }', () => {
      runProperty(dirtyCase(), (c) => checkDirtyCase(factory(), c), opts);
    });

    it('throws EINVAL when dirty is not a boolean, releasing nothing', () => {
      const backend = factory();
      const { memory, mm } = newMachine(opts.seed);
      const addr = mapUserRange(mm, { leadPages: 0, offsetInPage: 7, length: 5 * PAGE_SIZE, trailPages: 0 }, { prefault: true });
      const desc = backend.getUser(mm, addr, 5 * PAGE_SIZE, { write: true });
      const held = snapshotCounts(memory);
      checkThrowsCode(() => backend.putUser(desc, { dirty: 1 as never }), 'EINVAL', 'putUser({ dirty: 1 })');
      checkCountsRestored(memory, held, 'after putUser refused a non-boolean dirty');
      backend.putUser(desc, { dirty: false });
    });
  });
}
