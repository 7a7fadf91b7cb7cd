// Bad input at the public boundary: each call throws IodescError EINVAL and changes nothing.

import { describe, expect, it } from 'vitest';
import { AddressSpace, PAGE_SIZE, PhysicalMemory, unregisterBackend } from '../src/index.js';
import { expectCode, setup, snapshot, snapshotDiff } from './helpers.js';

describe('public boundary', () => {
  const cases: Array<[string, (m: { memory: PhysicalMemory; mm: AddressSpace; addr: number }) => unknown]> = [
    ['mmap with null options', ({ mm }) => mm.mmap(PAGE_SIZE, null as never)],
    ['new AddressSpace with null options', ({ memory }) => new AddressSpace(memory, null as never)],
    ['injectFault with an unknown errno', ({ mm, addr }) => mm.injectFault(addr, 'NOPE' as never)],
    ['lookupPfn(NaN)', ({ mm }) => mm.lookupPfn(NaN)],
    ["allocFolio(0, 'x')", ({ memory }) => memory.allocFolio(0, 'x' as never)],
    ['folioPutRefs on a free page', ({ memory }) => memory.folioPutRefs(memory.nrPages - 1, 1)],
    ['folioPutRefs of more references than held', ({ memory, mm, addr }) => memory.folioPutRefs(mm.lookupPfn(addr), 2)],
    ['unregisterBackend(5)', () => unregisterBackend(5 as never)],
    ["hstate('4M')", ({ memory }) => memory.hstate('4M' as never)],
    ['fragment with freeRunPages 3', ({ memory }) => memory.fragment({ seed: 1, freeRunPages: 3 })],
    ["mmap of hugetlb '1G' over a file", ({ mm }) => mm.mmap(PAGE_SIZE, { hugetlb: '1G', backing: 'file' })],
  ];

  it.each(cases)('refuses %s with EINVAL, changing nothing', (_label, call) => {
    const { memory, mm } = setup();
    const addr = mm.mmap(PAGE_SIZE);
    mm.write(addr, Uint8Array.of(1));
    const before = snapshot(memory);
    expectCode(() => call({ memory, mm, addr }), 'EINVAL');
    expect(snapshotDiff(before, snapshot(memory))).toEqual([]);
  });

  it('checks a CPU read range before allocating the buffer for it', () => {
    const { mm } = setup();
    const addr = mm.mmap(PAGE_SIZE);
    expectCode(() => mm.read(addr, 2 ** 40), 'EFAULT');
  });
});
