"""NumPy twin of include/fastmlp/rng.h: Philox-4x32-10, counter-based, bit-identical.

``uniform(seed, stream, step, n)`` is element i -> the C ``fm_uniform(seed, stream, step, i)``
for i < n; likewise ``normal``.
"""
import numpy as np

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)
_TWO_M32 = 2.3283064365386963e-10


def _philox(blocks, seed, stream, step):
    """The four 32-bit words (as uint64 arrays) of each block index in ``blocks``."""
    blocks = blocks.astype(np.uint64)
    c0 = blocks & _MASK32
    c1 = blocks >> np.uint64(32)
    c2 = np.full_like(c0, step & 0xFFFFFFFF)
    c3 = np.full_like(c0, ((step >> 32) & 0xFFFF) | ((stream << 16) & 0xFFFFFFFF))
    k0, k1 = seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF
    for _ in range(10):
        p0 = _M0 * c0
        p1 = _M1 * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & _MASK32
        hi1, lo1 = p1 >> np.uint64(32), p1 & _MASK32
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
        k0, k1 = (k0 + _W0) & 0xFFFFFFFF, (k1 + _W1) & 0xFFFFFFFF
    return c0, c1, c2, c3


def uniform(seed, stream, step, n):
    """n uniforms in [0, 1) (float64), 32 random bits each."""
    idx = np.arange(n, dtype=np.uint64)
    words = np.stack(_philox(idx >> np.uint64(2), seed, stream, step))
    return words[(idx & np.uint64(3)).astype(np.intp), np.arange(n)] * _TWO_M32


def normal(seed, stream, step, n):
    """n standard normals (Box-Muller on a pair of words per element)."""
    idx = np.arange(n, dtype=np.uint64)
    w = np.stack(_philox(idx >> np.uint64(1), seed, stream, step))
    j = ((idx & np.uint64(1)) * np.uint64(2)).astype(np.intp)
    cols = np.arange(n)
    u1 = (w[j, cols] + 1.0) * _TWO_M32
    u2 = w[j + 1, cols] * _TWO_M32
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(6.283185307179586 * u2)
