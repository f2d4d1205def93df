"""Frozen layers (``layer.trainable = False``, torch's ``requires_grad_(False)``): their
parameters are put back after every update, so neither the optimizer's step nor its weight
decay moves them (their optimizer state is unused). A container's flag covers its children.
"""
from fastmlp.layers.base import _TRAINABLE_SETS


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


class FrozenRanges:
    """A model's :func:`frozen_ranges`, walked again only after some layer's ``trainable``
    was set (a training loop asks at every run: an epoch, or each progress chunk of one;
    the walk over the layers cost ~6 us a run on a Zen 1 core)."""

    def __init__(self, model):
        self.model = model
        self.seen = None          # the count of trainable sets the ranges were walked at
        self.ranges = []

    def __call__(self):
        sets = _TRAINABLE_SETS[0]
        if sets != self.seen:
            self.ranges, self.seen = frozen_ranges(self.model), sets
        return self.ranges


class FrozenParams:
    """The values of a model's frozen parameters, taken now, put back by :meth:`restore`
    (``ranges``: the model's :func:`frozen_ranges` when known)."""

    def __init__(self, model, ranges=None):
        self.params = model.params
        self.ranges = frozen_ranges(model) if ranges is None else ranges
        self.saved = [self.params[a:b].copy() for a, b in self.ranges]

    def __bool__(self):
        return bool(self.ranges)

    def restore(self):
        for (a, b), value in zip(self.ranges, self.saved):
            self.params[a:b] = value
