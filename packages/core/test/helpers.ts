// Shared test helpers for @iodesc/core: small memories, error-code assertions, count snapshots.

import { expect } from 'vitest';
import { AddressSpace, PhysicalMemory, type AddressSpaceOptions, type Errno } from '../src/index.js';

export const MiB = 2 ** 20;
/** A small RAM so each test builds a fresh one quickly. */
export const SMALL = 64 * MiB;

/** Asserts `fn` throws an IodescError with `code` (never its message). */
export function expectCode(fn: () => unknown, code: Errno): void {
  expect(fn).toThrow(expect.objectContaining({ name: 'IodescError', code }));
}

/** A fresh 64 MiB memory and an address space on it. */
export function setup(opts: { bytes?: number; seed?: number; mm?: AddressSpaceOptions } = {}): { memory: PhysicalMemory; mm: AddressSpace } {
  const memory = new PhysicalMemory({ bytes: opts.bytes ?? SMALL, ...(opts.seed === undefined ? {} : { seed: opts.seed }) });
  return { memory, mm: new AddressSpace(memory, opts.mm) };
}

/** Every per-frame counter of `memory`, copied, to compare before and after. */
export function snapshot(memory: PhysicalMemory) {
  return {
    refcount: memory.refcount.slice(),
    pins: memory.pins.slice(),
    gets: memory.gets.slice(),
    mapcount: memory.mapcount.slice(),
    nrFreePages: memory.nrFreePages,
    buddyinfo: memory.buddyinfo(),
  };
}

/** Bytes `0, 1, 2, ...` offset by `salt`, mod 251 (a prime, so pages differ). */
export function pattern(length: number, salt = 0): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i + salt) % 251;
  return out;
}

/** Index of the first byte where `a` and `b` differ (or the shorter length), -1 when equal. Cheap to diff. */
export function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

type Snapshot = ReturnType<typeof snapshot>;

/** Where two snapshots differ (first few), cheap even for large memories; [] when equal. */
export function snapshotDiff(a: Snapshot, b: Snapshot): string[] {
  const out: string[] = [];
  for (const key of ['refcount', 'pins', 'gets', 'mapcount'] as const) {
    const x = a[key];
    const y = b[key];
    for (let i = 0; i < x.length && out.length < 5; i++) if (x[i] !== y[i]) out.push(`${key}[${i}]: ${x[i]} -> ${y[i]}`);
  }
  if (a.nrFreePages !== b.nrFreePages) out.push(`nrFreePages: ${a.nrFreePages} -> ${b.nrFreePages}`);
  if (a.buddyinfo.join() !== b.buddyinfo.join()) out.push(`buddyinfo: ${a.buddyinfo.join()} -> ${b.buddyinfo.join()}`);
  return out;
}

/** Asserts the counts of `memory` are those of `before`. */
export function expectUnchanged(memory: PhysicalMemory, before: Snapshot): void {
  expect(snapshotDiff(before, snapshot(memory))).toEqual([]);
}
