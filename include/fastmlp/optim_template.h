/* Instantiated by optim.h once per type: FM_T is the element type, FM_NAME(x) adds the
 * type suffix, FMM_SQRT is sqrt of that type. No include guard.
 *
 * Each family: a chunk kernel over n elements (cloned per ISA) and the public update
 * that runs it over the arena in chunks. A NULL state pointer switches a feature off. */

/* torch.lerp(a, b, w) = a + w (b - a) for w < 0.5, else b - (b - a)(1 - w); the branch is
 * on the constant w, so callers hoist it out of their loops (LO: w < 0.5). */
#define FM_LERP(LO, a, b, w) ((LO) ? (a) + (w) * ((b) - (a)) : (b) - ((b) - (a)) * ((FM_T)1 - (w)))

/* d = g + wd p; without buf: p -= lr d. With buf: b = d on the first step, else
 * mu b + (1 - dampening) d; p -= lr (d + mu b) (Nesterov) or lr b. */
FM_CLONES static void FM_NAME(fm_sgd_chunk)(FM_T* restrict p, const FM_T* restrict g,
                                            FM_T* restrict buf, ptrdiff_t n,
                                            const fm_sgd_hyper* h) {
    const FM_T lr = (FM_T)h->lr, wd = (FM_T)h->weight_decay, mu = (FM_T)h->momentum;
    const FM_T keep = (FM_T)(1.0 - h->dampening);
    if (!buf) {
        for (ptrdiff_t i = 0; i < n; i++) p[i] -= lr * (g[i] + wd * p[i]);
    } else if (h->first && h->nesterov) {
        for (ptrdiff_t i = 0; i < n; i++) {
            FM_T d = g[i] + wd * p[i];
            buf[i] = d;
            p[i] -= lr * (d + mu * d);
        }
    } else if (h->first) {
        for (ptrdiff_t i = 0; i < n; i++) {
            FM_T d = g[i] + wd * p[i];
            buf[i] = d;
            p[i] -= lr * d;
        }
    } else if (h->nesterov) {
        for (ptrdiff_t i = 0; i < n; i++) {
            FM_T d = g[i] + wd * p[i];
            FM_T b = mu * buf[i] + keep * d;
            buf[i] = b;
            p[i] -= lr * (d + mu * b);
        }
    } else {
        for (ptrdiff_t i = 0; i < n; i++) {
            FM_T d = g[i] + wd * p[i];
            FM_T b = mu * buf[i] + keep * d;
            buf[i] = b;
            p[i] -= lr * b;
        }
    }
}

/* d = g + wd p; s += d^2; p -= clr d / (sqrt(s) + eps). */
FM_CLONES static void FM_NAME(fm_adagrad_chunk)(FM_T* restrict p, const FM_T* restrict g,
                                                FM_T* restrict sum, ptrdiff_t n,
                                                const fm_adagrad_hyper* h) {
    const FM_T clr = (FM_T)h->clr, wd = (FM_T)h->weight_decay, eps = (FM_T)h->eps;
    for (ptrdiff_t i = 0; i < n; i++) {
        FM_T d = g[i] + wd * p[i];
        FM_T s = sum[i] + d * d;
        sum[i] = s;
        p[i] -= clr * (d / (FMM_SQRT(s) + eps));
    }
}

/* d = g + wd p; v = alpha v + (1 - alpha) d^2; centered (avg): m = lerp(m, d, 1 - alpha),
 * v' = v - m^2; a = sqrt(v') + eps; momentum (buf): b = mu b + d / a, p -= lr b;
 * else p -= lr d / a. One loop per combination, so each vectorizes. */
