# Ops-table entries of the kinds without parameters (see _layer_ops.pxi for the contract).

# --- K_ACT: A = act(X); K_SOFTMAX: A = softmax(X) row-wise -----------------------------------

cdef void _act_fwd(const Exec* e, const LayerDesc* d, const floating* X,
                   floating* A) noexcept nogil:
    # act_forward only writes z when a bias is given; X is read-only here.
    act_forward_par(d.act, d.alpha, <floating*> X, NULL, A, e.batch, d.n_out)


cdef void _act_bwd(const Exec* e, const LayerDesc* d, const floating* X, floating* dA,
                   floating* dX) noexcept nogil:
    if dX != NULL:
        act_backward_par(d.act, d.alpha, X, block(e, d.a_col, <floating*> e.work), dA, dX,
                         e.batch * d.n_out)


cdef int _act_layer_read(LayerDesc* d, dict spec) except -1:
    _same_width(d, spec)
    return _act_read(d, spec)


cdef void _softmax_fwd(const Exec* e, const LayerDesc* d, const floating* X,
                       floating* A) noexcept nogil:
    softmax_forward(X, A, e.batch, d.n_out)


cdef void _softmax_bwd(const Exec* e, const LayerDesc* d, const floating* X, floating* dA,
                       floating* dX) noexcept nogil:
    if dX != NULL:
        softmax_backward(block(e, d.a_col, <floating*> e.work), dA, dX, e.batch, d.n_out)




# --- K_DROPOUT: training A = X * M, M = 1/(1-rate) or 0; K_NOISE: training A = X + std * N(0, 1)
# Both draw from the counter-based RNG keyed by (e.rng.seed, d.stream, e.rng.step, element),
# the element keyed by the global row (e.row0); outside training they are the identity.

cdef void _dropout_fwd(const Exec* e, const LayerDesc* d, const floating* X,
                       floating* A) noexcept nogil:
    if e.training and d.rate > 0:
        dropout_forward(X, block(e, d.mask_col, <floating*> e.work), A, e.batch * d.n_out,
                        d.rate, e.rng.seed, d.stream, e.rng.step, e.row0 * d.n_out)
    else:
        _copy_fwd(e, d, X, A)


cdef void _dropout_bwd(const Exec* e, const LayerDesc* d, const floating* X, floating* dA,
                       floating* dX) noexcept nogil:
    if dX != NULL and e.training and d.rate > 0:
        multiply(dA, block(e, d.mask_col, <floating*> e.work), dX, e.batch * d.n_out)
    else:
        _copy_bwd(e, d, X, dA, dX)


cdef Py_ssize_t _dropout_layout(LayerDesc* d, Py_ssize_t col) noexcept nogil:
    d.mask_col = col
    d.a_col = col + d.n_out
    return col + 2 * d.n_out


cdef int _dropout_read(LayerDesc* d, dict spec) except -1:
    _same_width(d, spec)
    d.rate = _need(d, spec, "rate")
    if not 0 <= d.rate < 1:
        raise ValueError(f"dropout rate must be in [0, 1), got {d.rate}")
    return 0


cdef void _noise_fwd(const Exec* e, const LayerDesc* d, const floating* X,
                     floating* A) noexcept nogil:
    if e.training and d.std > 0:
        noise_forward(X, A, e.batch * d.n_out, d.std, e.rng.seed, d.stream, e.rng.step,
                      e.row0 * d.n_out)
    else:
        _copy_fwd(e, d, X, A)


cdef int _noise_read(LayerDesc* d, dict spec) except -1:
    _same_width(d, spec)
    d.std = _need(d, spec, "std")
    if not d.std >= 0:
        raise ValueError(f"noise std must be >= 0, got {d.std}")
    return 0


# --- K_AUGMENT: training A = random affine resampling of each row as an image (augment.h) ----

cdef void _augment_fwd(const Exec* e, const LayerDesc* d, const floating* X,
                       floating* A) noexcept nogil:
    if not e.training:
        _copy_fwd(e, d, X, A)
    elif floating is float:
        fm_augment_forward_f(&d.aug, X, A, e.batch, e.rng.seed, d.stream, e.rng.step, e.row0)
    else:
        fm_augment_forward_d(&d.aug, X, A, e.batch, e.rng.seed, d.stream, e.rng.step, e.row0)


cdef void _augment_bwd(const Exec* e, const LayerDesc* d, const floating* X, floating* dA,
                       floating* dX) noexcept nogil:
    """The adjoint of the training resampling."""
    if dX == NULL or not e.training:
        _copy_bwd(e, d, X, dA, dX)
    elif floating is float:
        fm_augment_backward_f(&d.aug, dA, dX, e.batch, e.rng.seed, d.stream, e.rng.step, e.row0)
    else:
        fm_augment_backward_d(&d.aug, dA, dX, e.batch, e.rng.seed, d.stream, e.rng.step, e.row0)


cdef int _augment_read(LayerDesc* d, dict spec) except -1:
    _same_width(d, spec)
    d.aug = _need(d, spec, "aug")
    if d.aug.h * d.aug.w * d.aug.c != d.n_out or d.aug.h < 1 or d.aug.w < 1 \
            or not (d.aug.max_shift >= 0 and d.aug.max_rotation >= 0
                    and 0 <= d.aug.max_scale < 1):
        raise ValueError(f"bad augmentation for width {d.n_out}: {d.aug}")
    return 0


