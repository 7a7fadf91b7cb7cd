// Per-frame flag bits (the subset of include/linux/page-flags.h this model observes).

/** Page contents differ from the backing store: writeback must write them (`PG_dirty`). */
export const PG_DIRTY = 1 << 0;
/** Locked for I/O or for a state change (`PG_locked`). */
export const PG_LOCKED = 1 << 1;
/** First page of a folio of order ≥ 1 (`PG_head`). */
export const PG_HEAD = 1 << 2;
/** A later page of a large folio (a compound tail). */
export const PG_TAIL = 1 << 3;
/** The shared zero page (`is_zero_pfn`). */
export const PG_ZERO = 1 << 4;
/** Free, on a buddy free list (`PageBuddy`); `order` holds the block's order at its head. */
export const PG_BUDDY = 1 << 5;
/** Anonymous memory (`folio_test_anon`). */
export const PG_ANON = 1 << 6;
/** Reserved at boot, never freed (`PG_reserved`). */
export const PG_RESERVED = 1 << 7;
/** Contents are valid (`PG_uptodate`). */
export const PG_UPTODATE = 1 << 8;
/** Being written to its backing store (`PG_writeback`). */
export const PG_WRITEBACK = 1 << 9;
/** Model-only: the frame belongs to an allocated folio (cleared when it returns to the buddy lists). */
export const PG_LIVE = 1 << 15;
/** An anonymous page mapped by exactly one process, safe to write without COW (`PageAnonExclusive`). */
export const PG_ANON_EXCL = 1 << 10;
/** A page of the huge zero folio, mapped read-only by PMDs over untouched THP ranges (`is_huge_zero_folio`). */
export const PG_HUGE_ZERO = 1 << 11;
/** Model-only: the folio is in a regular file's page cache (`folio->mapping` is that file's address_space; shmem folios are not). */
export const PG_PAGECACHE = 1 << 13;
/** A frame of a hugetlb folio, in use or free in its pool, never on the buddy lists (`folio_test_hugetlb`). */
export const PG_HUGETLB = 1 << 14;
/** Model-only: a frame held back by `memory.fragment` to break contiguity (returned by `unfragment`). */
export const PG_BALLAST = 1 << 12;
/** Either zero page: never written, shared by every mapping, holding no mapping references. */
export const PG_ANY_ZERO = PG_ZERO | PG_HUGE_ZERO;
