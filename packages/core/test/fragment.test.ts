// The fragmentation dial (memory.fragment / unfragment) and the layouts it promises, measured as
// runs of consecutive PFNs in what a process gets after fault-in.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FOLL_WRITE, HPAGE_PMD_NR, PAGE_SIZE, PG_BUDDY, pinUserPagesFast, unpinUserPages } from '../src/index.js';
import type { PhysicalMemory } from '../src/index.js';
import { expectCode, MiB, pattern, setup } from './helpers.js';

/** Lengths of the runs of consecutive ascending PFNs in `pages[0..n)`. */
function pfnRuns(pages: Uint32Array, n = pages.length): number[] {
  const runs: number[] = [];
  let len = 1;
  for (let i = 1; i < n; i++) {
    if (pages[i] === pages[i - 1]! + 1) len++;
    else {
      runs.push(len);
      len = 1;
    }
  }
  if (n > 0) runs.push(len);
  return runs;
}

/** Maximal runs of free frames, as [start, length], read from the buddy heads. */
function freeRuns(memory: PhysicalMemory): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let p = 0; p < memory.nrPages; ) {
    if (!(memory.flags[p]! & PG_BUDDY)) {
      p++;
      continue;
    }
    const start = p;
    while (p < memory.nrPages && memory.flags[p]! & PG_BUDDY) p += 1 << memory.order[p]!;
    out.push([start, p - start]);
  }
  return out;
}

/** Maps `n` pages (THP when asked), faults them in in address order and returns their PFNs. */
function faultIn(n: number, k: number, thp = false) {
  const { memory, mm } = setup({ bytes: 64 * MiB, seed: 7 });
  memory.fragment({ seed: 3, freeRunPages: k });
  const addr = mm.mmap(n * PAGE_SIZE, { thp, populate: true });
  const pages = new Uint32Array(n);
  expect(pinUserPagesFast(mm, addr, n, FOLL_WRITE, pages)).toBe(n);
  return { memory, mm, pages };
}

