// Shared helpers for the bvec tests: error-code assertions and small machines.

import { expect } from 'vitest';
import { AddressSpace, PhysicalMemory, type Errno } from '@iodesc/core';

export const P = 4096;
export const MiB = 2 ** 20;

/** Asserts `fn` throws an IodescError with `code` (never its message). */
export function expectCode(fn: () => unknown, code: Errno): void {
  expect(fn).toThrow(expect.objectContaining({ name: 'IodescError', code }));
}

/** A fresh 64 MiB memory and an address space on it. */
export function machine(seed = 1): { memory: PhysicalMemory; mm: AddressSpace } {
  const memory = new PhysicalMemory({ bytes: 64 * MiB, seed });
  return { memory, mm: new AddressSpace(memory) };
}

/** The kunit tests' byte pattern (lib/tests/kunit_iov_iter.c: pattern()). */
export function pattern(x: number): number {
  return (x + (x >>> 8) + (x >>> 16)) & 0xff;
}

/** The first index where two byte arrays differ, -1 when equal (cheaper than toEqual on MiBs). */
export function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}
