# Ops-table entries of the kinds with parameters (see _layer_ops.pxi for the contract).

# --- K_DENSE: Z = X W + b, A = act(Z) --------------------------------------------------------

cdef void _dense_fwd(const Exec* e, const LayerDesc* d, const floating* X,
                     floating* A) noexcept nogil:
    """In a prediction (nothing reads Z after it) the sums go to A's block and the
    activation is applied there in place: one write of the layer's output instead of two
    (the predict chain in C: 3.8 % for writing Z and A against 0.6 % in place)."""
    cdef floating* Z = A if e.predicting else block(e, d.z_col, <floating*> e.work)
    dense_forward(d, X, <floating*> e.params, Z, A, e.batch,
                  e.input_check if d == e.layers else NULL)


cdef void _dense_bwd(const Exec* e, const LayerDesc* d, const floating* X, floating* dA,
                     floating* dX) noexcept nogil:
    cdef floating* W = <floating*> e.work
    if d.act != FM_IDENTITY:
        act_backward_par(d.act, d.alpha, block(e, d.z_col, W), block(e, d.a_col, W), dA, dA,
                         e.batch * d.n_out)
    dense_backward(d, X, <floating*> e.params, <floating*> e.grads, dA, dX, e.batch,
                   e.fresh_grads, e.grad_bad)


cdef void _dense_sizes(const LayerDesc* d, Sizes* s) noexcept nogil:
    s.w, s.b, s.state = d.n_in * d.n_out, d.n_out, 0
    s.grad_cols = max(d.n_in, d.n_out)


cdef Py_ssize_t _dense_layout(LayerDesc* d, Py_ssize_t col) noexcept nogil:
    d.z_col = col
    if d.act == FM_IDENTITY:     # Z is A
        d.a_col = col
        return col + d.n_out
    d.a_col = col + d.n_out
    return col + 2 * d.n_out


cdef int _act_read(LayerDesc* d, dict spec) except -1:
    """The activation fields of K_DENSE and K_ACT."""
    d.act = spec.pop("act", FM_IDENTITY)
    d.alpha = spec.pop("alpha", 0.0)
    if d.act < 0 or d.act >= FM_N_ACT:
        raise ValueError(f"unknown activation code {d.act}")
    return 0


# --- K_MAXOUT: Z = X W + b (n_out * pieces columns), A = max over each unit's pieces --------

cdef void _maxout_fwd(const Exec* e, const LayerDesc* d, const floating* X,
                      floating* A) noexcept nogil:
    cdef floating* Z = block(e, d.z_col, <floating*> e.work)
    dense_forward(d, X, <floating*> e.params, Z, A, e.batch)
    maxout_reduce(Z, A, e.batch, d.n_out, d.pieces)


cdef void _maxout_bwd(const Exec* e, const LayerDesc* d, const floating* X, floating* dA,
                      floating* dX) noexcept nogil:
    """dZ goes to the third scratch buffer (the executor's two others hold dA and dX)."""
    cdef floating* dZ = <floating*> e.scratch + 2 * e.batch * e.scratch_cols
    maxout_scatter(block(e, d.z_col, <floating*> e.work), dA, dZ, e.batch, d.n_out, d.pieces)
    dense_backward(d, X, <floating*> e.params, <floating*> e.grads, dZ, dX, e.batch,
                   e.fresh_grads, e.grad_bad)


cdef void _maxout_sizes(const LayerDesc* d, Sizes* s) noexcept nogil:
    s.w, s.b, s.state = d.n_in * d.n_out * d.pieces, d.n_out * d.pieces, 0
    s.grad_cols = max(d.n_in, d.n_out * d.pieces)


cdef Py_ssize_t _maxout_layout(LayerDesc* d, Py_ssize_t col) noexcept nogil:
    d.z_col = col
    d.a_col = col + d.n_out * d.pieces
    return d.a_col + d.n_out


cdef int _maxout_read(LayerDesc* d, dict spec) except -1:
    d.pieces = _need(d, spec, "pieces")
    if not (0 < d.pieces < 2**31 and d.n_out * d.pieces < 2**31) or d.flags & F_TRANS_W:
        raise ValueError(f"bad maxout layer: pieces={d.pieces}, n_out={d.n_out}, "
                         f"flags={d.flags}")
    return 0


# --- K_PRELU: A = X if X > 0 else slope * X ----------------------------------------------------

