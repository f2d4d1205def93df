/* The K loop of the float32 AVX-512 12 x 32 tile over a plain A, in inline assembly.
 * Included by gemm.h only (x86-64, GCC or Clang).
 *
 * Why assembly: a plain A (the batch in a forward or dX product, the rows of a
 * prediction) is read along its rows, one broadcast per row and K step. With 12 rows the
 * C kernel needs 12 row pointers next to 24 accumulators, and GCC keeps them on the stack
 * inside the K loop (measured: 11 reloads per unrolled step, the 12-row tile slower than
 * the 8-row one). Here three base registers (rows 0-3, 4-7, 8-11) and two index
 * registers (lda, 3 lda) address all twelve rows, so one step is 2 loads of B, 12
 * broadcasts and 24 FMAs, and the loop moves 4 pointers every 4 steps. 24 accumulators
 * (zmm0-23) hide the FMA latency with room to spare; zmm24-29 take the broadcasts in turn,
 * zmm30-31 B.
 *
 * Measured (2 vCPUs of an Intel Xeon, SPR class, one thread; A 144 x 196 blocks of a
 * 784-wide input from L2, B's 196 x 32 micro-panels from L1): 94 % of the FMA peak
 * against 90 % for the 8 x 32 C kernel and 90 % for a 12 x 32 C kernel without spills.
 *
 * It also fetches a row of the *next* block of A into L2, one line every 4 steps (pf,
 * pf_lines: given by fm_gemm_serial, one row a tile): the first read of an input from
 * memory then overlaps this block's FMAs. Before, the tiles (or the input check just
 * before them) stalled on it: 4.5 % of a 10,000-row prediction's cycles in perf, 2.7-3.4 %
 * of its time (C chain, 20 alternating pairs of rounds, faster in 16-19 of 20). A burst of
 * prefetches between tiles did not help: the prefetches themselves stalled, the line fill
 * buffers full.
 *
 * Numerics: acc[r 32 + j] = sum over p = 0..kc-1, in order, of A[r lda + p] Bp[p 32 + j],
 * from 0, one FMA (one rounding) per step: exactly the C kernels' sums. */
#ifndef FASTMLP_GEMM_ASM_H
#define FASTMLP_GEMM_ASM_H

/* One K step u (0-3) of the unrolled loop: B's two vectors, then per row a broadcast and
 * two FMAs. Row r's broadcast register is 24 + r % 6. */
#define FM_ASM_ROW(u, base, idx, r, bc)                                                      \
    "vbroadcastss " #u "*4(" base idx "), %%zmm" #bc "\n\t"                                 \
    "vfmadd231ps %%zmm30, %%zmm" #bc ", %%zmm" #r "\n\t"                                    \
    "vfmadd231ps %%zmm31, %%zmm" #bc ", %%zmm" FM_ASM_ODD_##r "\n\t"
#define FM_ASM_ODD_0 "1"
#define FM_ASM_ODD_2 "3"
#define FM_ASM_ODD_4 "5"
#define FM_ASM_ODD_6 "7"
#define FM_ASM_ODD_8 "9"
#define FM_ASM_ODD_10 "11"
#define FM_ASM_ODD_12 "13"
#define FM_ASM_ODD_14 "15"
#define FM_ASM_ODD_16 "17"
#define FM_ASM_ODD_18 "19"
#define FM_ASM_ODD_20 "21"
#define FM_ASM_ODD_22 "23"
#define FM_ASM_STEP(u)                                                                       \
    "vmovups " #u "*128(%%rdx), %%zmm30\n\t"                                                 \
    "vmovups " #u "*128+64(%%rdx), %%zmm31\n\t"                                              \
    FM_ASM_ROW(u, "%%r8", "", 0, 24) FM_ASM_ROW(u, "%%r8", ",%%r11,1", 2, 25)                \
    FM_ASM_ROW(u, "%%r8", ",%%r11,2", 4, 26) FM_ASM_ROW(u, "%%r8", ",%%r12,1", 6, 27)        \
    FM_ASM_ROW(u, "%%r9", "", 8, 28) FM_ASM_ROW(u, "%%r9", ",%%r11,1", 10, 29)               \
    FM_ASM_ROW(u, "%%r9", ",%%r11,2", 12, 24) FM_ASM_ROW(u, "%%r9", ",%%r12,1", 14, 25)      \
    FM_ASM_ROW(u, "%%r10", "", 16, 26) FM_ASM_ROW(u, "%%r10", ",%%r11,1", 18, 27)            \
    FM_ASM_ROW(u, "%%r10", ",%%r11,2", 20, 28) FM_ASM_ROW(u, "%%r10", ",%%r12,1", 22, 29)
#define FM_ASM_ZERO(i) "vpxord %%zmm" #i ", %%zmm" #i ", %%zmm" #i "\n\t"
#define FM_ASM_SAVE(i) "vmovaps %%zmm" #i ", " #i "*64(%[acc])\n\t"

