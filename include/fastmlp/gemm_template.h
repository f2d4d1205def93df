/* Instantiated by gemm.h once per (type, ISA). FM_T: element type; FM_NAME(x): adds the
 * type and ISA suffix, FM_TNAME(x) the type suffix alone (the shared packers of
 * gemm_pack.h); FM_TARGET: the ISA's function attribute; FM_MR x FM_NR: the register tile
 * (NR = two vectors, MR <= 8); FM_KC, FM_MC, FM_NC: the cache blocks (KC is the same for
 * every ISA: it fixes the accumulation order); FM_ROWS_VECS: the vectors fm_gemm_rows
 * accumulates in registers (half the ISA's); FM_ROWS_UNROLL: 1 to step a plain A in place
 * four K steps at a time (see fm_tile); FMV*: the vector type and intrinsics.
 * No include guard: the end of this file undefines all of them, ready for the next one. */

#define FM_VL (FM_NR / 2)
#ifndef FM_MC_PLAIN
#define FM_MC_PLAIN FM_MC
#endif

/* The stores of a finished rows x NR tile whose K block sums are c[r][0:2] (in
 * registers, inlined with a constant `rows`): C[0:rows, 0:nr] = alpha c + beta C, then
 * (under a fm_gemm_tile_epi, the product's last K block) C += bias[0:nr] when bias, and
 * act_out[r ldc + j] = max(C[r, j], 0) when act_out (act_out may be C: then only
 * that). Only the valid part of C is read or written. */
FM_TARGET static inline __attribute__((always_inline)) void FM_NAME(fm_tile_put)(
        const int rows, FMV c[][2], FM_T* C, ptrdiff_t ldc, FM_T alpha, FM_T beta,
        ptrdiff_t nr, const FM_T* bias, FM_T* act_out) {
    FMV va = FMV_SET1(alpha), vb = FMV_SET1(beta);
    const int in_place = act_out == C;   /* A is C (a prediction): store only max(C, 0) */
    if (nr == FM_NR) {
        FMV b0 = FMV_ZERO(), b1 = FMV_ZERO();
        if (bias) b0 = FMV_LOADU(bias), b1 = FMV_LOADU(bias + FM_VL);
        for (int r = 0; r < rows; r++) {
            FM_T* row = C + r * ldc;
            FMV x0 = FMV_MUL(va, c[r][0]), x1 = FMV_MUL(va, c[r][1]);
            if (beta != 0) {
                x0 = FMV_FMA(vb, FMV_LOADU(row), x0);
                x1 = FMV_FMA(vb, FMV_LOADU(row + FM_VL), x1);
            }
            if (bias) x0 = FMV_ADD(x0, b0), x1 = FMV_ADD(x1, b1);
            if (!in_place) {
                FMV_STOREU(row, x0);
                FMV_STOREU(row + FM_VL, x1);
            }
            if (act_out) {    /* max(x, 0) is x > 0 ? x : 0, NaN and -0 alike */
                FMV_STOREU(act_out + r * ldc, FMV_MAX(x0, FMV_ZERO()));
                FMV_STOREU(act_out + r * ldc + FM_VL, FMV_MAX(x1, FMV_ZERO()));
            }
        }
        return;
    }
    FM_T tile[FM_NR] __attribute__((aligned(64)));
    for (int r = 0; r < rows; r++) {
        FMV_STOREU(tile, c[r][0]);
        FMV_STOREU(tile + FM_VL, c[r][1]);
        for (ptrdiff_t j = 0; j < nr; j++) {
            FM_T x = alpha * tile[j];     /* as the full tile: one rounding of beta C + x */
            x = beta != 0 ? FMS_FMA(beta, C[r * ldc + j], x) : x;
            if (bias) x = x + bias[j];
            if (!in_place) C[r * ldc + j] = x;
            if (act_out) act_out[r * ldc + j] = x > 0 ? x : (FM_T)0;
        }
    }
}

/* The block of a plain A the tiles read after the current one, handed out a row at a
 * time to the current block's tiles, which fetch it into L2 inside their K loops, a line
 * every 4 steps: the first read of an input from memory then overlaps the FMAs of the
 * block before it (see gemm_asm.h for what it is worth). */
typedef struct {
    const FM_T* a;          /* its first element (NULL: none) */
    ptrdiff_t lda, rows, cols;
    ptrdiff_t next;         /* the next row to hand out */
} FM_NAME(fm_next_block);

/* The block after (ic, pc) of a plain A with mcb-row and kcb-column blocks: the next rows,
 * else the first rows of the next K block, else (another column block of C follows) the
 * first block again. */
static inline FM_NAME(fm_next_block) FM_NAME(fm_next_block_of)(
        const FM_T* A, ptrdiff_t lda, ptrdiff_t m, ptrdiff_t k, ptrdiff_t ic, ptrdiff_t mc,
        ptrdiff_t pc, ptrdiff_t kc, ptrdiff_t mcb, ptrdiff_t kcb, int more_n) {
    FM_NAME(fm_next_block) nb = {NULL, lda, 0, 0, 0};
    ptrdiff_t r = ic + mc, c = pc;
    if (r >= m) r = 0, c = pc + kc;
    if (c >= k) {
        if (!more_n) return nb;
        c = 0;
    }
    nb.a = A + r * lda + c;
    nb.rows = m - r < mcb ? m - r : mcb;
    nb.cols = k - c < kcb ? k - c : kcb;
    return nb;
}

/* The next row of nb to fetch (if any is left): *pf its first line, *lines how many. */
static inline void FM_NAME(fm_next_row)(FM_NAME(fm_next_block)* nb, const char** pf,
                                        ptrdiff_t* lines) {
    *pf = NULL, *lines = 0;
    if (!nb || nb->next >= nb->rows) return;
    const char* row = (const char*)(nb->a + nb->next++ * nb->lda);
    *pf = (const char*)((uintptr_t)row & ~(uintptr_t)63);
    *lines = (row + nb->cols * (ptrdiff_t)sizeof(FM_T) - *pf + 63) / 64;
}

