/* tests/mpi: the span memory kept between spans (hy_mpi_buf_alloc, hy_mpi_buf_free in
 * mpi/mpi.c), without MPI: a buffer given back is handed to the next span of about its size,
 * whole and writable; small buffers, buffers from malloc and buffers past the budget are
 * freed (AddressSanitizer, in `make sanitize`, reports any that are not, or freed twice). */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "hy_mpi.h"

#define MIB ((size_t)1 << 20)

/* Whether the first `len` bytes at p all hold `v`. A kept buffer keeps what was written in
 * it; a buffer the system gave back is unmapped (these sizes are mmap's), so one handed out
 * after it holds zeros: the content, not the address, which mmap may give again, tells. */
static bool holds(const char *p, size_t len, char v)
{
    for (size_t i = 0; i < len; i += 4096)
        if (p[i] != v)
            return false;
    return p[len - 1] == v;
}

TestSuite(mpi_buf, .timeout = 60);

Test(mpi_buf, a_buffer_given_back_serves_the_next_of_its_size)
{
    char *a = hy_mpi_buf_alloc(24 * MIB);
    cr_assert_not_null(a);
    memset(a, 1, 24 * MIB);
    hy_mpi_buf_free(a);
    /* The next span's bucket of a little less: the same memory, already faulted in. */
    char *b = hy_mpi_buf_alloc(20 * MIB);
    cr_assert_eq(b, a);
    cr_assert(holds(b, 20 * MIB, 1));
    memset(b, 2, 20 * MIB);
    /* Handed out, it is not handed out again: a second buffer is another one. */
    char *c = hy_mpi_buf_alloc(20 * MIB);
    cr_assert_not_null(c);
    cr_assert_neq(c, b);
    memset(c, 3, 20 * MIB);
    hy_mpi_buf_free(b);
    hy_mpi_buf_free(c);
}

Test(mpi_buf, a_block_over_twice_the_need_is_not_spent_on_it)
{
    char *big = hy_mpi_buf_alloc(64 * MIB);
    cr_assert_not_null(big);
    memset(big, 8, 64 * MIB);
    hy_mpi_buf_free(big);
    char *small = hy_mpi_buf_alloc(8 * MIB); /* 64 MiB kept for 8: no */
    cr_assert_not_null(small);
    cr_assert_neq(small, big);
    memset(small, 4, 8 * MIB);
    char *again = hy_mpi_buf_alloc(40 * MIB); /* 64 MiB for 40: yes */
    cr_assert_eq(again, big);
    cr_assert(holds(again, 40 * MIB, 8));
    memset(again, 5, 40 * MIB);
    hy_mpi_buf_free(small);
    hy_mpi_buf_free(again);
}

Test(mpi_buf, small_buffers_and_malloc_ones_are_freed)
{
    /* Under 1 MiB: plain malloc, freed when given back (never kept). */
    char *s = hy_mpi_buf_alloc(1000);
    cr_assert_not_null(s);
    memset(s, 6, 1000);
    hy_mpi_buf_free(s);
    char *z = hy_mpi_buf_alloc(0);
    cr_assert_not_null(z);
    hy_mpi_buf_free(z);
    hy_mpi_buf_free(NULL);
    /* A buffer from malloc, as the module frees paths and answers it sends. */
    char *m = malloc(3 * MIB);
    cr_assert_not_null(m);
    memset(m, 7, 3 * MIB);
    hy_mpi_buf_free(m);
}

