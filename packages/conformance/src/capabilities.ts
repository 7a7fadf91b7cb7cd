// The capability record the suite picks its groups from, and the refusals it promises: an
// operation a backend declares unsupported throws EOPNOTSUPP rather than half-working.

import { describe, expect, it } from 'vitest';
import { Device, PAGE_SIZE } from '@iodesc/core';
import type { BackendCapabilities } from '@iodesc/core';
import { materialiseLayout } from './arbitraries.js';
import { checkThrowsCode } from './checks.js';
import { guardLeaks, newMachine, probe, resolveOptions, type BackendFactory, type ConformanceOptions } from './harness.js';

/** Every capability a backend must declare, as a boolean. */
export const CAPABILITY_KEYS: ReadonlyArray<keyof BackendCapabilities> = ['dmaInline', 'chaining', 'multiPage', 'dma', 'toFrags', 'fragView'];

/** Registers the capabilities group; the refusal tests run only for what the backend declares unsupported. */
export function capabilityTests(factory: BackendFactory, options?: ConformanceOptions): void {
  const opts = resolveOptions(options);
  const caps = probe(factory).capabilities;
  describe('capabilities', () => {
    guardLeaks();

    it('declares every capability as a boolean, fragView only with toFrags', () => {
      const c = factory().capabilities;
      for (const k of CAPABILITY_KEYS) expect(typeof c[k], `capabilities.${k}`).toBe('boolean');
      if (c.fragView) expect(c.toFrags, 'fragView without toFrags').toBe(true);
    });

    it('keeps the same name and capabilities across factory calls', () => {
      const a = factory();
      const b = factory();
      expect(b.name).toBe(a.name);
      expect(b.capabilities).toEqual(a.capabilities);
    });

    if (!caps.dma) {
      it('throws EOPNOTSUPP from dmaMap (capabilities.dma is false)', () => {
        const backend = factory();
        const { memory } = newMachine(opts.seed);
        const layout = materialiseLayout(memory, [{ kind: 'contiguous', pages: 2 }]);
        const desc = backend.fromPages(memory, layout.pages, 0, 2 * PAGE_SIZE);
        checkThrowsCode(() => backend.dmaMap(desc, new Device(memory, { name: 'conformance-device' }), 'to-device'), 'EOPNOTSUPP', 'dmaMap');
        layout.release();
      });
    }

    if (!caps.toFrags) {
      it('throws EOPNOTSUPP from toFrags (capabilities.toFrags is false)', () => {
        const backend = factory();
        const { memory } = newMachine(opts.seed);
        const layout = materialiseLayout(memory, [{ kind: 'contiguous', pages: 2 }]);
        const desc = backend.fromPages(memory, layout.pages, 0, 2 * PAGE_SIZE);
        checkThrowsCode(() => backend.toFrags(desc), 'EOPNOTSUPP', 'toFrags');
        layout.release();
      });
    }
  });
}
