/* The data-parallel reduction of the training loop: MPI_Allreduce(MPI_SUM) of the gradient
 * arena and of the step's loss, called through a function pointer taken at run time from
 * the MPI library that mpi4py loaded. Nothing MPI is needed to build fastmlp.
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
 * non-finite check decides alike everywhere without a separate flag.
 */
#ifndef FASTMLP_REDUCE_H
#define FASTMLP_REDUCE_H

#include <stdint.h>

typedef int (*fm_allreduce_int)(const void*, void*, int, int, int, int);
typedef int (*fm_allreduce_ptr)(const void*, void*, int, void*, void*, void*);

typedef struct {
    void* allreduce;      /* MPI_Allreduce of the loaded library, or NULL: no reduction */
    int handle_bytes;     /* 4 (MPICH ABI) or 8 (pointer handles, Open MPI) */
    intptr_t comm;        /* MPI_Comm */
    intptr_t op_sum;      /* MPI_SUM */
    intptr_t dt_float;    /* MPI_FLOAT */
    intptr_t dt_double;   /* MPI_DOUBLE */
    intptr_t in_place;    /* MPI_IN_PLACE */
    int error;            /* the first non-zero MPI return code, or 0 */
} fm_reducer;

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
    if (rc != 0 && r->error == 0)
        r->error = rc;
    return rc;
}

#endif