Test(mpi_buf, past_the_budget_buffers_go_back_to_the_system)
{
    /* More than HY_KEEP_BYTES handed out at once: given back, the first ones are kept up to
     * the budget and the rest freed; the kept ones are then handed out again, the others
     * are new. Every buffer must stay writable over its whole size either way. */
    enum { N = 6 };
    size_t each = HY_KEEP_BYTES / 4;
    char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = hy_mpi_buf_alloc(each);
        cr_assert_not_null(p[i]);
        memset(p[i], i + 1, each);
    }
    for (int i = 0; i < N; i++)
        hy_mpi_buf_free(p[i]);
    int kept = 0;
    char *q[N];
    for (int i = 0; i < N; i++) {
        q[i] = hy_mpi_buf_alloc(each);
        cr_assert_not_null(q[i]);
        bool old = false;
        for (int j = 0; j < N; j++)
            old |= holds(q[i], each, (char)(j + 1));
        kept += old;
        memset(q[i], 9, each);
    }
    cr_assert_eq(kept, 4, "kept %d of the buffers, HY_KEEP_BYTES holds 4", kept);
    for (int i = 0; i < N; i++)
        hy_mpi_buf_free(q[i]);
}

Test(mpi_buf, the_budget_set_decides_what_is_kept)
{
    /* Two of three 4 MiB buffers fit a budget of 8 MiB: given back, two are kept and
     * handed out again, the third is freed. */
    hy_mpi_buf_keep(8 * MIB);
    char *p[3], *q[3];
    for (int i = 0; i < 3; i++) {
        p[i] = hy_mpi_buf_alloc(4 * MIB);
        cr_assert_not_null(p[i]);
        memset(p[i], i + 1, 4 * MIB);
    }
    for (int i = 0; i < 3; i++)
        hy_mpi_buf_free(p[i]);
    int kept = 0;
    for (int i = 0; i < 3; i++) {
        q[i] = hy_mpi_buf_alloc(4 * MIB);
        cr_assert_not_null(q[i]);
        kept += q[i][0] != 0 && holds(q[i], 4 * MIB, q[i][0]);
        memset(q[i], 9, 4 * MIB);
    }
    cr_assert_eq(kept, 2, "kept %d of three 4 MiB buffers under 8 MiB", kept);
    for (int i = 0; i < 3; i++)
        hy_mpi_buf_free(q[i]);
}

Test(mpi_buf, a_lowered_budget_frees_what_is_kept_at_once)
{
    /* 40 MiB: above glibc's largest mmap threshold, so a buffer freed here goes back to
     * the system and the next one of its size is new, zeroed memory (a smaller one could
     * come back from malloc's own free lists, still holding its bytes). */
    const size_t size = 40 * MIB;
    char *a = hy_mpi_buf_alloc(size);
    cr_assert_not_null(a);
    memset(a, 3, size);
    hy_mpi_buf_free(a); /* kept, under the default budget */
    hy_mpi_buf_keep(0);
    char *b = hy_mpi_buf_alloc(size);
    cr_assert_not_null(b);
    cr_assert(!holds(b, size, 3), "the kept buffer outlived a budget of 0");
    memset(b, 4, size);
    hy_mpi_buf_free(b); /* a budget of 0 keeps none */
    char *c = hy_mpi_buf_alloc(size);
    cr_assert_not_null(c);
    cr_assert(!holds(c, size, 4), "a buffer was kept under a budget of 0");
    hy_mpi_buf_free(c);
}

Test(mpi_buf, a_span_across_hundreds_of_ranks_finds_its_buffers_kept)
{
    /* A slice's buckets are a buffer per rank: 200 of 1 MiB, within the default budget,
     * are all kept and all handed out again. */
    enum { N = 200 };
    static char *p[N], *q[N];
    for (int i = 0; i < N; i++) {
        p[i] = hy_mpi_buf_alloc(MIB);
        cr_assert_not_null(p[i]);
        memset(p[i], i % 120 + 1, MIB);
    }
    for (int i = 0; i < N; i++)
        hy_mpi_buf_free(p[i]);
    int kept = 0;
    for (int i = 0; i < N; i++) {
        q[i] = hy_mpi_buf_alloc(MIB);
        cr_assert_not_null(q[i]);
        kept += q[i][0] != 0 && holds(q[i], MIB, q[i][0]);
    }
    cr_assert_eq(kept, N, "kept %d of %d buffers", kept, N);
    for (int i = 0; i < N; i++)
        hy_mpi_buf_free(q[i]);
}