#define FM_RMSPROP_LOOP(CENTERED, MOMENTUM)                                       \
    for (ptrdiff_t i = 0; i < n; i++) {                                           \
        FM_T d = g[i] + wd * p[i];                                                \
        FM_T v = sq[i] * alpha + w * (d * d);                                     \
        sq[i] = v;                                                                \
        if (CENTERED) {                                                           \
            FM_T m = FM_LERP(lo, avg[i], d, w);                                   \
            avg[i] = m;                                                           \
            v = v - m * m;                                                        \
        }                                                                         \
        FM_T a = FMM_SQRT(v) + eps;                                               \
        if (MOMENTUM) {                                                           \
            buf[i] = mu * buf[i] + d / a;                                         \
            p[i] -= lr * buf[i];                                                  \
        } else {                                                                  \
            p[i] -= lr * (d / a);                                                 \
        }                                                                         \
    }

FM_CLONES static void FM_NAME(fm_rmsprop_chunk)(FM_T* restrict p, const FM_T* restrict g,
                                                FM_T* restrict sq, FM_T* restrict avg,
                                                FM_T* restrict buf, ptrdiff_t n,
                                                const fm_rmsprop_hyper* h) {
    const FM_T lr = (FM_T)h->lr, wd = (FM_T)h->weight_decay, alpha = (FM_T)h->alpha;
    const FM_T w = (FM_T)(1.0 - h->alpha), eps = (FM_T)h->eps, mu = (FM_T)h->momentum;
    const int lo = w < (FM_T)0.5;
    if (avg && buf)
        FM_RMSPROP_LOOP(1, 1)
    else if (avg)
        FM_RMSPROP_LOOP(1, 0)
    else if (buf)
        FM_RMSPROP_LOOP(0, 1)
    else
        FM_RMSPROP_LOOP(0, 0)
}
#undef FM_RMSPROP_LOOP

/* d = g + wd p; v = rho v + (1 - rho) d^2; delta = sqrt(u + eps) / sqrt(v + eps) d;
 * u = rho u + (1 - rho) delta^2; p -= lr delta. */
FM_CLONES static void FM_NAME(fm_adadelta_chunk)(FM_T* restrict p, const FM_T* restrict g,
                                                 FM_T* restrict sq, FM_T* restrict acc,
                                                 ptrdiff_t n, const fm_adadelta_hyper* h) {
    const FM_T lr = (FM_T)h->lr, wd = (FM_T)h->weight_decay, rho = (FM_T)h->rho;
    const FM_T w = (FM_T)(1.0 - h->rho), eps = (FM_T)h->eps;
    for (ptrdiff_t i = 0; i < n; i++) {
        FM_T d = g[i] + wd * p[i];
        FM_T v = sq[i] * rho + w * (d * d);
        sq[i] = v;
        FM_T delta = FMM_SQRT(acc[i] + eps) / FMM_SQRT(v + eps) * d;
        acc[i] = acc[i] * rho + w * (delta * delta);
        p[i] -= lr * delta;
    }
}

/* Adam: d = g + wd p. AdamW (decoupled): d = g after p *= 1 - lr wd.
 * m = lerp(m, d, 1 - beta1); v = beta2 v + (1 - beta2) d^2; amsgrad (vmax): v = max(vmax, v)
 * kept in vmax; p -= step_size m / (sqrt(v) inv_bc2 + eps), inv_bc2 = 1 / bc2_sqrt rounded
 * to the type once. torch divides sqrt(v) by bc2_sqrt; multiplying by its reciprocal
 * rounds the denominator differently by at most 1 ulp and takes one of the loop's two
 * divisions away. Measured on one core of an Intel Xeon (AVX-512): 0.565 -> 0.386
 * ns/element while the state fits L2, 0.57 -> 0.55 beyond (bound by bandwidth there). */
#define FM_ADAM_LOOP(LO, AMSGRAD)                                                 \
    for (ptrdiff_t i = 0; i < n; i++) {                                           \
        FM_T q = p[i] * decay;                                                    \
        FM_T d = g[i] + wd * q;                                                   \
        FM_T mi = FM_LERP(LO, m[i], d, w1);                                       \
        m[i] = mi;                                                                \
        FM_T vi = v[i] * beta2 + w2 * (d * d);                                    \
        v[i] = vi;                                                                \
        if (AMSGRAD) {                                                            \
            vi = vmax[i] > vi ? vmax[i] : vi;                                     \
            vmax[i] = vi;                                                         \
        }                                                                         \
        p[i] = q - step_size * (mi / (FMM_SQRT(vi) * inv_bc2 + eps));             \
    }

