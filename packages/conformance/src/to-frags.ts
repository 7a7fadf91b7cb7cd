// toFrags (capabilities.toFrags): handing a descriptor to the network as skb_frag_t entries
// (include/linux/skbuff.h) must name exactly the bytes segments() names; a view costs nothing.

import { describe, it } from 'vitest';
import type { DescriptorBackend } from '@iodesc/core';
import { fromPagesCase, materialiseLayout, type FromPagesCase } from './arbitraries.js';
import { checkPiecesEqual, ConformanceError, piecesOfFrags, piecesOfSegments } from './checks.js';
import { guardLeaks, newMachine, probe, resolveOptions, runProperty, type BackendFactory, type ConformanceOptions } from './harness.js';

/**
 * One toFrags case over a fromPages descriptor: the fragments cover exactly the segments' bytes,
 * the cost is in non-negative integers, and a view (`capabilities.fragView`) converts no bytes.
 */
export function checkToFragsCase(backend: DescriptorBackend, c: FromPagesCase): void {
  const { memory } = newMachine(c.memorySeed);
  const layout = materialiseLayout(memory, c.layout);
  const desc = backend.fromPages(memory, layout.pages, c.offset, c.length);
  const { frags, cost } = backend.toFrags(desc);
  checkPiecesEqual(piecesOfFrags(frags), piecesOfSegments(desc.segments()), 'toFrags() fragments');
  for (const k of ['conversionBytes', 'allocations'] as const) {
    if (!Number.isInteger(cost[k]) || cost[k] < 0) throw new ConformanceError(`toFrags() cost.${k} = ${cost[k]} is not a non-negative integer`);
  }
  if (backend.capabilities.fragView && cost.conversionBytes !== 0) {
    throw new ConformanceError(`toFrags() converted ${cost.conversionBytes} bytes, but capabilities.fragView promises a view`);
  }
  layout.release();
}

/** Registers the toFrags group when the backend declares `capabilities.toFrags`; nothing otherwise. */
export function toFragsTests(factory: BackendFactory, options?: ConformanceOptions): void {
  if (!probe(factory).capabilities.toFrags) return;
  const opts = resolveOptions(options);
  describe('toFrags', () => {
    guardLeaks();

    it('hands the network exactly the bytes segments() describes', () => {
      runProperty(fromPagesCase(), (c) => checkToFragsCase(factory(), c), opts);
    });
  });
}