/* A rows x NR tile (rows <= MR): the sums of A Bp over kc steps in registers, then
 * stored by fm_tile_put (C = alpha A Bp + beta C, and the tile epilogue's bias and ReLU).
 * A(r, p) = A[r rs_a + p cs_a] (packed: rs_a = 1, cs_a = rows; or straight from the
 * caller's matrix); Bp holds kc rows of NR values, ldb_p apart (packed: NR, zero-padded;
 * or the caller's B with its row stride, then nr == NR). Only the valid rows x nr part
 * of C is read or written. Inlined with a constant `rows` (and A's strides,
 * where fm_ukernel knows them), so every height gets its own fully unrolled loop. */
FM_TARGET static inline __attribute__((always_inline)) void FM_NAME(fm_tile)(
        const int rows, ptrdiff_t kc, const FM_T* A, ptrdiff_t rs_a, ptrdiff_t cs_a,
        const FM_T* restrict Bp, ptrdiff_t ldb_p, FM_T* C, ptrdiff_t ldc,
        FM_T alpha, FM_T beta, ptrdiff_t nr, const FM_T* bias, FM_T* act_out,
        const char* pf, ptrdiff_t pf_lines) {
    FMV c[FM_MR][2];
    const FM_T* a[FM_MR];
    for (int r = 0; r < rows; r++) {
        c[r][0] = FMV_ZERO();
        c[r][1] = FMV_ZERO();
        a[r] = A + r * rs_a;
        /* C's tile is written after the loop: have its lines on the way meanwhile */
        _mm_prefetch((const char*)(C + r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char*)(C + r * ldc + FM_NR - 1), _MM_HINT_T0);
    }
    ptrdiff_t p = 0;
    if (FM_ROWS_UNROLL && cs_a == 1)   /* A along its rows: each row's pointer moves once
                                        * per four steps (AVX-512; AVX2 tiles lose by it) */
        for (; p + 4 <= kc; p += 4) {
            if (pf_lines > 0) {   /* a line of the next block (fm_next_block) */
                __builtin_prefetch(pf, 0, 2);
                pf += 64, pf_lines--;
            }
            for (int u = 0; u < 4; u++) {
                FMV b0 = FMV_LOADU(Bp + u * ldb_p), b1 = FMV_LOADU(Bp + u * ldb_p + FM_VL);
                for (int r = 0; r < rows; r++) {
                    FMV x = FMV_SET1(a[r][p + u]);
                    c[r][0] = FMV_FMA(x, b0, c[r][0]);
                    c[r][1] = FMV_FMA(x, b1, c[r][1]);
                }
            }
            Bp += 4 * ldb_p;
        }
    for (ptrdiff_t off = p * cs_a; p < kc; p++, off += cs_a) {
        if (pf_lines > 0 && (p & 3) == 0) {
            __builtin_prefetch(pf, 0, 2);
            pf += 64, pf_lines--;
        }
        FMV b0 = FMV_LOADU(Bp), b1 = FMV_LOADU(Bp + FM_VL);
        for (int r = 0; r < rows; r++) {
            FMV x = FMV_SET1(a[r][off]);
            c[r][0] = FMV_FMA(x, b0, c[r][0]);
            c[r][1] = FMV_FMA(x, b1, c[r][1]);
        }
        Bp += ldb_p;
    }
    FM_NAME(fm_tile_put)(rows, c, C, ldc, alpha, beta, nr, bias, act_out);
}

/* fm_tile for a run-time height 1 <= rows <= MR (<= 8), A laid out as `a_layout` says
 * (FM_A_*, gemm.h), fetching the next row of nb (or NULL) meanwhile. Each layout and
 * height gets its own inlined loop with A's strides as constants where they are known, so
 * the loop reads A through one pointer (packed, a transposed A) or one a row (a plain A),
 * with no stride arithmetic. */
FM_TARGET static void FM_NAME(fm_ukernel)(int a_layout, ptrdiff_t rows, ptrdiff_t kc,
                                          const FM_T* A, ptrdiff_t lda, const FM_T* Bp,
                                          ptrdiff_t ldb_p, FM_T* C, ptrdiff_t ldc, FM_T alpha,
                                          FM_T beta, ptrdiff_t nr, const FM_T* bias,
                                          FM_T* act_out, FM_NAME(fm_next_block)* nb) {
    const char* pf;
    ptrdiff_t pf_lines;
    FM_NAME(fm_next_row)(nb, &pf, &pf_lines);
#define FM_TILE_REST Bp, ldb_p, C, ldc, alpha, beta, nr, bias, act_out, pf, pf_lines
#define FM_TILE_AT(h)                                                                        \
    case h:                                                                                  \
        if (a_layout == FM_A_PACKED)                                                         \
            FM_NAME(fm_tile)(h, kc, A, 1, h, FM_TILE_REST);                                  \
        else if (a_layout == FM_A_COLS)                                                      \
            FM_NAME(fm_tile)(h, kc, A, 1, lda, FM_TILE_REST);                                \
        else                                                                                 \
            FM_NAME(fm_tile)(h, kc, A, lda, 1, FM_TILE_REST);                                \
        break;
    switch (rows) {
#if FM_MR >= 8
    FM_TILE_AT(8)
    FM_TILE_AT(7)
#endif
    FM_TILE_AT(6)
    FM_TILE_AT(5)
    FM_TILE_AT(4)
    FM_TILE_AT(3)
    FM_TILE_AT(2)
    default:
    FM_TILE_AT(1)
    }
#undef FM_TILE_AT
#undef FM_TILE_REST
}

/* The K block: at most KC, and the K blocks of one product as even as possible (784 =
 * 4 x 196, not 3 x 256 + 16: a block of 16 steps would pass over all of C for little
 * work). Every path blocks K this way, so they all round alike. */
static inline ptrdiff_t FM_NAME(fm_k_block)(ptrdiff_t k) {
    ptrdiff_t blocks = (k + FM_KC - 1) / FM_KC;
    return (k + blocks - 1) / blocks;
}

/* Height of the next row tile when `rem` rows are left: MR while that leaves >= MR, then
 * split what is left into two tiles of about half MR where possible. A tile of r rows
 * costs max(r, 4) FMA cycles per step (FMA latency 4, two pipes), so with MR = 6, 32 rows
 * = 6+6+6+6+4+4 wastes nothing where 6+6+6+6+6+2 wastes a tenth (MR = 8: 8+8+8+8). */
