/* The floating-point mode of the core's training loop: subnormal numbers flushed to zero.
 *
 * Why: a float32 Adam state decays geometrically where a weight's gradient is zero (a
 * dead ReLU unit) and its square underflows where a gradient is tiny (confident softmax
 * outputs), so a few per mille of the moments become subnormal after a few hundred steps.
 * An x86 vector instruction with a subnormal operand or result takes a microcode assist
 * (about a hundred cycles instead of one), and one subnormal lane is enough: measured on
 * an Intel Xeon (AVX-512), the MNIST-shape epochs of one fit went 829 -> 1444 ms by the
 * sixth (3,146 subnormal moments of 535,818); with all gradients near 1e-20 Adam ran 17x
 * slower.
 * XLA's CPU backend flushes subnormals the same way (FTZ and DAZ) for its compiled code.
 *
 * Scope: only while the core runs training steps (the fused loops of fastmlp._train and
 * fastmlp._graph_train set the mode of the calling thread and restore it after; the
 * thread team copies the caller's mode into each worker for every job, pool.h), never
 * process-wide as -ffast-math would.
 * fastmlp.set_flush_denormal(False) keeps IEEE subnormals (exact agreement with NumPy
 * where values fall below 1.2e-38 in float32 or 2.2e-308 in float64).
 */
#ifndef FASTMLP_FPMODE_H
#define FASTMLP_FPMODE_H

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define FM_FP_FLUSH 0x8040u   /* MXCSR: FTZ (bit 15) and DAZ (bit 6) */
static inline unsigned fm_fp_mode(void) { return _mm_getcsr(); }
static inline void fm_fp_set_mode(unsigned mode) { _mm_setcsr(mode); }
static inline int fm_fp_can_flush(void) { return 1; }
#else   /* elsewhere the mode is left as it is */
#define FM_FP_FLUSH 0u
static inline unsigned fm_fp_mode(void) { return 0; }
static inline void fm_fp_set_mode(unsigned mode) { (void)mode; }
static inline int fm_fp_can_flush(void) { return 0; }
#endif

#endif
