// The shared conformance suite, run against the bio_vec backend: every group the backend's
// capabilities select (multi-page vectors, chained bios, DMA; toFrags refused until issue 13).

import { getBackend } from '@iodesc/core';
import { conformance } from '@iodesc/conformance';
import { describe, expect, it } from 'vitest';
import { bvecBackend } from '../src/index.js';

describe('bvec backend registration', () => {
  it('is registered under its name when the package is imported', () => {
    expect(getBackend('bvec')).toBe(bvecBackend);
  });
});

conformance(() => bvecBackend);
