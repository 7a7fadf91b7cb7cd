// kmalloc size classes (mm/slab_common.c kmalloc_info[] on x86-64): every footprint charges an
// allocation at the class it lands in, as the kernel's slab would.

import { PAGE_SIZE } from '../constants.js';
import { checkInt } from '../errors.js';

const CLASSES = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192];

/** Bytes the kernel really allocates for a request of `size` bytes (`kmalloc_size_roundup`). */
export function kmallocSize(size: number): number {
  checkInt('size', size);
  if (size === 0) return 0;
  for (const c of CLASSES) if (size <= c) return c;
  // past KMALLOC_MAX_CACHE_SIZE the page allocator serves it: whole pages, a power-of-two order
  let pages = 1;
  while (pages * PAGE_SIZE < size) pages *= 2;
  return pages * PAGE_SIZE;
}
