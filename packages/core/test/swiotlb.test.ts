// The swiotlb slot allocator against a plain first-fit scan of the kernel's rules: whatever the
// sequence of takes and releases, the skip-ahead search picks the same slot.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IO_TLB_SEGSIZE, IO_TLB_SIZE, PhysicalMemory, swiotlbInit } from '../src/index.js';
import { MiB } from './helpers.js';

// First fit from slot 0 over a copy of the free map: page-aligned for a page or more, within one
// 128-slot segment, not across the boundary.
function naiveTake(used: boolean[], start: number, size: number, boundary: number): number {
  const n = Math.ceil(size / IO_TLB_SIZE);
  const align = size >= 4096 ? 4096 : IO_TLB_SIZE;
  for (let i = 0; i < used.length; i++) {
    if ((start + i * IO_TLB_SIZE) % align !== 0) continue;
    if (Math.floor(i / IO_TLB_SEGSIZE) !== Math.floor((i + n - 1) / IO_TLB_SEGSIZE)) continue;
    if (boundary !== Infinity && Math.floor((start + i * IO_TLB_SIZE) / boundary) !== Math.floor((start + (i + n) * IO_TLB_SIZE - 1) / boundary)) continue;
    let free = true;
    for (let k = i; k < i + n && free; k++) if (k >= used.length || used[k]) free = false;
    if (free) return i;
  }
  return -1;
}

describe('SwiotlbPool.take', () => {
  it('picks the slot a first-fit scan picks, through any sequence of takes and releases', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('take' as const), size: fc.integer({ min: 1, max: 40 * IO_TLB_SIZE }) }),
      fc.record({ kind: fc.constant('release' as const), which: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), fc.constantFrom(Number.MAX_SAFE_INTEGER, 0xffff), (ops, mask) => {
        const memory = new PhysicalMemory({ bytes: 16 * MiB });
        const pool = swiotlbInit(memory, { bytes: 1 * MiB })!;
        const used = new Array<boolean>(pool.nslabs).fill(false);
        const held: Array<[number, number]> = [];
        for (const o of ops) {
          if (o.kind === 'take') {
            const want = naiveTake(used, pool.start, o.size, mask === Number.MAX_SAFE_INTEGER ? Infinity : mask + 1);
            const got = pool.take(0, o.size, mask);
            expect(got).toBe(want);
            if (got >= 0) {
              const n = Math.ceil(o.size / IO_TLB_SIZE);
              for (let k = got; k < got + n; k++) used[k] = true;
              held.push([got, n]);
            }
          } else if (held.length > 0) {
            const [slot, n] = held.splice(o.which % held.length, 1)[0]!;
            pool.release(slot);
            for (let k = slot; k < slot + n; k++) used[k] = false;
          }
        }
        expect(pool.used).toBe(used.filter(Boolean).length);
      }),
      { seed: 99, numRuns: 150 },
    );
  });
});
