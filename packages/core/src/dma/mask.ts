// Address-mask arithmetic past 32 bits. JavaScript's bitwise operators work on 32-bit integers,
// while DMA addresses and boundary masks here run to 53 bits, so masks of the form 2^k - 1 are
// applied with division instead.

// Division by a power of two and Math.floor are exact here and much cheaper than `%` on doubles.

/** `addr & mask` for a mask 2^k - 1 (k ≤ 53) and 0 ≤ addr < 2^53. */
export function andMask(addr: number, mask: number): number {
  const size = mask + 1;
  return addr - Math.floor(addr / size) * size;
}

/** `addr & ~mask` for a mask 2^k - 1 (k ≤ 53) and 0 ≤ addr < 2^53. */
export function clearMask(addr: number, mask: number): number {
  const size = mask + 1;
  return Math.floor(addr / size) * size;
}

/** Whether `v` is 2^k - 1 for some k in [minBits, 53]. */
export function isLowMask(v: number, minBits: number): boolean {
  if (!Number.isSafeInteger(v) || v < 2 ** minBits - 1) return false;
  const p = v + 1; // exact: v ≤ 2^53 - 1
  return p === 2 ** Math.round(Math.log2(p));
}

/** The smallest power of two ≥ n (`roundup_pow_of_two`), n ≥ 1. */
export function roundupPowOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
