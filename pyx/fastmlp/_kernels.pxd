# Layer kernels of the plan executor: `cdef inline`, so _plan.pyx compiles them in place.
# Each takes pointers and sizes; B is the batch size, X the layer input (B, n_in).
from cython cimport floating
from libc.math cimport exp, expf
from libc.string cimport memcpy, memset

from fastmlp._activations cimport (act_forward, act_backward, fm_act_backward_f32,
                                  fm_act_backward_f64, FM_IDENTITY, FM_RELU)
from fastmlp._blas cimport (gemm, gemm_epi, gemm_epi_fn, gemm_epi_tile, fm_gemm_tile_epi,
                            num_threads, pool_run, task_fn)
from fastmlp._plan cimport LayerDesc, K_MAXOUT, F_ACCUM_W, F_TRANS_W

cdef extern from "fastmlp/epilogue.h" nogil:
    ctypedef struct fm_act_epi:
        int act
        double alpha
        const void* bias
        void* z
        void* a
        Py_ssize_t ld
    ctypedef struct fm_finite_epi:
        const void* c
        Py_ssize_t ld
        int* bad
    bint fm_act_exact(int act)
    void fm_act_epi_f32(void* ctx, Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t c0,
                        Py_ssize_t cols)
    void fm_act_epi_f64(void* ctx, Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t c0,
                        Py_ssize_t cols)
    void fm_finite_epi_f32(void* ctx, Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t c0,
                           Py_ssize_t cols)
    void fm_finite_epi_f64(void* ctx, Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t c0,
                           Py_ssize_t cols)
    void fm_col_sum_f32(float* db, const float* dz, Py_ssize_t rows, Py_ssize_t cols,
                        bint fresh)
    void fm_col_sum_f64(double* db, const double* dz, Py_ssize_t rows, Py_ssize_t cols,
                        bint fresh)

cdef extern from "fastmlp/rng.h" nogil:
    double fm_uniform(unsigned long long seed, unsigned int stream, unsigned long long step,
                      unsigned long long i)
    double fm_normal(unsigned long long seed, unsigned int stream, unsigned long long step,
                     unsigned long long i)

# --- elementwise passes in fixed chunks on the core's threads --------------------------------

# Elements per chunk of a parallel elementwise pass: a multiple of every vector width, and
# fixed (not derived from the thread count), so the same chunks run whatever the count: the
# result never depends on it, even for derivatives with exp whose vector and scalar forms
# may round differently at a chunk's edge.
cdef enum:
    ACT_CHUNK = 16384

ctypedef struct ActBackwardJob:
    int act
    double alpha
    const void* z
    const void* a
    const void* da
    void* dz
    Py_ssize_t n
    bint f32


cdef inline void _act_backward_chunk(void* ctx, Py_ssize_t i, int slot) noexcept nogil:
    cdef const ActBackwardJob* j = <const ActBackwardJob*> ctx
    cdef Py_ssize_t lo = i * ACT_CHUNK, n = min(<Py_ssize_t> ACT_CHUNK, j.n - lo)
    if j.f32:
        fm_act_backward_f32(j.act, <float> j.alpha, <const float*> j.z + lo,
                            <const float*> j.a + lo, <const float*> j.da + lo,
                            <float*> j.dz + lo, n)
    else:
        fm_act_backward_f64(j.act, j.alpha, <const double*> j.z + lo, <const double*> j.a + lo,
                            <const double*> j.da + lo, <double*> j.dz + lo, n)


cdef inline void act_backward_par(int act, double alpha, const floating* z, const floating* a,
                                  const floating* da, floating* dz,
                                  Py_ssize_t n) noexcept nogil:
    """dz = da * act'(z) over n elements (dz may alias da), as act_backward, in chunks of
    ACT_CHUNK elements claimed by the core's threads."""
    cdef ActBackwardJob job
    cdef Py_ssize_t chunks = (n + ACT_CHUNK - 1) // ACT_CHUNK
    if chunks <= 1:
        act_backward(act, alpha, z, a, da, dz, n)
        return
    job.act, job.alpha, job.z, job.a, job.da, job.dz = act, alpha, z, a, da, dz
    job.n, job.f32 = n, floating is float
    pool_run(num_threads(), chunks, <task_fn> _act_backward_chunk, &job)


