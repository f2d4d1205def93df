"""One training epoch, fused in the core or step by step in Python, with progress.

Both paths take the rows ``perm`` in order, in batches of ``batch_size`` (the last one
may be smaller): every training row exactly once per epoch.
"""
import time

import numpy as np

from fastmlp._freeze import FrozenParams, FrozenRanges
from fastmlp.layers.norm import BatchNorm
from fastmlp._regularize import ConstraintKind, constraint_table
from fastmlp._train import Runner
from fastmlp.losses import loss_value_and_grad

#: Seconds between progress-bar refreshes (the fused loop returns to Python this often).
REFRESH_SECONDS = 0.1


class NonFiniteLoss(Exception):
    """Raised inside an epoch when a batch loss is NaN or infinite."""

    def __init__(self, step, value):
        super().__init__(step, value)
        self.step, self.value = step, value


class BoundPenalty:
    """A penalty restricted to some layers (None: all), with the regularizer protocol
    (``term(model)``, ``term.add_grad(model)``, ``term._ranges(model)``)."""

    def __init__(self, penalty, layers=None):
        self.penalty, self.layers = penalty, layers

    def __call__(self, model):
        return self.penalty(model, layers=self.layers)

    def add_grad(self, model):
        self.penalty.add_grad(model, layers=self.layers)

    def _ranges(self, model):
        return self.penalty._ranges(model, layers=self.layers)

    def _prox_rows(self, model):
        rows = getattr(self.penalty, "_prox_rows", None)
        return rows(model, layers=self.layers) if rows is not None else []

    def prox(self, model, lr):
        """The penalty's proximal step after an update (a proximal L1), if it has one."""
        prox = getattr(self.penalty, "prox", None)
        if prox is not None:
            prox(model, lr, layers=self.layers)


def penalty_terms(trainer):
    """The Trainer's penalties and every layer's own ``regularizer``."""
    terms = [BoundPenalty(r) for r in trainer.regularizers]
    terms += [BoundPenalty(layer.regularizer, [i])
              for i, layer in enumerate(trainer.model.flat_layers)
              if getattr(layer, "regularizer", None) is not None]
    return terms


def constraint_terms(model):
    """``(constraint, layer, arena offset of its W)`` for every layer with a constraint."""
    offsets = {(p["layer"], p["name"]): p["offset"] for p in model.param_info}
    return [(layer.constraint, layer, offsets[(i, "W")])
            for i, layer in enumerate(model.flat_layers)
            if getattr(layer, "constraint", None) is not None]


