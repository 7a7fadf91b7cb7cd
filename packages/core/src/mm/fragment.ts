// The fragmentation dial: re-lays free memory as separated runs of k frames, so that how
// physically contiguous a process's pages are can be set from none (k = 1) to 4 MiB blocks,
// reproducibly. A model-only tool; the frames it holds back stand for other tenants' memory.

import { MAX_PAGE_ORDER } from '../constants.js';
import { checkInt, checkOptions, fail } from '../errors.js';
import type { PhysicalMemory } from './memory.js';
import { PG_BALLAST, PG_LIVE, PG_RESERVED } from './page-flags.js';
import { splitmix32 } from './prng.js';

/** Options of `memory.fragment`. */
export interface FragmentOptions {
  /** Seeds the choice of runs (default 0): the same seed on the same memory gives the same layout. */
  seed?: number;
  /** k: frames per free run, a power of two from 1 to 1024 (2^MAX_PAGE_ORDER); each run starts at a multiple of k. */
  freeRunPages: number;
  /**
   * g: one run of each aligned group of g·k frames stays free, at a random one of its first
   * g - 1 slots, so that no two runs touch (default 4: about a quarter of free memory stays
   * free, and N pages handed out span about 4·N frames). From 2 to 65536.
   */
  spread?: number;
  /** At most this many pages stay free, the lowest runs kept (default: every chosen run). */
  freePages?: number;
}

/** What `fragment` left. */
export interface FragmentResult {
  /** Free runs of `freeRunPages` frames left on the buddy lists. */
  runs: number;
  /** Pages left free (runs × k). */
  freePages: number;
  /** Frames this call added to the ballast. */
  ballastPages: number;
}

/**
 * Re-lays the free memory of `memory` as runs of k = `freeRunPages` frames (`fragment`): every
 * free frame is taken off the buddy lists; in each aligned group of `spread`·k frames the run
 * at a seeded random slot among the first `spread` - 1 stays free if all its frames were free;
 * every other formerly free frame becomes ballast (allocated, PG_BALLAST, counted in
 * `stats.ballastPages`). The runs go back as order-log2(k) blocks at their lists' tails in PFN
 * order, so allocations take the lowest run first and a split run hands out its pages in
 * ascending PFN order (expand() keeps the lowest part). Allocated memory is left alone.
 * EINVAL for k not a power of two in [1, 1024], or a bad seed, spread or freePages.
 * Cost: O(frames); undo with `unfragment`.
 */
export function fragmentMemory(memory: PhysicalMemory, options: FragmentOptions): FragmentResult {
  const opts = checkOptions('options', options);
  const k = checkInt('freeRunPages', opts.freeRunPages, 1, 1 << MAX_PAGE_ORDER);
  if ((k & (k - 1)) !== 0) fail('EINVAL', `freeRunPages = ${k} is not a power of two (a run must be one buddy block)`);
  const seed = opts.seed === undefined ? 0 : checkInt('seed', opts.seed, 0, 0xffffffff);
  const g = opts.spread === undefined ? 4 : checkInt('spread', opts.spread, 2, 65536);
  const cap = opts.freePages === undefined ? Infinity : checkInt('freePages', opts.freePages, 0, memory.nrPages);
  const n = memory.nrPages;
  // 1: free frames, then 2: frames of a run kept free
  const state = new Uint8Array(n);
  memory.buddy.drain((pfn, o) => {
    state.fill(1, pfn, pfn + (1 << o));
    memory.order[pfn] = 0;
  });
  const rand = splitmix32(seed);
  let runs = 0;
  for (let group = 0; group < n; group += g * k) {
    const run = group + (rand() % (g - 1)) * k;
    if (run + k > n || (runs + 1) * k > cap || !allFree(state, run, run + k)) continue;
    state.fill(2, run, run + k);
    runs++;
  }
  let ballast = 0;
  const { flags, refcount } = memory;
  for (let pfn = 0; pfn < n; pfn++) {
    if (state[pfn] !== 1) continue;
    flags[pfn] = PG_BALLAST | PG_RESERVED | PG_LIVE;
    refcount[pfn] = 1;
    ballast++;
  }
  for (let pfn = 0; pfn < n; pfn += k) if (state[pfn] === 2) memory.buddy.freeRangeToTail(pfn, pfn + k);
  memory.stats.ballastPages += ballast;
  return { runs, freePages: runs * k, ballastPages: ballast };
}

/**
 * Returns every ballast frame to the buddy allocator and re-lays all free memory as boot does,
 * maximal aligned blocks in PFN order (`unfragment`). Returns the frames returned. Cost: O(frames).
 */
export function unfragmentMemory(memory: PhysicalMemory): number {
  const n = memory.nrPages;
  const free = new Uint8Array(n);
  memory.buddy.drain((pfn, o) => {
    free.fill(1, pfn, pfn + (1 << o));
    memory.order[pfn] = 0;
  });
  const { flags, refcount } = memory;
  let returned = 0;
  for (let pfn = 0; pfn < n; pfn++) {
    if (!(flags[pfn]! & PG_BALLAST)) continue;
    flags[pfn] = 0;
    refcount[pfn] = 0;
    free[pfn] = 1;
    returned++;
  }
  for (let pfn = 0; pfn < n; ) {
    if (free[pfn] === 0) {
      pfn++;
      continue;
    }
    let end = pfn + 1;
    while (end < n && free[end] === 1) end++;
    memory.buddy.freeRangeToTail(pfn, end);
    pfn = end;
  }
  memory.stats.ballastPages -= returned;
  return returned;
}

function allFree(state: Uint8Array, from: number, to: number): boolean {
  for (let p = from; p < to; p++) if (state[p] !== 1) return false;
  return true;
}
