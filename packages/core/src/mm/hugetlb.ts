// hugetlb pools (mm/hugetlb.c, struct hstate): huge pages set aside at boot as `hugepages=` does,
// 1 GiB ones carved from memblock before the buddy allocator exists, 2 MiB ones taken from it.

import { INT32_MAX, PAGE_SIZE } from '../constants.js';
import { checkInt, fail } from '../errors.js';
import type { PhysicalMemory } from './memory.js';
import { PG_ANON, PG_HEAD, PG_HUGETLB, PG_LIVE, PG_TAIL, PG_UPTODATE } from './page-flags.js';

/** The huge page sizes x86-64 offers: a PMD (2 MiB, order 9) or a PUD (1 GiB, order 18). */
export type HugePageSize = '2M' | '1G';

/** Huge pages to reserve at boot per size (`hugepagesz=2M hugepages=n hugepagesz=1G hugepages=m`). */
export interface HugepagesOption {
  '2M'?: number;
  '1G'?: number;
}

/** Folio order of each huge page size (`huge_page_order`). */
export const HUGETLB_ORDER: Readonly<Record<HugePageSize, number>> = { '2M': 9, '1G': 18 };

const GIGANTIC_ORDER = HUGETLB_ORDER['1G'];

/**
 * One pool of huge pages of one size (`struct hstate`). Its counters are those of
 * /proc/meminfo and /sys/kernel/mm/hugepages: read them, never write them.
 */
export class Hstate {
  /** `HugePages_Total`: huge pages in the pool, in use or free (`nr_huge_pages`). */
  nrHugePages = 0;
  /** `HugePages_Free` (`free_huge_pages`). */
  freeHugePages = 0;
  /** `HugePages_Rsvd`: free pages promised to mappings, not yet faulted (`resv_huge_pages`). */
  resvHugePages = 0;
  /** Huge pages asked for at boot; more than `nrHugePages` when memory ran short. */
  readonly requested: number;
  /** Base pages per huge page (`pages_per_huge_page`). */
  readonly nrPages: number;
  /** Bytes per huge page (`huge_page_size`). */
  readonly size: number;
  // hugepage_freelists: heads of free huge pages, used as a stack (enqueue and dequeue at the head)
  private readonly freeList: Int32Array;

  constructor(
    readonly name: HugePageSize,
    readonly order: number,
    requested: number,
    capacity: number,
  ) {
    this.requested = requested;
    this.nrPages = 1 << order;
    this.size = this.nrPages * PAGE_SIZE;
    this.freeList = new Int32Array(capacity);
  }

  /** Huge pages a mapping without a reservation may still take (`available_huge_pages`). */
  get available(): number {
    return this.freeHugePages - this.resvHugePages;
  }

  /** Adds the folio at `head`, prepared as a free hugetlb folio, to the pool (`enqueue_hugetlb_folio`). */
  enqueue(head: number): void {
    this.freeList[this.freeHugePages++] = head;
  }

  /** Takes a free huge page's head off the pool, or -1 when none is free (`dequeue_hugetlb_folio_node_exact`). */
  dequeue(): number {
    return this.freeHugePages === 0 ? -1 : this.freeList[--this.freeHugePages]!;
  }
}

/** Checks `hugepages` and returns the counts asked for; EINVAL for an unknown size or a count that is not a whole number ≥ 0. */
export function parseHugepages(opt: unknown): { small: number; gigantic: number } {
  if (opt === undefined) return { small: 0, gigantic: 0 };
  if (typeof opt !== 'object' || opt === null) fail('EINVAL', `hugepages must be an object such as { '2M': 4 }, got ${String(opt)}`);
  for (const key of Object.keys(opt)) {
    if (key !== '2M' && key !== '1G') fail('EINVAL', `hugepages size '${key}' is not a huge page size of x86-64 ('2M' or '1G')`);
  }
  const o = opt as HugepagesOption;
  return {
    small: o['2M'] === undefined ? 0 : checkInt("hugepages['2M']", o['2M'], 0, INT32_MAX),
    gigantic: o['1G'] === undefined ? 0 : checkInt("hugepages['1G']", o['1G'], 0, INT32_MAX),
  };
}

