# Normalization kernels: BatchNorm (torch.nn.BatchNorm1d) and LayerNorm (torch.nn.LayerNorm
# over the last dim), float32 and float64, over row-major (B, n) blocks.
#
# Shared contract:
# - Sizes, eps and momentum travel in a NormArgs; statistics are accumulated in double.
# - gamma / beta may be NULL (no scale / no shift); dgamma / dbeta / dX may be NULL (skipped).
# - dgamma and dbeta ACCUMULATE (+=) into the caller's gradient arena; everything else is
#   overwritten. Nothing is allocated; every pointer covers the sizes stated per kernel.
# - Outputs are written element by element after the statistics are known, so A and xhat may
#   alias X, and dX may alias dA. A may alias xhat only when gamma and beta are both NULL
#   (the backward needs xhat).
# - BatchNorm keeps its state in one block ``stats`` of 3n entries:
#   [running_mean | running_var | inv_std], where inv_std is the 1/sqrt(var + eps) that the
#   last forward used (batch variance in training, running variance in eval) — the backward
#   reads it from stats + 2n.
from cython cimport floating
from libc.math cimport sqrt
from libc.string cimport memcpy

cdef enum:
    NORM_BLOCK = 64          # columns per block of double accumulators (on the stack)

ctypedef struct NormArgs:
    Py_ssize_t B             # rows (batch size); >= 2 for batchnorm_forward_train
    Py_ssize_t n             # features (row width)
    double eps               # added to the variance under the square root (> 0)
    double momentum          # BatchNorm: running = (1 - m) running + m batch, this step's m
                             # (torch's momentum=None is m = 1 / num_batches_tracked)

ctypedef struct ColBlock:    # double accumulators for columns j0 ... j0 + w - 1
    Py_ssize_t j0
    Py_ssize_t w
    double u[NORM_BLOCK]     # forward: mean;    backward: Σ_rows dA
    double v[NORM_BLOCK]     # forward: variance, then inv_std; backward: Σ_rows dA·xhat


# --- helpers (branch-free inner loops over locals, so that GCC vectorizes them) -------------

cdef inline double _row_sum(const floating* x, Py_ssize_t n) noexcept nogil:
    """Σ_j x_j in double, four independent partial sums (no -ffast-math needed)."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t j = 0
    while j + 4 <= n:
        s0 += x[j]
        s1 += x[j + 1]
        s2 += x[j + 2]
        s3 += x[j + 3]
        j += 4
    while j < n:
        s0 += x[j]
        j += 1
    return (s0 + s1) + (s2 + s3)


cdef inline double _row_sq_dev(const floating* x, double mean, Py_ssize_t n) noexcept nogil:
    """Σ_j (x_j − mean)² in double, four independent partial sums."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, d0, d1, d2, d3
    cdef Py_ssize_t j = 0
    while j + 4 <= n:
        d0, d1, d2, d3 = x[j] - mean, x[j + 1] - mean, x[j + 2] - mean, x[j + 3] - mean
        s0 += d0 * d0
        s1 += d1 * d1
        s2 += d2 * d2
        s3 += d3 * d3
        j += 4
    while j < n:
        d0 = x[j] - mean
        s0 += d0 * d0
        j += 1
    return (s0 + s1) + (s2 + s3)


cdef inline void _affine_row(floating* A, const floating* t, const floating* gamma,
                             const floating* beta, Py_ssize_t w) noexcept nogil:
    """A = gamma·t + beta over w entries (NULL gamma: 1, NULL beta: 0); A may be t."""
    cdef Py_ssize_t k
    if gamma != NULL and beta != NULL:
        for k in range(w):
            A[k] = gamma[k] * t[k] + beta[k]
    elif gamma != NULL:
        for k in range(w):
            A[k] = gamma[k] * t[k]
    elif beta != NULL:
        for k in range(w):
            A[k] = t[k] + beta[k]
    elif A != t:
        memcpy(A, t, w * sizeof(floating))


