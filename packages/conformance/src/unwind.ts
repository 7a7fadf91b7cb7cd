// Failure injection: a getUser that fails part-way leaves no pin behind (ib_umem_get's
// umem_release path, iov_iter_extract_pages' callers), whatever page the failure hits.

import fc from 'fast-check';
import { describe, it } from 'vitest';
import { IodescError, MAX_PAGE_ORDER, PAGE_SIZE } from '@iodesc/core';
import type { AddressSpace, DescriptorBackend, Errno, PhysicalMemory } from '@iodesc/core';
import { mapUserRange, memorySeed, pageOfRange, userRange, userRangePages, type UserRange } from './arbitraries.js';
import {
  checkCountsRestored, checkNoLeaks, checkSegmentsCover, checkThrowsCode, ConformanceError, pfnsOf, piecesOfUserRange,
  snapshotCounts, withFaultedIn,
} from './checks.js';
import { guardLeaks, newMachine, resolveOptions, runProperty, type BackendFactory, type ConformanceOptions } from './harness.js';

/** A failure at one page of a range: `at` picks the page (taken modulo the range's pages). */
export interface InjectCase {
  memorySeed: number;
  range: UserRange;
  at: number;
  code: Errno;
  write: boolean;
  longterm: boolean;
}

/** Arbitrary failure positions and the errno GUP reports there. */
export function injectCase(): fc.Arbitrary<InjectCase> {
  return fc.record({
    memorySeed: memorySeed(), range: userRange(), at: fc.nat(), code: fc.constantFrom<Errno>('EFAULT', 'EHWPOISON', 'ENOMEM'),
    write: fc.boolean(), longterm: fc.boolean(),
  });
}

/**
 * A fault injected at page k of a touched range (`mm.injectFault`): getUser throws that code and
 * every count is as before; once cleared, the same getUser succeeds and releases cleanly.
 */
export function checkInjectedFaultCase(backend: DescriptorBackend, c: InjectCase): void {
  const { memory, mm } = newMachine(c.memorySeed);
  const addr = mapUserRange(mm, c.range, { prefault: true });
  const k = c.at % userRangePages(addr, c.range.length);
  const before = snapshotCounts(memory);
  mm.injectFault(pageOfRange(addr, k), c.code);
  const get = () => backend.getUser(mm, addr, c.range.length, { write: c.write, longterm: c.longterm });
  checkThrowsCode(get, c.code, `getUser with ${c.code} injected at page ${k}`);
  checkCountsRestored(memory, before, `after getUser failed at page ${k}`);
  mm.clearInjectedFaults();
  backend.putUser(get(), { dirty: false });
  checkCountsRestored(memory, before, 'after the retried getUser was released');
  checkNoLeaks(memory);
}

/**
 * The n-th page allocation fails while getUser faults in an untouched writable range
 * (`memory.injectAllocFailure`): getUser either throws ENOMEM holding no pin, or (having
 * retried a short count) describes the whole range. Pages faulted in stay mapped.
 */
export function checkAllocFailureCase(backend: DescriptorBackend, c: InjectCase): void {
  const { memory, mm } = newMachine(c.memorySeed);
  const addr = mapUserRange(mm, c.range);
  const n = c.at % userRangePages(addr, c.range.length);
  const before = snapshotCounts(memory);
  memory.injectAllocFailure(n);
  let ok = false;
  try {
    const desc = backend.getUser(mm, addr, c.range.length, { write: true, longterm: c.longterm });
    ok = true;
    checkSegmentsCover(desc, piecesOfUserRange(mm, addr, c.range.length));
    backend.putUser(desc, { dirty: false });
  } catch (e) {
    if (ok || e instanceof ConformanceError) throw e;
    if (!(e instanceof IodescError) || e.code !== 'ENOMEM') {
      throw new ConformanceError(`getUser with allocation ${n} failing threw ${String(e)}, expected ENOMEM or success`);
    }
  }
  const faulted = mappedPfns(mm, addr, c.range.length).filter((p) => p !== memory.zeroPfn);
  checkCountsRestored(memory, withFaultedIn(before, faulted), `after getUser with allocation ${n} failing`);
  checkNoLeaks(memory);
}

