"""Diagnostics of "common training issues": per-layer gradient and weight norms, step sizes,
dead ReLUs and activation statistics, recorded from the training loop every few steps."""
import numbers
import warnings

import numpy as np

from fastmlp._typing import Logs
from fastmlp.callbacks import Callback
from fastmlp.layers.activations import Activation
from fastmlp.layers.residual import Chain

KEYS = ("grad_norm", "weight_norm", "update_ratio", "dead_fraction", "act_mean", "act_std")


class Diagnostics(Callback):
    r"""Record, per weight layer and every ``every`` training steps, what the lectures use
    to diagnose training.

    The fused loop runs the steps in chunks of ``every`` (no Python per step; chunks start
    again at each epoch, so each epoch's last step is recorded too; per-batch callbacks and
    frozen layers make the chunks one step long, and then every step is recorded); after
    the last step of a chunk, for each top-level layer with a weight matrix :math:`W`
    (index ``l``; the layers of a nested Sequential count as top-level):

    * ``grad_norm`` :math:`\lVert \partial L / \partial W \rVert_F` of that step,
    * ``weight_norm`` :math:`\lVert W \rVert_F` after it,
    * ``update_ratio`` :math:`\lVert \Delta W \rVert_F / \lVert W_{\text{before}} \rVert_F`
      of that step's update (about 1e-3 is the usual healthy value),
    * ``dead_fraction``: fraction of the units of the layer's ReLU (its ``activation="relu"``
      or a ReLU layer before the next weight layer) whose output is 0 on every row of the
      step's batch (NaN without a ReLU),
    * ``act_mean``, ``act_std``: mean and standard deviation of the outputs of the layer and
      the parameter-free layers after it, on that batch (evaluation mode).

    ``records`` is a dict of arrays of shape (n_records, n_layers) under these keys, plus
    ``step`` (n_records,), the 1-based training step; ``History.plot_diagnostics()`` draws
    them. With ``warn``, a layer whose gradient norm falls under ``vanish`` times the
    largest layer's, or exceeds ``explode`` (or is not finite), gets one warning per fit
    naming the lecture's remedies.

    Parameters
    ----------
    every : int
        Steps between records (>= 1).
    vanish : float
        Relative gradient norm under which a layer's gradient is said to vanish (>= 0).
    explode : float
        Gradient norm over which it is said to explode (> 0).
    warn : bool
    """

    def __init__(self, every: int = 10, vanish: float = 1e-3, explode: float = 1e3,
                 warn: bool = True):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, numbers.Integral):
            raise TypeError(f"every must be an integer, got {every!r}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        for name, v in (("vanish", vanish), ("explode", explode)):
            if not (isinstance(v, numbers.Real) and v >= 0 and np.isfinite(v)):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        self.every, self.vanish, self.explode = int(every), float(vanish), float(explode)
        self.warn = bool(warn)
        self._rows, self._steps = [], []

    def on_train_begin(self, logs: Logs = None) -> None:
        self._rows, self._steps, self._warned = [], [], set()
        self._done = 0

    def on_train_end(self, logs: Logs = None) -> None:
        if self.trainer.history is not None:
            self.trainer.history.diagnostics = self.records

    @property
    def records(self) -> dict:
        out = {k: np.array([r[i] for r in self._rows], dtype=np.float64).reshape(
            len(self._rows), -1) for i, k in enumerate(KEYS)}
        out["step"] = np.array(self._steps, dtype=np.int64)
        return out

    # -- called by the epoch loop (fastmlp._epoch) -----------------------------------------
    def _record(self, model, Xb, before, steps):
        """After ``steps`` more steps; ``before``: the parameters before the last one."""
        self._done += steps
        groups = _weight_groups(model)
        row = [[] for _ in KEYS]
        A = np.ascontiguousarray(Xb, dtype=model.dtype)
        for layers, (off, n) in groups:
            w, w0 = model.params[off:off + n], before[off:off + n]
            g = model.grads[off:off + n]
            A, dead = _group_forward(layers, A)
            norm0 = _norm(w0)
            row[0].append(_norm(g))
            row[1].append(_norm(w))
            row[2].append(_norm(w.astype(np.float64) - w0) / norm0 if norm0 else np.nan)
            row[3].append(dead)
            row[4].append(float(np.mean(A, dtype=np.float64)))
            row[5].append(float(np.std(A, dtype=np.float64)))
        self._rows.append(row)
        self._steps.append(self._done)
        if self.warn:
            self._check(row[0])

    def _check(self, grad_norms):
        top = max((g for g in grad_norms if np.isfinite(g)), default=0.0)
        for i, g in enumerate(grad_norms):
            if (not np.isfinite(g) or g > self.explode) and ("explode", i) not in self._warned:
                self._warned.add(("explode", i))
                warnings.warn(f"layer {i}: the gradient explodes (norm {g:.3g} at step "
                              f"{self._done}): take a smaller step (lower lr), clip the "
                              "gradients (fm.clip_grad_norm) or add batch norm",
                              UserWarning, stacklevel=2)
            elif top > 0 and g < self.vanish * top and ("vanish", i) not in self._warned:
                self._warned.add(("vanish", i))
                warnings.warn(f"layer {i}: the gradient vanishes (norm {g:.3g}, "
                              f"{g / top:.1e} of the largest layer's, at step {self._done}): "
                              "use batch norm, residual connections or ReLU-family "
                              "activations, or a larger step for the early layers",
                              UserWarning, stacklevel=2)


def _norm(a):
    a = np.asarray(a, dtype=np.float64)
    return float(np.sqrt(np.dot(a, a)))


def _is_relu(layer):
    act = layer if isinstance(layer, Activation) else getattr(layer, "activation", None)
    return isinstance(act, Activation) and act.name == "relu"


def _in_order(layers):
    """The layers as applied, a nested Sequential (a plain Chain) opened into its own."""
    for layer in layers:
        if type(layer) is Chain:
            yield from _in_order(layer.layers)
        else:
            yield layer


def _weight_groups(model):
    """``(layers from a weight layer up to the next, (offset, size) of its W)``: the
    top-level layers, those of nested Sequentials included."""
    where = {(p["layer"], p["name"]): (p["offset"], int(np.prod(p["shape"])))
             for p in model.param_info}
    flat = {id(layer): i for i, layer in enumerate(model.flat_layers)}
    groups = []
    for layer in _in_order(model.layers):
        key = (flat.get(id(layer)), "W")
        if key in where:
            groups.append(([layer], where[key]))
        elif groups:
            groups[-1][0].append(layer)
    return groups


def _group_forward(layers, A):
    """The group's output on A (evaluation mode) and the dead fraction of its first ReLU."""
    dead = np.nan
    for layer in layers:
        A = np.ascontiguousarray(layer.forward(A, training=False))
        if np.isnan(dead) and _is_relu(layer):
            dead = float(np.mean((A == 0).all(axis=0)))
    return A, dead