cdef inline void _col_mean_var(const NormArgs* a, ColBlock* c, const floating* X) noexcept nogil:
    """c.u = column means, c.v = biased column variances (two passes, in double)."""
    cdef Py_ssize_t i, k, B = a.B, n = a.n, j0 = c.j0, w = c.w
    cdef double* u = c.u
    cdef double* v = c.v
    cdef const floating* x
    cdef double d
    for k in range(w):
        u[k] = 0
        v[k] = 0
    for i in range(B):
        x = X + i * n + j0
        for k in range(w):
            u[k] += x[k]
    for k in range(w):
        u[k] /= B
    for i in range(B):
        x = X + i * n + j0
        for k in range(w):
            d = x[k] - u[k]
            v[k] += d * d
    for k in range(w):
        v[k] /= B


cdef inline void _col_grad_sums(const NormArgs* a, ColBlock* c, const floating* dA,
                                const floating* xhat) noexcept nogil:
    """c.u = Σ_rows dA, c.v = Σ_rows dA·xhat (in double; c.v = 0 when xhat is NULL)."""
    cdef Py_ssize_t i, k, B = a.B, n = a.n, j0 = c.j0, w = c.w
    cdef double* u = c.u
    cdef double* v = c.v
    cdef const floating* g
    cdef const floating* x
    for k in range(w):
        u[k] = 0
        v[k] = 0
    for i in range(B):
        g = dA + i * n + j0
        for k in range(w):
            u[k] += g[k]
        if xhat != NULL:
            x = xhat + i * n + j0
            for k in range(w):
                v[k] += <double> g[k] * x[k]


cdef inline void _col_affine_grads(const ColBlock* c, floating* dgamma,
                                   floating* dbeta) noexcept nogil:
    """dgamma += c.v, dbeta += c.u over the block's columns (each when not NULL)."""
    cdef Py_ssize_t k
    if dgamma != NULL:
        for k in range(c.w):
            dgamma[c.j0 + k] += <floating> c.v[k]
    if dbeta != NULL:
        for k in range(c.w):
            dbeta[c.j0 + k] += <floating> c.u[k]


cdef inline void _bn_apply(const NormArgs* a, const ColBlock* c, const floating* X,
                           const floating* gamma, const floating* beta, floating* xhat,
                           floating* A) noexcept nogil:
    """Over the block's columns: xhat = (x − c.u)·c.v (when not NULL), A = γ xhat + β."""
    cdef Py_ssize_t i, k, n = a.n, j0 = c.j0, w = c.w
    cdef double mean[NORM_BLOCK]
    cdef double inv[NORM_BLOCK]
    cdef const floating* g = gamma + j0 if gamma != NULL else NULL
    cdef const floating* b = beta + j0 if beta != NULL else NULL
    cdef const floating* x
    cdef floating* t
    memcpy(mean, c.u, w * sizeof(double))      # locals: provably not aliased by the stores
    memcpy(inv, c.v, w * sizeof(double))
    for i in range(a.B):
        x = X + i * n + j0
        t = (xhat if xhat != NULL else A) + i * n + j0
        for k in range(w):
            t[k] = <floating> ((x[k] - mean[k]) * inv[k])
        _affine_row(A + i * n + j0, t, g, b, w)


# --- BatchNorm ---------------------------------------------------------------------------------

cdef inline void batchnorm_forward_train(const NormArgs* a, const floating* X,
                                         const floating* gamma, const floating* beta,
                                         floating* stats, floating* xhat,
                                         floating* A) noexcept nogil:
    """Batch mean/var per feature; xhat, A = γ xhat + β; stats updated (running, inv_std).
    Contract: a.B >= 2; X, xhat, A: B×n; gamma, beta: n or NULL; stats: 3n (read and written);
    xhat may be NULL only when no backward follows."""
    cdef ColBlock c
    cdef Py_ssize_t k, j, n = a.n
    cdef double m = a.momentum, unbias = <double> a.B / (a.B - 1)
    c.j0 = 0
    while c.j0 < n:
        c.w = NORM_BLOCK if n - c.j0 > NORM_BLOCK else n - c.j0
        _col_mean_var(a, &c, X)
        for k in range(c.w):
            j = c.j0 + k
            stats[j] = <floating> ((1 - m) * stats[j] + m * c.u[k])
            stats[n + j] = <floating> ((1 - m) * stats[n + j] + m * unbias * c.v[k])
            c.v[k] = 1.0 / sqrt(c.v[k] + a.eps)
            stats[2 * n + j] = <floating> c.v[k]
        _bn_apply(a, &c, X, gamma, beta, xhat, A)
        c.j0 += NORM_BLOCK


