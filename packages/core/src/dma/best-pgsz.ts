// The best single device page size for an RDMA registration (drivers/infiniband/core/umem.c:
// ib_umem_find_best_pgsz), computed over a DmaMapping's segments so every backend can use it.

import { PAGE_SIZE } from '../constants.js';
import { checkInt, fail } from '../errors.js';
import { DmaMapping } from './mapping.js';

const U64 = (1n << 64n) - 1n;

// bits_per(n): bits needed to hold n (1 for 0 and 1).
function bitsPer(n: bigint): number {
  return n === 0n ? 1 : n.toString(2).length;
}

// GENMASK(63, lo): bits lo..63. bits_per() reaches 64 when virt + length - 1 crosses bit 63 (or
// wraps, as length 0 at virt 0 does); `~0UL << 64` is then what x86-64's shl makes of it, a
// shift by 64 & 63 = 0: every bit.
function genmaskFrom(lo: number): bigint {
  return U64 ^ ((1n << BigInt(lo & 63)) - 1n);
}

function ctz(n: bigint): number {
  let k = 0;
  while ((n & 1n) === 0n) {
    n >>= 1n;
    k++;
  }
  return k;
}

/**
 * The largest page size in `pgszBitmap` with which a device can map the registration of
 * `length` bytes of user memory at `address`, mapped as `mapping`, at IOVA `virt`
 * (`ib_umem_find_best_pgsz`), or 0 when none works. The mask starts from the VA bits that
 * change across [virt, virt + length); at each DMA discontinuity (a segment not starting where
 * the previous one ended: DMA-contiguous segments merge) it takes the bits where the segment's
 * address (for the first, moved to `address`'s byte) and the VA differ, and, past the first
 * segment, the VA's own alignment; the answer is the largest size below the mask's lowest set
 * bit. `pgszBitmap` is a bitmap of sizes (a number below 2^53, or a bigint for larger sizes).
 * Arithmetic is 64-bit as in the kernel (`length` 0, as an ib_umem of size 0 has, wraps).
 *
 * The kernel adds `address & ~PAGE_MASK` to the first segment because an ib_umem's table always
 * starts at a page boundary; here the offset added is `address % PAGE_SIZE` minus the page
 * offset of the mapping's first entry (`mapping.entryPhys(0)`): the kernel's for a whole-page
 * table, 0 for one whose first entry already starts at `address` (getUserSg, pages with an
 * offset). Cost: O(segments). EINVAL for a mapping already unmapped, a first entry starting
 * later in its page than `address`, or bad arguments.
 */
export function dmaFindBestPgsz(mapping: DmaMapping, address: number, length: number, pgszBitmap: number | bigint, virt: number): number {
  if (!(mapping instanceof DmaMapping)) fail('EINVAL', 'mapping must be a DmaMapping');
  if (!mapping.live) fail('EINVAL', `${mapping.describe()} is unmapped`);
  checkInt('address', address);
  checkInt('length', length);
  checkInt('virt', virt);
  let bitmap: bigint;
  if (typeof pgszBitmap === 'bigint') {
    if (pgszBitmap < 0n || pgszBitmap > U64) fail('EINVAL', `pgszBitmap ${pgszBitmap} is not an unsigned long`);
    bitmap = pgszBitmap;
  } else {
    bitmap = BigInt(checkInt('pgszBitmap', pgszBitmap));
  }
  // the bytes of the first page before the first entry, which the DMA addresses do not cover
  const firstOffset = mapping.entryPhys(0) % PAGE_SIZE;
  if (firstOffset > address % PAGE_SIZE) {
    fail('EINVAL', `the mapping's first entry starts at byte ${firstOffset} of its page, after address ${address}'s byte ${address % PAGE_SIZE}`);
  }
  let va = BigInt(virt);
  let mask = bitmap & genmaskFrom(bitsPer(((BigInt(length) - 1n + va) & U64) ^ va));
  let pgoff = BigInt(address % PAGE_SIZE - firstOffset);
  let currBase = U64;
  let currLen = 0n;
  for (let i = 0; i < mapping.count; i++) {
    const dma = BigInt(mapping.dmaAddress(i));
    const len = BigInt(mapping.dmaLength(i));
    const end = currBase + currLen;
    // a segment continuing the previous one (without overflow) brings no new constraint
    if (end > U64 || end !== dma) {
      currBase = dma;
      currLen = 0n;
      mask |= ((currBase + pgoff) & U64) ^ va;
      // a discontinuity must start a device page: the VA there bounds the page size
      if (i !== 0) mask |= va;
    }
    currLen += len;
    va = (va + len - pgoff) & U64;
    pgoff = 0n;
  }
  if (mask !== 0n) bitmap &= (1n << BigInt(ctz(mask) + 1)) - 1n;
  if (bitmap === 0n) return 0;
  return Number(1n << BigInt(bitmap.toString(2).length - 1));
}
