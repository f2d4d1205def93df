"""NumPy twin of ``fastmlp._lamb.lamb_step_memview`` (same signature, same math)."""
import numpy as np


def lamb_step(params, grads, exp_avg, exp_avg_sq, ranges, t, lr, beta1, beta2, eps,
              weight_decay):
    """One LAMB step in place: per tensor (offset, size) of ``ranges``,
    m = b1 m + (1 − b1) g, v = b2 v + (1 − b2) g², u = (m/bc1)/(√(v/bc2) + eps) + wd p,
    p −= lr · (‖p‖/‖u‖) · u (ratio 1 when a norm is 0); float64 arithmetic."""
    bc1, bc2 = 1.0 - beta1 ** t, 1.0 - beta2 ** t
    r = np.asarray(ranges, dtype=np.intp).reshape(-1, 2)
    for off, size in r:
        s = slice(int(off), int(off) + int(size))
        g = grads[s].astype(np.float64)
        exp_avg[s] = beta1 * exp_avg[s].astype(np.float64) + (1.0 - beta1) * g
        exp_avg_sq[s] = beta2 * exp_avg_sq[s].astype(np.float64) + (1.0 - beta2) * (g * g)
        p = params[s].astype(np.float64)
        m, v = exp_avg[s].astype(np.float64), exp_avg_sq[s].astype(np.float64)
        u = (m / bc1) / (np.sqrt(v / bc2) + eps) + weight_decay * p
        pn, un = np.sqrt(np.dot(p, p)), np.sqrt(np.dot(u, u))
        ratio = 1.0 if pn == 0.0 or un == 0.0 else pn / un
        params[s] = p - lr * ratio * u
