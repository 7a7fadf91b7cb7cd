// The IOVA allocator of drivers/iommu/iova.c: ranges of granule-sized IOVA pages allocated
// top-down below a limit, walking down from a cached node, with size-aligned ranges.

const ANCHOR = Number.MAX_SAFE_INTEGER; // IOVA_ANCHOR: a node above every range, never freed

/**
 * One IOVA space (`struct iova_domain`). Ranges are kept sorted by their first page in two
 * parallel arrays, the anchor last; `cachedNode`/`cached32Node` name the node a search starts
 * from by its first page, as the kernel keeps its two cached rb-nodes.
 */
export class IovaDomain {
  /** Lowest page ever handed out (`start_pfn`): 1, so IOVA 0 never is. */
  readonly startPfn: number;
  /** First page past 32-bit IOVA space (`dma_32bit_pfn`). */
  readonly dma32Pfn: number;
  /** IOVA pages allocated. */
  allocatedPages = 0;
  private readonly lo: number[] = [ANCHOR];
  private readonly hi: number[] = [ANCHOR];
  private cachedNode = ANCHOR;
  private cached32Node = ANCHOR;
  private max32AllocSize: number;

  /** `init_iova_domain(iovad, granule, start_pfn)`. */
  constructor(granuleShift: number, startPfn = 1) {
    this.startPfn = Math.max(1, startPfn);
    this.dma32Pfn = 2 ** (32 - granuleShift);
    this.max32AllocSize = this.dma32Pfn;
  }

  /** Ranges allocated. */
  get nrRanges(): number {
    return this.lo.length - 1;
  }

  /**
   * Allocates `size` pages, aligned to roundup_pow_of_two(size), at or below page `limitPfn`
   * (`alloc_iova(iovad, size, limit_pfn, true)`). Returns the first page, or 0 when no range
   * fits. Cost: O(ranges walked) plus O(ranges) to insert.
   */
  alloc(size: number, limitPfn: number): number {
    const limit = limitPfn + 1;
    let align = 1;
    while (align < size) align *= 2; // align_mask <<= fls_long(size - 1)
    if (limit <= this.dma32Pfn && size >= this.max32AllocSize) return 0;
    let cur = this.indexOf(limit <= this.dma32Pfn ? this.cached32Node : this.cachedNode);
    const retryPfn = this.hi[cur]!;
    let high = limit;
    let low = this.startPfn;
    let newPfn: number;
    let prev: number;
    for (;;) {
      // walk down the gaps below the start node until an aligned range fits in one
      do {
        high = Math.min(high, this.lo[cur]!);
        newPfn = Math.floor((high - size) / align) * align;
        prev = cur;
        cur--;
      } while (cur >= 0 && newPfn <= this.hi[cur]! && newPfn >= low);
      if (high >= size && newPfn >= low) break;
      // once, retry from the limit down to where this walk began
      if (low === this.startPfn && retryPfn < limit) {
        high = limit;
        low = retryPfn + 1;
        cur = this.findLimit(limit);
        continue;
      }
      this.max32AllocSize = size;
      return 0;
    }
    this.lo.splice(prev, 0, newPfn);
    this.hi.splice(prev, 0, newPfn + size - 1);
    // __cached_rbnode_insert_update
    if (newPfn + size - 1 < this.dma32Pfn) this.cached32Node = newPfn;
    else this.cachedNode = newPfn;
    this.allocatedPages += size;
    return newPfn;
  }

  /** Frees the range starting at page `pfnLo` (`free_iova`); returns its size, 0 if none starts there. */
  free(pfnLo: number): number {
    const i = this.indexOf(pfnLo);
    if (this.lo[i] !== pfnLo || pfnLo === ANCHOR) return 0;
    const hi = this.hi[i]!;
    const next = this.lo[i + 1]!;
    // __cached_rbnode_delete_update
    const c32 = this.indexOf(this.cached32Node);
    if (pfnLo === this.cached32Node || (hi < this.dma32Pfn && pfnLo >= this.lo[c32]!)) this.cached32Node = next;
    if (pfnLo < this.dma32Pfn) this.max32AllocSize = this.dma32Pfn;
    if (pfnLo >= this.lo[this.indexOf(this.cachedNode)]!) this.cachedNode = next;
    this.lo.splice(i, 1);
    this.hi.splice(i, 1);
    const size = hi - pfnLo + 1;
    this.allocatedPages -= size;
    return size;
  }

  /** Every allocated range as [first page, last page], lowest first. */
  ranges(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let i = 0; i < this.lo.length - 1; i++) out.push([this.lo[i]!, this.hi[i]!]);
    return out;
  }

  // The index of the first node whose first page is ≥ pfn (the anchor when none is).
  private indexOf(pfn: number): number {
    let a = 0;
    let b = this.lo.length - 1;
    while (a < b) {
      const m = (a + b) >>> 1;
      if (this.lo[m]! < pfn) a = m + 1;
      else b = m;
    }
    return a;
  }

  // iova_find_limit(): above 32 bits start from the anchor, else from the lowest node at or above the limit
  private findLimit(limit: number): number {
    return limit > this.dma32Pfn ? this.lo.length - 1 : this.indexOf(limit);
  }
}