static inline ptrdiff_t FM_NAME(fm_tile_rows)(ptrdiff_t rem) {
    return rem <= FM_MR ? rem : (rem < 2 * FM_MR ? (rem + 1) / 2 : FM_MR);
}

#ifdef FM_ASM_ROWS12
/* A 12 x NR tile over a plain A with a packed B (ldb_p == NR): the K loop in assembly
 * (FM_ASM_ROWS12, gemm_asm.h), its sums then stored as fm_tile stores them. Meanwhile
 * the next row of nb (if any is left) is fetched into L2. */
FM_TARGET static void FM_NAME(fm_tile12_rows)(ptrdiff_t kc, const FM_T* A, ptrdiff_t lda,
                                              const FM_T* Bp, FM_T* C, ptrdiff_t ldc,
                                              FM_T alpha, FM_T beta, ptrdiff_t nr,
                                              const FM_T* bias, FM_T* act_out,
                                              FM_NAME(fm_next_block)* nb) {
    const char* pf;
    ptrdiff_t pf_lines;
    FM_NAME(fm_next_row)(nb, &pf, &pf_lines);
    FMV c[12][2] __attribute__((aligned(64)));
    for (int r = 0; r < 12; r++) {
        _mm_prefetch((const char*)(C + r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char*)(C + r * ldc + FM_NR - 1), _MM_HINT_T0);
    }
    FM_ASM_ROWS12(kc, A, lda, Bp, (FM_T*)c, pf, pf_lines);
    FM_NAME(fm_tile_put)(12, c, C, ldc, alpha, beta, nr, bias, act_out);
}

/* Height of the next tile over a plain A (see fm_tile_rows): 12 rows where what is left
 * still makes whole tiles (12, or >= 17: 17 = 12 + 5), else the MR-row tiles (16 = 8 + 8,
 * 13 = 7 + 6), so a 32-row batch is 12 + 12 + 8 and 144 rows are twelve 12s. */
static inline ptrdiff_t FM_NAME(fm_tile_rows_plain)(ptrdiff_t rem) {
    return rem == 12 || rem >= 17 ? 12 : FM_NAME(fm_tile_rows)(rem);
}
#endif

/* Pack the block op(A)[i0:i0+mc, p0:p0+kc] into row panels of fm_tile_rows heights h
 * (p-major inside a panel: element (r, p) at p h + r; the panel of row ir starts at
 * ir kc). op(A)(i, p) = ta ? A[p lda + i] : A[i lda + p]. */
FM_TARGET static void FM_NAME(fm_pack_a)(int ta, const FM_T* A, ptrdiff_t lda, ptrdiff_t i0,
                                         ptrdiff_t p0, ptrdiff_t mc, ptrdiff_t kc,
                                         FM_T* restrict Ap) {
    for (ptrdiff_t ir = 0, h; ir < mc; ir += h) {
        h = FM_NAME(fm_tile_rows)(mc - ir);
        const FM_T* src = ta ? A + p0 * lda + i0 + ir : A + (i0 + ir) * lda + p0;
        FM_TNAME(fm_pack_a_panel)(ta, src, lda, h, kc, Ap + ir * kc);
    }
}

/* Pack the panel op(B)[p0:p0+kc, j0:j0+nc] into NR-column micro-panels (p-major inside a
 * panel), zero-padding the last one. op(B)(p, j) = tb ? B[j ldb + p] : B[p ldb + j].
 * Both read B along its rows (sequential, as the prefetchers like): a non-transposed B
 * one row p at a time across all panels, a transposed one 16 (8) rows at a time. */
FM_TARGET static void FM_NAME(fm_pack_b)(int tb, const FM_T* B, ptrdiff_t ldb, ptrdiff_t p0,
                                         ptrdiff_t j0, ptrdiff_t kc, ptrdiff_t nc,
                                         FM_T* restrict Bp) {
    const ptrdiff_t n_full = nc / FM_NR * FM_NR, cols = nc - n_full;
    if (!tb) {
        for (ptrdiff_t p = 0; p < kc; p++) {
            const FM_T* src = B + (p0 + p) * ldb + j0;
            FM_T* dst = Bp + p * FM_NR;
            for (ptrdiff_t jr = 0; jr < n_full; jr += FM_NR) {
                FMV_STOREU(dst + jr * kc, FMV_LOADU(src + jr));
                FMV_STOREU(dst + jr * kc + FM_VL, FMV_LOADU(src + jr + FM_VL));
            }
            if (cols) {      /* the partial panel: its columns, then zeros */
                memcpy(dst + n_full * kc, src + n_full, (size_t)cols * sizeof(FM_T));
                memset(dst + n_full * kc + cols, 0, (size_t)(FM_NR - cols) * sizeof(FM_T));
            }
        }
        return;
    }
    for (ptrdiff_t jr = 0; jr < n_full; jr += FM_NR)
        FM_TNAME(fm_pack_bt_panel)(B + (j0 + jr) * ldb + p0, ldb, kc, Bp + jr * kc, FM_NR);
    if (cols) {
        FM_T* dst = Bp + n_full * kc;
        for (ptrdiff_t j = 0; j < FM_NR; j++) {
            const FM_T* src = B + (j0 + n_full + j) * ldb + p0;
            for (ptrdiff_t p = 0; p < kc; p++) dst[p * FM_NR + j] = j < cols ? src[p] : 0;
        }
    }
}

/* c[0:cnt] = alpha acc + bet c[0:cnt] for cnt <= VL (VL: a whole vector, else masked),
 * rounded as fm_tile stores a tile; bet = 0 never reads c. The store of every path that
 * keeps its block sums in vectors outside the tiles (rows, one column, the K split). */
FM_TARGET static inline __attribute__((always_inline)) void FM_NAME(fm_put)(
        FM_T* c, FMV acc, FM_T alpha, FM_T bet, ptrdiff_t cnt) {
    FMV x = FMV_MUL(FMV_SET1(alpha), acc);
    if (cnt == FM_VL) {
        if (bet != 0) x = FMV_FMA(FMV_SET1(bet), FMV_LOADU(c), x);
        FMV_STOREU(c, x);
    } else {
        if (bet != 0) x = FMV_FMA(FMV_SET1(bet), FMV_LOADN(c, cnt), x);
        FMV_STOREN(c, x, cnt);
    }
}