FM_CLONES static void FM_NAME(fm_adam_chunk)(FM_T* restrict p, const FM_T* restrict g,
                                             FM_T* restrict m, FM_T* restrict v,
                                             FM_T* restrict vmax, ptrdiff_t n,
                                             const fm_adam_hyper* h) {
    const FM_T wd = h->decoupled ? (FM_T)0 : (FM_T)h->weight_decay;
    const FM_T decay = h->decoupled ? (FM_T)(1.0 - h->lr * h->weight_decay) : (FM_T)1;
    const FM_T w1 = (FM_T)(1.0 - h->beta1), beta2 = (FM_T)h->beta2;
    const FM_T w2 = (FM_T)(1.0 - h->beta2), eps = (FM_T)h->eps;
    const FM_T step_size = (FM_T)h->step_size, inv_bc2 = (FM_T)(1.0 / h->bc2_sqrt);
    const int lo = w1 < (FM_T)0.5;
    if (lo && vmax)
        FM_ADAM_LOOP(1, 1)
    else if (lo)
        FM_ADAM_LOOP(1, 0)
    else if (vmax)
        FM_ADAM_LOOP(0, 1)
    else
        FM_ADAM_LOOP(0, 0)
}
#undef FM_ADAM_LOOP

/* 1 when no element is NaN or +-inf (x - x is 0 exactly for finite x, NaN otherwise);
 * the sum may be reordered (omp simd), it only has to stay 0 or become NaN. */
FM_CLONES static int FM_NAME(fm_all_finite_chunk)(const FM_T* x, ptrdiff_t n) {
    FM_T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (ptrdiff_t i = 0; i < n; i++) acc += x[i] - x[i];
    return acc == 0;
}

#undef FM_LERP

/* --- the updates: the chunk kernels over the whole arena on up to `threads` threads --- */

/* One pass: which kernel, its operands (NULL where unused), and the split. */
typedef struct {
    int pass;
    FM_T* p;
    const FM_T* g;
    FM_T* s0;
    FM_T* s1;
    FM_T* s2;
    const void* h;
    ptrdiff_t n, share;
    int bad;               /* FM_PASS_FINITE: set by any chunk that finds a non-finite */
} FM_NAME(fm_pass);

static void FM_NAME(fm_pass_chunk)(void* arg, ptrdiff_t i, int slot) {
    FM_NAME(fm_pass)* j = (FM_NAME(fm_pass)*)arg;
    ptrdiff_t lo = i * j->share, len = j->n - lo < j->share ? j->n - lo : j->share;
    (void)slot;
    if (len <= 0) return;
    FM_T* p = FM_OFF(j->p, lo);
    const FM_T* g = j->g + lo;
    switch (j->pass) {
    case FM_PASS_SGD:
        FM_NAME(fm_sgd_chunk)(p, g, FM_OFF(j->s0, lo), len, (const fm_sgd_hyper*)j->h);
        break;
    case FM_PASS_ADAGRAD:
        FM_NAME(fm_adagrad_chunk)(p, g, j->s0 + lo, len, (const fm_adagrad_hyper*)j->h);
        break;
    case FM_PASS_RMSPROP:
        FM_NAME(fm_rmsprop_chunk)(p, g, j->s0 + lo, FM_OFF(j->s1, lo), FM_OFF(j->s2, lo), len,
                                  (const fm_rmsprop_hyper*)j->h);
        break;
    case FM_PASS_ADADELTA:
        FM_NAME(fm_adadelta_chunk)(p, g, j->s0 + lo, j->s1 + lo, len,
                                   (const fm_adadelta_hyper*)j->h);
        break;
    case FM_PASS_ADAM:
        FM_NAME(fm_adam_chunk)(p, g, j->s0 + lo, j->s1 + lo, FM_OFF(j->s2, lo), len,
                               (const fm_adam_hyper*)j->h);
        break;
    default:
        if (!FM_NAME(fm_all_finite_chunk)(g, len)) __atomic_store_n(&j->bad, 1, __ATOMIC_RELAXED);
    }
}

