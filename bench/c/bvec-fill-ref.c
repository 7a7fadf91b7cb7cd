/*
 * The C reference for bench/bvec-fill.mjs: what filling bio_vecs from an array of already
 * pinned pages costs on this machine, done as the kernel does it (block/bio.c: bio_add_page,
 * bvec_try_merge_page; include/linux/bvec.h: struct bio_vec): a page pointer into a flat
 * array of 64-byte struct pages, one physical-contiguity check per page, and either one flat
 * bvec array or bios of BIO_MAX_VECS vectors taken from a preallocated pool (bvec_slabs).
 *
 * usage: bvec-fill-ref RUNS LAYOUT_FILE [LAYOUT_FILE ...]
 *   LAYOUT_FILE holds N little-endian uint32 PFNs, those the JavaScript model handed a process.
 * prints, per layout: "<file> flat <min> <median> <max> bios <min> <median> <max> vecs <n>" in ns/page.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE_SHIFT 12
#define PAGE_SIZE (1ul << PAGE_SHIFT)
#define BIO_MAX_VECS 256

struct page {
	uint64_t flags;
	uint64_t compound_head;
	uint64_t lru[2];
	int32_t mapcount;
	int32_t refcount;
	uint64_t pad[3];
};
_Static_assert(sizeof(struct page) == 64, "struct page is 64 bytes");

struct bio_vec {
	struct page *bv_page;
	unsigned int bv_len;
	unsigned int bv_offset;
};
_Static_assert(sizeof(struct bio_vec) == 16, "struct bio_vec is 16 bytes");

struct bio {
	struct bio *bi_next;
	struct bio_vec *bi_io_vec;
	unsigned int bi_size;
	unsigned short bi_vcnt, bi_max_vecs;
};

static struct page *mem;

static inline uint64_t page_to_phys(const struct page *p)
{
	return (uint64_t)(p - mem) << PAGE_SHIFT;
}

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

/* bvec_try_merge_page */
static inline int try_merge(struct bio_vec *bv, struct page *page, unsigned int len, unsigned int off)
{
	size_t bv_end = bv->bv_offset + bv->bv_len;
	uint64_t vec_end_addr = page_to_phys(bv->bv_page) + bv_end - 1;
	uint64_t page_addr = page_to_phys(page);

	if (vec_end_addr + 1 != page_addr + off)
		return 0;
	if ((vec_end_addr & ~(PAGE_SIZE - 1)) != ((page_addr + off) & ~(PAGE_SIZE - 1)) &&
	    bv->bv_page + bv_end / PAGE_SIZE != page + off / PAGE_SIZE)
		return 0;
	bv->bv_len += len;
	return 1;
}

/* bio_add_page */
static inline unsigned int bio_add_page(struct bio *bio, struct page *page, unsigned int len, unsigned int off)
{
	if (bio->bi_size > UINT32_MAX - len)
		return 0;
	if (bio->bi_vcnt > 0 && try_merge(&bio->bi_io_vec[bio->bi_vcnt - 1], page, len, off)) {
		bio->bi_size += len;
		return len;
	}
	if (bio->bi_vcnt >= bio->bi_max_vecs)
		return 0;
	struct bio_vec *bv = &bio->bi_io_vec[bio->bi_vcnt++];
	bv->bv_page = page;
	bv->bv_len = len;
	bv->bv_offset = off;
	bio->bi_size += len;
	return len;
}

/* one flat array (io_uring's registered buffer): the same merge, no capacity but the array's */
static long fill_flat(const uint32_t *pfns, long n, struct bio_vec *bv)
{
	long cnt = 0;
	for (long i = 0; i < n; i++) {
		struct page *page = mem + pfns[i];
		if (cnt > 0 && try_merge(&bv[cnt - 1], page, PAGE_SIZE, 0))
			continue;
		bv[cnt].bv_page = page;
		bv[cnt].bv_len = PAGE_SIZE;
		bv[cnt].bv_offset = 0;
		cnt++;
	}
	return cnt;
}

/* bios of BIO_MAX_VECS vectors from a pool, chained */
static long fill_bios(const uint32_t *pfns, long n, struct bio *pool, struct bio_vec *slabs)
{
	long nbios = 0, vecs = 0;
	struct bio *bio = &pool[0];
	bio->bi_next = NULL;
	bio->bi_io_vec = slabs;
	bio->bi_size = 0;
	bio->bi_vcnt = 0;
	bio->bi_max_vecs = BIO_MAX_VECS;
	for (long i = 0; i < n; i++) {
		struct page *page = mem + pfns[i];
		if (bio_add_page(bio, page, PAGE_SIZE, 0))
			continue;
		vecs += bio->bi_vcnt;
		struct bio *next = &pool[++nbios];
		next->bi_io_vec = slabs + nbios * BIO_MAX_VECS;
		next->bi_size = 0;
		next->bi_vcnt = 0;
		next->bi_max_vecs = BIO_MAX_VECS;
		next->bi_next = NULL;
		bio->bi_next = next;
		bio = next;
		bio_add_page(bio, page, PAGE_SIZE, 0);
	}
	return vecs + bio->bi_vcnt;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s RUNS LAYOUT_FILE [LAYOUT_FILE ...]\n", argv[0]);
		return 2;
	}
	int runs = atoi(argv[1]);
	for (int a = 2; a < argc; a++) {
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
			fprintf(stderr, "%s: short read\n", argv[a]);
			return 1;
		}
		fclose(f);
		uint32_t maxpfn = 0;
		for (long i = 0; i < n; i++)
			if (pfns[i] > maxpfn)
				maxpfn = pfns[i];
		mem = calloc((size_t)maxpfn + 1, sizeof(struct page));
		struct bio_vec *flat = malloc(n * sizeof(*flat));
		struct bio *pool = calloc(n + 1, sizeof(*pool));
		struct bio_vec *slabs = malloc((n + BIO_MAX_VECS) * sizeof(*slabs));
		/* the slabs are touched once so the timed runs do not count first-touch faults */
		memset(flat, 0, n * sizeof(*flat));
		memset(slabs, 0, (n + BIO_MAX_VECS) * sizeof(*slabs));
		double *tf = malloc(runs * sizeof(double)), *tb = malloc(runs * sizeof(double));
		long vf = 0, vb = 0;
		for (int r = 0; r < runs; r++) {
			double t0 = now_ns();
			vf = fill_flat(pfns, n, flat);
			double t1 = now_ns();
			vb = fill_bios(pfns, n, pool, slabs);
			double t2 = now_ns();
			tf[r] = (t1 - t0) / n;
			tb[r] = (t2 - t1) / n;
		}
		if (vf != vb) {
			fprintf(stderr, "flat %ld vectors, bios %ld\n", vf, vb);
			return 1;
		}
		qsort(tf, runs, sizeof(double), cmp);
		qsort(tb, runs, sizeof(double), cmp);
		printf("%s flat %.2f %.2f %.2f bios %.2f %.2f %.2f vecs %ld\n", argv[a], tf[0], tf[runs / 2], tf[runs - 1], tb[0], tb[runs / 2],
		       tb[runs - 1], vf);
		free(mem);
		free(flat);
		free(pool);
		free(slabs);
		free(pfns);
		free(tf);
		free(tb);
	}
	return 0;
}