/* A product of at most FM_ROWS_MAX rows with a non-transposed B, B streamed row by row
 * (read once, sequentially: the bandwidth-bound case, e.g. predicting one row). For each
 * K block, C's rows are cut into strips of `vecs` vectors whose block sums stay in
 * registers (FM_ROWS_VECS accumulators in all): each B row's strip is read once for all
 * rows and nothing else is loaded or stored in the loop. The sums of a block start from
 * 0 and take its steps in order by FMAs, then are stored as the tile kernel stores them:
 * every element equals what the tile path computes. Inlined with constant sizes. */
FM_TARGET static inline __attribute__((always_inline)) void FM_NAME(fm_rows_strip)(
        const int rows, const int vecs, ptrdiff_t kc, const FM_T* A, ptrdiff_t rs_a,
        ptrdiff_t cs_a, const FM_T* B, ptrdiff_t ldb, FM_T alpha, FM_T bet, FM_T* C,
        ptrdiff_t ldc) {
    FMV acc[FM_STREAM_GROUP][FM_ROWS_VECS];
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < vecs; v++) acc[r][v] = FMV_ZERO();
    for (ptrdiff_t p = 0; p < kc; p++, B += ldb)
        for (int r = 0; r < rows; r++) {
            FMV x = FMV_SET1(A[r * rs_a + p * cs_a]);
            for (int v = 0; v < vecs; v++)
                acc[r][v] = FMV_FMA(x, FMV_LOADU(B + v * FM_VL), acc[r][v]);
        }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < vecs; v++)
            FM_NAME(fm_put)(C + r * ldc + v * FM_VL, acc[r][v], alpha, bet, FM_VL);
}

/* The first nv columns (whole vectors) of C's `rows` rows over one K block: whole strips,
 * then 4 vectors, then single vectors. */
FM_TARGET static inline __attribute__((always_inline)) void FM_NAME(fm_rows_strips)(
        const int rows, ptrdiff_t nv, ptrdiff_t kc, const FM_T* A, ptrdiff_t rs_a,
        ptrdiff_t cs_a, const FM_T* B, ptrdiff_t ldb, FM_T alpha, FM_T bet, FM_T* C,
        ptrdiff_t ldc) {
    const int wide = FM_ROWS_VECS / rows;
    ptrdiff_t j = 0;
    for (; j + wide * FM_VL <= nv; j += wide * FM_VL)
        FM_NAME(fm_rows_strip)(rows, wide, kc, A, rs_a, cs_a, B + j, ldb, alpha, bet, C + j, ldc);
    if (wide > 4)
        for (; j + 4 * FM_VL <= nv; j += 4 * FM_VL)
            FM_NAME(fm_rows_strip)(rows, 4, kc, A, rs_a, cs_a, B + j, ldb, alpha, bet, C + j,
                                   ldc);
    if (wide > 2)
        for (; j + 2 * FM_VL <= nv; j += 2 * FM_VL)
            FM_NAME(fm_rows_strip)(rows, 2, kc, A, rs_a, cs_a, B + j, ldb, alpha, bet, C + j,
                                   ldc);
    for (; j < nv; j += FM_VL)
        FM_NAME(fm_rows_strip)(rows, 1, kc, A, rs_a, cs_a, B + j, ldb, alpha, bet, C + j, ldc);
}

/* fm_rows_strip for the last cnt (< FM_VL) columns: one vector, masked. */
FM_TARGET static inline __attribute__((always_inline)) void FM_NAME(fm_rows_last)(
        const int rows, ptrdiff_t cnt, ptrdiff_t kc, const FM_T* A, ptrdiff_t rs_a,
        ptrdiff_t cs_a, const FM_T* B, ptrdiff_t ldb, FM_T alpha, FM_T bet, FM_T* C,
        ptrdiff_t ldc) {
    FMV acc[FM_STREAM_GROUP];
    for (int r = 0; r < rows; r++) acc[r] = FMV_ZERO();
    for (ptrdiff_t p = 0; p < kc; p++, B += ldb) {
        FMV b = FMV_LOADN(B, cnt);
        for (int r = 0; r < rows; r++)
            acc[r] = FMV_FMA(FMV_SET1(A[r * rs_a + p * cs_a]), b, acc[r]);
    }
    for (int r = 0; r < rows; r++) FM_NAME(fm_put)(C + r * ldc, acc[r], alpha, bet, cnt);
}

/* One K block of m = 1 or 2 rows of C: strips of whole vectors, then the last columns. */
FM_TARGET static inline __attribute__((always_inline)) void FM_NAME(fm_rows_block)(
        ptrdiff_t m, ptrdiff_t n, ptrdiff_t kc, const FM_T* A, ptrdiff_t rs_a, ptrdiff_t cs_a,
        const FM_T* B, ptrdiff_t ldb, FM_T alpha, FM_T bet, FM_T* C, ptrdiff_t ldc) {
    const ptrdiff_t nv = n / FM_VL * FM_VL;
    if (m == 1)
        FM_NAME(fm_rows_strips)(1, nv, kc, A, rs_a, cs_a, B, ldb, alpha, bet, C, ldc);
    else
        FM_NAME(fm_rows_strips)(2, nv, kc, A, rs_a, cs_a, B, ldb, alpha, bet, C, ldc);
    if (nv == n) return;
    if (m == 1)
        FM_NAME(fm_rows_last)(1, n - nv, kc, A, rs_a, cs_a, B + nv, ldb, alpha, bet, C + nv, ldc);
    else
        FM_NAME(fm_rows_last)(2, n - nv, kc, A, rs_a, cs_a, B + nv, ldb, alpha, bet, C + nv, ldc);
}

/* C = alpha A B + beta C for m <= FM_ROWS_MAX rows, K block by K block (see fm_rows_strip). */
FM_TARGET static void FM_NAME(fm_gemm_rows)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, FM_T alpha,
                                            const FM_T* A, ptrdiff_t rs_a, ptrdiff_t cs_a,
                                            const FM_T* B, ptrdiff_t ldb, FM_T beta,
                                            FM_T* C, ptrdiff_t ldc) {
    for (ptrdiff_t pc = 0, kcb = FM_NAME(fm_k_block)(k); pc < k; pc += kcb)
        FM_NAME(fm_rows_block)(m, n, k - pc < kcb ? k - pc : kcb, A + pc * cs_a, rs_a, cs_a,
                               B + pc * ldb, ldb, alpha, pc == 0 ? beta : (FM_T)1, C, ldc);
}