/* Run the pass over [0, n) on up to `threads` threads (grain: elements a thread must get). */
static void FM_NAME(fm_pass_run)(FM_NAME(fm_pass)* j, int threads, ptrdiff_t grain) {
    int t = fm_optim_pool ? fm_par_threads_grain(j->n, threads, grain) : 1;
    j->bad = 0;
    if (j->n <= 0) return;
    ptrdiff_t chunks = t <= 1 ? 1 : (ptrdiff_t)t * FM_PAR_CHUNKS;
    j->share = chunks == 1 ? j->n : ((j->n + chunks - 1) / chunks + 63) / 64 * 64;
    chunks = (j->n + j->share - 1) / j->share;
    if (chunks <= 1)
        FM_NAME(fm_pass_chunk)(j, 0, 0);
    else
        fm_optim_pool(t, chunks, FM_NAME(fm_pass_chunk), j);
}

static void FM_NAME(fm_sgd)(FM_T* p, const FM_T* g, FM_T* buf, ptrdiff_t n,
                            const fm_sgd_hyper* h, int threads) {
    FM_NAME(fm_pass) j = {FM_PASS_SGD, p, g, buf, NULL, NULL, h, n, 0, 0};
    FM_NAME(fm_pass_run)(&j, threads, FM_PAR_GRAIN);
}

static void FM_NAME(fm_adagrad)(FM_T* p, const FM_T* g, FM_T* sum, ptrdiff_t n,
                                const fm_adagrad_hyper* h, int threads) {
    FM_NAME(fm_pass) j = {FM_PASS_ADAGRAD, p, g, sum, NULL, NULL, h, n, 0, 0};
    FM_NAME(fm_pass_run)(&j, threads, FM_PAR_GRAIN);
}

static void FM_NAME(fm_rmsprop)(FM_T* p, const FM_T* g, FM_T* sq, FM_T* avg, FM_T* buf,
                                ptrdiff_t n, const fm_rmsprop_hyper* h, int threads) {
    FM_NAME(fm_pass) j = {FM_PASS_RMSPROP, p, g, sq, avg, buf, h, n, 0, 0};
    FM_NAME(fm_pass_run)(&j, threads, FM_PAR_GRAIN);
}

static void FM_NAME(fm_adadelta)(FM_T* p, const FM_T* g, FM_T* sq, FM_T* acc, ptrdiff_t n,
                                 const fm_adadelta_hyper* h, int threads) {
    FM_NAME(fm_pass) j = {FM_PASS_ADADELTA, p, g, sq, acc, NULL, h, n, 0, 0};
    FM_NAME(fm_pass_run)(&j, threads, FM_PAR_GRAIN);
}

static void FM_NAME(fm_adam)(FM_T* p, const FM_T* g, FM_T* m, FM_T* v, FM_T* vmax,
                             ptrdiff_t n, const fm_adam_hyper* h, int threads) {
    FM_NAME(fm_pass) j = {FM_PASS_ADAM, p, g, m, v, vmax, h, n, 0, 0};
    FM_NAME(fm_pass_run)(&j, threads, FM_PAR_GRAIN);
}

static int FM_NAME(fm_all_finite)(const FM_T* x, ptrdiff_t n, int threads) {
    FM_NAME(fm_pass) j = {FM_PASS_FINITE, NULL, x, NULL, NULL, NULL, NULL, n, 0, 0};
    FM_NAME(fm_pass_run)(&j, threads, FM_PAR_GRAIN_READ);
    return !j.bad;
}
