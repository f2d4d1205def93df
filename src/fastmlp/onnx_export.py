"""Export to ONNX: a trained Sequential, Trainer or scikit-learn estimator as an ONNX model
that ONNX Runtime (or any ONNX runtime) runs without Python.

The exported graph is the inference computation: Dense as Gemm, each activation as ONNX
operators, BatchNorm (running statistics) as BatchNormalization, LayerNorm composed,
Dropout and GaussianNoise removed, Residual as Add (the emitters are in
``fastmlp._onnx_layers``; a graph model reuses them node by node). Needs the ``onnx``
package (``pip install "fastmlp[onnx]"``).

Inputs and outputs
------------------
- Sequential / Trainer: input ``"X"`` (N, n_in), output ``"Y"`` (N, n_out), in the model's
  dtype; with ``probabilities=True`` a Softmax over the outputs is appended.
- MLPClassifier: input ``"X"``, outputs ``"label"`` (N,) — the classes as the estimator's
  ``classes_`` (int64, float64 or string) — and ``"probabilities"`` (N, n_classes), as
  skl2onnx's converter with ``zipmap=False``. Multilabel: ``"label"`` is the (N, n_labels)
  int64 indicator matrix.
- MLPRegressor: input ``"X"``, output ``"variable"`` (N, n_outputs), as skl2onnx.
- Graph model (``fm.Model``): one input per model input and one output per model output,
  named as the model names them (``model.input_names``, ``model.output_names``); the
  merges as Add, Sub, Mul (chained left to right, as the model computes them) and Concat.
"""
import os
from typing import Any, Optional

import numpy as np

from fastmlp._onnx_layers import GraphBuilder, emit_layer, emit_sequence
from fastmlp._typing import PathLike
from fastmlp._version import __version__

__all__ = ["to_onnx"]

#: the oldest opset the emitters are written for (LayerNorm and Softmax semantics)
MIN_OPSET = 17


def _check_opset(opset):
    import onnx.defs
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an int, got {opset!r}")
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be in [{MIN_OPSET}, {newest}] (the installed onnx "
                         f"package's newest), got {opset}")
    return int(opset)


def _tensor_type(dtype):
    from onnx import helper
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _value_info(name, dtype, width):
    from onnx import helper
    return helper.make_tensor_value_info(name, _tensor_type(dtype), ["N", width])


def _sequential_graph(model, opset, probabilities):
    b = GraphBuilder(model.dtype, opset)
    y = emit_sequence(b, model.layers, "X")
    if probabilities:
        y = b.op("Softmax", y, axis=1)
    b.nodes.append(_rename(y, "Y"))
    return b, [_value_info("Y", model.dtype, model.n_out)]


#: merge class name -> ONNX operator (n-ary merges chained left to right, as the core does)
MERGE_OPS = {"Add": "Add", "Subtract": "Sub", "Multiply": "Mul"}


def _graph_model_graph(model, opset, probabilities):
    """``(builder, input value infos, output value infos)`` of a graph Model: each layer
    call through its emitter, each merge as its operator, each output renamed to its name."""
    if probabilities and len(model.outputs) > 1:
        raise ValueError("probabilities=True is for a model with one output: apply the "
                         "softmax to the outputs that need it")
    clash = set(model.input_names) & set(model.output_names)
    if clash:
        raise ValueError(f"{sorted(clash)} names both an input and an output: ONNX needs "
                         "distinct names")
    b = GraphBuilder(model.dtype, opset)
    names = {id(t): name for t, name in zip(model.inputs, model.input_names)}
    for k, call in enumerate(model.calls):
        xs = [names[id(x)] for x in call.inputs]
        kind = type(call.op).__name__
        if kind == "Concatenate":
            y = b.op("Concat", *xs, axis=1)
        elif kind in MERGE_OPS:
            y = xs[0]
            for x in xs[1:]:
                y = b.op(MERGE_OPS[kind], y, x)
        else:
            y = emit_layer(b, call.op, xs[0], f"node {k}")
        names[id(call.output)] = y
    for name, t in zip(model.output_names, model.outputs):
        y = b.op("Softmax", names[id(t)], axis=1) if probabilities else names[id(t)]
        b.nodes.append(_rename(y, name))
    return (b, [_value_info(n, model.dtype, t.width)
                for n, t in zip(model.input_names, model.inputs)],
            [_value_info(n, model.dtype, t.width)
             for n, t in zip(model.output_names, model.outputs)])


def _rename(src, dst):
    from onnx import helper
    return helper.make_node("Identity", [src], [dst], name=f"output_{dst}")


def _label_constant(b, classes):
    classes = np.asarray(classes)
    if classes.dtype.kind in "biu":
        return b.const(classes, "classes", np.int64), np.int64
    if classes.dtype.kind == "f":
        return b.const(classes, "classes", np.float64), np.float64
    return b.const(classes.astype(str).astype(object), "classes", object), object


