"""Layer configs -> layer trees: containers with their layers, tied layers by index.

Each layer class rebuilds itself (``cls.from_config(config, context)``); this module walks
a list of layer configs, builds the layers in the order their references need and checks
the sizes they declare before any arena is allocated.
"""
import math

from fastmlp._serial import MAX_DEPTH, MAX_LAYERS, Context, check_int, entry, lookup
from fastmlp.layers.base import Layer


def layers_from_config(entries, custom_objects=None):
    """``(top-level layers, all layers in flat order)`` from a list of layer configs.

    Flat order is the model's ``flat_layers`` order (containers before their children),
    which is how ``tied_to`` refers to a layer; layers are built as their references need.
    """
    if not isinstance(entries, list) or not entries:
        raise ValueError("'layers' must be a non-empty list")
    nodes = []

    def walk(layer_entry, where, depth):
        if depth > MAX_DEPTH or len(nodes) >= MAX_LAYERS:
            raise ValueError("the layer configs are nested too deeply or are too many")
        name, config = entry(layer_entry, where)
        cls = lookup(name, Layer, where, custom_objects)
        node = {"cls": cls, "config": config, "where": where, "children": []}
        index = len(nodes)
        nodes.append(node)
        key = cls.children_key
        if key is not None:
            children = config.get(key)
            if not isinstance(children, list) or not children:
                raise ValueError(f"{where}: {cls.__name__} {key!r} must be a non-empty list")
            node["children"] = [walk(c, f"{where}.{key}[{i}]", depth + 1)
                                for i, c in enumerate(children)]
        return index

    top = [walk(e, f"layers[{i}]", 0) for i, e in enumerate(entries)]
    built, busy = [None] * len(nodes), [False] * len(nodes)

    def refer(index, what):
        check_int(index, what, 0, len(nodes) - 1)
        return make(index)

    def make(i):
        if built[i] is None:
            node = nodes[i]
            if busy[i]:
                raise ValueError(f"{node['where']}: tied_to forms a cycle")
            busy[i] = True
            context = Context(node["where"], custom_objects,
                              [make(c) for c in node["children"]], refer)
            built[i] = node["cls"].from_config(node["config"], context)
        return built[i]

    return [make(i) for i in top], [make(i) for i in range(len(nodes))]


def arena_sizes(top, flat):
    """``(n_params, n_buffers)`` the layers will need, from their declared shapes (Python
    integers: no overflow, nothing allocated). Fixes the layers' widths as the model will."""
    width = top[0].n_in
    if width is None:
        raise ValueError(f"the first layer ({top[0]!r}) must fix the input width")
    for i, layer in enumerate(top):
        try:
            width = layer.build(width)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"layers[{i}]: {exc}") from None
    n_params = sum(_count(shape) for layer in flat for _, shape, _ in layer.param_specs())
    n_buffers = sum(_count(shape) for layer in flat for _, shape, _ in layer.buffer_specs())
    return n_params, n_buffers


def _count(shape):
    dims = [check_int(d, "a parameter dimension") for d in shape]
    return math.prod(dims)