class EpochLoop:
    """Runs epochs for one fit: owns the fused runner (when the model allows it), else
    takes the steps in Python (:meth:`_python_steps`). A subclass fuses other models by
    overriding :meth:`_make_runner` (a runner with ``run(perm, binding)``) and
    :meth:`_python_steps`."""

    def __init__(self, trainer, X, targets, weights, batch_size, sharded=False):
        self.trainer = trainer
        self.dist, self.sharded = trainer._dist, sharded
        self.model, self.loss, self.optimizer = trainer.model, trainer.loss, trainer.optimizer
        self.X, self.targets, self.weights = X, targets, weights
        self.batch_size = batch_size
        self.penalties = penalty_terms(trainer)
        self.constraints = constraint_terms(self.model)
        self.probe = None        # a Diagnostics: recorded after every chunk (fastmlp.diagnostics)
        self._held = None        # the frozen parameters of the current run (fastmlp._freeze)
        self._frozen = FrozenRanges(self.model)
        self.runner = self._make_runner()
        # the optimizer's binding function, looked up once a fit (the property checks the
        # class's kernel through its MRO: ~5 us a run on a Zen 1 core)
        self._bind_fused = self.optimizer._fused_binding if self.runner is not None else None

    def _fusable(self, losses):
        """Whether the optimizer, the ``losses`` and the penalties have core kernels."""
        return (hasattr(self.optimizer, "_fused_binding")
                and all(hasattr(f, "_spec") for f in losses)
                and all(hasattr(t.penalty, "_ranges") for t in self.penalties))

    def _penalty_rows(self):
        return [r for t in self.penalties for r in t._ranges(self.model)]

    def _make_runner(self):
        """The fused runner of this fit, or None (the Python steps)."""
        if not (self.model.is_fused and self._fusable([self.loss])):
            if self.dist is not None:
                raise ValueError("distributed training (comm=) runs in the fused loop only: "
                                 "library layers, a loss and an optimizer with a core kernel, "
                                 "penalties of fastmlp.regularizers")
            return None
        targets = self.targets
        labels = targets if targets.dtype == np.int64 else None
        runner = Runner(self.model.plan, self.X, None if labels is not None else targets, labels,
                        self.weights, self.loss._spec(self.model.n_out),
                        self.batch_size if self.dist is None
                        else self.dist.local_batch(self.batch_size), self._penalty_rows(),
                        self._constraint_table(), self.trainer._governor())
        if self.dist is not None:
            runner.data_parallel(self.dist.reducer())
        return runner

    def _constraint_table(self):
        """The fused loop's constraint table: the proximal L1 soft thresholds first (their
        ``value``, lr · l1, is refreshed before each run: the Runner keeps this very array),
        then the constraints, in the order the Python step applies them."""
        prox = [r for t in self.penalties for r in t._prox_rows(self.model)]
        self._prox_l1 = np.array([l1 for _, _, l1 in prox], dtype=np.float64)
        rows = [(int(ConstraintKind.C_SOFT_THRESHOLD), off, n, 1, 0.0) for off, n, _ in prox]
        rows += [c._range(off, layer.n_in, layer.n_out) for c, layer, off in self.constraints]
        self._con_table = constraint_table(rows, self.model.params.shape[0])
        return self._con_table

    @property
    def fused(self):
        return self.runner is not None

    def run(self, perm, on_chunk=None, steps_per_chunk=None):
        """Train one epoch over ``perm``. ``on_chunk(steps_done, rows_done, loss_sum)`` is
        called after each chunk; ``steps_per_chunk=None`` picks chunks of about
        REFRESH_SECONDS when on_chunk is given, else the whole epoch at once.

        Returns the epoch's mean training loss (Σ batch loss × rows / rows). Raises
        NonFiniteLoss (with the step index within the epoch) on a NaN/inf batch loss.
        """
        if self.dist is not None:
            return self._run_parallel(perm, on_chunk, steps_per_chunk)
        B = self.batch_size
        n_steps = -(-perm.shape[0] // B)
        done_steps, done_rows, loss_sum = 0, 0, 0.0
        # frozen layers: their values put back after each update; the fused loop then runs
        # one step per call
        self._held = FrozenParams(self.model, self._frozen())
        held = bool(self._held) and self.runner is not None
        probe = self.probe.every if self.probe is not None else None
        chunk = 1 if held else steps_per_chunk or probe or (1 if on_chunk else n_steps)
        while done_steps < n_steps:
            part = perm[done_steps * B:(done_steps + chunk) * B]
            t0 = time.perf_counter()
            s, rows, steps, bad = self._steps(part)
            done_steps += steps
            done_rows += rows
            loss_sum += s
            if bad is not None:
                raise NonFiniteLoss(done_steps, bad)
            if on_chunk is not None:
                on_chunk(done_steps, done_rows, loss_sum)
                if self.trainer.stop_training:    # asked by a per-step callback
                    break
                if steps_per_chunk is None and probe is None and not held:
                    # one refresh per REFRESH_SECONDS
                    per_step = (time.perf_counter() - t0) / max(steps, 1)
                    chunk = int(min(max(REFRESH_SECONDS / max(per_step, 1e-9), 1), n_steps))
        return loss_sum / max(done_rows, 1)

    def _run_parallel(self, perm, on_chunk, steps_per_chunk):
        """``run`` on every rank of the trainer's communicator: the chunks (and so the
        points where the ranks check that none failed) are the same on every rank."""
        if self.probe is not None:
            raise ValueError("Diagnostics does not support distributed training (comm=)")
        self.dist.batchnorm = any(isinstance(layer, BatchNorm)
                                  for layer in self.model.flat_layers)
        local, sched = self.dist.schedule(perm, self.batch_size, self.sharded)
        ends = np.concatenate([[0], np.cumsum(sched[:, 0])])
        n_steps = sched.shape[0]
        self._held = FrozenParams(self.model, self._frozen())
        # chunks not from the progress bar: only rank 0 has one
        chunk = 1 if self._held else steps_per_chunk or max(n_steps // 10, 1)
        tally = np.zeros(3)                     # steps, rows, loss sum
        while tally[0] < n_steps:
            if self.dist.agree(stop=self.trainer.stop_training):
                self.trainer.stop_training = True       # asked on some rank: all stop here
                break
            done, stop = int(tally[0]), min(int(tally[0]) + chunk, n_steps)
            *counts, bad = self._run_steps(local[ends[done]:ends[stop]],
                                           np.ascontiguousarray(sched[done:stop]))
            tally += [counts[2], counts[1], counts[0]]
            if bad is not None:             # every rank stops at this step
                self.runner.sync_state()
                raise NonFiniteLoss(int(tally[0]), bad)
            if on_chunk is not None:
                on_chunk(int(tally[0]), int(tally[1]), float(tally[2]))
        self.runner.sync_state()            # the whole optimizer state, once per epoch
        return float(tally[2]) / max(tally[1], 1)

    def _steps(self, part):
        """Run the steps over ``part``; returns (loss_sum, rows, steps, bad loss or None).
        With a probe, the last step runs alone, then the probe records it."""
        if self.probe is None:
            return self._run_steps(part)
        last = (part.shape[0] - 1) // self.batch_size * self.batch_size
        s, rows, steps, bad = self._run_steps(part[:last]) if last else (0.0, 0, 0, None)
        if bad is not None:
            return s, rows, steps, bad
        before = self.model.params.copy()
        s2, rows2, steps2, bad = self._run_steps(part[last:])
        if bad is None:
            self.probe._record(self.model, self.X[part[last:]], before, steps + steps2)
        return s + s2, rows + rows2, steps + steps2, bad

    def _run_steps(self, part, schedule=None):
        if self.runner is not None:
            # the runner advances the model's TrainingState and the optimizer's step
            # count where they live: nothing to copy in or out
            binding = self._bind_fused(self.model)
            if self._prox_l1.size:
                self._con_table["value"][:self._prox_l1.size] = self.optimizer.lr * self._prox_l1
            loss_sum, rows, steps, bad_step, bad_value = (
                self.runner.run(part, binding) if schedule is None
                else self.runner.run(part, binding, schedule))
            if self._held:        # before a probe measures the step
                self._held.restore()
            return loss_sum, rows, steps, (bad_value if bad_step >= 0 else None)
        return self._python_steps(part)

    def _python_steps(self, part):
        """The same step in Python: per-layer dispatch, for models with Python layers,
        regularizers or optimizers without a core kernel."""
        model, loss, B = self.model, self.loss, self.batch_size
        loss_sum, rows, steps = 0.0, 0, 0
        for start in range(0, part.shape[0], B):
            idx = part[start:start + B]
            Xb = self.X[idx]
            yb = self.targets[idx]
            wb = None if self.weights is None else self.weights[idx]
            out = model.forward(Xb, training=True)
            if not np.isfinite(out).all():    # the loss would refuse it: report it as the core does
                return loss_sum, rows, steps, float("nan")
            value, grad = loss_value_and_grad(loss, out, yb, sample_weight=wb, ops=model.ops)
            for term in self.penalties:
                value += term(model)
            if not np.isfinite(value):
                return loss_sum, rows, steps, value
            model.zero_grad()
            model.backward(grad)
            for term in self.penalties:
                term.add_grad(model)
            if not np.isfinite(model.grads).all():    # as the core: stop before the update
                return loss_sum, rows, steps, float("nan")
            self.optimizer.step(model)
            for term in self.penalties:
                term.prox(model, self.optimizer.lr)
            for constraint, layer, _ in self.constraints:
                constraint.apply(layer.W, backend=model.backend)
            if self._held:        # as the fused loop: no prox or constraint moves them
                self._held.restore()
            loss_sum += value * idx.shape[0]
            rows += idx.shape[0]
            steps += 1
        return loss_sum, rows, steps, None
