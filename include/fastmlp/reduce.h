/* The data-parallel reductions of the training loop, called through function pointers taken
 * at run time from the MPI library that mpi4py loaded. Nothing MPI is needed to build
 * fastmlp.
 * - fm_allreduce_sum: MPI_Allreduce(MPI_SUM), in place (the whole arena on the full path;
 *   the step's loss and non-finite flag on the sharded one);
 * - fm_reduce_scatter_sum: MPI_Reduce_scatter(MPI_SUM) of the gradient arena, rank r
 *   receiving the sum of its shard (the sharded optimizer update, _train_dp.pxi);
 * - fm_allgatherv: MPI_Allgatherv in place, every rank's shard of an arena sent to all.
 *
 * Handles: MPICH's ABI (mpich, Intel MPI, the pip `mpich` wheel) makes MPI_Comm,
 * MPI_Datatype and MPI_Op 32-bit ints; Open MPI makes them pointers. The caller gives the
 * handle width (`handle_bytes`, mpi4py's MPI._sizeof) and the handle values
 * (MPI._handleof); the call is made through the prototype of that width, so no argument is
 * passed with the wrong type.
 *
 * Agreement: MPI_SUM over the same buffers gives every rank the same result in MPICH (each
 * block is reduced once, in one order, then distributed; pairwise exchanges add the same two
 * operands, and IEEE addition commutes exactly); the tests compare the ranks' weights bit for
 * bit. A non-finite element anywhere makes the sum non-finite on every rank, so the loop's
 * non-finite check decides alike everywhere without a separate flag. The sharded path agrees
 * by construction: each shard is summed once, updated on its owner and copied to the others;
 * its non-finite check is a flag summed with the loss.
 */
#ifndef FASTMLP_REDUCE_H
#define FASTMLP_REDUCE_H

#include <stdint.h>

typedef int (*fm_allreduce_int)(const void*, void*, int, int, int, int);
typedef int (*fm_allreduce_ptr)(const void*, void*, int, void*, void*, void*);
typedef int (*fm_reduce_scatter_int)(const void*, void*, const int*, int, int, int);
typedef int (*fm_reduce_scatter_ptr)(const void*, void*, const int*, void*, void*, void*);
typedef int (*fm_allgatherv_int)(const void*, int, int, void*, const int*, const int*, int,
                                 int);
typedef int (*fm_allgatherv_ptr)(const void*, int, void*, void*, const int*, const int*,
                                 void*, void*);

typedef struct {
    void* allreduce;      /* MPI_Allreduce of the loaded library, or NULL: no reduction */
    void* reduce_scatter; /* MPI_Reduce_scatter, or NULL: no sharded update */
    void* allgatherv;     /* MPI_Allgatherv, or NULL: no sharded update */
    int handle_bytes;     /* 4 (MPICH ABI) or 8 (pointer handles, Open MPI) */
    intptr_t comm;        /* MPI_Comm */
    intptr_t op_sum;      /* MPI_SUM */
    intptr_t dt_float;    /* MPI_FLOAT */
    intptr_t dt_double;   /* MPI_DOUBLE */
    intptr_t in_place;    /* MPI_IN_PLACE */
    int error;            /* the first non-zero MPI return code, or 0 */
} fm_reducer;

/* rc kept in r->error when it is the first failure; returns rc. */
static inline int fm_reduce_error(fm_reducer* r, int rc) {
    if (rc != 0 && r->error == 0)
        r->error = rc;
    return rc;
}

/* In-place sum over all ranks of buf[0:n] (doubles when is_double, else floats), in slices
 * of at most 2^30 elements (MPI counts are int). Returns 0, or the MPI error code (kept in
 * r->error). Contract: every rank calls it with the same n and type, in the same order. */
static inline int fm_allreduce_sum(fm_reducer* r, void* buf, int64_t n, int is_double) {
    const int64_t slice = (int64_t)1 << 30;
    char* p = (char*)buf;
    size_t size = is_double ? sizeof(double) : sizeof(float);
    intptr_t dt = is_double ? r->dt_double : r->dt_float;
    int rc = 0;
    while (n > 0 && rc == 0) {
        int count = (int)(n < slice ? n : slice);
        if (r->handle_bytes == 4)
            rc = ((fm_allreduce_int)r->allreduce)((const void*)r->in_place, p, count, (int)dt,
                                                  (int)r->op_sum, (int)r->comm);
        else
            rc = ((fm_allreduce_ptr)r->allreduce)((const void*)r->in_place, p, count,
                                                  (void*)dt, (void*)r->op_sum,
                                                  (void*)r->comm);
        p += (size_t)count * size;
        n -= count;
    }
    return fm_reduce_error(r, rc);
}

/* recv[0:counts[rank]] = the sum over all ranks of their send[displs[rank]:...], the shards
 * laid end to end in rank order (counts are int: the caller keeps the arena below 2^31
 * elements). send and recv must not overlap. Returns 0 or the MPI error code. */
static inline int fm_reduce_scatter_sum(fm_reducer* r, const void* send, void* recv,
                                        const int* counts, int is_double) {
    intptr_t dt = is_double ? r->dt_double : r->dt_float;
    int rc;
    if (r->handle_bytes == 4)
        rc = ((fm_reduce_scatter_int)r->reduce_scatter)(send, recv, counts, (int)dt,
                                                        (int)r->op_sum, (int)r->comm);
    else
        rc = ((fm_reduce_scatter_ptr)r->reduce_scatter)(send, recv, counts, (void*)dt,
                                                        (void*)r->op_sum, (void*)r->comm);
    return fm_reduce_error(r, rc);
}

/* In place: every rank's buf[displs[k]:displs[k] + counts[k]] copied from rank k. Returns 0
 * or the MPI error code. */
static inline int fm_allgatherv(fm_reducer* r, void* buf, const int* counts, const int* displs,
                                int is_double) {
    intptr_t dt = is_double ? r->dt_double : r->dt_float;
    int rc;
    if (r->handle_bytes == 4)
        rc = ((fm_allgatherv_int)r->allgatherv)((const void*)r->in_place, 0, (int)dt, buf,
                                                counts, displs, (int)dt, (int)r->comm);
    else
        rc = ((fm_allgatherv_ptr)r->allgatherv)((const void*)r->in_place, 0, (void*)dt, buf,
                                                counts, displs, (void*)dt, (void*)r->comm);
    return fm_reduce_error(r, rc);
}

#endif