cdef void _prelu_fwd(const Exec* e, const LayerDesc* d, const floating* X,
                     floating* A) noexcept nogil:
    prelu_forward(X, <floating*> e.params + d.w_off, d.n_slopes, A, e.batch, d.n_out)


cdef void _prelu_bwd(const Exec* e, const LayerDesc* d, const floating* X, floating* dA,
                     floating* dX) noexcept nogil:
    prelu_backward(X, <floating*> e.params + d.w_off, <floating*> e.grads + d.w_off,
                   d.n_slopes, dA, dX, e.batch, d.n_out)


cdef void _prelu_sizes(const LayerDesc* d, Sizes* s) noexcept nogil:
    s.w, s.b, s.state, s.grad_cols = d.n_slopes, 0, 0, d.n_out


cdef int _prelu_read(LayerDesc* d, dict spec) except -1:
    _same_width(d, spec)
    d.n_slopes = _need(d, spec, "n_slopes")
    if d.n_slopes != 1 and d.n_slopes != d.n_out:
        raise ValueError(f"PReLU needs 1 or n_out={d.n_out} slopes, got {d.n_slopes}")
    return 0


# --- K_BATCHNORM, K_LAYERNORM: A = gamma * (X - mean) / sqrt(var + eps) + beta ----------------
# per feature over the batch (BatchNorm), per row (LayerNorm); xhat kept for backward.

cdef inline void _norm_args(const Exec* e, const LayerDesc* d, NormArgs* a) noexcept nogil:
    a.B, a.n, a.eps, a.momentum = e.batch, d.n_out, d.eps, d.momentum


cdef inline void _scale_shift(const LayerDesc* d, floating* base, floating** scale,
                              floating** shift) noexcept nogil:
    """The scale and shift slots of base (the arena or its gradient); NULL without F_AFFINE."""
    if d.flags & F_AFFINE:
        scale[0], shift[0] = base + d.w_off, base + d.b_off
    else:
        scale[0] = shift[0] = NULL


cdef void _batchnorm_fwd(const Exec* e, const LayerDesc* d, const floating* X,
                         floating* A) noexcept nogil:
    """Batch statistics in training when the batch has >= 2 rows (the Python side refuses
    1-row training batches), the running statistics otherwise."""
    cdef NormArgs a
    cdef floating* gamma
    cdef floating* beta
    _norm_args(e, d, &a)
    _scale_shift(d, <floating*> e.params, &gamma, &beta)
    cdef floating* stats = <floating*> e.buffers + d.s_off
    cdef floating* xhat = block(e, d.xhat_col, <floating*> e.work)
    if e.training and e.batch >= 2:
        batchnorm_forward_train(&a, X, gamma, beta, stats, xhat, A)
    else:
        batchnorm_forward_eval(&a, X, gamma, beta, stats, xhat, A)


cdef void _batchnorm_bwd(const Exec* e, const LayerDesc* d, const floating* X, floating* dA,
                         floating* dX) noexcept nogil:
    """dgamma, dbeta accumulate; the 1/std of the forward sits after the running stats."""
    cdef NormArgs a
    cdef floating* gamma
    cdef floating* beta
    cdef floating* dgamma
    cdef floating* dbeta
    _norm_args(e, d, &a)
    _scale_shift(d, <floating*> e.params, &gamma, &beta)
    _scale_shift(d, <floating*> e.grads, &dgamma, &dbeta)
    cdef const floating* xhat = block(e, d.xhat_col, <floating*> e.work)
    cdef const floating* inv_std = <floating*> e.buffers + d.s_off + 2 * d.n_out
    if e.training and e.batch >= 2:
        batchnorm_backward(&a, xhat, inv_std, gamma, dA, dgamma, dbeta, dX)
    else:
        batchnorm_backward_eval(&a, xhat, inv_std, gamma, dA, dgamma, dbeta, dX)


cdef void _layernorm_fwd(const Exec* e, const LayerDesc* d, const floating* X,
                         floating* A) noexcept nogil:
    cdef NormArgs a
    cdef floating* gamma
    cdef floating* beta
    cdef floating* W = <floating*> e.work
    _norm_args(e, d, &a)
    _scale_shift(d, <floating*> e.params, &gamma, &beta)
    layernorm_forward(&a, X, gamma, beta, block(e, d.rstd_col, W), block(e, d.xhat_col, W), A)


