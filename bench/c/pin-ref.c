/*
 * The C reference for bench/pin-layouts.mjs: what pin_user_pages_fast() and
 * unpin_user_pages_dirty_lock() cost at their core on this machine, done as the kernel does it
 * (mm/gup.c: gup_fast_pte_range / gup_fast_pmd_leaf, try_grab_folio, gup_folio_range_next):
 * a flat page table read, a flag check, and atomic refcount updates on 64-byte struct pages.
 *
 * usage: pin-ref RUNS LAYOUT_FILE ORDER [LAYOUT_FILE ORDER ...]
 *   LAYOUT_FILE holds N little-endian uint32 PFNs, those the JavaScript model handed a process
 *   for one layout; ORDER is the folio order of its pages (0, or 9 for 2 MiB folios).
 * prints, per layout: "<file> pin <min> <median> <max> unpin <min> <median> <max>" in ns/page.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PIN_BIAS 1024 /* GUP_PIN_COUNTING_BIAS */
#define PTE_PRESENT (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_HUGE (1ull << 7) /* _PAGE_PSE: a PMD leaf */
#define PTE_SPECIAL (1ull << 58)
#define PG_HEAD (1ull << 6)
#define PG_DIRTY (1ull << 4)

/* struct page: 64 bytes, the fields this path touches where the kernel keeps them */
struct page {
	uint64_t flags;
	uint64_t compound_head; /* tail: head address | 1 */
	uint64_t lru[2];
	int32_t mapcount;
	int32_t refcount; /* _refcount */
	int32_t pincount; /* the folio's _pincount, kept in the first tail page by the kernel */
	int32_t order;
	uint64_t pad[2];
};
_Static_assert(sizeof(struct page) == 64, "struct page is 64 bytes");

static struct page *mem;

static inline struct page *compound_head(struct page *p)
{
	uint64_t h = p->compound_head;
	return (h & 1) ? (struct page *)(h - 1) : p;
}

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

/* gup_fast: one PTE read and check per page, one grab per small page or per PMD leaf */
static long pin_fast(const uint64_t *pt, long n, struct page **pages)
{
	long i = 0;
	while (i < n) {
		uint64_t pte = pt[i];
		if ((pte & (PTE_PRESENT | PTE_RW)) != (PTE_PRESENT | PTE_RW) || (pte & PTE_SPECIAL))
			break;
		struct page *page = &mem[pte >> 12];
		if (pte & PTE_HUGE) {
			struct page *head = compound_head(page);
			long refs = 512 - (i & 511);
			if (refs > n - i)
				refs = n - i;
			__atomic_fetch_add(&head->refcount, (int)refs, __ATOMIC_SEQ_CST);
			__atomic_fetch_add(&head->pincount, (int)refs, __ATOMIC_SEQ_CST);
			for (long j = 0; j < refs; j++)
				pages[i + j] = page + j;
			i += refs;
		} else {
			if (page->flags & PG_HEAD) /* a large folio mapped by PTEs: not in these layouts */
				break;
			__atomic_fetch_add(&page->refcount, PIN_BIAS, __ATOMIC_SEQ_CST);
			pages[i++] = page;
		}
	}
	return i;
}

/* unpin_user_pages_dirty_lock(..., true): group pages of one folio, dirty it, drop the pins */
static void unpin_dirty(struct page **pages, long n)
{
	long i = 0;
	while (i < n) {
		struct page *head = compound_head(pages[i]);
		long nr = 1;
		while (i + nr < n && compound_head(pages[i + nr]) == head)
			nr++;
		if (!(head->flags & PG_DIRTY))
			__atomic_fetch_or(&head->flags, PG_DIRTY, __ATOMIC_SEQ_CST);
		if (head->flags & PG_HEAD) {
			__atomic_fetch_sub(&head->pincount, (int)nr, __ATOMIC_SEQ_CST);
			__atomic_fetch_sub(&head->refcount, (int)nr, __ATOMIC_SEQ_CST);
		} else {
			__atomic_fetch_sub(&head->refcount, (int)(nr * PIN_BIAS), __ATOMIC_SEQ_CST);
		}
		i += nr;
	}
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc < 4 || (argc - 2) % 2 != 0) {
		fprintf(stderr, "usage: %s RUNS LAYOUT_FILE ORDER [LAYOUT_FILE ORDER ...]\n", argv[0]);
		return 2;
	}
	int runs = atoi(argv[1]);
	for (int a = 2; a + 1 < argc; a += 2) {
		FILE *f = fopen(argv[a], "rb");
		if (!f) {
			perror(argv[a]);
			return 1;
		}
		fseek(f, 0, SEEK_END);
		long n = ftell(f) / 4;
		fseek(f, 0, SEEK_SET);
		uint32_t *pfns = malloc(n * 4);
		if (fread(pfns, 4, n, f) != (size_t)n) {
			perror("read");
			return 1;
		}
		fclose(f);
		int order = atoi(argv[a + 1]);
		uint32_t maxpfn = 0;
		for (long i = 0; i < n; i++)
			if (pfns[i] > maxpfn)
				maxpfn = pfns[i];
		mem = aligned_alloc(64, ((size_t)maxpfn + 513) * sizeof(struct page));
		memset(mem, 0, ((size_t)maxpfn + 513) * sizeof(struct page));
		uint64_t *pt = malloc(n * sizeof(uint64_t));
		struct page **pages = malloc(n * sizeof(*pages));
		for (long i = 0; i < n; i++) {
			uint32_t pfn = pfns[i];
			pt[i] = ((uint64_t)pfn << 12) | PTE_PRESENT | PTE_RW | (order ? PTE_HUGE : 0);
			mem[pfn].refcount = 1;
			if (order && (i & 511) == 0) {
				mem[pfn].flags |= PG_HEAD;
				mem[pfn].order = order;
				for (long j = 1; j < 512; j++)
					mem[pfn + j].compound_head = (uint64_t)&mem[pfn] | 1;
			}
		}
		double *pin = malloc(runs * sizeof(double)), *unpin = malloc(runs * sizeof(double));
		for (int r = 0; r < runs; r++) {
			double t0 = now_ns();
			long got = pin_fast(pt, n, pages);
			double t1 = now_ns();
			if (got != n) {
				fprintf(stderr, "pinned %ld of %ld\n", got, n);
				return 1;
			}
			unpin_dirty(pages, n);
			double t2 = now_ns();
			pin[r] = (t1 - t0) / n;
			unpin[r] = (t2 - t1) / n;
		}
		qsort(pin, runs, sizeof(double), cmp);
		qsort(unpin, runs, sizeof(double), cmp);
		printf("%s pin %.2f %.2f %.2f unpin %.2f %.2f %.2f\n", argv[a], pin[0], pin[runs / 2], pin[runs - 1],
		       unpin[0], unpin[runs / 2], unpin[runs - 1]);
		free(mem);
		free(pt);
		free(pages);
		free(pfns);
		free(pin);
		free(unpin);
	}
	return 0;
}
