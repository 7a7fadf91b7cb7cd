// PhysicalMemory.reserveLowest: a boot-time reservation of the lowest free run (swiotlb's pool),
// taken out of the buddy allocator's free lists without disturbing the rest.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_PAGE_ORDER, PG_HUGETLB, PG_LIVE, PG_RESERVED, PhysicalMemory } from '../src/index.js';
import { expectCode, MiB } from './helpers.js';

function freeFromInfo(info: number[]): number {
  return info.reduce((t, c, o) => t + c * 2 ** o, 0);
}

describe('reserveLowest', () => {
  it('takes the lowest free run, and the allocator never hands those frames out', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.array(fc.integer({ min: 0, max: MAX_PAGE_ORDER }), { maxLength: 12 }), fc.integer({ min: 1, max: 3000 }), (seed, orders, nr) => {
        const memory = new PhysicalMemory({ bytes: 32 * MiB, seed });
        const held = orders.map((o) => memory.allocFolio(o)).filter((h) => h >= 0);
        const isFree = (p: number) => (memory.flags[p]! & (PG_LIVE | PG_HUGETLB)) === 0;
        let expected = -1;
        for (let s = 1, run = 0; s < memory.nrPages; s++) {
          run = isFree(s) ? run + 1 : 0;
          if (run === nr) {
            expected = s - nr + 1;
            break;
          }
        }
        const freeBefore = memory.nrFreePages;
        const got = memory.reserveLowest(nr);
        expect(got).toBe(expected);
        if (got < 0) return;
        expect(memory.nrFreePages).toBe(freeBefore - nr);
        expect(freeFromInfo(memory.buddyinfo())).toBe(memory.nrFreePages);
        for (let p = got; p < got + nr; p++) expect(memory.flags[p]! & PG_RESERVED).toBe(PG_RESERVED);
        // drain the allocator: no reserved frame comes back, and every free page is reachable
        let drained = 0;
        for (let h = memory.allocFolio(0); h >= 0; h = memory.allocFolio(0)) {
          if (h >= got && h < got + nr) throw new Error(`frame ${h} of the reservation was handed out`);
          drained++;
        }
        expect(drained).toBe(freeBefore - nr);
        void held;
      }),
      { seed: 77, numRuns: 40 },
    );
  });

  it('steps over free huge pages of the hugetlb pools', () => {
    const memory = new PhysicalMemory({ bytes: 2 * 2 ** 30, hugepages: { '2M': 8, '1G': 1 } });
    const start = memory.reserveLowest(16384);
    expect(start).toBeGreaterThan(0);
    for (let p = start; p < start + 16384; p++) expect(memory.flags[p]! & PG_HUGETLB).toBe(0);
    expect(freeFromInfo(memory.buddyinfo())).toBe(memory.nrFreePages);
  });

  it('returns -1 when no run is long enough, and refuses a bad size', () => {
    const memory = new PhysicalMemory({ bytes: 8 * MiB });
    expect(memory.reserveLowest(2048)).toBe(-1);
    expectCode(() => memory.reserveLowest(0), 'EINVAL');
  });
});