cdef void _layernorm_bwd(const Exec* e, const LayerDesc* d, const floating* X, floating* dA,
                         floating* dX) noexcept nogil:
    cdef NormArgs a
    cdef floating* gamma
    cdef floating* beta
    cdef floating* dgamma
    cdef floating* dbeta
    cdef floating* W = <floating*> e.work
    _norm_args(e, d, &a)
    _scale_shift(d, <floating*> e.params, &gamma, &beta)
    _scale_shift(d, <floating*> e.grads, &dgamma, &dbeta)
    layernorm_backward(&a, block(e, d.xhat_col, W), block(e, d.rstd_col, W), gamma, dA, dgamma,
                       dbeta, dX)


cdef void _batchnorm_sizes(const LayerDesc* d, Sizes* s) noexcept nogil:
    s.w = s.b = d.n_out if d.flags & F_AFFINE else 0
    s.state = 3 * d.n_out            # running mean, running variance, the last 1/std
    s.grad_cols = d.n_out


cdef void _layernorm_sizes(const LayerDesc* d, Sizes* s) noexcept nogil:
    s.w = s.b = d.n_out if d.flags & F_AFFINE else 0
    s.state, s.grad_cols = 0, d.n_out


cdef Py_ssize_t _batchnorm_layout(LayerDesc* d, Py_ssize_t col) noexcept nogil:
    d.xhat_col = col
    d.a_col = col + d.n_out
    return col + 2 * d.n_out


cdef Py_ssize_t _layernorm_layout(LayerDesc* d, Py_ssize_t col) noexcept nogil:
    d.rstd_col = _batchnorm_layout(d, col)
    return d.rstd_col + 1


cdef int _norm_read(LayerDesc* d, dict spec) except -1:
    """eps of both kinds; an affine one needs its shift's slot."""
    _same_width(d, spec)
    d.eps = _need(d, spec, "eps")
    if not d.eps > 0:
        raise ValueError(f"eps must be > 0, got {d.eps}")
    if d.flags & F_AFFINE and d.b_off < 0:
        raise ValueError(f"an affine normalization needs b_off, got {d.b_off}")
    return 0


cdef int _batchnorm_read(LayerDesc* d, dict spec) except -1:
    _norm_read(d, spec)
    d.momentum = _need(d, spec, "momentum")
    if not 0 <= d.momentum <= 1:
        raise ValueError(f"momentum must be in [0, 1], got {d.momentum}")
    return 0


cdef void _fill_params_ops() noexcept:
    """The ops-table entries of this file's kinds."""
    OPS[<int> K_DENSE] = LayerOps(
        name=b"K_DENSE", forward_f=_dense_fwd[float], forward_d=_dense_fwd[double],
        backward_f=_dense_bwd[float], backward_d=_dense_bwd[double], sizes=_dense_sizes,
        layout=_dense_layout, read=_act_read, check_links=NULL, grad_mode=GRADS_WRITE)
    OPS[<int> K_MAXOUT] = LayerOps(
        name=b"K_MAXOUT", forward_f=_maxout_fwd[float], forward_d=_maxout_fwd[double],
        backward_f=_maxout_bwd[float], backward_d=_maxout_bwd[double], sizes=_maxout_sizes,
        layout=_maxout_layout, read=_maxout_read, check_links=NULL, grad_mode=GRADS_WRITE)
    OPS[<int> K_PRELU] = LayerOps(
        name=b"K_PRELU", forward_f=_prelu_fwd[float], forward_d=_prelu_fwd[double],
        backward_f=_prelu_bwd[float], backward_d=_prelu_bwd[double], sizes=_prelu_sizes,
        layout=_out_only, read=_prelu_read, check_links=NULL, grad_mode=GRADS_ACCUMULATE)
    OPS[<int> K_BATCHNORM] = LayerOps(
        name=b"K_BATCHNORM", forward_f=_batchnorm_fwd[float],
        forward_d=_batchnorm_fwd[double], backward_f=_batchnorm_bwd[float],
        backward_d=_batchnorm_bwd[double], sizes=_batchnorm_sizes, layout=_batchnorm_layout,
        read=_batchnorm_read, check_links=NULL, grad_mode=GRADS_ACCUMULATE)
    OPS[<int> K_LAYERNORM] = LayerOps(
        name=b"K_LAYERNORM", forward_f=_layernorm_fwd[float],
        forward_d=_layernorm_fwd[double], backward_f=_layernorm_bwd[float],
        backward_d=_layernorm_bwd[double], sizes=_layernorm_sizes, layout=_layernorm_layout,
        read=_norm_read, check_links=NULL, grad_mode=GRADS_ACCUMULATE)