describe('fragment', () => {
  it('scatters single pages over about 4 frames each with freeRunPages 1', () => {
    const n = 1024;
    const { pages } = faultIn(n, 1);
    expect(pfnRuns(pages).every((len) => len === 1)).toBe(true);
    for (let i = 1; i < n; i++) expect(pages[i]).toBeGreaterThan(pages[i - 1]! + 1);
    const span = pages[n - 1]! - pages[0]! + 1;
    expect(span).toBeGreaterThan(3.5 * n);
    expect(span).toBeLessThan(4.5 * n);
  });

  it('hands out runs of 16 ascending pages, each starting at a multiple of 16', () => {
    const n = 1024;
    const { pages } = faultIn(n, 16);
    expect(pfnRuns(pages)).toEqual(new Array(n / 16).fill(16));
    for (let i = 0; i < n; i += 16) expect(pages[i]! % 16).toBe(0);
    for (let i = 1; i < n; i++) expect(pages[i]).toBeGreaterThan(pages[i - 1]!);
  });

  it('leaves 2 MiB blocks that THP faults take as whole folios with freeRunPages 512', () => {
    const n = 8 * HPAGE_PMD_NR;
    const { memory, pages } = faultIn(n, 512, true);
    expect(pfnRuns(pages)).toEqual(new Array(8).fill(512));
    for (let i = 0; i < n; i += HPAGE_PMD_NR) {
      expect(memory.order[pages[i]!]).toBe(9);
      expect(memory.pins[pages[i]!]).toBe(HPAGE_PMD_NR);
    }
  });

  it('holds the rest back as ballast in stats, and leaves allocated memory alone', () => {
    const { memory, mm } = setup({ bytes: 64 * MiB, seed: 1 });
    const addr = mm.mmap(64 * PAGE_SIZE, { populate: true });
    mm.write(addr, pattern(64 * PAGE_SIZE));
    const before = memory.nrFreePages;
    const r = memory.fragment({ seed: 9, freeRunPages: 1 });
    expect(memory.nrFreePages).toBe(r.freePages);
    expect(memory.stats.ballastPages).toBe(before - r.freePages);
    expect(r.freePages / before).toBeGreaterThan(0.2);
    expect(r.freePages / before).toBeLessThan(0.3);
    expect(mm.read(addr, 64 * PAGE_SIZE)).toEqual(pattern(64 * PAGE_SIZE));
    expect(memory.unfragment()).toBe(before - r.freePages);
    expect([memory.nrFreePages, memory.stats.ballastPages]).toEqual([before, 0]);
  });

  it('leaves no more than freePages free, the lowest runs kept', () => {
    const { memory } = setup({ bytes: 64 * MiB, seed: 1 });
    const r = memory.fragment({ seed: 1, freeRunPages: 16, freePages: 100 });
    expect([r.runs, r.freePages, memory.nrFreePages]).toEqual([6, 96, 96]);
    // group 0 holds the zero page, so its run may be lost: the sixth run lies in the first 7 groups
    expect(freeRuns(memory)[5]![0]).toBeLessThan(7 * 64);
  });

  it('gives the same layout for the same seed', () => {
    const a = faultIn(256, 1).pages;
    const b = faultIn(256, 1).pages;
    expect(b).toEqual(a);
  });

  it.each([
    ['freeRunPages 0', { freeRunPages: 0 }],
    ['freeRunPages 3 (not a power of two)', { freeRunPages: 3 }],
    ['freeRunPages 2048 (past MAX_PAGE_ORDER)', { freeRunPages: 2048 }],
    ['no freeRunPages', {}],
    ['spread 1', { freeRunPages: 1, spread: 1 }],
    ['a negative seed', { freeRunPages: 1, seed: -1 }],
    ['freePages -1', { freeRunPages: 1, freePages: -1 }],
    ['no options', undefined],
  ])('is EINVAL for %s', (_label, opts) => {
    const { memory } = setup();
    const before = memory.nrFreePages;
    expectCode(() => memory.fragment(opts as never), 'EINVAL');
    expect(memory.nrFreePages).toBe(before);
  });

  it('leaves every free run k frames long at a multiple of k, and unfragment restores the free count', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10 }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 2, max: 8 }),
        fc.integer({ min: 0, max: 40 }),
        (log2k, seed, spread, used) => {
          const { memory, mm } = setup({ bytes: 16 * MiB, seed: seed & 7 });
          if (used > 0) mm.mmap(used * PAGE_SIZE, { populate: true });
          const before = memory.nrFreePages;
          const k = 1 << log2k;
          const r = memory.fragment({ seed, freeRunPages: k, spread });
          const runs = freeRuns(memory);
          expect(runs.length).toBe(r.runs);
          for (const [start, len] of runs) {
            expect(len).toBe(k);
            expect(start % k).toBe(0);
          }
          expect(memory.nrFreePages + memory.stats.ballastPages).toBe(before);
          memory.unfragment();
          expect([memory.nrFreePages, memory.stats.ballastPages]).toEqual([before, 0]);
        },
      ),
      { seed: 11, numRuns: 60 },
    );
  });
});

describe('buddy expand', () => {
  it('hands out the lowest page of a split block first, so successive faults ascend', () => {
    const { memory, mm } = setup({ bytes: 16 * MiB });
    memory.fragment({ seed: 2, freeRunPages: 64 });
    const addr = mm.mmap(64 * PAGE_SIZE);
    const pages = new Uint32Array(64);
    for (let i = 0; i < 64; i++) {
      mm.write(addr + i * PAGE_SIZE, Uint8Array.of(i));
      pages[i] = mm.lookupPfn(addr + i * PAGE_SIZE);
    }
    expect(pfnRuns(pages)).toEqual([64]);
    expect(pages[0]! % 64).toBe(0);
    unpinUserPages(memory, pages, 0);
  });
});
