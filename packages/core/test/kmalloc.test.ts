// kmalloc size classes (mm/slab_common.c kmalloc_info[], x86-64, no KMALLOC_RECLAIM).

import { describe, expect, it } from 'vitest';
import { kmallocSize } from '../src/index.js';
import { expectCode } from './helpers.js';

describe('kmallocSize', () => {
  it.each([
    [0, 0], [1, 8], [8, 8], [9, 16], [33, 64], [65, 96], [96, 96], [97, 128], [129, 192], [193, 256],
    [257, 512], [1000, 1024], [2048, 2048], [2049, 4096], [4097, 8192], [8192, 8192],
    [8193, 16384], [16385, 32768], [100000, 131072],
  ])('rounds %i bytes up to %i', (size, expected) => {
    expect(kmallocSize(size)).toBe(expected);
  });

  it.each([[-1], [1.5], [NaN]])('throws EINVAL for size %s', (size) => {
    expectCode(() => kmallocSize(size), 'EINVAL');
  });
});
