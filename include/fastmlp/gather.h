/* A training step's batch: the rows idx[0:B] of the training arrays copied into the batch
 * buffers, in chunks of rows the core's team copies in parallel (pool.h). Rows are drawn
 * at random from the whole data set, so each copy waits on memory: two threads halve that
 * wait on the MNIST shape (800 KB a step at batch 256). Copies are exact whichever thread
 * makes them. Element sizes are in bytes, so one code serves float32 and float64.
 */
#ifndef FASTMLP_GATHER_H
#define FASTMLP_GATHER_H

#include <stddef.h>
#include <string.h>

typedef struct {
    const char* X;            /* (n, n_features) */
    const char* T;            /* (n, n_targets), or NULL */
    const long long* labels;  /* (n,), or NULL */
    const char* W;            /* (n,) row weights, or NULL */
    const long long* idx;     /* the B rows to take */
    ptrdiff_t B, n_features, n_targets, rows_per_chunk;
    size_t elem;              /* bytes per element of X, T and W */
    char* xb;
    char* tb;
    long long* lb;
    char* wb;
} fm_gather_job;

static void fm_gather_chunk(void* ctx, ptrdiff_t chunk, int slot) {
    const fm_gather_job* j = (const fm_gather_job*)ctx;
    const size_t row_x = (size_t)j->n_features * j->elem, row_t = (size_t)j->n_targets * j->elem;
    ptrdiff_t lo = chunk * j->rows_per_chunk;
    ptrdiff_t hi = lo + j->rows_per_chunk < j->B ? lo + j->rows_per_chunk : j->B;
    (void)slot;
    for (ptrdiff_t i = lo; i < hi; i++) {
        long long r = j->idx[i];
        memcpy(j->xb + (size_t)i * row_x, j->X + (size_t)r * row_x, row_x);
        if (j->T) memcpy(j->tb + (size_t)i * row_t, j->T + (size_t)r * row_t, row_t);
        if (j->labels) j->lb[i] = j->labels[r];
        if (j->W) memcpy(j->wb + (size_t)i * j->elem, j->W + (size_t)r * j->elem, j->elem);
    }
}

/* Bytes a chunk copies at least (a smaller batch is copied by the calling thread). */
#define FM_GATHER_CHUNK_BYTES (64 * 1024)

/* Rows per chunk for B rows of row_bytes each, and the chunk count (1: copy serially). */
static ptrdiff_t fm_gather_plan(ptrdiff_t B, size_t row_bytes, ptrdiff_t* rows_per_chunk) {
    ptrdiff_t per = (ptrdiff_t)(FM_GATHER_CHUNK_BYTES / (row_bytes ? row_bytes : 1));
    if (per < 1) per = 1;
    if (per > B) per = B > 0 ? B : 1;
    *rows_per_chunk = per;
    return B > 0 ? (B + per - 1) / per : 0;
}

#endif
