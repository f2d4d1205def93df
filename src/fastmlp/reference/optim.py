"""NumPy twins of the optimizer kernels in ``fastmlp._optim`` (same signatures, same math).

Each function updates ``params`` and the state buffers in place for step ``step`` (counting
from 1); a state buffer passed as None switches its feature off (momentum, centering,
amsgrad). Scalars are Python floats, so float32 arrays stay float32 (NEP 50).
"""
import math

import numpy as np


def _check_step(step):
    if step < 1:
        raise ValueError(f"step must be >= 1 (steps count from 1), got {step}")


def _lerp(a, b, w):
    """torch.lerp: a + w (b − a) for w < 0.5, else b − (b − a)(1 − w)."""
    return a + w * (b - a) if w < 0.5 else b - (b - a) * (1.0 - w)


def sgd_step(params, grads, momentum_buffer, step, *, lr, momentum=0.0, dampening=0.0,
             nesterov=False, weight_decay=0.0):
    """d = g + wd·p; b = d at step 1 else μ·b + (1 − dampening)·d;
    p −= lr·(d + μ·b) (Nesterov) or lr·b; without a buffer p −= lr·d."""
    _check_step(step)
    d = grads + weight_decay * params
    if momentum_buffer is not None:
        if step == 1:
            momentum_buffer[...] = d
        else:
            momentum_buffer[...] = momentum * momentum_buffer + (1.0 - dampening) * d
        d = d + momentum * momentum_buffer if nesterov else momentum_buffer
    params -= lr * d


def adagrad_step(params, grads, state_sum, step, *, lr, lr_decay=0.0, weight_decay=0.0,
                 eps=1e-10):
    """clr = lr / (1 + (t − 1)·lr_decay); d = g + wd·p; s += d²; p −= clr·d / (√s + eps)."""
    _check_step(step)
    clr = lr / (1.0 + (step - 1) * lr_decay)
    d = grads + weight_decay * params
    state_sum += d * d
    params -= clr * (d / (np.sqrt(state_sum) + eps))


def rmsprop_step(params, grads, square_avg, grad_avg, momentum_buffer, step, *, lr,
                 alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0):
    """d = g + wd·p; v = α·v + (1 − α)·d²; centered: m = lerp(m, d, 1 − α), v̂ = v − m²;
    a = √v̂ + eps; momentum: b = μ·b + d/a, p −= lr·b; else p −= lr·d/a."""
    _check_step(step)
    d = grads + weight_decay * params
    square_avg[...] = square_avg * alpha + (1.0 - alpha) * (d * d)
    v = square_avg
    if grad_avg is not None:
        grad_avg[...] = _lerp(grad_avg, d, 1.0 - alpha)
        v = square_avg - grad_avg * grad_avg
    a = np.sqrt(v) + eps
    if momentum_buffer is not None:
        momentum_buffer[...] = momentum * momentum_buffer + d / a
        params -= lr * momentum_buffer
    else:
        params -= lr * (d / a)


def adadelta_step(params, grads, square_avg, acc_delta, step, *, lr=1.0, rho=0.9, eps=1e-6,
                  weight_decay=0.0):
    """d = g + wd·p; v = ρ·v + (1 − ρ)·d²; δ = √(u + eps)/√(v + eps)·d;
    u = ρ·u + (1 − ρ)·δ²; p −= lr·δ."""
    _check_step(step)
    d = grads + weight_decay * params
    square_avg[...] = square_avg * rho + (1.0 - rho) * (d * d)
    delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * d
    acc_delta[...] = acc_delta * rho + (1.0 - rho) * (delta * delta)
    params -= lr * delta


def adam_step(params, grads, exp_avg, exp_avg_sq, max_exp_avg_sq, step, *, lr, beta1=0.9,
              beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False):
    """Adam: d = g + wd·p.  AdamW (decoupled): d = g and p ← p·(1 − lr·wd) first.
    m = lerp(m, d, 1 − β1); v = β2·v + (1 − β2)·d²; amsgrad: v̄ = max(v̄, v), used for v;
    p −= lr/(1 − β1ᵗ) · m / (√v · c + eps), c = 1/√(1 − β2ᵗ) rounded to the dtype (torch
    divides √v by √(1 − β2ᵗ): the denominator differs by at most 1 ulp; one division
    fewer per element in the kernel)."""
    _check_step(step)
    if decoupled:
        params *= 1.0 - lr * weight_decay
        d = grads
    else:
        d = grads + weight_decay * params
    exp_avg[...] = _lerp(exp_avg, d, 1.0 - beta1)
    exp_avg_sq[...] = exp_avg_sq * beta2 + (1.0 - beta2) * (d * d)
    v = exp_avg_sq
    if max_exp_avg_sq is not None:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        v = max_exp_avg_sq
    step_size = lr / (1.0 - beta1 ** step)
    inv_bc2 = params.dtype.type(1.0 / math.sqrt(1.0 - beta2 ** step))
    params -= step_size * (exp_avg / (np.sqrt(v) * inv_bc2 + eps))


def sq_norm(x):
    """Σ x² accumulated in float64."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.dot(x, x))


def scale(x, a):
    """x *= a in place."""
    x *= a
