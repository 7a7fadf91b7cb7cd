// Page geometry and the get_user_pages flag bits, as include/linux/mm_types.h and mm/internal.h
// define them on x86-64.

/** Bytes in a base page (x86-64 `PAGE_SIZE`). */
export const PAGE_SIZE = 4096;
/** log2(PAGE_SIZE). */
export const PAGE_SHIFT = 12;
/** Largest buddy order (`MAX_PAGE_ORDER`): 2^10 pages, 4 MiB. */
export const MAX_PAGE_ORDER = 10;
/** Order of a PMD-sized transparent huge page (2 MiB). */
export const HPAGE_PMD_ORDER = 9;
/** Pages in a PMD-sized folio. */
export const HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER;
/** Bytes one PMD entry maps (2 MiB). */
export const PMD_SIZE = HPAGE_PMD_NR * PAGE_SIZE;
/** Largest value of the kernel's `int` counters (refcounts, pin counts). */
export const INT32_MAX = 0x7fffffff;
/** What one FOLL_PIN adds to a small folio's refcount (`GUP_PIN_COUNTING_BIAS`). */
export const GUP_PIN_COUNTING_BIAS = 1024;

// enum gup_flags (include/linux/mm_types.h): the bits a caller may pass.
/** Check the PTE is writable; fault in (and break COW) for write. */
export const FOLL_WRITE = 1 << 0;
/** Take a plain page reference; release with `putPage`. */
export const FOLL_GET = 1 << 1;
/** Force access even where the VMA forbids it (ptrace). */
export const FOLL_FORCE = 1 << 3;
/** Do not fault: fail where a page is not present. */
export const FOLL_NOFAULT = 1 << 5;
/** Only anonymous VMAs may be pinned. */
export const FOLL_ANON = 1 << 7;
/** The pin may be held indefinitely (RDMA, io_uring fixed buffers, VFIO). Needs FOLL_PIN. */
export const FOLL_LONGTERM = 1 << 8;
// mm/internal.h: set by the pin_user_pages*() family. The kernel refuses it from outside callers;
// here getUserPages accepts it as __get_user_pages() does, so a caller may pin through either entry.
/** Pin for DMA: counted apart from ordinary references; release with `unpinUserPages`. */
export const FOLL_PIN = 1 << 19;

// mm/internal.h: get_user_pages() and the slow path behind the fast variants add it; a write
// through a clean entry then marks the folio dirty (follow_page_pte). Internal: never passed in.
/** Mark the page accessed (and dirty, for FOLL_WRITE) as a CPU access would. */
export const FOLL_TOUCH = 1 << 16;

/** Every flag bit this model understands. */
export const FOLL_VALID_MASK =
  FOLL_WRITE | FOLL_GET | FOLL_FORCE | FOLL_NOFAULT | FOLL_ANON | FOLL_LONGTERM | FOLL_PIN;

/** The bits the fast variants accept (gup_fast_fallback): FOLL_ANON, for one, is EINVAL there. */
export const FOLL_FAST_MASK = FOLL_WRITE | FOLL_GET | FOLL_FORCE | FOLL_NOFAULT | FOLL_LONGTERM | FOLL_PIN;

/** Highest user address + 1 (x86-64 `TASK_SIZE_MAX` with 4-level paging, less the guard page). */
export const TASK_SIZE_MAX = 2 ** 47 - PAGE_SIZE;
