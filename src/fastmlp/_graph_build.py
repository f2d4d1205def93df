"""Compile a graph of layer calls: validate it, order it, cut it into segments (chains of
layers, one compiled Plan each) and merges, and assign workspace blocks by liveness.

The pieces ``fastmlp.graph.Model`` builds on:

* :func:`collect` walks back from the outputs: the calls in topological order (depth first,
  inputs in order), with the ValueErrors of a malformed graph;
* :func:`make_nodes` groups the calls into executor nodes;
* :func:`layout` numbers the tensors and plans the workspace (:func:`assign_slots`), giving
  the tables ``fastmlp._graph.Graph`` takes.
"""
from fastmlp._graph import GraphOp, TensorHome
from fastmlp._symbolic import SymbolicTensor
from fastmlp.layers.base import Layer
from fastmlp.layers.merge import Merge


def as_tensor_list(value, what):
    """``(list of tensors, names or None, single)`` from a tensor, a list or a dict."""
    names = None
    if isinstance(value, dict):
        names, value = list(value), list(value.values())
        for name in names:
            if not (isinstance(name, str) and name):
                raise TypeError(f"{what} names must be non-empty strings, got {name!r}")
    single = isinstance(value, SymbolicTensor)
    tensors = [value] if single else value
    if not isinstance(tensors, (list, tuple)) or not tensors:
        raise TypeError(f"{what} must be a symbolic tensor, a non-empty list or a dict of "
                        f"them, got {type(value).__name__}")
    for k, t in enumerate(tensors):
        if not isinstance(t, SymbolicTensor):
            raise TypeError(f"{what}[{k}] must be a symbolic tensor (fm.Input or a layer's "
                            f"output), got {type(t).__name__}")
    return list(tensors), names, single


def tensor_names(tensors, given, prefix, what):
    """The names of the inputs or outputs: given, the tensors' own, or ``<prefix>_<k>``."""
    names = given or [t.name if t.name is not None else f"{prefix}_{k}"
                      for k, t in enumerate(tensors)]
    for k, name in enumerate(names):
        if names.index(name) != k:
            raise ValueError(f"{what} {k} and {names.index(name)} are both named {name!r}")
    return names


def collect(inputs, outputs):
    """The calls between ``inputs`` and ``outputs`` in topological order, and each
    tensor's consumers ``{id(tensor): [(call, input position)]}``. ValueError when an
    output depends on an Input that is not among ``inputs``, or an input reaches no
    output."""
    for k, t in enumerate(inputs):
        if t.producer is not None:
            raise ValueError(f"inputs[{k}] is {t.describe()}, not an fm.Input: a model's "
                             "inputs are the tensors made by fm.Input")
        if inputs.index(t) != k:
            raise ValueError(f"inputs[{k}] is inputs[{inputs.index(t)}] again")
    known = {id(t) for t in inputs}
    order, done, consumers = [], set(), {}
    for t in outputs:
        stack = [(t, False)]
        while stack:
            tensor, expanded = stack.pop()
            call = tensor.producer
            if call is None:
                if id(tensor) not in known:
                    raise ValueError(f"an output depends on the Input {tensor.describe()}, "
                                     "which is not among the model's inputs: that part of "
                                     "the graph is not reachable from the inputs")
                continue
            if id(call) in done:
                continue
            if expanded:
                done.add(id(call))
                order.append(call)
                for pos, x in enumerate(call.inputs):
                    consumers.setdefault(id(x), []).append((call, pos))
                continue
            stack.append((tensor, True))
            stack.extend((x, False) for x in reversed(call.inputs))
    reached = {id(x) for call in order for x in call.inputs} | {id(t) for t in outputs}
    for k, t in enumerate(inputs):
        if id(t) not in reached:
            raise ValueError(f"input {k} ({t.describe()}) reaches no output")
    return order, consumers


def check_calls(calls, model):
    """Every op is a Layer or Merge of this model only, still of the widths it was called
    with; a layer with state of its last forward (BatchNorm's statistics) is called once."""
    counts = {}
    for call in calls:
        op = call.op
        if isinstance(op, Merge):
            continue
        if not isinstance(op, Layer):
            raise TypeError(f"graph node {op!r} is neither a Layer nor a Merge")
        if op._model is not None and op._model is not model:
            raise ValueError(f"{op!r} already belongs to another model")
        x = call.inputs[0]
        if (op.n_in, op.n_out) != (x.width, call.output.width):
            raise ValueError(f"{op!r} was called on {x.describe()} giving (None, "
                             f"{call.output.width}), but now maps {op.n_in} to {op.n_out}")
        counts[id(op)] = counts.get(id(op), 0) + 1
        if counts[id(op)] == 2 and any(layer.buffer_specs() for layer in subtree(op)):
            raise ValueError(f"{op!r} is called twice, but its backward reads state of its "
                             "last forward (running statistics): call it once")


def subtree(layer):
    out = [layer]
    for child in layer.children():
        out.extend(subtree(child))
    return out


def unique_layers(calls):
    """The layers of the calls, each once, in order of first call."""
    seen, out = set(), []
    for call in calls:
        if isinstance(call.op, Layer) and id(call.op) not in seen:
            seen.add(id(call.op))
            out.append(call.op)
    return out


def make_nodes(calls, consumers, outputs):
    """Executor nodes in order: ``("segment", [calls])`` for each chain of layer calls
    whose inner tensors feed only the next call (and are no output), ``("merge", call)``.
    A segment runs where its first call stands; each later call depends on its
    predecessor only, so the order stays topological."""
    out_ids = {id(t) for t in outputs}
    nodes, seg_of = [], {}
    for call in calls:
        if isinstance(call.op, Merge):
            nodes.append(("merge", call))
            continue
        x = call.inputs[0]
        prev = x.producer
        if prev is not None and id(prev) in seg_of and id(x) not in out_ids \
                and len(consumers[id(x)]) == 1:
            seg = seg_of[id(prev)]
        else:
            seg = []
            nodes.append(("segment", seg))
        seg.append(call)
        seg_of[id(call)] = seg
    return nodes