ctypedef struct ActForwardJob:
    int act
    double alpha
    void* z
    const void* bias
    void* a
    Py_ssize_t rows, cols, rows_per_chunk
    bint f32


cdef inline void _act_forward_chunk(void* ctx, Py_ssize_t i, int slot) noexcept nogil:
    cdef const ActForwardJob* j = <const ActForwardJob*> ctx
    cdef Py_ssize_t r0 = i * j.rows_per_chunk, at = r0 * j.cols
    cdef Py_ssize_t rows = min(j.rows_per_chunk, j.rows - r0)
    if j.f32:
        act_forward(j.act, j.alpha, <float*> j.z + at, <const float*> j.bias,
                    <float*> j.a + at, rows, j.cols)
    else:
        act_forward(j.act, j.alpha, <double*> j.z + at, <const double*> j.bias,
                    <double*> j.a + at, rows, j.cols)


cdef inline void act_forward_par(int act, double alpha, floating* z, const floating* bias,
                                 floating* a, Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    """act_forward (z[i, :] += bias, a = act(z); a may alias z) in chunks of whole rows
    claimed by the core's threads: each row is computed as the serial call computes it."""
    cdef ActForwardJob job
    cdef Py_ssize_t per = max(1, ACT_CHUNK // max(cols, 1))
    cdef Py_ssize_t chunks = (rows + per - 1) // per
    if chunks <= 1:
        act_forward(act, alpha, z, bias, a, rows, cols)
        return
    job.act, job.alpha, job.z, job.bias, job.a = act, alpha, z, bias, a
    job.rows, job.cols, job.rows_per_chunk, job.f32 = rows, cols, per, floating is float
    pool_run(num_threads(), chunks, <task_fn> _act_forward_chunk, &job)


cdef inline void dense_forward(const LayerDesc* d, const floating* X, const floating* P,
                               floating* Z, floating* A, Py_ssize_t B,
                               int* x_check=NULL) noexcept nogil:
    """Z = X W (+ b), A = act(Z); Z and A may be one buffer. x_check (or NULL): int[2];
    x_check[0] is set when X holds a NaN or inf and x_check[1] when that was checked, by
    the product's tiles as they first read each block of X (not on the other paths: then
    x_check[1] stays as it was and the caller checks X). With F_TRANS_W the
    arena holds W transposed, (n_cols, n_in): a tied layer reusing another's weights.
    K_MAXOUT: Z = X W (+ b) only. Bias and an exact activation (fm_act_exact) are applied
    by the product's chunks as they finish (epilogue.h); bias and ReLU by its tiles as they
    store (gemm.h's fm_gemm_tile_epi; the same bits) where it tiles; the others in a pass
    after it."""
    cdef Py_ssize_t n_cols = d.n_out * (d.pieces if d.kind == K_MAXOUT else 1)
    cdef const floating* b = P + d.b_off if d.b_off >= 0 else NULL
    cdef int act = FM_IDENTITY if d.kind == K_MAXOUT else d.act
    cdef floating* out = Z if d.kind == K_MAXOUT else A
    cdef fm_act_epi epi
    cdef gemm_epi_fn fn = NULL
    cdef fm_gemm_tile_epi tile
    cdef fm_gemm_tile_epi* tile_epi = NULL
    if fm_act_exact(act):
        epi.act, epi.alpha, epi.bias, epi.ld, epi.z, epi.a = act, d.alpha, b, n_cols, Z, out
        fn = <gemm_epi_fn> (fm_act_epi_f32 if floating is float else fm_act_epi_f64)
        if act == FM_IDENTITY or act == FM_RELU:     # Z is A only for the identity
            tile.bias, tile.a, tile.relu = b, out, act == FM_RELU
            tile.a_bad = x_check
            tile.a_checked = x_check + 1 if x_check != NULL else NULL
            tile_epi = &tile
    if d.flags & F_TRANS_W:
        gemm_epi_tile(False, True, <int> B, <int> n_cols, <int> d.n_in, <floating> 1, X,
                      <int> d.n_in, P + d.w_off, <int> d.n_in, <floating> 0, Z, <int> n_cols,
                      fn, &epi, tile_epi)
    else:
        gemm_epi_tile(False, False, <int> B, <int> n_cols, <int> d.n_in, <floating> 1, X,
                      <int> d.n_in, P + d.w_off, <int> n_cols, <floating> 0, Z, <int> n_cols,
                      fn, &epi, tile_epi)
    if fn == NULL:
        act_forward_par(act, d.alpha, Z, b, out, B, n_cols)


cdef inline void dense_backward(const LayerDesc* d, const floating* X, const floating* P,
                                floating* G, floating* dZ, floating* dX, Py_ssize_t B,
                                bint fresh, int* bad) noexcept nogil:
    """From dZ (B, n_cols): dW += Xᵀ dZ, db += Σ_rows dZ, dX = dZ Wᵀ (when dX != NULL).
    With ``fresh`` the gradients are written instead of added (no zeroing pass needed),
    except where F_ACCUM_W marks a W slot another use wrote first (tied weights).
    With ``bad`` (not NULL), *bad is set when dW or db holds a NaN or inf: dW checked by
    the product's chunks as they finish (epilogue.h), so no pass over the arena is needed."""
    cdef Py_ssize_t n_cols = d.n_out * (d.pieces if d.kind == K_MAXOUT else 1)
    cdef floating* db
    cdef bint tw = d.flags & F_TRANS_W
    cdef floating beta = 0 if fresh and not (d.flags & F_ACCUM_W) else 1
    cdef fm_finite_epi check
    cdef gemm_epi_fn fn = NULL
    if bad != NULL:
        check.c, check.bad = G + d.w_off, bad
        check.ld = d.n_in if tw else n_cols
        fn = <gemm_epi_fn> (fm_finite_epi_f32 if floating is float else fm_finite_epi_f64)
    if tw:   # the slot holds Wᵀ (n_cols, n_in): it receives dZᵀ X
        gemm_epi(True, False, <int> n_cols, <int> d.n_in, <int> B, <floating> 1, dZ,
                 <int> n_cols, X, <int> d.n_in, beta, G + d.w_off, <int> d.n_in, fn, &check)
    else:
        gemm_epi(True, False, <int> d.n_in, <int> n_cols, <int> B, <floating> 1, X,
                 <int> d.n_in, dZ, <int> n_cols, beta, G + d.w_off, <int> n_cols, fn, &check)
    if d.b_off >= 0:
        db = G + d.b_off
        if floating is float:
            fm_col_sum_f32(db, dZ, B, n_cols, fresh)
        else:
            fm_col_sum_f64(db, dZ, B, n_cols, fresh)
        if fn != NULL:                 # the same check over db, one row
            check.c, check.ld = db, n_cols
            fn(&check, 0, 1, 0, n_cols)
    if dX != NULL:
        gemm(False, not tw, <int> B, <int> d.n_in, <int> n_cols, <floating> 1, dZ,
             <int> n_cols, P + d.w_off, <int> (d.n_in if tw else n_cols), <floating> 0, dX,
             <int> d.n_in)


cdef inline void maxout_reduce(const floating* Z, floating* A, Py_ssize_t B, Py_ssize_t n_out,
                               Py_ssize_t pieces) noexcept nogil:
    """A[i, j] = max_k Z[i, j * pieces + k]."""
    cdef Py_ssize_t i, j, k
    cdef floating best
    cdef const floating* z
    for i in range(B):
        for j in range(n_out):
            z = Z + (i * n_out + j) * pieces
            best = z[0]
            for k in range(1, pieces):
                if z[k] > best:
                    best = z[k]
            A[i * n_out + j] = best


cdef inline void maxout_scatter(const floating* Z, const floating* dA, floating* dZ,
                                Py_ssize_t B, Py_ssize_t n_out, Py_ssize_t pieces) noexcept nogil:
    """dZ gets dA at each unit's winning piece (the first one on ties), 0 elsewhere."""
    cdef Py_ssize_t r, k, arg
    cdef const floating* z
    memset(dZ, 0, B * n_out * pieces * sizeof(floating))
    for r in range(B * n_out):
        z = Z + r * pieces
        arg = 0
        for k in range(1, pieces):
            if z[k] > z[arg]:
                arg = k
        dZ[r * pieces + arg] = dA[r]


cdef inline void prelu_forward(const floating* X, const floating* slope, Py_ssize_t n_slopes,
                               floating* A, Py_ssize_t B, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating x
    for i in range(B):
        for j in range(n):
            x = X[i * n + j]
            A[i * n + j] = x if x > 0 else slope[j if n_slopes > 1 else 0] * x


cdef inline void prelu_backward(const floating* X, const floating* slope, floating* dslope,
                                Py_ssize_t n_slopes, const floating* dA, floating* dX,
                                Py_ssize_t B, Py_ssize_t n) noexcept nogil:
    """dslope += Σ dA·x over x <= 0; dX = dA·(1 if x > 0 else slope) when dX != NULL."""
    cdef Py_ssize_t i, j, s
    cdef floating x
    for i in range(B):
        for j in range(n):
            x = X[i * n + j]
            s = j if n_slopes > 1 else 0
            if x <= 0:
                dslope[s] += dA[i * n + j] * x
            if dX != NULL:
                dX[i * n + j] = dA[i * n + j] if x > 0 else slope[s] * dA[i * n + j]


cdef inline void softmax_forward(const floating* X, floating* A, Py_ssize_t B,
                                 Py_ssize_t n) noexcept nogil:
    """Row-wise softmax, shifted by the row max so exp never overflows."""
    cdef Py_ssize_t i, j
    cdef floating m, s
    cdef const floating* x
    cdef floating* a
    for i in range(B):
        x = X + i * n
        a = A + i * n
        m = x[0]
        for j in range(1, n):
            if x[j] > m:
                m = x[j]
        s = 0
        for j in range(n):
            a[j] = expf(x[j] - m) if floating is float else exp(x[j] - m)
            s += a[j]
        for j in range(n):
            a[j] /= s


cdef inline void softmax_backward(const floating* S, const floating* dA, floating* dX,
                                  Py_ssize_t B, Py_ssize_t n) noexcept nogil:
    """dX = S ⊙ (dA − Σ_j dA_j S_j) row-wise."""
    cdef Py_ssize_t i, j
    cdef floating dot
    for i in range(B):
        dot = 0
        for j in range(n):
            dot += dA[i * n + j] * S[i * n + j]
        for j in range(n):
            dX[i * n + j] = S[i * n + j] * (dA[i * n + j] - dot)




cdef inline void dropout_forward(const floating* X, floating* M, floating* A, Py_ssize_t n,
                                 double p, unsigned long long seed, unsigned int stream,
                                 unsigned long long step, unsigned long long first) noexcept nogil:
    """Inverted dropout over n elements: M = 1/(1-p) where u >= p else 0, A = X·M.
    u is the counter-based uniform of (seed, stream, step, first + element): ``first`` is
    the element key of X[0] (a rank's slice of a global batch). Contract: 0 <= p < 1."""
    cdef Py_ssize_t i
    cdef floating keep = <floating> (1.0 / (1.0 - p))
    for i in range(n):
        M[i] = keep if fm_uniform(seed, stream, step, first + i) >= p else 0
        A[i] = X[i] * M[i]


cdef inline void noise_forward(const floating* X, floating* A, Py_ssize_t n, double std,
                               unsigned long long seed, unsigned int stream,
                               unsigned long long step, unsigned long long first) noexcept nogil:
    """A = X + std·N(0, 1), the normal draw counter-based as for dropout."""
    cdef Py_ssize_t i
    for i in range(n):
        A[i] = X[i] + <floating> (std * fm_normal(seed, stream, step, first + i))


cdef inline void multiply(const floating* a, const floating* b, floating* out,
                          Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = a[i] * b[i]


cdef inline void add(const floating* a, const floating* b, floating* out,
                     Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = a[i] + b[i]
