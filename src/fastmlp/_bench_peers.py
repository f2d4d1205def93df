"""Work functions of the benchmarks for the peers that are not PyTorch: JAX (the training
step under ``jax.jit``, the whole epoch under ``jax.lax.scan``, optax Adam: XLA compiles
and fuses the epoch) and ONNX Runtime (inference). Each builder returns a function that
does the same work as its fastmlp twin in ``fastmlp._bench_work`` (same shapes, data,
batches, gathers by a shuffled index), or raises ``ImportError`` when the peer is not
installed (the benchmarks then skip it and say why).
"""
import numpy as np

from fastmlp._bench_work import SHAPES, TORCH_THREADS, data


def import_jax():
    """``(jax, jax.numpy, optax)``; ImportError with the reason when missing."""
    try:
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError as e:
        raise ImportError(f"JAX/optax not installed ({e}); pip install '.[bench]'") from e
    return jax, jnp, optax


def _jax_init(jax, jnp, sizes, dtype, seed):
    """He/Glorot-like normal weights and zero biases, as fastmlp's "auto" init."""
    key = jax.random.PRNGKey(seed)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        key, sub = jax.random.split(key)
        params.append((jax.random.normal(sub, (a, b), dtype) * np.sqrt(2.0 / a).astype(dtype),
                       jnp.zeros((b,), dtype)))
    return params


def _jax_loss(jax, jnp, optax, shape):
    sizes, act, loss = SHAPES[shape]
    f = jax.nn.relu if act == "relu" else jnp.tanh

    def forward(params, x):
        for W, b in params[:-1]:
            x = f(x @ W + b)
        W, b = params[-1]
        return x @ W + b

    def value(params, x, t):
        out = forward(params, x)
        if loss == "ce":
            return optax.softmax_cross_entropy_with_integer_labels(out, t).mean()
        return ((out - t) ** 2).mean()
    return value


def jax_train(shape, dtype="float32", batch=32, n_rows=20_000, shuffle=True, seed=0):
    """JAX: one pass over ``n_rows`` rows in batches of ``batch`` (the last partial batch
    dropped, as a scan needs equal steps: at most batch - 1 rows fewer than fastmlp),
    Adam(lr=1e-3); the epoch is one jitted ``lax.scan`` over the steps, each gathering its
    rows by index from the device-resident data. float64 runs under ``jax.enable_x64``."""
    jax, jnp, optax = import_jax()
    x64 = dtype == "float64"
    with jax.enable_x64(x64):
        X, y = data(shape, n_rows, dtype, seed)
        value = _jax_loss(jax, jnp, optax, shape)
        opt = optax.adam(1e-3)
        state = {"params": _jax_init(jax, jnp, SHAPES[shape][0], dtype, seed)}
        state["opt"] = opt.init(state["params"])
        steps = n_rows // batch
        Xj, yj = jnp.asarray(X), jnp.asarray(y)

        @jax.jit
        def epoch(params, opt_state, perm):
            def step(carry, idx):
                p, s = carry
                loss, g = jax.value_and_grad(value)(p, Xj[idx], yj[idx])
                updates, s = opt.update(g, s, p)
                return (optax.apply_updates(p, updates), s), loss
            (p, s), losses = jax.lax.scan(step, (params, opt_state),
                                          perm[:steps * batch].reshape(steps, batch))
            return p, s, losses.mean()
    rng = np.random.default_rng(seed)

    def run():
        with jax.enable_x64(x64):
            perm = rng.permutation(n_rows) if shuffle else np.arange(n_rows)
            p, s, loss = epoch(state["params"], state["opt"], jnp.asarray(perm))
            loss.block_until_ready()
            state["params"], state["opt"] = p, s
    run()      # compile outside the timings
    return run


def jax_steps(shape, dtype="float32", batch=8, n_steps=100):
    """``n_steps`` JAX training steps at ``batch`` rows, rows in order (as
    ``fastmlp_steps``), in one jitted scan."""
    return jax_train(shape, dtype, batch, batch * n_steps, shuffle=False)


def jax_predictions(n_rows, n_calls=1):
    """``n_calls`` jitted forward passes of ``n_rows`` rows, MNIST shape, float32."""
    jax, jnp, optax = import_jax()
    X, _ = data("mnist", n_rows)
    sizes, act, _ = SHAPES["mnist"]
    params = _jax_init(jax, jnp, sizes, "float32", 0)

    @jax.jit
    def forward(params, x):
        for W, b in params[:-1]:
            x = jax.nn.relu(x @ W + b)
        W, b = params[-1]
        return x @ W + b
    Xj = jnp.asarray(X)
    forward(params, Xj).block_until_ready()

    def run():
        for _ in range(n_calls):
            out = forward(params, Xj)
        out.block_until_ready()
    return run


def onnx_model(model):
    """A fastmlp Sequential of Dense layers (ReLU/Tanh or no activation) as an in-memory
    ONNX model: one Gemm (+ activation) per layer, opset 17, input "X" of any batch."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as e:
        raise ImportError(f"onnx not installed ({e}); pip install '.[bench]'") from e
    dtype = model.params.dtype
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    nodes, inits, prev = [], [], "X"
    for i, layer in enumerate(model.layers):
        inits += [numpy_helper.from_array(np.ascontiguousarray(layer.W), f"W{i}"),
                  numpy_helper.from_array(np.ascontiguousarray(layer.b), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [prev, f"W{i}", f"b{i}"], [f"z{i}"]))
        prev = f"z{i}"
        act = layer.activation.name
        if act in ("relu", "tanh"):
            nodes.append(helper.make_node("Relu" if act == "relu" else "Tanh", [prev], [f"a{i}"]))
            prev = f"a{i}"
        elif act != "identity":
            raise ValueError(f"layer {i}: activation {act!r} is not in this benchmark export")
    n_in, n_out = model.layers[0].W.shape[0], model.layers[-1].W.shape[1]
    graph = helper.make_graph(
        nodes, "fastmlp_bench", [helper.make_tensor_value_info("X", elem, [None, n_in])],
        [helper.make_tensor_value_info(prev, elem, [None, n_out])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def ort_predictions(n_rows, n_calls=1, threads=None):
    """``n_calls`` ONNX Runtime inferences of ``n_rows`` rows on the MNIST shape (the
    weights of ``_bench_work.model("mnist")``), float32, ``threads`` intra-op threads
    (default: as PyTorch's)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ImportError(f"onnxruntime not installed ({e}); pip install '.[bench]'") from e
    from fastmlp._bench_work import model
    X, _ = data("mnist", n_rows)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or TORCH_THREADS
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(onnx_model(model("mnist")).SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    feed = {"X": X}
    return lambda: [sess.run(None, feed) for _ in range(n_calls)]
