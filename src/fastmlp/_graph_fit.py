"""Training graph models (``fastmlp.Model``): several inputs and outputs, one loss per
output with ``loss_weights``, metrics per output.

``Trainer(model, ...)`` returns a :class:`GraphTrainer` for a graph model. Its data are
:class:`Rows`: a list of arrays (one per input, or per output for targets and sample
weights) that shuffling, the validation split and the mini-batches index together. The
epochs run fused in the core (``fastmlp._graph_train``) when the model and the training
setup allow it, else a step at a time in Python (see :class:`GraphEpochLoop`).
"""
import math
import numbers
from types import SimpleNamespace

import numpy as np

from fastmlp._epoch import EpochLoop, penalty_terms
from fastmlp._graph_train import GraphRunner
from fastmlp._refit import refit_callback
from fastmlp._output_unit import check_output_unit
from fastmlp.layers.base import Layer
from fastmlp.losses import get_loss, loss_value_and_grad
from fastmlp.metrics import _unique_names, call_metric, get_metrics, link
from fastmlp.optim.base import FULL_BATCH
from fastmlp._validation import contiguous
from fastmlp.sequential import _flatten
from fastmlp._trainer_rows import class_labels, prepare_targets
from fastmlp.trainer import Trainer


class Rows(list):
    """Arrays with one row count, taken together: ``rows[idx]`` (an index array or a
    slice) is the Rows of those rows of every array; ``rows[k]`` (an int) the k-th array;
    ``rows.shape[0]`` the row count."""

    @property
    def shape(self):
        return (self[0].shape[0],)

    def __getitem__(self, idx):
        if isinstance(idx, numbers.Integral):
            return list.__getitem__(self, idx)
        return Rows(None if a is None else a[idx] for a in self)


def per_output(value, names, what, is_spec=None):
    """One entry per output from a dict by output name, a list (one per output), or one
    value for every output (``is_spec(value)`` tells a single value from a list)."""
    n = len(names)
    if isinstance(value, dict):
        unknown = set(value) - set(names)
        if unknown:
            raise ValueError(f"{what}: unknown output names {sorted(unknown)}; the model's "
                             f"outputs are {names}")
        return [value.get(name) for name in names]
    if isinstance(value, (list, tuple)) and not (is_spec and is_spec(value)):
        if len(value) != n:
            raise ValueError(f"{what} must hold one entry per output ({n}: {names}), got "
                             f"{len(value)}")
        return list(value)
    return [value] * n


def _is_metric_list(value):
    """A flat list of metrics (for every output) rather than one list per output."""
    return not any(isinstance(v, (list, tuple, dict)) or v is None for v in value)