/**
 * Memory runs out at page n of an untouched writable range (every free page but n is taken):
 * GUP faults in and pins a short count, the retry fails, and getUser must throw ENOMEM having
 * released every pin. The n pages faulted in stay mapped.
 */
export function checkOutOfMemoryCase(backend: DescriptorBackend, c: InjectCase): void {
  const { memory, mm } = newMachine(c.memorySeed);
  const addr = mapUserRange(mm, c.range);
  const n = c.at % userRangePages(addr, c.range.length);
  const hog = exhaustMemory(memory, n);
  const before = snapshotCounts(memory);
  checkThrowsCode(() => backend.getUser(mm, addr, c.range.length, { write: true, longterm: c.longterm }), 'ENOMEM', `getUser with memory for ${n} page(s) left`);
  const faulted = mappedPfns(mm, addr, c.range.length).filter((p) => p !== memory.zeroPfn);
  checkCountsRestored(memory, withFaultedIn(before, faulted), `after getUser ran out of memory at page ${n}`);
  for (const head of hog) memory.folioPutRefs(head, 1);
  checkNoLeaks(memory);
}

// Allocates every free page but `left`, largest blocks first; returns the folio heads taken.
function exhaustMemory(memory: PhysicalMemory, left: number): number[] {
  const heads: number[] = [];
  for (let order = MAX_PAGE_ORDER; order >= 0; order--) {
    while (memory.nrFreePages - left >= 1 << order) {
      const head = memory.allocFolio(order);
      if (head < 0) break;
      heads.push(head);
    }
  }
  return heads;
}

// PFNs mapped now in the range's pages (no fault taken), skipping unmapped ones.
function mappedPfns(mm: AddressSpace, addr: number, length: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < userRangePages(addr, length); k++) {
    const pfn = mm.lookupPfn(pageOfRange(addr, k));
    if (pfn >= 0) out.push(pfn);
  }
  return out;
}

/**
 * A range whose last `cut` pages are unmapped: GUP pins a short count, the next call fails, and
 * getUser must throw EFAULT having released the pins it took.
 */
export function checkRunOffCase(backend: DescriptorBackend, c: InjectCase): void {
  const { memory, mm } = newMachine(c.memorySeed);
  const range = { ...c.range, trailPages: 0 };
  const addr = mapUserRange(mm, range, { prefault: true });
  const pages = userRangePages(addr, range.length);
  const cut = 1 + (c.at % pages);
  mm.munmap(pageOfRange(addr, pages - cut), cut * PAGE_SIZE);
  const before = snapshotCounts(memory);
  checkThrowsCode(() => backend.getUser(mm, addr, range.length, { write: c.write, longterm: c.longterm }), 'EFAULT', `getUser running ${cut} page(s) off its mapping`);
  checkCountsRestored(memory, before, `after getUser ran ${cut} page(s) off its mapping`);
  checkNoLeaks(memory);
}

/** Registers the unwind group. */
export function unwindTests(factory: BackendFactory, options?: ConformanceOptions): void {
  const opts = resolveOptions(options);
  describe('getUser unwinding', () => {
    guardLeaks();

    it('throws the injected code and leaves every count as before when page k faults', () => {
      runProperty(injectCase(), (c) => checkInjectedFaultCase(factory(), c), opts);
    });

    it('throws ENOMEM holding no pin, or completes, when the n-th page allocation fails', () => {
      runProperty(injectCase(), (c) => checkAllocFailureCase(factory(), c), opts);
    });

    it('throws ENOMEM and releases the short count when memory runs out at page n', () => {
      runProperty(injectCase(), (c) => checkOutOfMemoryCase(factory(), c), opts);
    });

    it('throws EFAULT and releases the short count when the range runs off its mapping', () => {
      runProperty(injectCase(), (c) => checkRunOffCase(factory(), c), opts);
    });

    it('throws ENOMEM and takes nothing when the first page cannot be allocated', () => {
      const backend = factory();
      const { memory, mm } = newMachine(opts.seed);
      const addr = mm.mmap(4 * PAGE_SIZE);
      const before = snapshotCounts(memory);
      memory.injectAllocFailure(0);
      checkThrowsCode(() => backend.getUser(mm, addr, 4 * PAGE_SIZE, { write: true }), 'ENOMEM', 'getUser with the first allocation failing');
      checkCountsRestored(memory, before, 'after getUser failed on its first page');
    });
  });
}
