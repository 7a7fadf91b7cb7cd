// The leak report while a descriptor is held and after: getUser tags its pins with opts.owner,
// and putUser leaves nothing for leakReport to list. (Every group also checks after each test.)

import fc from 'fast-check';
import { describe, it } from 'vitest';
import { leakReport } from '@iodesc/core';
import type { DescriptorBackend } from '@iodesc/core';
import { mapUserRange, memorySeed, userRange, type UserRange } from './arbitraries.js';
import { checkNoLeaks, ConformanceError, pfnsOf, piecesOfUserRange } from './checks.js';
import { guardLeaks, newMachine, resolveOptions, runProperty, type BackendFactory, type ConformanceOptions } from './harness.js';

/** One owner case: a touched range pinned under an owner tag. */
export interface OwnerCase {
  memorySeed: number;
  range: UserRange;
  write: boolean;
}

/** Arbitrary owner cases. */
export function ownerCase(): fc.Arbitrary<OwnerCase> {
  return fc.record({ memorySeed: memorySeed(), range: userRange(), write: fc.boolean() });
}

/**
 * While held, the leak report lists only pinned pages, every one under the owner passed to
 * getUser, one pin per page of the range; after putUser it is empty.
 */
export function checkOwnerCase(backend: DescriptorBackend, c: OwnerCase): void {
  const { memory, mm } = newMachine(c.memorySeed);
  const addr = mapUserRange(mm, c.range, { prefault: true });
  const owner = `conformance-${c.memorySeed}`;
  const desc = backend.getUser(mm, addr, c.range.length, { write: c.write, owner });
  const pages = pfnsOf(piecesOfUserRange(mm, addr, c.range.length)).filter((p) => p !== memory.zeroPfn).length;
  let pins = 0;
  for (const e of leakReport(memory)) {
    if (e.kind !== 'pinned-page') throw new ConformanceError(`while held, the leak report lists a ${e.kind}: ${e.detail}`);
    if (e.owner !== owner) throw new ConformanceError(`pfn ${e.pfn} is pinned under owner ${String(e.owner)}, getUser was given '${owner}'`);
    pins += e.count;
  }
  if (pins !== pages) throw new ConformanceError(`the leak report counts ${pins} pin(s) while the descriptor holds ${pages} page(s)`);
  backend.putUser(desc, { dirty: false });
  checkNoLeaks(memory);
}

/** Registers the leak group. */
export function leakTests(factory: BackendFactory, options?: ConformanceOptions): void {
  const opts = resolveOptions(options);
  describe('leak report', () => {
    guardLeaks();

    it('names the getUser owner on every pin while held, and is empty after putUser', () => {
      runProperty(ownerCase(), (c) => checkOwnerCase(factory(), c), opts);
    });
  });
}