/**
 * Where boot puts `count` 1 GiB pages in `nrPages` frames (alloc_bootmem_huge_page through
 * memblock, which allocates top-down): the highest 1 GiB-aligned ranges lying wholly in RAM,
 * never the first (it holds frame 0, the zero page). Fewer when RAM runs out, as the kernel
 * then warns and boots with what it got. Returns the head PFNs, highest first.
 */
export function memblockGiganticRanges(nrPages: number, count: number): number[] {
  const heads: number[] = [];
  for (let k = Math.floor(nrPages / 2 ** GIGANTIC_ORDER) - 1; k >= 1 && heads.length < count; k--) heads.push(k * 2 ** GIGANTIC_ORDER);
  return heads;
}

/**
 * Builds the two pools of `memory` at boot: the 1 GiB pages at `giganticHeads` (kept off the
 * buddy lists by the caller), then `small` 2 MiB pages taken from the buddy allocator as
 * order-9 blocks (hugetlb_hstate_alloc_pages), as many as it can give.
 */
export function bootHugetlbPools(memory: PhysicalMemory, small: number, giganticHeads: readonly number[], gigantic: number): Record<HugePageSize, Hstate> {
  const pmdOrder = HUGETLB_ORDER['2M'];
  const pools: Record<HugePageSize, Hstate> = {
    '2M': new Hstate('2M', pmdOrder, small, Math.min(small, memory.nrPages >> pmdOrder)),
    '1G': new Hstate('1G', GIGANTIC_ORDER, gigantic, giganticHeads.length),
  };
  // gather_bootmem_prealloc() enqueues the highest first, so the lowest is handed out first
  for (const head of giganticHeads) addToPool(memory, pools['1G'], head);
  const taken: number[] = [];
  for (let k = 0; k < small; k++) {
    const head = memory.buddy.take(pmdOrder);
    if (head < 0) break; // "HugeTLB: allocating n of page size 2.00 MiB failed. Only allocated k"
    taken.push(head);
  }
  // hugetlb_pages_alloc_boot_node() stacks its folios on a list that is then enqueued in turn,
  // so the first allocated ends up at the head of the free list, handed out first
  for (let k = taken.length - 1; k >= 0; k--) addToPool(memory, pools['2M'], taken[k]!);
  return pools;
}

// prep_new_hugetlb_folio(): a free hugetlb folio of the pool's order, refcount 0.
function addToPool(memory: PhysicalMemory, h: Hstate, head: number): void {
  memory.order.fill(h.order, head, head + h.nrPages);
  memory.flags.fill(PG_HUGETLB | PG_TAIL, head + 1, head + h.nrPages);
  memory.flags[head] = PG_HUGETLB | PG_HEAD;
  h.nrHugePages++;
  h.enqueue(head);
}

/**
 * Takes a huge page from `h` for a fault (alloc_hugetlb_folio): one of the mapping's reserved
 * pages when `reserved`, else only a page no mapping has been promised. Returns the head of a
 * zeroed folio with refcount 1, or -1 (the fault is then SIGBUS).
 */
export function allocHugetlbFolio(memory: PhysicalMemory, h: Hstate, reserved: boolean, anon: boolean): number {
  if (!reserved && h.available <= 0) return -1;
  const head = h.dequeue();
  if (head < 0) return -1;
  if (reserved) h.resvHugePages--;
  const fl = PG_HUGETLB | PG_LIVE | PG_UPTODATE | (anon ? PG_ANON : 0);
  memory.flags.fill(fl | PG_TAIL, head + 1, head + h.nrPages);
  memory.flags[head] = fl | PG_HEAD;
  memory.refcount[head] = 1;
  // folio_zero_user(): a device may have written into the free page by physical address
  if (memory.store.materialised > 0) for (let p = head; p < head + h.nrPages; p++) memory.store.drop(p);
  return head;
}

/** Returns the hugetlb folio at `head`, whose last reference has gone, to its pool (`free_huge_folio`). */
export function freeHugetlbFolio(memory: PhysicalMemory, h: Hstate, head: number): void {
  memory.flags.fill(PG_HUGETLB | PG_TAIL, head + 1, head + h.nrPages);
  memory.flags[head] = PG_HUGETLB | PG_HEAD;
  memory.pins[head] = 0;
  memory.gets[head] = 0;
  memory.owner[head] = 0;
  if (memory.store.materialised > 0) for (let p = head; p < head + h.nrPages; p++) memory.store.drop(p);
  h.enqueue(head);
}
