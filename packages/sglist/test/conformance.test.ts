// The shared suite against the scatterlist backend, through the object core's registry holds.

import { conformance } from '@iodesc/conformance';
import { getBackend } from '@iodesc/core';
import { describe, expect, it } from 'vitest';
import { sglistBackend } from '../src/index.js';

conformance(() => sglistBackend);

describe('sglist registration', () => {
  it('registers the exported object as sglist when the package loads', () => {
    expect(getBackend('sglist')).toBe(sglistBackend);
  });
});
