"""Containers of layers: Chain (layers in order: a Sequential nested in another) and
Residual(*layers), x + f(x)."""
from typing import Any, List, Optional

import numpy as np

from fastmlp._codes import LayerKind
from fastmlp._serial import Context, register, to_config
from fastmlp._typing import Config
from fastmlp.layers.base import Layer


@register
class Chain(Layer):
    """Layers applied in order, as one layer: what a Sequential nested in another becomes
    (``Sequential(Sequential(a, b), c)``; torch's nested ``nn.Sequential``). The model
    owns its layers' parameters; ``chain[i]`` is its i-th layer."""

    children_key = "layers"

    def __init__(self, *layers: Layer):
        super().__init__()
        if not layers:
            raise ValueError(f"{type(self).__name__} needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"{type(self).__name__} layers[{i}] must be a fastmlp Layer, "
                                f"got {type(layer).__name__}")
        self.layers = list(layers)
        # a block that starts with Dense knows its width: it may open a model
        self.n_in = layers[0].n_in
        self.n_out = None

    def children(self) -> List["Layer"]:
        return self.layers

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def get_config(self) -> Config:
        """``{"layers": [config of each inner layer]}``."""
        return {"layers": [to_config(layer) for layer in self.layers]}

    @classmethod
    def from_config(cls, config: Config, context: Context) -> "Layer":
        """The container of ``context.children`` (rebuilt from ``config["layers"]``)."""
        return context.build(cls, context.kwargs(cls, config, skip=("layers",)),
                             args=context.children)

    def build(self, n_in: int) -> int:
        width = n_in
        for i, layer in enumerate(self.layers):
            try:
                width = layer.build(width)
            except ValueError as exc:
                raise ValueError(f"{type(self).__name__} layers[{i}]: {exc}") from None
        self.n_in, self.n_out = n_in, width
        return width

    def _inner_descs(self, ctx):
        inner = []
        for layer in self.layers:
            descs = layer.core_descs(ctx)
            if descs is None:
                return None            # a Python layer inside: the whole block runs in Python
            inner.extend(descs)
        return inner

    def core_descs(self, ctx: Any) -> Optional[List[Config]]:
        return self._inner_descs(ctx)

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        out = X
        for layer in self.layers:
            out = layer.forward(out, training=training)
        self._cache = True
        return out

    def backward(self, dY: np.ndarray) -> np.ndarray:
        self._need_cache()
        g = dY
        for layer in reversed(self.layers):
            g = layer.backward(g)
        return g

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(map(repr, self.layers))})"

    def n_params(self) -> int:
        return sum(layer.n_params() for layer in self.layers)


@register
class Residual(Chain):
    """``y = x + f(x)`` where f is the given layers applied in order (He et al., 2016).

    The layers must keep the width (checked when the model is built). The gradient is
    the sum of both paths: ``dX = dY + f'(x)ᵀ dY``.

    Examples
    --------
    >>> block = Residual(Dense(64, 64, activation="relu"), Dense(64, 64))
    """

    def __init__(self, *layers: Layer):
        super().__init__(*layers)
        self.n_out = self.n_in

    def build(self, n_in: int) -> int:
        width = super().build(n_in)
        if width != n_in:
            raise ValueError(f"Residual layers must keep the width: they map {n_in} features "
                             f"to {width}, so x + f(x) is undefined")
        return n_in

    def core_descs(self, ctx: Any) -> Optional[List[Config]]:
        inner = self._inner_descs(ctx)
        if inner is None:
            return None
        n = self.n_in
        begin = dict(kind=LayerKind.K_RES_BEGIN, n_in=n, n_out=n, _res_begin=True)
        end = dict(kind=LayerKind.K_RES_END, n_in=n, n_out=n, _res_end=True)
        return [begin] + inner + [end]

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        return X + super().forward(X, training)

    def backward(self, dY: np.ndarray) -> np.ndarray:
        return dY + super().backward(dY)