class GraphTrainer(Trainer):
    """:class:`~fastmlp.Trainer` of a graph :class:`~fastmlp.Model`.

    Parameters
    ----------
    loss : Loss, str, list or dict
        One loss per output (a list in output order, or a dict by output name), or one
        loss for every output. Trained on ``Σ_k loss_weights[k] · loss_k`` (+ penalties).
    loss_weights : list, dict or None
        Weight of each output's loss (default 1 each); numbers >= 0.
    metrics : str, callable, list, or dict
        One list for every output, a list of lists (one per output), or a dict
        ``{output name: metrics}``. With several outputs the logs are named
        ``<output>_<metric>`` (and ``<output>_loss``), as Keras.

    Notes
    -----
    ``fit(X, y, sample_weight=...)``: X as ``Model.forward`` takes it, y one target per
    output (list or dict), ``sample_weight`` one vector for every output, or a list or dict
    of them. Not supported for graph models yet: ``comm``, full-batch solvers,
    ``class_weight``, ``EarlyStopping(refit=...)``, ``Diagnostics``.
    """

    def __init__(self, model, loss, optimizer, regularizers=(), metrics=(), seed=None,
                 n_threads=None, comm=None, loss_weights=None):
        if comm is not None:
            raise ValueError("distributed training (comm=) does not support graph models yet")
        self._setup(model, optimizer, regularizers, seed, n_threads, comm)
        if self.optimizer.strategy == FULL_BATCH:
            raise ValueError(f"optimizer={self.optimizer!r} is a full-batch solver: graph "
                             "models train with mini-batch optimizers")
        self.loss = _losses(model, loss)
        self.loss_weights = _loss_weights(model.output_names, loss_weights)
        self.metrics, self._metric_output = _metrics(model.output_names, metrics)

    def __fastmlp_save__(self):
        raise TypeError("saving the Trainer of a graph model is not supported yet: save the "
                        "model, fm.save(trainer.model, path)")

    # -- data ------------------------------------------------------------------------------
    def _inputs(self, X, name="X"):
        try:
            return Rows(self.model._arrays(X))
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{name}: {exc}") from None

    def _targets(self, y, n_rows, name="y"):
        model = self.model
        ys = per_output(y, model.output_names, name) if len(model.outputs) > 1 else [y]
        return Rows(prepare_targets(f, t, out.width, model.dtype, n_rows,
                                    f"{name}[{oname!r}]")
                    for f, t, out, oname in zip(self.loss, ys, model.outputs,
                                                model.output_names))

    def _row_weights(self, sample_weight, class_weight, targets):
        if class_weight is not None:
            raise ValueError("class_weight is not supported for graph models: give "
                             "sample_weight (per output if needed)")
        if sample_weight is None:
            return None
        names = self.model.output_names
        ws = per_output(sample_weight, names, "sample_weight",
                        lambda v: np.ndim(v) == 1 and len(v) == targets.shape[0]
                        and not isinstance(v[0], (list, tuple, np.ndarray)))
        return Rows(Trainer._row_weights(self, np.ones(targets.shape[0]) if w is None else w,
                                         None, t)
                    for w, t in zip(ws, targets))

    def _strata(self, targets):
        """The classes of the first output with a classification loss (None: none)."""
        return next((class_labels(t, out.width)[0] for f, t, out in
                     zip(self.loss, targets, self.model.outputs) if f.is_classification), None)

    def _prepare_fit(self, X, y, epochs, batch_size, validation_data, validation_split,
                     callbacks, *args):
        from fastmlp.diagnostics import Diagnostics
        if refit_callback(callbacks) is not None or any(isinstance(cb, Diagnostics)
                                                       for cb in callbacks):
            raise ValueError("EarlyStopping(refit=...) and Diagnostics do not support graph "
                             "models yet")
        return super()._prepare_fit(X, y, epochs, batch_size, validation_data,
                                    validation_split, callbacks, *args)

    def _epoch_loop(self, X, targets, weights, batch_size, sharded):
        return GraphEpochLoop(self, X, targets, weights, batch_size)

    def _log_keys(self, validation):
        names = ([] if len(self.loss) == 1 else [f"{n}_loss" for n in self.model.output_names])
        names += [name for name, _ in self.metrics]
        keys = ["loss"] + names
        if validation:
            keys += ["val_loss"] + [f"val_{name}" for name in names]
        return keys + ["lr", "epoch_time"]

    # -- evaluation --------------------------------------------------------------------------
    def _outputs(self, X):
        out = self.model.predict(X)
        return out if isinstance(out, list) else [out]

    def evaluate(self, X, y, sample_weight=None, _prepared=False, prefix=""):
        """Weighted loss (plus penalties), each output's loss (several outputs) and the
        metrics, in evaluation mode."""
        if not _prepared:
            X = self._inputs(X)
            y = self._targets(y, X.shape[0])
            sample_weight = self._row_weights(sample_weight, None, y)
        outs = self._outputs(X)
        ws = sample_weight if sample_weight is not None else [None] * len(outs)
        values = [float(loss_value_and_grad(f, o, t, sample_weight=w, ops=self.model.ops,
                                            with_grad=False))
                  for f, o, t, w in zip(self.loss, outs, y, ws)]
        total = sum(lw * v for lw, v in zip(self.loss_weights, values))
        total += sum(term(self.model) for term in penalty_terms(self))
        logs = {prefix + "loss": float(total)}
        if len(values) > 1:
            logs.update({f"{prefix}{n}_loss": v for n, v in zip(self.model.output_names, values)})
        for (name, fn), k in zip(self.metrics, self._metric_output):
            pred = link(self.loss[k], outs[k])
            logs[prefix + name] = float(call_metric(fn, y[k], pred,
                                                    self.loss[k].is_classification))
        return logs

    def predict(self, X):
        """The model's outputs in evaluation mode (one array, or a list per output)."""
        return self.model.predict(X)

    def predict_proba(self, X):
        """Per output: class probabilities for a classification loss, the raw output
        otherwise (one array, or a list per output)."""
        outs = [link(f, o) if f.is_classification else o
                for f, o in zip(self.loss, self._outputs(X))]
        return outs[0] if len(outs) == 1 else outs


