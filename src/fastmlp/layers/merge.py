"""Merge layers of the functional API: Add, Subtract, Multiply (elementwise), Concatenate.

A merge takes a list of symbolic tensors and returns one: ``fm.Add()([a, b])``. It has no
parameters. Its ``forward``/``backward`` here are the NumPy reference; the compiled graph
executor (``fastmlp._graph``) runs the same formulas, in the same order, without the GIL.
"""
from typing import List, Optional, Sequence

import numpy as np

from fastmlp._graph import GraphOp
from fastmlp._symbolic import apply_merge


class Merge:
    """Base class of the merge layers: a map from k inputs (batch, n_i) to (batch, n_out)."""

    #: the op code of the compiled executor
    code = None
    #: the fewest inputs the merge takes (and the most, None: any number)
    min_inputs, max_inputs = 2, None

    def __call__(self, tensors, name: Optional[str] = None):
        """Apply the merge to a list of symbolic tensors; returns the output tensor."""
        return apply_merge(self, tensors, name)

    def build(self, widths: Sequence[int]) -> int:
        """Check the input widths; return the output width (ValueError on a mismatch)."""
        k = len(widths)
        if k < self.min_inputs or (self.max_inputs is not None and k > self.max_inputs):
            want = (f"exactly {self.min_inputs}" if self.max_inputs == self.min_inputs
                    else f"at least {self.min_inputs}")
            raise ValueError(f"{self!r} takes {want} inputs, got {k}")
        if len(set(widths)) != 1:
            shapes = ", ".join(f"(None, {w})" for w in widths)
            raise ValueError(f"{self!r} needs inputs of one shape, got {shapes}")
        return widths[0]

    def get_config(self):
        return {}

    def n_params(self):
        return 0

    def forward(self, Xs: Sequence[np.ndarray]) -> np.ndarray:
        """Output for the list of input arrays."""
        raise NotImplementedError

    def backward(self, dY: np.ndarray, Xs: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Gradients w.r.t. each input, given dL/dY and the inputs of the forward."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class Add(Merge):
    """``Y = X_0 + X_1 + ...`` (summed left to right); ``dX_k = dY``."""

    code = GraphOp.G_ADD

    def forward(self, Xs: Sequence[np.ndarray]) -> np.ndarray:
        out = Xs[0] + Xs[1]
        for x in Xs[2:]:
            out += x
        return out

    def backward(self, dY: np.ndarray, Xs: Sequence[np.ndarray]) -> List[np.ndarray]:
        return [dY] * len(Xs)


class Subtract(Merge):
    """``Y = X_0 − X_1``; ``dX_0 = dY``, ``dX_1 = −dY``."""

    code = GraphOp.G_SUB
    min_inputs = max_inputs = 2

    def forward(self, Xs: Sequence[np.ndarray]) -> np.ndarray:
        return Xs[0] - Xs[1]

    def backward(self, dY: np.ndarray, Xs: Sequence[np.ndarray]) -> List[np.ndarray]:
        return [dY, -dY]


class Multiply(Merge):
    """``Y = X_0 ⊙ X_1 ⊙ ...`` (multiplied left to right); ``dX_k = dY ⊙ Π_{j≠k} X_j``
    (the other factors multiplied left to right, then by dY)."""

    code = GraphOp.G_MUL

    def forward(self, Xs: Sequence[np.ndarray]) -> np.ndarray:
        out = Xs[0] * Xs[1]
        for x in Xs[2:]:
            out *= x
        return out

    def backward(self, dY: np.ndarray, Xs: Sequence[np.ndarray]) -> List[np.ndarray]:
        grads = []
        for k in range(len(Xs)):
            others = [x for j, x in enumerate(Xs) if j != k]
            prod = others[0].copy()
            for x in others[1:]:
                prod *= x
            grads.append(prod * dY)
        return grads


class Concatenate(Merge):
    """``Y = [X_0 | X_1 | ...]`` along the features; ``dX_k`` is X_k's block of columns of
    dY. The inputs may have different widths; the output width is their sum."""

    code = GraphOp.G_CONCAT

    def build(self, widths: Sequence[int]) -> int:
        if len(widths) < 2:
            raise ValueError(f"{self!r} takes at least 2 inputs, got {len(widths)}")
        return int(sum(widths))

    def forward(self, Xs: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate(Xs, axis=1)

    def backward(self, dY: np.ndarray, Xs: Sequence[np.ndarray]) -> List[np.ndarray]:
        ends = np.cumsum([x.shape[1] for x in Xs])
        return [np.ascontiguousarray(dY[:, e - x.shape[1]:e]) for x, e in zip(Xs, ends)]
