"""Symbolic tensors of the functional API: ``fm.Input`` and the record of each layer call.

Calling a layer (or a merge) on symbolic tensors computes nothing: it checks the widths,
records a :class:`Call` and returns the call's output tensor. ``fm.Model(inputs, outputs)``
then walks these records backwards from the outputs (:mod:`fastmlp._graph_build`).
This module depends on nothing else in the package, so that ``Layer.__call__`` can use it.
"""
import numbers
from typing import Optional

import numpy as np


class SymbolicTensor:
    """A placeholder for a (batch, width) array in a graph under construction.

    Attributes
    ----------
    width : int
        Features per row; the shape is ``(None, width)`` (any batch size).
    producer : Call or None
        The layer call that computes it; None for a model input (:func:`Input`).
    name : str or None
        Given by ``Input(n, name=...)`` or ``layer(x, name=...)``; the model names the
        unnamed ones (``input_<k>``, ``output_<k>``).
    dtype : numpy dtype or None
        Inputs only: the dtype the model must have (None: any).
    """

    def __init__(self, width, producer=None, name=None, dtype=None):
        self.width = int(width)
        self.producer = producer
        self.name = name
        self.dtype = dtype
        self._model = None          # the Model that owns it (a tensor joins one model)

    @property
    def shape(self):
        return (None, self.width)

    def describe(self):
        """``'name' (None, width)`` or ``the output of <op> (None, width)``, for messages."""
        if self.name is not None:
            return f"{self.name!r} {self.shape}"
        if self.producer is None:
            return f"an Input {self.shape}"
        return f"the output of {self.producer.op!r} {self.shape}"

    def __repr__(self):
        name = f"{self.name!r}, " if self.name is not None else ""
        src = "Input" if self.producer is None else repr(self.producer.op)
        return f"SymbolicTensor({name}shape={self.shape}, from {src})"


class Call:
    """One application of ``op`` (a Layer or a Merge) to symbolic tensors."""

    def __init__(self, op, inputs, width, name=None):
        self.op = op
        self.inputs = tuple(inputs)
        self.output = SymbolicTensor(width, self, name)

    def __repr__(self):
        return f"Call({self.op!r} on {[t.shape for t in self.inputs]})"


def Input(n: int, name: Optional[str] = None, dtype: Optional[str] = None) -> "SymbolicTensor":
    """A model input: a symbolic tensor of ``n`` features per row.

    Parameters
    ----------
    n : int
        Width of the input.
    name : str, optional
        Shown by the model's summary; default ``input_<k>``.
    dtype : {"float32", "float64"}, optional
        When given, the model built on this input must have this dtype.

    Returns
    -------
    SymbolicTensor

    Examples
    --------
    >>> a = fm.Input(5)
    >>> h = fm.Dense(5, 8, activation="tanh")(a)
    >>> h.shape
    (None, 8)
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 0 < n < 2**31:
        raise ValueError(f"Input width must be an integer in [1, 2**31), got {n!r}")
    check_name(name, "Input name")
    if dtype is not None:
        dt = np.dtype(dtype) if isinstance(dtype, (str, type, np.dtype)) else None
        if dt not in (np.float32, np.float64):
            raise ValueError(f"Input dtype must be 'float32' or 'float64', got {dtype!r}")
        dtype = dt
    return SymbolicTensor(n, None, name, dtype)


def check_name(name, what):
    if name is not None and not (isinstance(name, str) and name):
        raise TypeError(f"{what} must be a non-empty string, got {name!r}")


def check_tensor(x, op, where="input"):
    """``x`` if it is a SymbolicTensor, else TypeError naming ``op``."""
    if not isinstance(x, SymbolicTensor):
        raise TypeError(f"{op!r} called on {type(x).__name__}: call layers on symbolic "
                        f"tensors (fm.Input or another layer's output) to build a graph; "
                        f"run arrays through a model (Sequential, Model) instead")
    return x


def apply_layer(layer, x, name=None):
    """``layer(x)``: check that the layer takes x's width; record the call."""
    check_tensor(x, layer)
    check_name(name, "name")
    try:
        width = layer.build(x.width)
    except ValueError as exc:
        raise ValueError(f"{layer!r} called on {x.describe()}: {exc}") from None
    return Call(layer, [x], width, name).output


def apply_merge(merge, tensors, name=None):
    """``merge([a, b, ...])``: check the widths; record the call."""
    if isinstance(tensors, SymbolicTensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{merge!r} takes a list of symbolic tensors, got "
                        f"{type(tensors).__name__}")
    tensors = [check_tensor(t, merge) for t in tensors]
    check_name(name, "name")
    width = merge.build([t.width for t in tensors])
    return Call(merge, tensors, width, name).output