# --- K_RES_BEGIN: A = X; K_RES_END: A = X + A[link], the skip connection x + f(x) ------------

cdef void _res_begin_bwd(const Exec* e, const LayerDesc* d, const floating* X, floating* dA,
                         floating* dX) noexcept nogil:
    """dX = dA + the skip path's gradient, left by the matching K_RES_END."""
    if dX != NULL:
        add(dA, block(e, e.layers[d.link].skip_col, <floating*> e.work), dX, e.batch * d.n_out)


cdef void _res_end_fwd(const Exec* e, const LayerDesc* d, const floating* X,
                       floating* A) noexcept nogil:
    add(X, block(e, e.layers[d.link].a_col, <floating*> e.work), A, e.batch * d.n_out)


cdef void _res_end_bwd(const Exec* e, const LayerDesc* d, const floating* X, floating* dA,
                       floating* dX) noexcept nogil:
    """dA flows on to the inner layers and waits in skip_col for the K_RES_BEGIN."""
    if dX != NULL:
        memcpy(block(e, d.skip_col, <floating*> e.work), dA, e.batch * d.n_out * sizeof(floating))
        memcpy(dX, dA, e.batch * d.n_out * sizeof(floating))


cdef Py_ssize_t _res_end_layout(LayerDesc* d, Py_ssize_t col) noexcept nogil:
    d.a_col = col
    d.skip_col = col + d.n_out
    return col + 2 * d.n_out


cdef int _res_read(LayerDesc* d, dict spec) except -1:
    _same_width(d, spec)
    d.link = _need(d, spec, "link")
    return 0


cdef int _res_check_links(const LayerDesc* d, Py_ssize_t n, Py_ssize_t i) except -1:
    """A K_RES_BEGIN and a K_RES_END, later, of one width, linked to each other."""
    cdef Py_ssize_t j = d[i].link
    cdef bint end = d[i].kind == K_RES_END
    if not (0 <= j < n and d[j].link == i and d[j].n_out == d[i].n_out and (j < i) == end
            and d[j].kind == <int> (K_RES_BEGIN if end else K_RES_END)):
        raise ValueError(f"residual markers {i} and {j} do not match")
    return 0


cdef void _fill_elementwise_ops() noexcept:
    """The ops-table entries of this file's kinds."""
    OPS[<int> K_ACT] = LayerOps(
        name=b"K_ACT", forward_f=_act_fwd[float], forward_d=_act_fwd[double],
        backward_f=_act_bwd[float], backward_d=_act_bwd[double], sizes=_no_params,
        layout=_out_only, read=_act_layer_read, check_links=NULL, grad_mode=GRADS_NONE)
    OPS[<int> K_SOFTMAX] = LayerOps(
        name=b"K_SOFTMAX", forward_f=_softmax_fwd[float], forward_d=_softmax_fwd[double],
        backward_f=_softmax_bwd[float], backward_d=_softmax_bwd[double], sizes=_no_params,
        layout=_out_only, read=_same_width, check_links=NULL, grad_mode=GRADS_NONE)
    OPS[<int> K_DROPOUT] = LayerOps(
        name=b"K_DROPOUT", forward_f=_dropout_fwd[float], forward_d=_dropout_fwd[double],
        backward_f=_dropout_bwd[float], backward_d=_dropout_bwd[double], sizes=_no_params,
        layout=_dropout_layout, read=_dropout_read, check_links=NULL, grad_mode=GRADS_NONE)
    OPS[<int> K_NOISE] = LayerOps(
        name=b"K_NOISE", forward_f=_noise_fwd[float], forward_d=_noise_fwd[double],
        backward_f=_copy_bwd[float], backward_d=_copy_bwd[double], sizes=_no_params,
        layout=_out_only, read=_noise_read, check_links=NULL, grad_mode=GRADS_NONE)
    OPS[<int> K_AUGMENT] = LayerOps(
        name=b"K_AUGMENT", forward_f=_augment_fwd[float], forward_d=_augment_fwd[double],
        backward_f=_augment_bwd[float], backward_d=_augment_bwd[double], sizes=_no_params,
        layout=_out_only, read=_augment_read, check_links=NULL, grad_mode=GRADS_NONE)
    OPS[<int> K_RES_BEGIN] = LayerOps(
        name=b"K_RES_BEGIN", forward_f=_copy_fwd[float], forward_d=_copy_fwd[double],
        backward_f=_res_begin_bwd[float], backward_d=_res_begin_bwd[double],
        sizes=_no_params, layout=_out_only, read=_res_read, check_links=_res_check_links,
        grad_mode=GRADS_NONE)
    OPS[<int> K_RES_END] = LayerOps(
        name=b"K_RES_END", forward_f=_res_end_fwd[float], forward_d=_res_end_fwd[double],
        backward_f=_res_end_bwd[float], backward_d=_res_end_bwd[double], sizes=_no_params,
        layout=_res_end_layout, read=_res_read, check_links=_res_check_links,
        grad_mode=GRADS_NONE)
