"""The NumPy reference executor of a graph model: the same nodes, in the same order, with
the same gradient accumulation as the compiled ``fastmlp._graph.Graph``, one Python call per
layer. It runs graphs with layers written in Python, and ``backend="numpy"``.

A layer keeps what its backward needs in ``_cache`` (its children too); a layer called
twice gets the cache of each call put back before that call's backward.
"""
import numpy as np

from fastmlp._graph_build import node_inputs, node_output, subtree


class ReferenceGraph:
    """Runs ``nodes`` (from :func:`fastmlp._graph_build.make_nodes`) with the tables of
    :func:`fastmlp._graph_build.layout`; the interface of ``fastmlp._graph.Graph``."""

    def __init__(self, nodes, ids, accum, inputs, outputs, dtype):
        self.nodes, self.ids, self.accum, self.dtype = nodes, ids, accum, dtype
        self.in_ids = [ids[id(t)] for t in inputs]
        self.out_ids = [ids[id(t)] for t in outputs]
        self.vals, self.caches, self.ready = {}, {}, False

    def forward(self, X, training=False):
        self.ready = False
        vals = self.vals = dict(zip(self.in_ids, X))
        for i, (kind, body) in enumerate(self.nodes):
            xs = [vals[self.ids[id(x)]] for x in node_inputs((kind, body))]
            if kind == "merge":
                out = np.ascontiguousarray(body.op.forward(xs), dtype=self.dtype)
            else:
                out, caches = xs[0], []
                for call in body:
                    out = self._layer_forward(call.op, out, training)
                    caches.append([layer._cache for layer in subtree(call.op)])
                self.caches[i] = caches
            vals[self.ids[id(node_output((kind, body)))]] = out
        self.ready = True

    def _layer_forward(self, layer, X, training):
        out = np.ascontiguousarray(layer.forward(X, training=training), dtype=self.dtype)
        if out.shape != (X.shape[0], layer.n_out):
            raise ValueError(f"{layer!r}.forward returned shape {out.shape}, expected "
                             f"{(X.shape[0], layer.n_out)}")
        return out

    def output(self, k):
        return self.vals[self.out_ids[k]]

    def backward(self, dY, dX=None):
        if not self.ready:
            raise ValueError("backward called before forward: run forward(X) first")
        grads = {}
        for j, g in zip(self.out_ids, dY):
            grads[j] = grads[j] + g if j in grads else g.copy()
        e = sum(len(node_inputs(node)) for node in self.nodes)
        for i in range(len(self.nodes) - 1, -1, -1):
            kind, body = self.nodes[i]
            xs = node_inputs((kind, body))
            e -= len(xs)
            g = grads.pop(self.ids[id(node_output((kind, body)))])
            if kind == "merge":
                parts = body.op.backward(g, [self.vals[self.ids[id(x)]] for x in xs])
            else:
                parts = [self._segment_backward(i, body, g)]
            for k, (x, part) in enumerate(zip(xs, parts)):
                j = self.ids[id(x)]
                if self.accum[e + k]:
                    grads[j] += part
                else:
                    grads[j] = np.array(part, dtype=self.dtype)
        if dX is not None:
            for out, j in zip(dX, self.in_ids):
                out[...] = grads[j]

    def _segment_backward(self, i, calls, g):
        for call, caches in zip(reversed(calls), reversed(self.caches[i])):
            for layer, cache in zip(subtree(call.op), caches):
                layer._cache = cache
            g = np.ascontiguousarray(call.op.backward(g), dtype=self.dtype)
            if g.shape != (g.shape[0], call.op.n_in):
                raise ValueError(f"{call.op!r}.backward returned shape {g.shape}, expected "
                                 f"{(g.shape[0], call.op.n_in)}")
        return g

    def predict(self, X, out, chunk):
        self.ready = False
        n = X[0].shape[0]
        for start in range(0, n, chunk):
            self.forward([x[start:start + chunk] for x in X], False)
            for k, o in enumerate(out):
                o[start:start + chunk] = self.output(k)
        self.ready = False