cdef inline void batchnorm_forward_eval(const NormArgs* a, const floating* X,
                                        const floating* gamma, const floating* beta,
                                        floating* stats, floating* xhat,
                                        floating* A) noexcept nogil:
    """xhat = (x − running_mean)/sqrt(running_var + eps), A = γ xhat + β; stores that inv_std.
    Contract: B >= 0; sizes as in training; only stats[2n:3n] is written; xhat may be NULL
    (inference only)."""
    cdef ColBlock c
    cdef Py_ssize_t k, j, n = a.n
    c.j0 = 0
    while c.j0 < n:
        c.w = NORM_BLOCK if n - c.j0 > NORM_BLOCK else n - c.j0
        for k in range(c.w):
            j = c.j0 + k
            c.u[k] = stats[j]
            c.v[k] = 1.0 / sqrt(<double> stats[n + j] + a.eps)
            stats[2 * n + j] = <floating> c.v[k]
        _bn_apply(a, &c, X, gamma, beta, xhat, A)
        c.j0 += NORM_BLOCK


cdef inline void batchnorm_backward(const NormArgs* a, const floating* xhat,
                                    const floating* inv_std, const floating* gamma,
                                    const floating* dA, floating* dgamma, floating* dbeta,
                                    floating* dX) noexcept nogil:
    """After forward_train: dγ += Σ dA·xhat, dβ += Σ dA,
    dX = γ·inv_std·(dA − mean_rows(dA) − xhat·mean_rows(dA·xhat)). inv_std = stats + 2n."""
    cdef ColBlock c
    cdef Py_ssize_t i, k, r, B = a.B, n = a.n
    cdef double sc[NORM_BLOCK]
    cdef double mu[NORM_BLOCK]
    cdef double mv[NORM_BLOCK]
    c.j0 = 0
    while c.j0 < n:
        c.w = NORM_BLOCK if n - c.j0 > NORM_BLOCK else n - c.j0
        _col_grad_sums(a, &c, dA, xhat)
        _col_affine_grads(&c, dgamma, dbeta)
        if dX != NULL:
            for k in range(c.w):
                sc[k] = inv_std[c.j0 + k] * (<double> gamma[c.j0 + k] if gamma != NULL else 1.0)
                mu[k] = c.u[k] / B
                mv[k] = c.v[k] / B
            for i in range(B):
                r = i * n + c.j0
                for k in range(c.w):
                    dX[r + k] = <floating> (sc[k] * (dA[r + k] - mu[k] - xhat[r + k] * mv[k]))
        c.j0 += NORM_BLOCK


cdef inline void batchnorm_backward_eval(const NormArgs* a, const floating* xhat,
                                         const floating* inv_std, const floating* gamma,
                                         const floating* dA, floating* dgamma,
                                         floating* dbeta, floating* dX) noexcept nogil:
    """After forward_eval (running stats are constants): dγ += Σ dA·xhat, dβ += Σ dA,
    dX = γ·inv_std·dA. xhat may be NULL when dgamma is NULL."""
    cdef Py_ssize_t i, j, r, n = a.n
    cdef ColBlock c
    c.j0 = 0
    while c.j0 < n and (dgamma != NULL or dbeta != NULL):    # before dX: dX may alias dA
        c.w = NORM_BLOCK if n - c.j0 > NORM_BLOCK else n - c.j0
        _col_grad_sums(a, &c, dA, xhat)
        _col_affine_grads(&c, dgamma, dbeta)
        c.j0 += NORM_BLOCK
    if dX == NULL:
        return
    for i in range(a.B):
        r = i * n
        if gamma != NULL:
            for j in range(n):
                dX[r + j] = <floating> (<double> gamma[j] * inv_std[j] * dA[r + j])
        else:
            for j in range(n):
                dX[r + j] = <floating> (<double> inv_std[j] * dA[r + j])


