"""The layers of ``Sequential(*args)``: given one by one or as one list, and Sequentials
nested in them (their layers move into the new model, weights and buffers included)."""
from fastmlp.layers.base import Layer
from fastmlp.layers.residual import Chain


def layer_list(args):
    """The layers of ``Sequential(*args)``: the layers given one by one, or one list."""
    if not args:
        return []
    if len(args) == 1 and not isinstance(args[0], Layer) and not _is_model(args[0]):
        try:
            return list(args[0])
        except TypeError:
            raise TypeError(f"layers must be Layer objects or one list of them, got "
                            f"{type(args[0]).__name__}") from None
    if isinstance(args[0], (list, tuple)):
        raise TypeError(f"Sequential takes its layers, then keyword arguments: got "
                        f"{args[1]!r:.60} as a second positional argument; write "
                        "Sequential(layers, dtype=...) (dtype, seed and backend are keyword "
                        "arguments)")
    return list(args)


def _is_model(obj):
    return hasattr(obj, "flat_layers") and hasattr(obj, "param_info")


class Adopted:
    """The parameter and buffer values of the layers taken from nested models."""

    def __init__(self):
        self.values = []            # (layer, {attribute: array})

    def take(self, model):
        for layer in model.flat_layers:
            names = [n for n, _, _ in layer.param_specs()] + \
                [n for n, _, _ in layer.buffer_specs()]
            self.values.append((layer, {n: getattr(layer, n).copy() for n in names}))
            layer._model = None

    def restore(self):
        for layer, values in self.values:
            for name, value in values.items():
                getattr(layer, name)[...] = value


def adopt_nested(layers):
    """``(layers with every nested Sequential as a Chain of its layers, Adopted)``."""
    adopted, out = Adopted(), []
    for layer in layers:
        if _is_model(layer):
            adopted.take(layer)
            layer = Chain(*layer.layers)
        out.append(layer)
    return out, adopted
