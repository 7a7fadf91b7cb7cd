/*
 * The C reference for bench/sglist-build.mjs: what building a scatterlist from a page array
 * costs on this machine, done as lib/scatterlist.c does it (sg_alloc_append_table_from_pages
 * with max_segment UINT_MAX and no pages left, as sg_alloc_table_from_pages): count the
 * PFN-contiguous chunks, then fill 32-byte struct scatterlist entries in chunks of up to 128
 * slots chained through their last slot (get_next_sg, __sg_chain). Chunks come from a free
 * list, as the slab would hand them out; struct pages are 64 bytes and the merge test reads
 * their flags (zone_device_pages_have_same_pgmap).
 *
 * usage: sg-build-ref RUNS LAYOUT_FILE [LAYOUT_FILE ...]
 *   LAYOUT_FILE holds N little-endian uint32 PFNs (those the JavaScript model handed a process).
 * prints, per layout: "<file> build <min> <median> <max> nents <n> slots <s>" in ns/page.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE_SIZE 4096u
#define SG_CHAIN 0x01ul
#define SG_END 0x02ul
#define SG_MAX_SINGLE_ALLOC (PAGE_SIZE / sizeof(struct scatterlist))
#define PG_ZONE_DEVICE (1ull << 62)

struct scatterlist {
	unsigned long page_link;
	unsigned int offset;
	unsigned int length;
	uint64_t dma_address;
	unsigned int dma_length;
	unsigned int dma_flags;
};
_Static_assert(sizeof(struct scatterlist) == 32, "struct scatterlist is 32 bytes");

struct page {
	uint64_t flags;
	uint64_t rest[7];
};
_Static_assert(sizeof(struct page) == 64, "struct page is 64 bytes");

static struct page *vmemmap;

/* the slab: a free list of page-sized chunks, refilled before each run */
static void **free_list;
static size_t nfree;

static void *chunk_alloc(void) { return nfree ? free_list[--nfree] : NULL; }
static void chunk_free(void *p) { free_list[nfree++] = p; }

static inline unsigned long pfn_of(const struct page *p) { return (unsigned long)(p - vmemmap); }

static inline int mergeable(const struct page *a, const struct page *b)
{
	if (pfn_of(a) != pfn_of(b) + 1)
		return 0;
	return (a->flags & PG_ZONE_DEVICE) == (b->flags & PG_ZONE_DEVICE);
}

static inline struct scatterlist *next_sg(struct scatterlist *sg)
{
	if (sg->page_link & SG_END)
		return NULL;
	sg++;
	if (sg->page_link & SG_CHAIN)
		sg = (struct scatterlist *)(sg->page_link & ~(SG_CHAIN | SG_END));
	return sg;
}

struct table {
	struct scatterlist *sgl;
	unsigned int nents, total; /* total_nents: slots less the chain slots */
	unsigned int slots; /* slots allocated, chain slots included */
};

/* a fresh chunk of n slots, zeroed, its last slot marked the end */
static struct scatterlist *new_chunk(unsigned int n)
{
	struct scatterlist *sg = chunk_alloc();
	if (!sg)
		return NULL;
	memset(sg, 0, n * sizeof(*sg));
	sg[n - 1].page_link = SG_END;
	return sg;
}

static int build(struct table *t, struct page **pages, unsigned int n)
{
	unsigned int chunks = 1, i, cur = 0;
	struct scatterlist *s = NULL;

	for (i = 1; i < n; i++)
		if (!mergeable(pages[i], pages[i - 1]))
			chunks++;
	for (i = 0; i < chunks; i++) {
		unsigned int j = cur + 1, need = chunks - i;
		while (j < n && mergeable(pages[j], pages[j - 1]))
			j++;
		struct scatterlist *next = s ? next_sg(s) : NULL;
		if (!s || ((next->page_link & SG_END) && need != 1)) {
			unsigned int size = need < SG_MAX_SINGLE_ALLOC ? need : SG_MAX_SINGLE_ALLOC;
			struct scatterlist *sg = new_chunk(size);
			if (!sg)
				return -1;
			if (s) {
				next->offset = next->length = 0;
				next->page_link = ((unsigned long)sg | SG_CHAIN) & ~SG_END;
				t->total += size - 1;
				t->slots += size;
			} else {
				t->sgl = sg;
				t->total = t->slots = size;
			}
			next = sg;
		}
		s = next;
		s->page_link = (s->page_link & (SG_CHAIN | SG_END)) | (unsigned long)pages[cur];
		s->offset = 0;
		s->length = (j - cur) * PAGE_SIZE;
		cur = j;
	}
	s->page_link = (s->page_link | SG_END) & ~SG_CHAIN;
	t->nents = chunks;
	return 0;
}

/* sg_free_append_table: back to the free list, chunk by chunk along the chain */
static void release(struct table *t)
{
	struct scatterlist *sg = t->sgl;
	unsigned int left = t->total;
	while (left) {
		unsigned int n = left > SG_MAX_SINGLE_ALLOC ? SG_MAX_SINGLE_ALLOC : left;
		struct scatterlist *next = left > SG_MAX_SINGLE_ALLOC
			? (struct scatterlist *)(sg[SG_MAX_SINGLE_ALLOC - 1].page_link & ~(SG_CHAIN | SG_END)) : NULL;
		left -= left > SG_MAX_SINGLE_ALLOC ? n - 1 : n;
		chunk_free(sg);
		sg = next;
	}
}

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s RUNS LAYOUT_FILE [LAYOUT_FILE ...]\n", argv[0]);
		return 2;
	}
	int runs = atoi(argv[1]);
	for (int f = 2; f < argc; f++) {
		FILE *in = fopen(argv[f], "rb");
		if (!in) {
			perror(argv[f]);
			return 1;
		}
		fseek(in, 0, SEEK_END);
		long n = ftell(in) / 4;
		rewind(in);
		uint32_t *pfns = malloc(n * 4);
		if (fread(pfns, 4, n, in) != (size_t)n)
			return 1;
		fclose(in);
		uint32_t max = 0;
		for (long i = 0; i < n; i++)
			if (pfns[i] > max)
				max = pfns[i];
		vmemmap = calloc((size_t)max + 1, sizeof(struct page));
		struct page **pages = malloc(n * sizeof(*pages));
		for (long i = 0; i < n; i++)
			pages[i] = vmemmap + pfns[i];
		size_t nchunks = n / (SG_MAX_SINGLE_ALLOC - 1) + 2;
		free_list = malloc(nchunks * sizeof(void *));
		char *slab = aligned_alloc(PAGE_SIZE, nchunks * PAGE_SIZE);
		memset(slab, 0, nchunks * PAGE_SIZE);
		nfree = 0;
		for (size_t i = nchunks; i-- > 0;)
			chunk_free(slab + i * PAGE_SIZE);
		double *ns = malloc(runs * sizeof(double));
		struct table t = { 0 };
		for (int r = -3; r < runs; r++) {
			double t0 = now_ns();
			if (build(&t, pages, (unsigned int)n))
				return 1;
			double t1 = now_ns();
			if (r >= 0)
				ns[r] = (t1 - t0) / n;
			if (r < runs - 1)
				release(&t);
		}
		qsort(ns, runs, sizeof(double), cmp);
		printf("%s build %.2f %.2f %.2f nents %u slots %u\n", argv[f], ns[0], ns[runs / 2], ns[runs - 1], t.nents, t.slots);
		release(&t);
		free(ns);
		free(slab);
		free(free_list);
		free(pages);
		free(vmemmap);
		free(pfns);
	}
	return 0;
}
