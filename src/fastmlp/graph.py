"""Model: a graph of layers (the functional API) over one contiguous parameter arena."""
import threading
from typing import Any, Callable, List, Optional, Sequence, Union

import numpy as np

from fastmlp import _graph_build as gb
from fastmlp._serial import register
from fastmlp._graph import Graph
from fastmlp._graph_ref import ReferenceGraph
from fastmlp._plan import Plan, TrainingState
from fastmlp._validation import as_float_matrix, check_dtype, check_positive_int
from fastmlp._stages import CompileContext, link_residuals
from fastmlp.sequential import PREDICT_CHUNK, Sequential, _flatten, _init_sequence, rng_key


class Model:
    """A directed acyclic graph of layers from ``inputs`` to ``outputs`` (Keras' functional
    API): build it by calling layers on :func:`fastmlp.Input` tensors.

    Parameters
    ----------
    inputs : SymbolicTensor, or list of them
        The model's inputs, each made by ``fm.Input(n)``; ``forward`` takes the arrays in
        this order (or a dict by input name).
    outputs : SymbolicTensor, list of them, or dict {name: tensor}
        The tensors the model returns, in this order.
    dtype : {"float32", "float64"}
    seed : int or None
        Seed of the weight initialization (numpy ``default_rng``), layers in order of
        first call.
    backend : {"core", "numpy"}
        "core" runs the whole graph in one compiled call without the GIL per forward or
        backward (when every layer has a core kernel; a graph with a layer written in
        Python runs every node through NumPy, one Python call per layer); "numpy" runs the
        NumPy reference.

    Calling one layer object on two tensors shares its parameters: both calls read the
    same arena slot and add their gradients into the same gradient slot. A tensor that
    feeds several layers receives the sum of their gradients. (A layer written in Python
    and called twice must keep what its backward needs in ``self._cache``, which the
    reference path saves per call; a layer with running statistics is called once.)

    Attributes
    ----------
    params, grads, buffers : ndarray
        The arenas, as in :class:`~fastmlp.Sequential`; ``layer.W`` is a view.
    layers, flat_layers : list of Layer
        The layers in order of first call; with the layers inside containers.
    input_names, output_names : list of str

    Examples
    --------
    >>> a, b = fm.Input(5), fm.Input(3)
    >>> h = fm.Concatenate()([fm.Dense(5, 8, activation="tanh")(a),
    ...                       fm.Dense(3, 8, activation="tanh")(b)])
    >>> out1, out2 = fm.Dense(16, 3)(h), fm.Dense(16, 1)(h)
    >>> model = fm.Model([a, b], [out1, out2], dtype="float64", seed=0)
    >>> [o.shape for o in model.predict([np.ones((4, 5)), np.ones((4, 3))])]
    [(4, 3), (4, 1)]
    """

    is_graph = True
    #: the arena plumbing is Sequential's, unchanged
    _allocate_arena, _bind_views = Sequential._allocate_arena, Sequential._bind_views
    get_weights, set_weights = Sequential.get_weights, Sequential.set_weights
    zero_grad, train, eval = Sequential.zero_grad, Sequential.train, Sequential.eval
    n_params, rng_step, rng_seed = Sequential.n_params, Sequential.rng_step, Sequential.rng_seed
    named_parameters, parameters = Sequential.named_parameters, Sequential.parameters
    #: setting it compiles ``_stages``: here one executor (compiled Graph or reference)
    backend, ops, _thread_stages = Sequential.backend, Sequential.ops, Sequential._thread_stages
    #: the fused single-model training loop does not run graphs (fastmlp._graph_fit does)
    is_fused = False

    def __init__(self, inputs: Any, outputs: Any, dtype: str = "float32",
                 seed: Optional[int] = None, backend: str = "core") -> None:
        self.inputs, in_names, self._single_in = gb.as_tensor_list(inputs, "inputs")
        if in_names is not None:
            raise TypeError("inputs must be a tensor or a list of them (name them with "
                            "fm.Input(n, name=...))")
        self.outputs, out_names, self._single_out = gb.as_tensor_list(outputs, "outputs")
        self.dtype = np.dtype(check_dtype(dtype))
        self.seed = seed
        #: the RNG key and counter of dropout and noise, shared with the compiled plans
        self.state = TrainingState(rng_key(seed))
        self._build(in_names, out_names)
        self._last_batch = None
        self._local = threading.local()
        self._python_lock, self._train_lock = threading.Lock(), threading.Lock()
        self.backend = backend
        self.training = True

    # -- construction ------------------------------------------------------------------------
    def _build(self, in_names, out_names):
        self.input_names = gb.tensor_names(self.inputs, in_names, "input", "inputs")
        self.output_names = gb.tensor_names(self.outputs, out_names, "output", "outputs")
        for k, t in enumerate(self.inputs + self.outputs):
            if t._model is not None:
                raise ValueError(f"{t.describe()} already belongs to another model: build "
                                 "each model from its own fm.Input tensors")
            if t.dtype is not None and t.dtype != self.dtype:
                raise ValueError(f"input {self.input_names[k]!r} is {t.dtype.name} but the "
                                 f"model is {self.dtype.name}")
        for name, t in zip(self.output_names, self.outputs):
            if t.producer is None:
                raise ValueError(f"output {name!r} is the Input {t.describe()} itself: an "
                                 "output must be computed by a layer (fm.Identity()(x))")
        self.calls, consumers = gb.collect(self.inputs, self.outputs)
        gb.check_calls(self.calls, self)
        for call in self.calls:
            for x in call.inputs:
                if x._model is not None:
                    raise ValueError(f"{x.describe()}, an input of {call.op!r}, already "
                                     "belongs to another model")
        self.layers = gb.unique_layers(self.calls)
        self.flat_layers = _flatten(self.layers)
        self._nodes = gb.make_nodes(self.calls, consumers, self.outputs)
        self._build_arena(consumers)
        for t in self.inputs + [call.output for call in self.calls]:
            t._model = self                 # claimed only once the graph is valid

    def _build_arena(self, consumers):
        """The arenas (as Sequential's); then initialize the layers in order of first call,
        each told the activation of the layer its output feeds (init="auto")."""
        self._allocate_arena()
        rng = np.random.default_rng(self.seed)
        first = {}
        for call in self.calls:
            first.setdefault(id(call.op), call)
        for layer in self.layers:
            users = consumers.get(id(first[id(layer)].output), [])
            nxt = users[0][0].op if len(users) == 1 else None
            layer.init_params(rng, getattr(nxt, "activation_name", None))
            _init_sequence(layer.children(), rng)

    # -- the executor ------------------------------------------------------------------------
    @property
    def is_compiled(self) -> bool:
        """True when forward and backward run as one compiled call each (no Python per
        node); False on the NumPy reference path."""
        return isinstance(self._stages, Graph)

    @property
    def plan(self) -> Optional[Graph]:
        """The compiled executor of the whole graph (what the fused training loop steps),
        or None on the NumPy reference path (:attr:`is_compiled`)."""
        return self._stages if self.is_compiled else None

    def _compile_stages(self):
        """The compiled executor, or the reference one (backend "numpy", or a layer
        without a core kernel)."""
        # numbered by id(tensor): recomputed on every compile (and after unpickling)
        self._tables = gb.layout(self._nodes, self.inputs, self.outputs)
        tensors, accum, modes, work_cols, tmp_col, ids = self._tables
        if self._ops.compiled:
            plans = self._plans()
            if plans is not None:
                return Graph(plans, gb.node_table(self._nodes, ids), tensors, accum,
                             [ids[id(t)] for t in self.inputs],
                             [ids[id(t)] for t in self.outputs], modes, work_cols, tmp_col,
                             self.dtype)
        return ReferenceGraph(self._nodes, ids, accum, self.inputs, self.outputs, self.dtype)

    def _plans(self):
        """One Plan per segment, or None when a layer has no core kernel."""
        ctx = CompileContext(self)
        params, grads = (self.params, self.grads) if self.params.size else \
            (np.zeros(1, self.dtype), np.zeros(1, self.dtype))     # no parameters at all
        plans = []
        for kind, body in self._nodes:
            if kind != "segment":
                continue
            descs = []
            for call in body:
                d = call.op.core_descs(ctx)
                if d is None:
                    return None
                descs.extend(d)
            plans.append(Plan(link_residuals(descs), params, grads,
                              self.buffers if self.buffers.size else None, self.state))
        return plans

    # -- computation -------------------------------------------------------------------------
    def _arrays(self, X, what="X", rows=None, allow_empty=False):
        """The model's inputs (or, for ``what="grad_out"``, output gradients) as checked
        C-contiguous arrays of the model's dtype, one row count."""
        grads = what == "grad_out"
        names = self.output_names if grads else self.input_names
        widths = [t.width for t in (self.outputs if grads else self.inputs)]
        if isinstance(X, dict):
            unknown = set(X) - set(names)
            if unknown or len(X) != len(names):
                raise ValueError(f"{what} must have the keys {names}, got {list(X)}")
            X = [X[name] for name in names]
        elif not (isinstance(X, (list, tuple)) and (len(names) > 1 or (
                len(X) == 1 and np.ndim(X[0]) == 2))):
            if len(names) > 1:
                raise TypeError(f"the model has {len(names)} {'outputs' if grads else 'inputs'}"
                                f" {names}: {what} must be a list of {len(names)} arrays")
            X = [X]
        if len(X) != len(names):
            raise ValueError(f"{what} must hold {len(names)} arrays ({names}), got {len(X)}")
        out = [as_float_matrix(x, self.dtype, f"{what}[{k}] ({names[k]!r})", w,
                               allow_empty=allow_empty, ops=self.ops)
               for k, (x, w) in enumerate(zip(X, widths))]
        for k, a in enumerate(out):
            if a.shape[0] != (out[0].shape[0] if rows is None else rows):
                raise ValueError(f"{what}[{k}] ({names[k]!r}) has {a.shape[0]} rows, "
                                 f"expected {out[0].shape[0] if rows is None else rows}")
        return out

    def forward(self, X: Any, training: bool = False) -> Any:
        """Outputs for the inputs X: one array (one input) or a list (or a dict by input
        name) of (n_samples, width) arrays; returns one array (one output) or a list.
        Caches what :meth:`backward` needs. NaN or infinity in X raise ValueError."""
        Xs = self._arrays(X)
        self._last_batch = None
        if training:
            self.state.rng_step += 1
        ex = self._stages
        ex.forward(Xs, training)
        outs = [ex.output(k).copy() for k in range(len(self.outputs))]
        self._last_batch = Xs[0].shape[0]
        return outs[0] if self._single_out else outs

    def backward(self, grad_out: Any) -> Any:
        """Backpropagate dL/d(output) (one array, or a list per output) of the last forward;
        returns dL/d(input) (one array, or a list per input). Parameter gradients are
        *added* into ``grads`` (call :meth:`zero_grad` between steps)."""
        if self._last_batch is None:
            raise ValueError("backward called before forward: call forward(X) first")
        gs = self._arrays(grad_out, "grad_out", self._last_batch)
        dX = [np.empty((self._last_batch, t.width), self.dtype) for t in self.inputs]
        self._stages.backward(gs, dX)
        return dX[0] if self._single_in else dX

    def _backward_params(self, gs):
        """Backward of checked output gradients into ``grads`` only (the Trainer's step:
        no input gradients)."""
        self._stages.backward(gs, None)

    def predict(self, X: Any, batch_size: int = PREDICT_CHUNK) -> Any:
        """Outputs in evaluation mode, in one call without the GIL; thread-safe (each
        thread runs its own executor) and leaves :meth:`forward`'s cache alone.

        As :meth:`Sequential.predict`: ``batch_size`` rows at a time, each segment's
        products on the core's threads; from ``batch_size`` rows up on several threads, runs
        of about ``batch_size`` / threads rows, each through every node on one thread (a
        thread the system parks holds up only its run). The outputs are the same bits
        either way."""
        Xs = self._arrays(X, allow_empty=True)
        batch_size = check_positive_int(batch_size, "batch_size")
        n = Xs[0].shape[0]
        outs = [np.empty((n, t.width), self.dtype) for t in self.outputs]
        if n:
            ex = self._thread_stages()
            if isinstance(ex, Graph):
                ex.predict(Xs, outs, batch_size)
            else:               # Python layers keep their cache on the layer: one at a time
                with self._python_lock:
                    ex.predict(Xs, outs, batch_size)
        return outs[0] if self._single_out else outs

    def __call__(self, X):
        """:meth:`forward` in the model's mode (``train()`` / ``eval()``)."""
        return self.forward(X, training=self.training)

    def gradient_check(self, loss: Any, X: Any, y: Any, **kwargs: Any) -> float:
        """:func:`fastmlp.gradient_check` of this model (``loss`` and ``y``: one per output,
        as lists)."""
        from fastmlp.gradcheck import gradient_check
        return gradient_check(self, loss, X, y, **kwargs)

    # -- fm.save / fm.load (fastmlp._graph_io), registered as "graph_model" ----------------
    def __fastmlp_save__(self):
        """``(config, arrays)`` for :func:`fastmlp.save`."""
        from fastmlp._graph_io import pack_graph
        return pack_graph(self)

    @classmethod
    def __fastmlp_load__(cls, config, arrays):
        """The model :func:`fastmlp.load` reads; ValueError on a config that does not fit."""
        from fastmlp._graph_io import unpack_graph
        return unpack_graph(cls, config, arrays)

    # -- pickling and copy.deepcopy: through the arenas, as Sequential ----------------------
    _TRANSIENT = ("_local", "_python_lock", "_train_lock", "_stages", "_last_batch", "_ops",
                  "_tables")
    __getstate__, __setstate__ = Sequential.__getstate__, Sequential.__setstate__
    _finish_unpickling = Sequential._finish_unpickling

    # -- display ---------------------------------------------------------------------------
    def summary(self, print_fn: Callable[[str], Any] = print) -> None:
        """Print the graph: each node (inputs, then layer calls in execution order), its
        output shape, its parameters and the nodes it reads (the edges)."""
        for line in _summary_lines(self):
            print_fn(line)

    def __repr__(self):
        return "\n".join(_summary_lines(self))