def _losses(model, loss):
    """One loss per output; warns when an output unit does not suit its loss."""
    names = model.output_names
    losses = [get_loss(f) for f in per_output(loss, names, "loss")]
    for name, f, t in zip(names, losses, model.outputs):
        if getattr(f, "reduction", "mean") == "none":
            raise ValueError(f"loss of output {name!r}: reduction='none' gives one value "
                             "per row; training needs one number")
        op = t.producer.op                   # a softmax head before a loss on logits
        head = _flatten([op]) if isinstance(op, Layer) else []
        check_output_unit(SimpleNamespace(flat_layers=head), f)
    return losses


def _loss_weights(names, loss_weights):
    weights = per_output(1.0 if loss_weights is None else loss_weights, names, "loss_weights")
    for name, w in zip(names, weights):
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not \
                (math.isfinite(w) and w >= 0):
            raise ValueError(f"loss_weights[{name!r}] must be a number >= 0, got {w!r}")
    return [float(w) for w in weights]


def _metrics(names, metrics):
    """``(metrics as (log name, fn), the output of each)``."""
    flat, which = [], []
    for k, (name, spec) in enumerate(zip(names, per_output(metrics, names, "metrics",
                                                          _is_metric_list))):
        for mname, fn in get_metrics(() if spec is None else spec):
            flat.append((mname if len(names) == 1 else f"{name}_{mname}", fn))
            which.append(k)
    return _unique_names(flat), which


class GraphEpochLoop(EpochLoop):
    """The epochs of a graph model (chunks, progress, frozen layers: :class:`EpochLoop`).
    Fused (``fastmlp._graph_train.GraphRunner``: whole steps in one GIL-free call per
    chunk) when the model is compiled (library layers, core backend) and the optimizer,
    every output's loss and the penalties have core kernels; else a step at a time in
    Python: the model's compiled forward and backward, the weighted losses, the penalties,
    ``optimizer.step``, constraints. Both give the same weights bit for bit."""

    def _make_runner(self):
        model = self.model
        if not (model.is_compiled and model.params.size and self._fusable(self.loss)):
            return None
        dtype = model.dtype
        weights = None if self.weights is None else \
            [None if w is None else contiguous(w, dtype) for w in self.weights]
        targets = [t if t.dtype == np.int64 else contiguous(t, dtype) for t in self.targets]
        return GraphRunner(
            model.plan, list(self.X), targets, weights,
            [f._spec(out.width) for f, out in zip(self.loss, model.outputs)],
            list(self.trainer.loss_weights), self.batch_size, self._penalty_rows(),
            self._constraint_table(), self.trainer._governor())

    def _python_steps(self, part):
        """The steps over ``part`` in Python; ``(loss_sum, rows, steps, bad loss or None)``
        as the fused runner reports them."""
        loss_sum, rows, steps = 0.0, 0, 0
        for start in range(0, part.shape[0], self.batch_size):
            idx = part[start:start + self.batch_size]
            value = self._step(idx, self._held)
            if not math.isfinite(value):
                return loss_sum, rows, steps, value
            steps, rows, loss_sum = steps + 1, rows + idx.shape[0], loss_sum + value * idx.shape[0]
        return loss_sum, rows, steps, None

    def _step(self, idx, held):
        """One update on the rows ``idx``; returns the batch loss (NaN: no update made)."""
        model, trainer = self.model, self.trainer
        outs = model.forward(self.X[idx], training=True)
        outs = outs if isinstance(outs, list) else [outs]
        ws = self.weights[idx] if self.weights is not None else [None] * len(outs)
        value, grads = 0.0, []
        for f, lw, o, t, w in zip(trainer.loss, trainer.loss_weights, outs, self.targets[idx],
                                  ws):
            if not np.isfinite(o).all():
                return float("nan")
            v, g = loss_value_and_grad(f, o, t, sample_weight=w, ops=model.ops)
            value += lw * v
            grads.append(g * o.dtype.type(lw) if lw != 1.0 else g)
        value += sum(term(model) for term in self.penalties)
        if not math.isfinite(value):
            return value
        model.zero_grad()
        model._backward_params(model._arrays(grads, "grad_out", idx.shape[0]))
        for term in self.penalties:
            term.add_grad(model)
        if not np.isfinite(model.grads).all():
            return float("nan")
        trainer.optimizer.step(model)
        for term in self.penalties:
            term.prox(model, trainer.optimizer.lr)
        for constraint, layer, _ in self.constraints:
            constraint.apply(layer.W, backend=model.backend)
        if held:
            held.restore()
        return float(value)
