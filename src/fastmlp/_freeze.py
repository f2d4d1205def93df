"""Frozen layers (``layer.trainable = False``, torch's ``requires_grad_(False)``): their
parameters are put back after every update, so neither the optimizer's step nor its weight
decay moves them (their optimizer state is unused). A container's flag covers its children.
"""


def frozen_ranges(model):
    """``[(start, stop)]`` of the arena holding the parameters of frozen layers (none for
    objects that are not models of layers)."""
    flat, info = getattr(model, "flat_layers", None), getattr(model, "param_info", None)
    if flat is None or info is None:
        return []
    frozen = set()

    def walk(layers, inherited):
        for layer in layers:
            stop = inherited or not getattr(layer, "trainable", True)
            if stop:
                frozen.add(id(layer))
            walk(layer.children(), stop)

    walk(model.layers, False)
    out = []
    for p in info:
        if id(flat[p["layer"]]) in frozen:
            size = 1
            for d in p["shape"]:
                size *= int(d)
            out.append((p["offset"], p["offset"] + size))
    return out


class FrozenParams:
    """The values of a model's frozen parameters, taken now, put back by :meth:`restore`."""

    def __init__(self, model):
        self.params = model.params
        self.ranges = frozen_ranges(model)
        self.saved = [self.params[a:b].copy() for a, b in self.ranges]

    def __bool__(self):
        return bool(self.ranges)

    def restore(self):
        for (a, b), value in zip(self.ranges, self.saved):
            self.params[a:b] = value
