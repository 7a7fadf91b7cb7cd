// The shared suite against the scatterlist backend, through the object core's registry holds.

import { conformance } from '@iodesc/conformance';
import { getBackend, registerBackend } from '@iodesc/core';
import { describe, expect, it } from 'vitest';
import { sglistBackend } from '../src/index.js';

conformance(() => sglistBackend);

describe('sglist registration', () => {
  it('registers the exported object as sglist when the package loads', () => {
    expect(getBackend('sglist')).toBe(sglistBackend);
    registerBackend(sglistBackend); // the same object again: a no-op
    expect(getBackend('sglist')).toBe(sglistBackend);
  });
});
