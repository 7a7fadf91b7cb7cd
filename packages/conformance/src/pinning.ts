// getUser / putUser: pinning user memory (mm/gup.c pin_user_pages_fast, as ib_umem_get and
// iov_iter_extract_pages use it): exact coverage, one pin per page, every count restored on release.

import fc from 'fast-check';
import { describe, it } from 'vitest';
import { PAGE_SIZE } from '@iodesc/core';
import type { AddressSpace, DescriptorBackend, IoDescriptor } from '@iodesc/core';
import { mapUserRange, memorySeed, prefault, userRange, type UserRange } from './arbitraries.js';
import {
  checkCountsRestored, checkFootprint, checkNoLeaks, checkPinnedOnce, checkSegmentLimits, checkSegmentsCover,
  checkSegmentsFresh, checkThrowsCode, pfnsOf, piecesOfUserRange, snapshotCounts, withFaultedIn,
} from './checks.js';
import { guardLeaks, newMachine, resolveOptions, runProperty, type BackendFactory, type ConformanceOptions } from './harness.js';

/** One getUser case: a range in a fresh mapping, touched first or not, and how it is pinned and released. */
export interface GetUserCase {
  memorySeed: number;
  range: UserRange;
  /** Every page of the mapping was written by the CPU before getUser. */
  populated: boolean;
  write: boolean;
  longterm: boolean;
  dirty: boolean;
}

/** Arbitrary getUser cases over `userRange()`. */
export function getUserCase(): fc.Arbitrary<GetUserCase> {
  return fc.record({
    memorySeed: memorySeed(), range: userRange(), populated: fc.boolean(), write: fc.boolean(), longterm: fc.boolean(), dirty: fc.boolean(),
  });
}

/**
 * One getUser case: the descriptor covers exactly the bytes at [addr, addr + length) as the
 * address space maps them once getUser returns; each page gained exactly one pin (no FOLL_GET);
 * putUser restores every count (pages getUser had to fault in stay mapped, as in the kernel).
 */
export function checkGetUserCase(backend: DescriptorBackend, c: GetUserCase): void {
  const { memory, mm } = newMachine(c.memorySeed);
  const addr = mapUserRange(mm, c.range, { prefault: c.populated });
  const before = snapshotCounts(memory);
  const desc = backend.getUser(mm, addr, c.range.length, { write: c.write, longterm: c.longterm });
  const expected = piecesOfUserRange(mm, addr, c.range.length);
  checkSegmentsCover(desc, expected);
  checkSegmentLimits(desc, backend.capabilities);
  checkSegmentsFresh(desc, backend.name);
  checkFootprint(desc);
  checkPinnedOnce(memory, before, pfnsOf(expected));
  const faulted = c.populated ? [] : pfnsOf(expected).filter((p) => p !== memory.zeroPfn);
  backend.putUser(desc, { dirty: c.dirty });
  checkCountsRestored(memory, withFaultedIn(before, faulted), 'after getUser then putUser');
  checkNoLeaks(memory);
}

/** Descriptors held at once over one buffer: ranges as (start, length) bytes into it, and a release order. */
export interface OverlapCase {
  memorySeed: number;
  mappingPages: number;
  ranges: Array<{ start: number; length: number; write: boolean }>;
  /** Release order: `order[i]` picks among the descriptors still held. */
  order: number[];
}

/** Up to four overlapping ranges in a buffer of up to 24 pages. */
export function overlapCase(): fc.Arbitrary<OverlapCase> {
  return fc.integer({ min: 1, max: 24 }).chain((mappingPages) => {
    const bytes = mappingPages * PAGE_SIZE;
    const range = fc.record({ start: fc.integer({ min: 0, max: bytes - 1 }), lengthPick: fc.integer({ min: 1, max: bytes }), write: fc.boolean() })
      .map(({ start, lengthPick, write }) => ({ start, length: Math.min(lengthPick, bytes - start), write }));
    return fc.record({
      memorySeed: memorySeed(),
      mappingPages: fc.constant(mappingPages),
      ranges: fc.array(range, { minLength: 1, maxLength: 4 }),
      order: fc.array(fc.nat(), { minLength: 4, maxLength: 4 }),
    });
  });
}

/**
 * Several descriptors over overlapping parts of one touched buffer: while all are held each page
 * carries one pin per descriptor covering it; releasing them in any order restores every count.
 */
export function checkOverlapCase(backend: DescriptorBackend, c: OverlapCase): void {
  const { memory, mm } = newMachine(c.memorySeed);
  const base = mm.mmap(c.mappingPages * PAGE_SIZE);
  prefault(mm, base, c.mappingPages * PAGE_SIZE);
  const before = snapshotCounts(memory);
  const held: IoDescriptor[] = [];
  const pfns: number[] = [];
  for (const r of c.ranges) {
    const desc = backend.getUser(mm, base + r.start, r.length, { write: r.write });
    const expected = piecesOfUserRange(mm, base + r.start, r.length);
    checkSegmentsCover(desc, expected);
    pfns.push(...pfnsOf(expected));
    held.push(desc);
  }
  checkPinnedOnce(memory, before, pfns);
  for (let i = 0; held.length > 0; i++) {
    const [desc] = held.splice((c.order[i] ?? 0) % held.length, 1);
    backend.putUser(desc!, { dirty: i % 2 === 0 });
  }
  checkCountsRestored(memory, before, 'after every overlapping descriptor was released');
  checkNoLeaks(memory);
}

