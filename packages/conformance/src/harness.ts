// What every group shares: the suite's options, a fresh machine (memory and address space) per
// test or property run, the leak guard run after each test, and the property runner.

import fc from 'fast-check';
import { afterEach, beforeEach } from 'vitest';
import { AddressSpace, PhysicalMemory } from '@iodesc/core';
import type { DescriptorBackend } from '@iodesc/core';
import { checkNoLeaks } from './checks.js';

/** Makes the backend under test: a fresh object, or the registered singleton. */
export type BackendFactory = () => DescriptorBackend;

/** Options of `conformance` and of every group. */
export interface ConformanceOptions {
  /** Runs per fast-check property (default 25). */
  numRuns?: number;
  /** Seed of every property (default 0x10de5c); a failure prints the seed and path to replay it. */
  seed?: number;
}

/** Options with their defaults filled in. */
export interface ResolvedOptions {
  numRuns: number;
  seed: number;
}

/** Bytes of RAM each test builds: small, so copying every counter per check stays cheap. */
export const MACHINE_BYTES = 64 * 2 ** 20;

/** Fills in the defaults of `opts`. */
export function resolveOptions(opts: ConformanceOptions = {}): ResolvedOptions {
  return { numRuns: opts.numRuns ?? 25, seed: opts.seed ?? 0x10de5c };
}

/** A fresh memory and one address space on it. */
export interface Machine {
  memory: PhysicalMemory;
  mm: AddressSpace;
}

// Machines built during the current test, checked for leaks after it; null outside a guarded test.
let built: PhysicalMemory[] | null = null;

/** A fresh 64 MiB memory seeded with `seed`, and an address space on it. */
export function newMachine(seed: number): Machine {
  const memory = new PhysicalMemory({ bytes: MACHINE_BYTES, seed });
  built?.push(memory);
  return { memory, mm: new AddressSpace(memory) };
}

/**
 * Registers, in the enclosing `describe`, a check after each test that every machine the test
 * built has an empty leak report.
 */
export function guardLeaks(): void {
  beforeEach(() => {
    built = [];
  });
  afterEach(() => {
    const memories = built ?? [];
    built = null;
    for (const memory of memories) checkNoLeaks(memory);
  });
}

/** Runs `body` as a fast-check property over `arb` with the suite's runs and seed. */
export function runProperty<T>(arb: fc.Arbitrary<T>, body: (value: T) => void, opts: ResolvedOptions): void {
  fc.assert(fc.property(arb, body), { numRuns: opts.numRuns, seed: opts.seed });
}

/** Reads the backend once, at registration, so a group can pick its tests from its capabilities. */
export function probe(factory: BackendFactory): DescriptorBackend {
  const backend = factory();
  if (typeof backend !== 'object' || backend === null || typeof backend.name !== 'string') {
    throw new TypeError('conformance: the backend factory must return a DescriptorBackend');
  }
  return backend;
}