register(Model, name="graph_model")


def _summary_lines(model):
    index = {id(t): k for k, t in enumerate(model.inputs)}
    rows = [(f"#{k}", f"{name}: Input", str(t.shape), "0", "")
            for k, (t, name) in enumerate(zip(model.inputs, model.input_names))]
    seen = {}
    for call in model.calls:
        k = len(index)
        index[id(call.output)] = k
        n = call.op.n_params()
        params = f"{n:,}" if id(call.op) not in seen else f"shared #{seen[id(call.op)]}"
        seen.setdefault(id(call.op), k)
        label = repr(call.op) + (f" [{call.output.name}]" if call.output.name else "")
        rows.append((f"#{k}", label, str(call.output.shape), params,
                     ", ".join(f"#{index[id(x)]}" for x in call.inputs)))
    head = ("", "Node", "Output shape", "Param #", "Inputs")
    widths = [max(len(r[c]) for r in rows + [head]) for c in range(5)]
    fmt = "{:<%d}  {:<%d}  {:<%d}  {:>%d}  {}" % tuple(widths[:4])
    rule = "-" * (sum(widths) + 8)
    executor = "compiled" if model.is_compiled else "NumPy reference, per node"
    segments = sum(kind == "segment" for kind, _ in model._nodes)
    plan = (f"{segments} layer chain{'s' * (segments != 1)} + "
            f"{len(model._nodes) - segments} merge{'s' * (len(model._nodes) - segments != 1)}, "
            f"merge/gradient workspace {model._tables[3]} values per row")
    outs = ", ".join(f"{name} = #{index[id(t)]}"
                     for name, t in zip(model.output_names, model.outputs))
    return ([f"Model (dtype={model.dtype.name}, backend={model.backend!r}, executor: "
             f"{executor})", rule, fmt.format(*head), rule]
            + [fmt.format(*r) for r in rows]
            + [rule, f"Outputs: {outs}", f"Executor nodes: {plan}",
               f"Total params: {model.n_params:,}",
               f"Non-trainable buffers: {model.buffers.shape[0]:,}", rule])