/* The rows of a streamed product (see FM_STREAM_K in gemm.h): as fm_gemm_rows, rows
 * FM_STREAM_GROUP at a time, then two, then one, B read in place. A streamed product's K
 * blocks are a few dozen steps: with two rows a strip holds two or four FMA chains, too
 * few to cover the FMA's latency; four rows hold eight. */
FM_TARGET static void FM_NAME(fm_stream_rows)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                                              FM_T alpha, const FM_T* A, ptrdiff_t rs_a,
                                              ptrdiff_t cs_a, const FM_T* B, ptrdiff_t ldb,
                                              FM_T beta, FM_T* C, ptrdiff_t ldc) {
    const ptrdiff_t nv = n / FM_VL * FM_VL;
    for (ptrdiff_t pc = 0, kcb = FM_NAME(fm_k_block)(k); pc < k; pc += kcb) {
        ptrdiff_t kc = k - pc < kcb ? k - pc : kcb, i = 0;
        FM_T bet = pc == 0 ? beta : (FM_T)1;
        const FM_T* b = B + pc * ldb;
        for (; i + FM_STREAM_GROUP <= m; i += FM_STREAM_GROUP) {
            const FM_T* a = A + i * rs_a + pc * cs_a;
            FM_NAME(fm_rows_strips)(FM_STREAM_GROUP, nv, kc, a, rs_a, cs_a, b, ldb, alpha, bet,
                                    C + i * ldc, ldc);
            if (nv < n)
                FM_NAME(fm_rows_last)(FM_STREAM_GROUP, n - nv, kc, a, rs_a, cs_a, b + nv, ldb,
                                      alpha, bet, C + i * ldc + nv, ldc);
        }
        for (; i < m; i += FM_ROWS_MAX)
            FM_NAME(fm_rows_block)(m - i < FM_ROWS_MAX ? m - i : FM_ROWS_MAX, n, kc,
                                   A + i * rs_a + pc * cs_a, rs_a, cs_a, b, ldb, alpha, bet,
                                   C + i * ldc, ldc);
    }
}

/* The epilogue of one thread's GEMM: epi over each mc x nc block of C (at most MC x NC)
 * once its last K block is done (still in L2), the block given in the whole product's
 * coordinates (this GEMM's C starts at row r_org, column c_org of it). Per block, not per
 * MR x NR tile: on 32-column panels the activation loop's per-row overhead cost more
 * than the pass it replaced (measured: 5 % of a batch-256 MNIST step against 3 %). Or,
 * under a fm_gemm_tile_epi (then fn is NULL), in the tiles' own stores of the last K
 * block, on the values still in registers: bias and act_out given in this GEMM's
 * coordinates (column 0, and C's row 0 and column 0). */
typedef struct {
    fm_gemm_epi_fn fn;    /* or NULL */
    void* ctx;
    ptrdiff_t r_org, c_org;
    const FM_T* bias;     /* with a tile epilogue: bias, or NULL */
    FM_T* act_out;        /* with a tile epilogue and ReLU: A, or NULL */
    int* a_bad;           /* with a tile epilogue: its a_bad (A's blocks checked), or NULL */
} FM_NAME(fm_epi_at);

/* 1 when the rows x cols block at A (row stride lda) holds no NaN or inf: x - x is 0
 * exactly for finite x and NaN otherwise. The check a prediction's first product makes of
 * its input block by block, just before the tiles read the block (so the block is read
 * from memory once, not by a separate pass and then again). */
FM_TARGET static int FM_NAME(fm_block_finite)(const FM_T* A, ptrdiff_t lda, ptrdiff_t rows,
                                              ptrdiff_t cols) {
    FMV acc = FMV_ZERO();
    FM_T tail = 0;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const FM_T* row = A + r * lda;
        ptrdiff_t q = 0;
        for (; q + FM_VL <= cols; q += FM_VL) {
            FMV v = FMV_LOADU(row + q);
            acc = FMV_ADD(acc, FMV_SUB(v, v));
        }
        for (; q < cols; q++) tail += row[q] - row[q];
    }
    FM_T lanes[FM_VL];
    FMV_STOREU(lanes, acc);
    for (int u = 0; u < FM_VL; u++) tail += lanes[u];
    return tail == 0;
}

/* One thread's GEMM (see gemm.h for the loop nest). buf: MC*KC + KC*NC elements. A is
 * packed only when it is large (see FM_A_DIRECT_MAX); with direct_b (a non-transposed
 * B and at most MR rows in the whole product: each B value is used once) the whole
 * column panels of B are read in place too. Packed or not, every element of C is
 * accumulated in the same order, so the choice never changes a result. */