# --- LayerNorm ---------------------------------------------------------------------------------

cdef inline void layernorm_forward(const NormArgs* a, const floating* X,
                                   const floating* gamma, const floating* beta,
                                   floating* inv_std, floating* xhat,
                                   floating* A) noexcept nogil:
    """Per row: mean, biased var (double); inv_std[i] = 1/sqrt(var + eps); xhat; A = γ xhat + β.
    Contract: X, xhat, A: B×n, n >= 1; inv_std: B (a workspace column); inv_std, xhat may be
    NULL (inference only)."""
    cdef Py_ssize_t i, j, n = a.n
    cdef const floating* x
    cdef floating* t
    cdef double mean, inv
    for i in range(a.B):
        x = X + i * n
        mean = _row_sum(x, n) / n
        inv = 1.0 / sqrt(_row_sq_dev(x, mean, n) / n + a.eps)
        if inv_std != NULL:
            inv_std[i] = <floating> inv
        t = (xhat if xhat != NULL else A) + i * n
        for j in range(n):
            t[j] = <floating> ((x[j] - mean) * inv)
        _affine_row(A + i * n, t, gamma, beta, n)


cdef inline double _row_dot(const floating* x, const floating* y, const floating* z,
                            Py_ssize_t n) noexcept nogil:
    """Σ_j x_j·y_j (·z_j when z is not NULL) in double, four independent partial sums."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t j = 0
    if z == NULL:
        while j + 4 <= n:
            s0 += <double> x[j] * y[j]
            s1 += <double> x[j + 1] * y[j + 1]
            s2 += <double> x[j + 2] * y[j + 2]
            s3 += <double> x[j + 3] * y[j + 3]
            j += 4
    else:
        while j + 4 <= n:
            s0 += <double> x[j] * y[j] * z[j]
            s1 += <double> x[j + 1] * y[j + 1] * z[j + 1]
            s2 += <double> x[j + 2] * y[j + 2] * z[j + 2]
            s3 += <double> x[j + 3] * y[j + 3] * z[j + 3]
            j += 4
    while j < n:
        s0 += <double> x[j] * y[j] * (z[j] if z != NULL else 1)
        j += 1
    return (s0 + s1) + (s2 + s3)


cdef inline void layernorm_backward(const NormArgs* a, const floating* xhat,
                                    const floating* inv_std, const floating* gamma,
                                    const floating* dA, floating* dgamma, floating* dbeta,
                                    floating* dX) noexcept nogil:
    """dγ += Σ_rows dA·xhat, dβ += Σ_rows dA; per row with g = dA·γ:
    dX = inv_std·(g − mean_j(g) − xhat·mean_j(g·xhat)). inv_std: B entries from the forward."""
    cdef Py_ssize_t i, j, r, n = a.n
    cdef double inv, m0, m1
    cdef ColBlock c
    c.j0 = 0
    while c.j0 < n and (dgamma != NULL or dbeta != NULL):    # before dX: dX may alias dA
        c.w = NORM_BLOCK if n - c.j0 > NORM_BLOCK else n - c.j0
        _col_grad_sums(a, &c, dA, xhat)
        _col_affine_grads(&c, dgamma, dbeta)
        c.j0 += NORM_BLOCK
    if dX == NULL:
        return
    for i in range(a.B):
        r = i * n
        if gamma != NULL:           # m0 = mean_j(dA·γ), m1 = mean_j(dA·γ·xhat)
            m0 = _row_dot(dA + r, gamma, <const floating*> NULL, n) / n
            m1 = _row_dot(dA + r, gamma, xhat + r, n) / n
        else:
            m0 = _row_sum(dA + r, n) / n
            m1 = _row_dot(dA + r, xhat + r, <const floating*> NULL, n) / n
        inv = inv_std[i]
        if gamma != NULL:
            for j in range(n):
                dX[r + j] = <floating> (inv * (<double> dA[r + j] * gamma[j] - m0
                                               - xhat[r + j] * m1))
        else:
            for j in range(n):
                dX[r + j] = <floating> (inv * (dA[r + j] - m0 - xhat[r + j] * m1))
