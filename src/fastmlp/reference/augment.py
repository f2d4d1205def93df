"""NumPy twin of include/fastmlp/augment.h: the random affine resampling and its adjoint."""
import numpy as np

from fastmlp.reference import rng as ref_rng


def maps(shape, max_shift, max_rotation, max_scale, flip, seed, stream, step, n_rows):
    """(n_rows, 6) inverse-map coefficients: sx = m0 + m1 j + m2 i, sy = m3 + m4 j + m5 i."""
    h, w, _ = shape
    u = ref_rng.uniform(seed, stream, step, 5 * n_rows).reshape(n_rows, 5)
    th = (2 * u[:, 0] - 1) * max_rotation
    s = 1 + (2 * u[:, 1] - 1) * max_scale
    tx, ty = (2 * u[:, 2] - 1) * max_shift, (2 * u[:, 3] - 1) * max_shift
    cx, cy = (w - 1) * 0.5, (h - 1) * 0.5
    ct, st = np.cos(th) / s, np.sin(th) / s
    ox, oy = -cx - tx, -cy - ty
    m = np.stack([ct * ox + st * oy + cx, ct, st, -st * ox + ct * oy + cy, -st, ct], axis=1)
    flipped = (u[:, 4] < 0.5) if flip else np.zeros(n_rows, bool)
    m[flipped, 0] = (w - 1) - m[flipped, 0]
    m[flipped, 1:3] = -m[flipped, 1:3]
    return m


def _taps(shape, m):
    """Source pixel indices (4, h·w) and weights (4, h·w) of one row's map (−1: outside)."""
    h, w, _ = shape
    i, j = np.divmod(np.arange(h * w), w)
    sx, sy = m[0] + m[1] * j + m[2] * i, m[3] + m[4] * j + m[5] * i
    x0, y0 = np.floor(sx), np.floor(sy)
    fx, fy = sx - x0, sy - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    wt = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])
    xs, ys = np.stack([x0, x0 + 1, x0, x0 + 1]), np.stack([y0, y0, y0 + 1, y0 + 1])
    inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    return np.where(inside, ys * w + xs, -1), np.where(inside, wt, 0.0)


def augment_forward(X, shape, m):
    """Each row of X (n, h·w·c) resampled through its map ``m[r]`` (bilinear, zero outside)."""
    h, w, c = shape
    out = np.empty_like(X)
    for r in range(X.shape[0]):
        src, wt = _taps(shape, m[r])
        img = X[r].reshape(h * w, c).astype(np.float64)
        acc = np.zeros((h * w, c))
        for q in range(4):
            acc += wt[q][:, None] * np.where(src[q][:, None] >= 0, img[src[q]], 0.0)
        out[r] = acc.reshape(-1)
    return out


def augment_backward(dA, shape, m):
    """The adjoint of augment_forward applied to dA (scatter-add onto the source pixels)."""
    h, w, c = shape
    dX = np.zeros_like(dA)
    for r in range(dA.shape[0]):
        src, wt = _taps(shape, m[r])
        g = dA[r].reshape(h * w, c)
        acc = dX[r].reshape(h * w, c)
        for o in range(h * w):                       # the C loop's order, pixel by pixel
            for q in range(4):
                if src[q, o] >= 0:
                    acc[src[q, o]] = acc[src[q, o]] + wt[q, o] * g[o]
    return dX