FM_TARGET static void FM_NAME(fm_gemm_serial)(int ta, int tb, ptrdiff_t m, ptrdiff_t n,
                                              ptrdiff_t k, FM_T alpha, const FM_T* A,
                                              ptrdiff_t lda, const FM_T* B, ptrdiff_t ldb,
                                              FM_T beta, FM_T* C, ptrdiff_t ldc, int direct_b,
                                              FM_T* buf, const FM_NAME(fm_epi_at)* epi) {
    FM_T* Ap = buf;
    FM_T* Bp = buf + FM_MC * FM_KC;
    /* a transposed A of more than MC rows is packed when its blocks serve more than one
     * strip of NR columns (n > NR); with one strip each value is read once either way */
    const int pack_a = m > FM_A_DIRECT_MAX || (ta && m > FM_MC && n > FM_NR);
    const int plain = !pack_a && !ta;     /* A read in place along its rows */
    const ptrdiff_t mcb = plain ? FM_MC_PLAIN : FM_MC;   /* A's row block */
    for (ptrdiff_t jc = 0; jc < n; jc += FM_NC) {
        ptrdiff_t nc = n - jc < FM_NC ? n - jc : FM_NC;
        ptrdiff_t n_full = direct_b ? nc / FM_NR * FM_NR : 0;   /* columns read in place */
        for (ptrdiff_t pc = 0, kcb = FM_NAME(fm_k_block)(k); pc < k; pc += kcb) {
            ptrdiff_t kc = k - pc < kcb ? k - pc : kcb;
            FM_T bet = pc == 0 ? beta : (FM_T)1;
            if (n_full < nc)
                FM_NAME(fm_pack_b)(tb, B, ldb, pc, jc + n_full, kc, nc - n_full, Bp + n_full * kc);
            const int last = pc + kc >= k;    /* the tile epilogue's block */
            for (ptrdiff_t ic = 0; ic < m; ic += mcb) {
                ptrdiff_t mc = m - ic < mcb ? m - ic : mcb;
                if (epi->a_bad && jc == 0 && !ta
                        && !FM_NAME(fm_block_finite)(A + ic * lda + pc, lda, mc, kc))
                    __atomic_store_n(epi->a_bad, 1, __ATOMIC_RELAXED);
                if (pack_a) FM_NAME(fm_pack_a)(ta, A, lda, ic, pc, mc, kc, Ap);
                FM_NAME(fm_next_block) nb = {NULL, lda, 0, 0, 0};
                if (plain)
                    nb = FM_NAME(fm_next_block_of)(A, lda, m, k, ic, mc, pc, kc, mcb, kcb,
                                                   jc + nc < n);
                for (ptrdiff_t jr = 0; jr < nc; jr += FM_NR) {
                    ptrdiff_t nr = nc - jr < FM_NR ? nc - jr : FM_NR;
                    const FM_T* Bt = jr < n_full ? B + pc * ldb + jc + jr : Bp + jr * kc;
                    ptrdiff_t ldbt = jr < n_full ? ldb : FM_NR;
                    for (ptrdiff_t ir = 0, h; ir < mc; ir += h) {
                        h = FM_NAME(fm_tile_rows)(mc - ir);
                        ptrdiff_t at = (ic + ir) * ldc + jc + jr;
                        const FM_T* bias = last && epi->bias ? epi->bias + jc + jr : NULL;
                        FM_T* act = last && epi->act_out ? epi->act_out + at : NULL;
#ifdef FM_ASM_ROWS12
                        if (plain && ldbt == FM_NR   /* 12-row tiles over a packed B */
                                && (h = FM_NAME(fm_tile_rows_plain)(mc - ir)) == 12) {
                            FM_NAME(fm_tile12_rows)(kc, A + (ic + ir) * lda + pc, lda, Bt,
                                                    C + at, ldc, alpha, bet, nr, bias, act,
                                                    &nb);
                            continue;
                        }
#endif
                        if (pack_a)
                            FM_NAME(fm_ukernel)(FM_A_PACKED, h, kc, Ap + ir * kc, 0, Bt, ldbt,
                                                C + at, ldc, alpha, bet, nr, bias, act, NULL);
                        else if (ta)
                            FM_NAME(fm_ukernel)(FM_A_COLS, h, kc, A + pc * lda + ic + ir, lda,
                                                Bt, ldbt, C + at, ldc, alpha, bet, nr, bias,
                                                act, NULL);
                        else
                            FM_NAME(fm_ukernel)(FM_A_ROWS, h, kc, A + (ic + ir) * lda + pc, lda,
                                                Bt, ldbt, C + at, ldc, alpha, bet, nr, bias,
                                                act, &nb);
                    }
                }
                if (epi->fn && pc + kc >= k)   /* the mc x nc block, still in L2 */
                    epi->fn(epi->ctx, epi->r_org + ic, mc, epi->c_org + jc, nc);
            }
        }
    }
}

/* A product split into chunks of `chunk` columns (split_n) or rows of C, each an
 * independent serial GEMM with the packing buffer of the slot that runs it. */
typedef struct {
    int ta, tb, rows, split_n, direct_b;
    ptrdiff_t m, n, k, lda, ldb, ldc, len, heads, head, tail;   /* fm_gemm_plan_chunks */
    FM_T alpha, beta;
    const FM_T* A;
    const FM_T* B;
    FM_T* C;
    FM_T* buf;
    size_t per;
    fm_gemm_epi_fn epi;    /* run on each finished block of C (or NULL) */
    void* epi_ctx;
    const fm_gemm_tile_epi* tile_epi;   /* or NULL (then epi, if any, runs per block) */
    double* head_s;        /* seconds each head chunk took (the adaptive tail), or NULL */
} FM_NAME(fm_gemm_job);

static void FM_NAME(fm_gemm_chunk_run)(void* arg, ptrdiff_t i, int slot);

/* Chunk i, timed when it is a head and the job times them. */
static void FM_NAME(fm_gemm_chunk)(void* arg, ptrdiff_t i, int slot) {
    const FM_NAME(fm_gemm_job)* j = (const FM_NAME(fm_gemm_job)*)arg;
    if (!j->head_s || i >= j->heads) {
        FM_NAME(fm_gemm_chunk_run)(arg, i, slot);
        return;
    }
    double t0 = fm_clock_now();
    FM_NAME(fm_gemm_chunk_run)(arg, i, slot);
    j->head_s[i] = fm_clock_now() - t0;
}

static void FM_NAME(fm_gemm_chunk_run)(void* arg, ptrdiff_t i, int slot) {
    const FM_NAME(fm_gemm_job)* j = (const FM_NAME(fm_gemm_job)*)arg;
    ptrdiff_t s = i < j->heads ? i * j->head : j->heads * j->head + (i - j->heads) * j->tail;
    ptrdiff_t e = s + (i < j->heads ? j->head : j->tail);
    const ptrdiff_t rs_a = j->ta ? 1 : j->lda, cs_a = j->ta ? j->lda : 1;
    FM_NAME(fm_epi_at) epi = {j->epi, j->epi_ctx, j->split_n ? 0 : s, j->split_n ? s : 0,
                              NULL, NULL, NULL};
    if (e > j->len) e = j->len;
    if (s >= e) return;
    if (j->tile_epi) {     /* its operands where this chunk's C starts */
        const fm_gemm_tile_epi* t = j->tile_epi;
        ptrdiff_t c_at = j->split_n ? s : s * j->ldc;
        epi.bias = t->bias ? (const FM_T*)t->bias + (j->split_n ? s : 0) : NULL;
        epi.act_out = t->relu ? (FM_T*)t->a + c_at : NULL;
        epi.a_bad = t->a_bad;
    }
    if (j->rows) {
        FM_NAME(fm_gemm_rows)(j->m, e - s, j->k, j->alpha, j->A, rs_a, cs_a, j->B + s, j->ldb,
                              j->beta, j->C + s, j->ldc);
        if (j->epi) j->epi(j->epi_ctx, 0, j->m, s, e - s);
        return;
    }
    FM_T* buf = j->buf + (size_t)slot * j->per;
    if (j->split_n)
        FM_NAME(fm_gemm_serial)(j->ta, j->tb, j->m, e - s, j->k, j->alpha, j->A, j->lda,
                                j->tb ? j->B + s * j->ldb : j->B + s, j->ldb, j->beta,
                                j->C + s, j->ldc, j->direct_b, buf, &epi);
    else
        FM_NAME(fm_gemm_serial)(j->ta, j->tb, e - s, j->n, j->k, j->alpha,
                                j->ta ? j->A + s : j->A + s * j->lda, j->lda, j->B, j->ldb,
                                j->beta, j->C + s * j->ldc, j->ldc, j->direct_b, buf, &epi);
}