type GetUserCall = (b: DescriptorBackend, mm: AddressSpace, addr: number) => unknown;

// Malformed getUser calls on a touched 4-page buffer; each must be EINVAL and change nothing.
const BAD_CALLS: Array<[string, GetUserCall]> = [
  ['length is 0', (b, mm, a) => b.getUser(mm, a, 0, { write: true })],
  ['length is -1', (b, mm, a) => b.getUser(mm, a, -1, { write: true })],
  ['length is 1.5', (b, mm, a) => b.getUser(mm, a, 1.5, { write: true })],
  ['length is NaN', (b, mm, a) => b.getUser(mm, a, NaN, { write: true })],
  ['addr is -4096', (b, mm) => b.getUser(mm, -4096, PAGE_SIZE, { write: true })],
  ['addr is fractional', (b, mm, a) => b.getUser(mm, a + 0.5, PAGE_SIZE, { write: true })],
  ['opts.write is not a boolean', (b, mm, a) => b.getUser(mm, a, PAGE_SIZE, { write: 'yes' as never })],
];

/** Registers the pinning group: getUser coverage and pins, putUser restoring counts, refusals. */
export function pinningTests(factory: BackendFactory, options?: ConformanceOptions): void {
  const opts = resolveOptions(options);
  describe('getUser / putUser', () => {
    guardLeaks();

    it('describes exactly the user range, pins each page once, and putUser restores every count', () => {
      runProperty(getUserCase(), (c) => checkGetUserCase(factory(), c), opts);
    });

    it('counts one pin per descriptor on overlapping ranges and restores every count in any release order', () => {
      runProperty(overlapCase(), (c) => checkOverlapCase(factory(), c), opts);
    });

    it("throws EFAULT for a write pin of a read-only ('r') mapping and takes nothing", () => {
      const arb = fc.record({ memorySeed: memorySeed(), range: userRange(), populate: fc.boolean() });
      runProperty(arb, (c) => {
        const backend = factory();
        const { memory, mm } = newMachine(c.memorySeed);
        const addr = mapUserRange(mm, c.range, { prot: 'r', populate: c.populate });
        const before = snapshotCounts(memory);
        checkThrowsCode(() => backend.getUser(mm, addr, c.range.length, { write: true }), 'EFAULT', "getUser(write) on an 'r' mapping");
        checkCountsRestored(memory, before, "after getUser(write) on an 'r' mapping failed");
        const desc = backend.getUser(mm, addr, c.range.length, { write: false });
        checkSegmentsCover(desc, piecesOfUserRange(mm, addr, c.range.length));
        backend.putUser(desc, { dirty: false });
        checkNoLeaks(memory);
      }, opts);
    });

    it('throws EFAULT where nothing is mapped, taking nothing', () => {
      const backend = factory();
      const { memory, mm } = newMachine(opts.seed);
      const addr = mm.mmap(8 * PAGE_SIZE);
      prefault(mm, addr, 8 * PAGE_SIZE);
      mm.munmap(addr, 8 * PAGE_SIZE);
      const before = snapshotCounts(memory);
      checkThrowsCode(() => backend.getUser(mm, addr + 100, 3 * PAGE_SIZE, { write: true }), 'EFAULT', 'getUser on an unmapped range');
      checkCountsRestored(memory, before, 'after getUser on an unmapped range failed');
    });

    it.each(BAD_CALLS)('throws EINVAL when %s, changing nothing', (label, call) => {
      const { memory, mm } = newMachine(opts.seed);
      const addr = mm.mmap(4 * PAGE_SIZE);
      prefault(mm, addr, 4 * PAGE_SIZE);
      const before = snapshotCounts(memory);
      checkThrowsCode(() => call(factory(), mm, addr), 'EINVAL', `getUser when ${label}`);
      checkCountsRestored(memory, before, `after getUser refused ${label}`);
    });

    it('throws EINVAL on a second putUser of the same descriptor, changing nothing', () => {
      const backend = factory();
      const { memory, mm } = newMachine(opts.seed);
      const addr = mm.mmap(6 * PAGE_SIZE);
      prefault(mm, addr, 6 * PAGE_SIZE);
      const before = snapshotCounts(memory);
      const desc = backend.getUser(mm, addr + 10, 5 * PAGE_SIZE, { write: true });
      backend.putUser(desc, { dirty: false });
      checkThrowsCode(() => backend.putUser(desc, { dirty: false }), 'EINVAL', 'a second putUser');
      checkCountsRestored(memory, before, 'after a second putUser was refused');
    });
  });
}