/* acc (64-byte aligned, 12 x 32 floats, row r at acc + 32 r) = the kc-step sums of the
 * tile A[0:12, 0:kc] (row stride lda elements) times Bp (kc rows of 32 floats, packed).
 * Meanwhile the pf_lines 64-byte lines from pf on are prefetched into L2 (at most one
 * every 4 steps: kc / 4 of them). */
FM_AVX512 static void fm_k12x32_rows_f32_avx512(ptrdiff_t kc, const float* A, ptrdiff_t lda,
                                               const float* Bp, float* acc, const char* pf,
                                               ptrdiff_t pf_lines) {
    const ptrdiff_t lda_bytes = lda * (ptrdiff_t)sizeof(float), quads = kc / 4, rest = kc % 4;
    __asm__ volatile(
        FM_ASM_ZERO(0) FM_ASM_ZERO(1) FM_ASM_ZERO(2) FM_ASM_ZERO(3) FM_ASM_ZERO(4)
        FM_ASM_ZERO(5) FM_ASM_ZERO(6) FM_ASM_ZERO(7) FM_ASM_ZERO(8) FM_ASM_ZERO(9)
        FM_ASM_ZERO(10) FM_ASM_ZERO(11) FM_ASM_ZERO(12) FM_ASM_ZERO(13) FM_ASM_ZERO(14)
        FM_ASM_ZERO(15) FM_ASM_ZERO(16) FM_ASM_ZERO(17) FM_ASM_ZERO(18) FM_ASM_ZERO(19)
        FM_ASM_ZERO(20) FM_ASM_ZERO(21) FM_ASM_ZERO(22) FM_ASM_ZERO(23)
        "mov %[a], %%r8\n\t"                    /* rows 0-3 */
        "lea (%%r8,%[l],4), %%r9\n\t"           /* rows 4-7 */
        "lea (%%r9,%[l],4), %%r10\n\t"          /* rows 8-11 */
        "mov %[l], %%r11\n\t"                   /* lda (bytes) */
        "lea (%[l],%[l],2), %%r12\n\t"          /* 3 lda */
        "mov %[b], %%rdx\n\t"
        "mov %[q], %%rcx\n\t"
        "test %%rcx, %%rcx\n\t"
        "jz 2f\n\t"
        ".p2align 5\n\t"
        "1:\n\t"
        FM_ASM_STEP(0) FM_ASM_STEP(1)
        "test %[pn], %[pn]\n\t"             /* a line of the next block, if any left */
        "jz 5f\n\t"
        "prefetcht1 (%[pf])\n\t"
        "add $64, %[pf]\n\t"
        "dec %[pn]\n\t"
        "5:\n\t"
        FM_ASM_STEP(2) FM_ASM_STEP(3)
        "add $16, %%r8\n\t"
        "add $16, %%r9\n\t"
        "add $16, %%r10\n\t"
        "add $512, %%rdx\n\t"
        "dec %%rcx\n\t"
        "jnz 1b\n\t"
        "2:\n\t"
        "mov %[t], %%rcx\n\t"
        "test %%rcx, %%rcx\n\t"
        "jz 4f\n\t"
        "3:\n\t"
        FM_ASM_STEP(0)
        "add $4, %%r8\n\t"
        "add $4, %%r9\n\t"
        "add $4, %%r10\n\t"
        "add $128, %%rdx\n\t"
        "dec %%rcx\n\t"
        "jnz 3b\n\t"
        "4:\n\t"
        FM_ASM_SAVE(0) FM_ASM_SAVE(1) FM_ASM_SAVE(2) FM_ASM_SAVE(3) FM_ASM_SAVE(4)
        FM_ASM_SAVE(5) FM_ASM_SAVE(6) FM_ASM_SAVE(7) FM_ASM_SAVE(8) FM_ASM_SAVE(9)
        FM_ASM_SAVE(10) FM_ASM_SAVE(11) FM_ASM_SAVE(12) FM_ASM_SAVE(13) FM_ASM_SAVE(14)
        FM_ASM_SAVE(15) FM_ASM_SAVE(16) FM_ASM_SAVE(17) FM_ASM_SAVE(18) FM_ASM_SAVE(19)
        FM_ASM_SAVE(20) FM_ASM_SAVE(21) FM_ASM_SAVE(22) FM_ASM_SAVE(23)
        : [pf] "+r"(pf), [pn] "+r"(pf_lines)
        /* b, q, t are read once: from memory, GCC has too few registers left otherwise */
        : [a] "r"(A), [l] "r"(lda_bytes), [b] "m"(Bp), [q] "m"(quads), [t] "m"(rest),
          [acc] "r"(acc)
        : "r8", "r9", "r10", "r11", "r12", "rcx", "rdx", "xmm0", "xmm1", "xmm2", "xmm3",
          "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",
          "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",
          "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31",
          "cc", "memory");
}

#undef FM_ASM_ROW
#undef FM_ASM_STEP
#undef FM_ASM_ZERO
#undef FM_ASM_SAVE
#endif