def node_inputs(node):
    kind, body = node
    return body[0].inputs if kind == "segment" else body.inputs


def node_output(node):
    kind, body = node
    return body[-1].output if kind == "segment" else body.output


def node_table(nodes, ids):
    """``[(op, segment index or -1, input tensor numbers, output tensor number)]``: the
    nodes as ``fastmlp._graph.Graph`` takes them."""
    table, seg = [], 0
    for node in nodes:
        ins, out = [ids[id(x)] for x in node_inputs(node)], ids[id(node_output(node))]
        if node[0] == "segment":
            table.append((int(GraphOp.G_SEGMENT), seg, ins, out))
            seg += 1
        else:
            table.append((int(node[1].op.code), -1, ins, out))
    return table


def _needs_value(node):
    """Whether the node's backward reads its inputs' values."""
    kind, body = node
    return kind == "segment" or body.op.code == GraphOp.G_MUL


def layout(nodes, inputs, outputs):
    """Tables of ``fastmlp._graph.Graph``: ``(tensors, edge_accum, seed_modes, work_cols,
    tmp_col, ids)`` where ``ids`` maps ``id(tensor)`` to its number (inputs first, then
    each node's output) and ``tensors`` holds ``(home, width, seg, val_col, grad_col)``.

    Time runs forward over the nodes (0 … N−1), then N (outputs read, dY given), then
    backward (node i at 2N − i). A merge's value lives from its node to its last reader
    (forward, or backward for segments and Multiply); a gradient from its first
    contribution to its producer's backward. Blocks alive at the same time never share.
    """
    N = len(nodes)
    ids = {id(t): k for k, t in enumerate(inputs)}
    for node in nodes:
        ids[id(node_output(node))] = len(ids)
    out_ids = [ids[id(t)] for t in outputs]
    val_end, grad_start, edges = _lifetimes(nodes, ids, out_ids)
    # the first contribution backward meets writes; an output's gradient starts as its dY
    accum, written = [False] * len(edges), set(out_ids)
    for _, e, j in sorted(edges, key=lambda t: (t[0], t[1])):
        accum[e] = j in written
        written.add(j)
    fed = {j for _, _, j in edges}
    alias = {j for j in out_ids if out_ids.count(j) == 1 and j not in fed}
    buffers = []
    for i, node in enumerate(nodes):
        j, width = ids[id(node_output(node))], node_output(node).width
        if node[0] == "merge":
            buffers.append((i, val_end[j], width, ("val", j)))
        if j not in alias:
            buffers.append((grad_start[j], 2 * N - i, width, ("grad", j)))
    cols, work_cols = assign_slots(buffers)
    tmp_w = max([x.width for i, node in enumerate(nodes) if node[0] == "segment"
                 for x in node_inputs(node) if accum[_first_edge(nodes, i)]], default=0)
    tensors = [(int(TensorHome.T_INPUT), t.width, -1, -1, -1) for t in inputs]
    seg = 0
    for node in nodes:
        j = ids[id(node_output(node))]
        home = TensorHome.T_SEGMENT if node[0] == "segment" else TensorHome.T_SLOT
        tensors.append((int(home), node_output(node).width, seg if node[0] == "segment" else -1,
                        cols.get(("val", j), -1), cols.get(("grad", j), -1)))
        seg += node[0] == "segment"
    modes = [0 if j in alias else (2 if j in out_ids[:k] else 1) for k, j in enumerate(out_ids)]
    return tensors, accum, modes, work_cols + tmp_w, work_cols if tmp_w else -1, ids


def _lifetimes(nodes, ids, out_ids):
    """``(last use of each value, first contribution to each gradient, edges)``, each edge
    ``(backward time, edge index, input tensor)``; see :func:`layout` for the clock."""
    N = len(nodes)
    val_end, grad_start, edges = {}, {}, []
    for i, node in enumerate(nodes):
        for x in node_inputs(node):
            j = ids[id(x)]
            val_end[j] = max(val_end.get(j, i), 2 * N - i if _needs_value(node) else i)
            grad_start[j] = min(grad_start.get(j, 2 * N - i), 2 * N - i)
            edges.append((2 * N - i, len(edges), j))
    for j in out_ids:
        val_end[j] = max(val_end.get(j, N), N)
        grad_start[j] = N
    return val_end, grad_start, edges


def _first_edge(nodes, i):
    return sum(len(node_inputs(node)) for node in nodes[:i])


def assign_slots(buffers):
    """Columns for ``buffers`` = [(start, end, width, key)] (closed time intervals): a
    buffer reuses a slot whose occupant's interval ended before it starts (the smallest
    free slot that is wide enough, else the widest free one, widened), as XLA's buffer
    assignment reuses dead buffers. Returns ``({key: column}, total columns)``."""
    slots = []              # [width, end of the current occupant]
    where = {}
    for start, end, width, key in sorted(buffers, key=lambda b: (b[0], b[1])):
        free = [k for k, s in enumerate(slots) if s[1] < start]
        fits = [k for k in free if slots[k][0] >= width]
        if fits:
            k = min(fits, key=lambda k: slots[k][0])
        elif free:
            k = max(free, key=lambda k: slots[k][0])
            slots[k][0] = width
        else:
            k = len(slots)
            slots.append([width, end])
        slots[k][1] = end
        where[key] = k
    starts, col = [], 0
    for width, _ in slots:
        starts.append(col)
        col += width
    return {key: starts[k] for key, k in where.items()}, col