#include "gemm_thin.h"   /* fm_gemv, fm_gemm_rows_k: one column; 1-2 rows along K */

/* A streamed product split by rows: chunks of `rows` rows (a multiple of FM_STREAM_GROUP). */
typedef struct {
    ptrdiff_t m, n, k, rs_a, cs_a, ldb, ldc, rows;
    FM_T alpha, beta;
    const FM_T* A;
    const FM_T* B;
    FM_T* C;
    fm_gemm_epi_fn epi;
    void* epi_ctx;
} FM_NAME(fm_stream_job);

/* Chunk i: its rows in blocks of at most MC, each followed by the epilogue over its slices
 * of at most NC columns (the blocks the epilogue contract promises). */
static void FM_NAME(fm_stream_chunk)(void* arg, ptrdiff_t i, int slot) {
    const FM_NAME(fm_stream_job)* j = (const FM_NAME(fm_stream_job)*)arg;
    const ptrdiff_t s = i * j->rows, e = j->m - s < j->rows ? j->m : s + j->rows;
    (void)slot;
    for (ptrdiff_t r = s; r < e; r += FM_MC) {
        const ptrdiff_t mc = e - r < FM_MC ? e - r : FM_MC;
        FM_NAME(fm_stream_rows)(mc, j->n, j->k, j->alpha, j->A + r * j->rs_a, j->rs_a, j->cs_a,
                                j->B, j->ldb, j->beta, j->C + r * j->ldc, j->ldc);
        if (j->epi)
            for (ptrdiff_t c = 0; c < j->n; c += FM_NC)
                j->epi(j->epi_ctx, r, mc, c, j->n - c < FM_NC ? j->n - c : FM_NC);
    }
}

/* C = alpha op(A) op(B) + beta C streamed (see FM_STREAM_K in gemm.h) on up to `threads`
 * threads. A transposed B (a backward's dX = dZ W^T) is first copied plain, k x n: on the
 * stack up to FM_STREAM_B_BYTES, else into this thread's packing buffer (-1 when that
 * cannot be allocated: nothing written); ldb is then n (with k = 1, any ldb: one row).
 * Inlined into fm_gemm, its one caller: a call of its own cost a tiny model's products
 * ~7 ns each (a 100-300 ns product). */
static inline __attribute__((always_inline)) int FM_NAME(fm_gemm_stream)(
        int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, FM_T alpha, const FM_T* A,
        ptrdiff_t lda, const FM_T* B, ptrdiff_t ldb, FM_T beta, FM_T* C, ptrdiff_t ldc,
        int threads, fm_gemm_epi_fn epi, void* epi_ctx) {
    FM_T bt_stack[FM_STREAM_B_BYTES / sizeof(FM_T)] __attribute__((aligned(64)));
    const size_t b_bytes = (size_t)k * (size_t)n * sizeof(FM_T);
    if (tb && !(k == 1 && ldb == 1)) {   /* (one row of op(B), contiguous: read in place) */
        FM_T* bt = b_bytes <= sizeof bt_stack ? bt_stack : (FM_T*)fm_gemm_buffer(b_bytes);
        if (!bt) return -1;
        for (ptrdiff_t p = 0; p < k; p++)
            for (ptrdiff_t j = 0; j < n; j++) bt[p * n + j] = B[j * ldb + p];
        B = bt, ldb = n;
    }
    const ptrdiff_t rs_a = ta ? 1 : lda, cs_a = ta ? lda : 1;
    /* one block, here: a tiny model's products (the test is fm_gemm_plan_threads's t < 2,
     * in integers: its doubles cost a tenth of a 100 ns product) */
    if (m <= FM_MC && n <= FM_NC && (m + 16) * n * k < 2 * FM_GEMM_MIN_WORK) {
        FM_NAME(fm_stream_rows)(m, n, k, alpha, A, rs_a, cs_a, B, ldb, beta, C, ldc);
        if (epi) epi(epi_ctx, 0, m, 0, n);
        return 0;
    }
    FM_NAME(fm_stream_job) job = {m, n, k, rs_a, cs_a, ldb, ldc, m, alpha, beta, A, B, C, epi,
                                  epi_ctx};
    const ptrdiff_t groups = (m + FM_STREAM_GROUP - 1) / FM_STREAM_GROUP;
    int t = fm_gemm_plan_threads(m, n, k, threads);
    ptrdiff_t chunks = t <= 1 ? 1 : (ptrdiff_t)t * fm_gemm_chunks_m;
    if (chunks > groups) chunks = groups;
    job.rows = (groups + chunks - 1) / chunks * FM_STREAM_GROUP;
    chunks = (m + job.rows - 1) / job.rows;
    if (chunks <= 1)
        FM_NAME(fm_stream_chunk)(&job, 0, 0);
    else
        fm_pool_run(t < chunks ? t : (int)chunks, chunks, FM_NAME(fm_stream_chunk), &job);
    return 0;
}

/* C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C, row-major with row strides lda, ldb,
 * ldc; on up to `threads` threads; epi (when not NULL) runs on each finished block of C,
 * except where tile_epi (when not NULL) does the same work in the tiles (products that
 * tile; tile_epi must describe what epi does).
 * Returns 0, or -1 when the packing buffer could not be allocated (nothing was written,
 * epi not run: the caller falls back to BLAS).
 * Contract: this CPU runs the family; m, n, k >= 0; the strides fit the shapes. */
