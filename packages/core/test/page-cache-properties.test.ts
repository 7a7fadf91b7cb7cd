// Page-cache invariants as fast-check properties: whatever the interleaving of CPU writes,
// writeback, drop_caches, reclaim, remapping and dirty-released DMA, no written byte is lost.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AddressSpace, FOLL_WRITE, PAGE_SIZE, PhysicalMemory, createFile, dropCaches, leakReport, pinUserPagesFast,
  reclaimPageCache, unpinUserPagesDirtyLock, writeback,
} from '../src/index.js';
import { firstDiff, MiB } from './helpers.js';

const PAGES = 4;
const SIZE = PAGES * PAGE_SIZE - 300; // the last page straddles the end of the file
const PROP_TIMEOUT = 60_000;

type Op =
  | { kind: 'write'; off: number; len: number; salt: number }
  | { kind: 'privateWrite'; off: number; len: number; salt: number }
  | { kind: 'dma'; page: number; off: number; len: number; salt: number }
  | { kind: 'writeback' | 'dropCaches' | 'reclaim' | 'remap' };

const span = fc.tuple(fc.integer({ min: 0, max: SIZE - 1 }), fc.integer({ min: 1, max: 2 * PAGE_SIZE })).map(([off, len]) => ({ off, len: Math.min(len, SIZE - off) }));
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('write' as const), salt: fc.nat(250) }).chain((o) => span.map((s) => ({ ...o, ...s }))),
  fc.record({ kind: fc.constant('privateWrite' as const), salt: fc.nat(250) }).chain((o) => span.map((s) => ({ ...o, ...s }))),
  fc.record({ kind: fc.constant('dma' as const), page: fc.nat(PAGES - 1), off: fc.nat(PAGE_SIZE - 1), len: fc.integer({ min: 1, max: 512 }), salt: fc.nat(250) }),
  fc.constantFrom({ kind: 'writeback' as const }, { kind: 'dropCaches' as const }, { kind: 'reclaim' as const }, { kind: 'remap' as const }),
);

function bytes(len: number, salt: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 7 + salt) % 251 + 1;
  return b;
}

describe('page cache properties', () => {
  it('never loses a CPU write or a dirty-released device write, and a private mapping never reaches the file', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 25 }), (ops) => {
        const memory = new PhysicalMemory({ bytes: 8 * MiB, seed: 3 });
        const mm = new AddressSpace(memory);
        const free = memory.nrFreePages;
        const file = createFile(memory, { size: SIZE });
        let shared = mm.mmap(SIZE, { file, shared: true });
        const priv = mm.mmap(SIZE, { file });
        const expected = new Uint8Array(SIZE); // the file as the shared mapping has written it
        const privOwn = new Map<number, Uint8Array>(); // pages the private mapping has copied
        for (const o of ops) {
          switch (o.kind) {
            case 'write':
              mm.write(shared + o.off, bytes(o.len, o.salt));
              expected.set(bytes(o.len, o.salt), o.off);
              break;
            case 'privateWrite': {
              // a page's first private write copies what the file shows now
              for (let p = Math.floor(o.off / PAGE_SIZE); p <= Math.floor((o.off + o.len - 1) / PAGE_SIZE); p++) {
                if (!privOwn.has(p)) {
                  const page = new Uint8Array(PAGE_SIZE);
                  page.set(expected.subarray(p * PAGE_SIZE, Math.min(SIZE, (p + 1) * PAGE_SIZE)));
                  privOwn.set(p, page);
                }
              }
              mm.write(priv + o.off, bytes(o.len, o.salt));
              const b = bytes(o.len, o.salt);
              for (let i = 0; i < o.len; i++) {
                const at = o.off + i;
                privOwn.get(Math.floor(at / PAGE_SIZE))![at % PAGE_SIZE] = b[i]!;
              }
              break;
            }
            case 'dma': {
              const pages = new Uint32Array(1);
              expect(pinUserPagesFast(mm, shared + o.page * PAGE_SIZE, 1, FOLL_WRITE, pages)).toBe(1);
              writeback(memory); // the worst moment: the page is clean while the device writes
              const len = Math.min(o.len, PAGE_SIZE - o.off, SIZE - o.page * PAGE_SIZE - o.off);
              if (len > 0) {
                memory.writePhys(pages[0]! * PAGE_SIZE + o.off, bytes(len, o.salt));
                expected.set(bytes(len, o.salt), o.page * PAGE_SIZE + o.off);
              }
              unpinUserPagesDirtyLock(memory, pages, 1, true);
              break;
            }
            case 'writeback':
              writeback(memory);
              break;
            case 'dropCaches':
              dropCaches(memory);
              break;
            case 'reclaim':
              reclaimPageCache(memory);
              break;
            case 'remap':
              mm.munmap(shared, SIZE);
              shared = mm.mmap(SIZE, { file, shared: true });
              break;
          }
          // every cached page is held by the cache and its mappings alone
          for (let i = 0; i < PAGES; i++) {
            const pfn = file.cachedPfn(i);
            if (pfn >= 0) expect(memory.refcount[pfn]).toBe(1 + memory.mapcount[pfn]!);
          }
        }
        expect(firstDiff(mm.read(shared, SIZE), expected)).toBe(-1);
        for (let p = 0; p < PAGES; p++) {
          const len = Math.min(PAGE_SIZE, SIZE - p * PAGE_SIZE);
          const want = privOwn.get(p)?.subarray(0, len) ?? expected.subarray(p * PAGE_SIZE, p * PAGE_SIZE + len);
          expect(firstDiff(mm.read(priv + p * PAGE_SIZE, len), want)).toBe(-1);
        }
        writeback(memory);
        expect(firstDiff(file.readStore(0, SIZE), expected)).toBe(-1);
        mm.exit();
        expect(writeback(memory)).toBe(0);
        dropCaches(memory);
        expect(memory.nrFreePages).toBe(free);
        expect(leakReport(memory)).toEqual([]);
      }),
      { seed: 0x11fc, numRuns: 60 },
    );
  }, PROP_TIMEOUT);

  it('stores exactly what random CPU writes put through a shared mapping, after one writeback', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ s: span, salt: fc.nat(250) }), { maxLength: 12 }), (writes) => {
        const memory = new PhysicalMemory({ bytes: 4 * MiB, seed: 1 });
        const mm = new AddressSpace(memory);
        const file = createFile(memory, { size: SIZE });
        const addr = mm.mmap(SIZE, { file, shared: true });
        const expected = new Uint8Array(SIZE);
        for (const { s, salt } of writes) {
          mm.write(addr + s.off, bytes(s.len, salt));
          expected.set(bytes(s.len, salt), s.off);
        }
        const dirtyPages = new Set(writes.flatMap(({ s }) => [Math.floor(s.off / PAGE_SIZE), Math.floor((s.off + s.len - 1) / PAGE_SIZE)]));
        expect(writeback(memory)).toBeGreaterThanOrEqual(dirtyPages.size);
        expect(firstDiff(file.readStore(0, SIZE), expected)).toBe(-1);
      }),
      { seed: 0x5eed, numRuns: 80 },
    );
  }, PROP_TIMEOUT);
});