def _classifier_outputs(b, est, logits):
    """Nodes from the network's logits to ``label`` and ``probabilities``."""
    from onnx import TensorProto, helper
    n = est.n_outputs_
    if est.out_activation_ == "softmax":
        proba = b.op("Softmax", logits, axis=1)
        index = b.op("ArgMax", proba, axis=1, keepdims=0)
    else:
        proba = b.op("Sigmoid", logits)
        index = b.op("Cast", b.op("Greater", proba, b.const(0.5)), to=TensorProto.INT64)
    multilabel = est.out_activation_ == "logistic" and n > 1
    if multilabel:
        label, label_type, label_shape = index, TensorProto.INT64, ["N", n]
    else:
        if n == 1:        # binary: one logit, P(classes_[1])
            index = b.op("Reshape", index, b.const([-1], "shape", np.int64))
            proba = b.op("Concat", b.op("Sub", b.const(1.0), proba), proba, axis=1)
        classes, kind = _label_constant(b, est.classes_)
        label = b.op("Gather", classes, index, axis=0)
        label_type = {np.int64: TensorProto.INT64, np.float64: TensorProto.DOUBLE,
                      object: TensorProto.STRING}[kind]
        label_shape = ["N"]
    b.nodes += [_rename(label, "label"), _rename(proba, "probabilities")]
    width = n if multilabel or n > 1 else 2
    return [helper.make_tensor_value_info("label", label_type, label_shape),
            _value_info("probabilities", b.dtype, width)]


def _estimator_graph(est, opset):
    from fastmlp.estimators import MLPClassifier, MLPRegressor
    if not hasattr(est, "_model"):
        raise ValueError(f"model ({type(est).__name__}) is not fitted: call fit first")
    model = est._model
    b = GraphBuilder(model.dtype, opset)
    logits = emit_sequence(b, model.layers, "X")
    if isinstance(est, MLPClassifier):
        return b, model, _classifier_outputs(b, est, logits)
    assert isinstance(est, MLPRegressor)
    y = b.op("Exp", logits) if est.out_activation_ == "exp" else logits
    b.nodes.append(_rename(y, "variable"))
    return b, model, [_value_info("variable", model.dtype, model.n_out)]


def _graph_for(model, opset, probabilities):
    """``(builder, input value infos, output value infos)`` for any exportable object."""
    from fastmlp.sequential import Sequential
    from fastmlp.trainer import Trainer
    if isinstance(model, Trainer):
        model = model.model
    if getattr(model, "is_graph", False):
        return _graph_model_graph(model, opset, probabilities)
    if isinstance(model, Sequential):
        b, outputs = _sequential_graph(model, opset, probabilities)
        return b, [_value_info("X", model.dtype, model.n_in)], outputs
    from fastmlp.estimators import MLPClassifier, MLPRegressor
    if isinstance(model, (MLPClassifier, MLPRegressor)):
        if probabilities:
            raise ValueError("probabilities=True is for a Sequential or Trainer; an estimator "
                             "exports its probabilities already")
        b, seq, outputs = _estimator_graph(model, opset)
        return b, [_value_info("X", seq.dtype, seq.n_in)], outputs
    raise TypeError(f"model must be a fastmlp Sequential, Model, Trainer, MLPClassifier or "
                    f"MLPRegressor, got {type(model).__name__}")


def to_onnx(model: Any, path: Optional[PathLike] = None, opset: int = MIN_OPSET, *,
            probabilities: bool = False) -> Any:
    """Export a model to ONNX (inference only).

    Parameters
    ----------
    model : Sequential, Model, Trainer, MLPClassifier or MLPRegressor
        A built model (a graph Model included), a trainer (its model) or a fitted
        estimator.
    path : str or os.PathLike or None
        Where to write the ``.onnx`` file; None writes nothing (the model is returned).
    opset : int, default=17
        The ONNX default-domain opset, from 17 to the installed ``onnx``'s newest.
    probabilities : bool, default=False
        Sequential, Trainer and one-output graph models only: append a Softmax over the
        outputs (for a classifier trained on logits). Estimators always export their
        probabilities.

    Returns
    -------
    onnx.ModelProto
        The checked model (also written to ``path`` when given).

    Raises
    ------
    ValueError
        For a layer with no ONNX form (a layer written in NumPy), an unfitted estimator or
        an opset out of range; TypeError for an object that is not a model.

    Examples
    --------
    >>> import fastmlp as fm
    >>> model = fm.Sequential(fm.Dense(4, 8, activation="relu"), fm.Dense(8, 3), seed=0)
    >>> proto = fm.to_onnx(model, "model.onnx")          # doctest: +SKIP
    >>> import onnxruntime as ort                          # doctest: +SKIP
    >>> ort.InferenceSession("model.onnx").run(None, {"X": X.astype("float32")})[0]  # doctest: +SKIP
    """
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("to_onnx needs the onnx package: pip install \"fastmlp[onnx]\"") \
            from exc
    if not isinstance(probabilities, bool):
        raise TypeError(f"probabilities must be True or False, got {probabilities!r}")
    opset = _check_opset(opset)
    from onnx import helper
    b, inputs, outputs = _graph_for(model, opset, probabilities)
    graph = helper.make_graph(b.nodes, "fastmlp", inputs, outputs, initializer=b.initializers)
    proto = helper.make_model(graph, producer_name="fastmlp", producer_version=__version__,
                              opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        path = os.fspath(path)
        tmp = f"{path}.tmp{os.getpid()}"
        onnx.save_model(proto, tmp)
        os.replace(tmp, path)
    return proto