static int FM_NAME(fm_gemm)(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                            FM_T alpha, const FM_T* A, ptrdiff_t lda, const FM_T* B,
                            ptrdiff_t ldb, FM_T beta, FM_T* C, ptrdiff_t ldc, int threads,
                            fm_gemm_epi_fn epi, void* epi_ctx,
                            const fm_gemm_tile_epi* tile_epi) {
    const size_t per = (size_t)FM_MC * FM_KC + (size_t)FM_KC * FM_NC;
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0) {   /* C = beta C */
        for (ptrdiff_t i = 0; i < m; i++)
            for (ptrdiff_t j = 0; j < n; j++) C[i * ldc + j] = beta != 0 ? beta * C[i * ldc + j] : 0;
        if (epi) epi(epi_ctx, 0, m, 0, n);
        return 0;
    }
    if (n == 1) {
        FM_NAME(fm_gemv)(ta, tb, m, k, alpha, A, lda, B, ldb, beta, C, ldc, threads, epi,
                         epi_ctx);
        return 0;
    }
    if (fm_gemm_streaming && ((size_t)k * (size_t)n * sizeof(FM_T) <= FM_STREAM_B_BYTES
                              || (k <= FM_STREAM_K && m > FM_ROWS_MAX)))
        return FM_NAME(fm_gemm_stream)(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc,
                                       threads, epi, epi_ctx);
    FM_NAME(fm_gemm_job) job;
    job.ta = ta, job.tb = tb, job.m = m, job.n = n, job.k = k, job.lda = lda, job.ldb = ldb;
    job.ldc = ldc, job.alpha = alpha, job.beta = beta, job.A = A, job.B = B, job.C = C;
    job.per = per, job.epi = epi, job.epi_ctx = epi_ctx, job.tile_epi = NULL;
    job.rows = !tb && m <= FM_ROWS_MAX;  /* paths are decided for the whole product */
    job.direct_b = !tb && m <= FM_MR;
    job.split_n = n >= m || job.direct_b;
    job.len = job.split_n ? n : m;
    ptrdiff_t unit = job.split_n ? FM_NR : FM_MR;
    ptrdiff_t units = (job.len + unit - 1) / unit;
    /* tiles compute whole strips of NR columns: a narrow product (an output layer's 10)
     * costs the tiles as much as NR columns, and is planned as that much work */
    int t = fm_gemm_plan_threads(m, job.rows ? n : (n + FM_NR - 1) / FM_NR * FM_NR, k, threads);
    if (job.rows && t > 1 && k > FM_KC)    /* whole rows of B a thread (see fm_gemm_rows_k) */
        return FM_NAME(fm_gemm_rows_k)(m, n, k, alpha, A, ta ? 1 : lda, ta ? lda : 1, B, ldb,
                                       beta, C, ldc, t, epi, epi_ctx);
    if (t > units) t = (int)units;
    /* chunks a thread: fm_gemm_chunks_n / _m (gemm.h), one each by default, and the
     * guided tail (fm_gemm_plan_chunks); products of 1-2 rows: one chunk a thread */
    ptrdiff_t per_thread = job.rows ? 1 : job.split_n ? fm_gemm_chunks_n : fm_gemm_chunks_m;
    ptrdiff_t chunks = 1;
    job.heads = t, job.head = job.tail = units;
    if (t > 1)
        chunks = fm_gemm_plan_chunks(units, t, per_thread,
                                     job.rows ? 0 : ((job.split_n ? fm_gemm_tail_cols
                                                                  : fm_gemm_tail_rows)
                                                     + unit - 1) / unit,
                                     &job.head, &job.tail);
    job.head *= unit, job.tail *= unit;
    job.buf = NULL;                     /* the rows path packs nothing */
    if (!job.rows && !(job.buf = (FM_T*)fm_gemm_buffer((size_t)t * per * sizeof(FM_T))))
        return -1;
    if (!job.rows && tile_epi)          /* the tiles do the epilogue's work */
        job.tile_epi = tile_epi, job.epi = NULL;
    /* the adaptive tail times the heads when they hold equal work (the last one cut by at
     * most a sixteenth), each >= 2^21 FMAs (two clock reads, ~0.1 us, against >= 60 us) */
    double head_s[FM_GEMM_MAX_THREADS];
    job.head_s = t > 1 && t <= FM_GEMM_MAX_THREADS && !job.rows && per_thread == 1
                 && fm_gemm_tail_adaptive && fm_gemm_tail_16ths > 0
                 && (t * job.head - job.len) * 16 <= job.head
                 && (double)job.head * (double)k * (double)(job.split_n ? m : n)
                        >= (double)(1 << 21) ? head_s : NULL;
    fm_pool_run(t, chunks, FM_NAME(fm_gemm_chunk), &job);
    if (job.head_s) {
        double lo = head_s[0], hi = head_s[0];
        for (int h = 1; h < t; h++) {
            lo = head_s[h] < lo ? head_s[h] : lo;
            hi = head_s[h] > hi ? head_s[h] : hi;
        }
        if (lo > 0) fm_gemm_heads_timed(hi / lo);
    }
    if (job.tile_epi && tile_epi->a_bad && !ta)   /* every block of A went through a tile */
        *tile_epi->a_checked = 1;
    return 0;
}

#undef FM_VL
#undef FM_T
#undef FM_NAME
#undef FM_TNAME
#undef FM_TARGET
#undef FM_MR
#undef FM_ROWS_UNROLL
#undef FM_ASM_ROWS12
#undef FM_NR
#undef FM_KC
#undef FM_MC
#undef FM_MC_PLAIN
#undef FM_NC
#undef FM_ROWS_VECS
#undef FMV
#undef FMV_ZERO
#undef FMV_LOAD
#undef FMV_LOADU
#undef FMV_STOREU
#undef FMV_SET1
#undef FMV_FMA
#undef FMV_MUL
#undef FMV_ADD
#undef FMV_SUB
#undef FMV_MAX
#undef FMV_LOADN
#undef FMV_STOREN
#undef FMS_FMA
