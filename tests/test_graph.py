"""Graph models (the functional API): building them, the lectures' computational graphs,
the merge layers, shared layers, and the ValueErrors of a malformed graph."""
import numpy as np
import pytest

import fastmlp as fm


def lecture_graph(backend="core"):
    x, y, z = fm.Input(1), fm.Input(1), fm.Input(1)
    return fm.Model([x, y, z], fm.Multiply()([fm.Add()([x, y]), z]), dtype="float64",
                    backend=backend)


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_lecture_example_value_and_gradients(backend):
    """f(x, y, z) = (x + y)·z at (1, −3, 4): −8; ∂f/∂(x, y, z) = (z, z, x + y) = (4, 4, −2)."""
    g = lecture_graph(backend)
    out = g.forward([[[1.0]], [[-3.0]], [[4.0]]], training=True)
    assert out.shape == (1, 1) and out[0, 0] == -8.0
    dx, dy, dz = g.backward(np.ones((1, 1)))
    assert (dx[0, 0], dy[0, 0], dz[0, 0]) == (4.0, 4.0, -2.0)


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_fan_out_sums_the_gradients_of_both_branches(backend):
    """a = w·x feeds three nodes that meet again, f = a·(x − a) + a: df/dx and df/dw
    are the sums over every path (w = 3)."""
    x = fm.Input(1)
    a = fm.Dense(1, 1, bias=False)(x)               # a = w x
    b = fm.Subtract()([x, a])                       # b = x − a
    f = fm.Add()([fm.Multiply()([a, b]), a])        # f = a·b + a
    g = fm.Model(x, f, dtype="float64", backend=backend)
    g.params[:] = 3.0
    xv = np.array([[2.0], [-1.0]])
    out = g.forward(xv, training=True)
    np.testing.assert_array_equal(out, (3 * xv) * (xv - 3 * xv) + 3 * xv)
    g.zero_grad()
    dx = g.backward(np.ones((2, 1)))
    # f = 3x·(−2x) + 3x = −6x² + 3x: df/dx = −12x + 3
    # f(w) = w x (x − w x) + w x: df/dw = x (x − w x) − w x² + x, summed over the rows
    np.testing.assert_allclose(dx, -12 * xv + 3, rtol=1e-15)
    np.testing.assert_allclose(g.grads[0], np.sum(xv * (xv - 3 * xv) - 3 * xv**2 + xv),
                               rtol=1e-15)


def test_issue_example_builds_and_prints():
    a, b = fm.Input(5, name="numeric"), fm.Input(3, name="categories")
    h = fm.Concatenate()([fm.Dense(5, 8, activation="tanh")(a),
                          fm.Dense(3, 8, activation="tanh")(b)])
    trunk = fm.Dense(16, 8, activation="relu")(h)
    out1, out2 = fm.Dense(8, 3)(trunk, name="cls"), fm.Dense(8, 1)(trunk, name="value")
    model = fm.Model(inputs=[a, b], outputs=[out1, out2], dtype="float64", seed=0)
    text = repr(model)
    for piece in ["numeric: Input", "(None, 16)", "Concatenate()", "#2, #3", "cls = #6",
                  "value = #7", f"Total params: {model.n_params:,}", "executor: compiled"]:
        assert piece in text, piece
    assert model.output_names == ["cls", "value"] and model.input_names == ["numeric",
                                                                            "categories"]
    assert model.n_params == 48 + 32 + 136 + 27 + 9
    lines = []
    model.summary(print_fn=lines.append)
    assert "\n".join(lines) == text
    out = model.predict({"numeric": np.ones((4, 5)), "categories": np.ones((4, 3))})
    assert [o.shape for o in out] == [(4, 3), (4, 1)]


def test_shared_layer_uses_one_arena_slot_and_adds_both_gradients():
    d = fm.Dense(4, 4, activation="tanh")
    x = fm.Input(4)
    y = d(d(x))
    m = fm.Model(x, y, dtype="float64", seed=0)
    assert m.n_params == 20 and len(m.layers) == 1
    assert "shared #1" in repr(m)
    X = np.random.default_rng(0).normal(size=(3, 4))
    m.zero_grad()
    m.forward(X, training=True)
    m.backward(np.ones((3, 4)))
    h = np.tanh(X @ d.W + d.b)                     # the two uses' dW add up
    dz2 = (1 - np.tanh(h @ d.W + d.b) ** 2)
    dz1 = (dz2 @ d.W.T) * (1 - h**2)
    np.testing.assert_allclose(d.dW, h.T @ dz2 + X.T @ dz1, rtol=1e-12)


def test_merges_compute_their_formulas():
    a, b, c = fm.Input(2), fm.Input(2), fm.Input(1)
    outs = [fm.Add()([a, b, a]), fm.Subtract()([a, b]), fm.Multiply()([a, b, b]),
            fm.Concatenate()([a, c, b])]
    m = fm.Model([a, b, c], outs, dtype="float64")
    A, B, C = np.array([[1.0, 2]]), np.array([[3.0, -4]]), np.array([[5.0]])
    got = m.forward([A, B, C])
    for g, want in zip(got, [A + B + A, A - B, A * B * B, np.hstack([A, C, B])]):
        np.testing.assert_array_equal(g, want)


def test_an_input_can_feed_an_output_layer_and_a_hidden_one():
    """An output that also feeds another node gets dY plus what flows back into it."""
    x = fm.Input(3)
    h = fm.Dense(3, 3, activation="tanh")(x)
    y = fm.Dense(3, 2)(h)
    m = fm.Model(x, [h, y], dtype="float64", seed=1)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 3))
    assert fm.gradient_check(m, [fm.MSELoss(), fm.MSELoss()], X,
                             [rng.normal(size=(4, 3)), rng.normal(size=(4, 2))]) < 1e-6


# -- validation --------------------------------------------------------------------------------

def test_merge_shape_mismatch_names_the_shapes():
    a, b = fm.Input(3), fm.Input(4)
    with pytest.raises(ValueError, match=r"Add\(\) needs inputs of one shape, got "
                                         r"\(None, 3\), \(None, 4\)"):
        fm.Add()([a, b])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        fm.Subtract()([a, a, a])


def test_layer_width_mismatch_names_layer_and_tensor():
    x = fm.Input(3, name="feat")
    with pytest.raises(ValueError, match=r"Dense\(5, 2\) called on 'feat' \(None, 3\)"):
        fm.Dense(5, 2)(x)


def test_output_depending_on_a_foreign_input_is_unreachable():
    a, b = fm.Input(2), fm.Input(2, name="other")
    out = fm.Add()([a, b])
    with pytest.raises(ValueError, match="'other'.*not reachable from the inputs"):
        fm.Model(a, out)


def test_input_reaching_no_output_is_refused():
    a, b = fm.Input(2), fm.Input(3, name="unused")
    with pytest.raises(ValueError, match=r"input 1 \('unused' \(None, 3\)\) reaches no output"):
        fm.Model([a, b], fm.Dense(2, 1)(a))


def test_tensor_reused_across_two_models_is_refused():
    a = fm.Input(2)
    h = fm.Tanh()(a)
    fm.Model(a, h)
    with pytest.raises(ValueError, match="already belongs to another model"):
        fm.Model(a, fm.Dense(2, 1)(h))


def test_failed_model_does_not_claim_its_tensors():
    a = fm.Input(2)
    out = fm.Dense(2, 1)(a)
    with pytest.raises(ValueError):
        fm.Model(a, out, dtype="float16")
    fm.Model(a, out)                                 # still free


def test_an_input_is_no_output():
    a = fm.Input(2, name="x")
    with pytest.raises(ValueError, match="output 'x' is the Input 'x'"):
        fm.Model(a, a)
    m = fm.Model(a, fm.Identity()(a), dtype="float64")
    np.testing.assert_array_equal(m.forward([[1.0, 2.0]]), [[1.0, 2.0]])


def test_inputs_must_be_inputs_and_unique():
    a = fm.Input(2)
    h = fm.Tanh()(a)
    with pytest.raises(ValueError, match="not an fm.Input"):
        fm.Model(h, fm.Dense(2, 1)(h))
    with pytest.raises(ValueError, match=r"inputs\[1\] is inputs\[0\] again"):
        fm.Model([a, a], fm.Dense(2, 1)(a))


def test_dtype_of_an_input_must_match_the_model():
    a = fm.Input(2, dtype="float32", name="x32")
    with pytest.raises(ValueError, match="input 'x32' is float32 but the model is float64"):
        fm.Model(a, fm.Dense(2, 1)(a), dtype="float64")
    with pytest.raises(ValueError, match="Input dtype"):
        fm.Input(2, dtype="int8")


def test_calling_on_arrays_and_bad_arguments_raise():
    with pytest.raises(TypeError, match="symbolic tensors"):
        fm.Dense(2, 1)(np.ones((3, 2)))
    with pytest.raises(TypeError, match="list of symbolic tensors"):
        fm.Add()(fm.Input(2))
    with pytest.raises(ValueError, match="Input width"):
        fm.Input(0)
    with pytest.raises(TypeError, match="outputs"):
        fm.Model(fm.Input(2), "out")


def test_batchnorm_called_twice_is_refused():
    bn, x = fm.BatchNorm(3), fm.Input(3)
    y = bn(fm.Tanh()(bn(x)))
    with pytest.raises(ValueError, match="called twice"):
        fm.Model(x, y)


def test_layer_of_another_model_is_refused():
    d = fm.Dense(2, 2)
    fm.Sequential([d])
    x = fm.Input(2)
    with pytest.raises(ValueError, match="already belongs to another model"):
        fm.Model(x, d(x))


def test_forward_checks_its_arrays():
    a, b = fm.Input(2, name="a"), fm.Input(3, name="b")
    m = fm.Model([a, b], fm.Concatenate()([a, b]), dtype="float64")
    with pytest.raises(TypeError, match="list of 2 arrays"):
        m.forward(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"X\[1\] \('b'\) has 2 features"):
        m.forward([np.ones((4, 2)), np.ones((4, 2))])
    with pytest.raises(ValueError, match="rows"):
        m.forward([np.ones((4, 2)), np.ones((5, 3))])
    with pytest.raises(ValueError, match="NaN"):
        m.forward([np.full((4, 2), np.nan), np.ones((4, 3))])
    with pytest.raises(ValueError, match="keys"):
        m.forward({"a": np.ones((4, 2))})
    with pytest.raises(ValueError, match="before forward"):
        m.backward(np.ones((4, 5)))
    m.forward([np.ones((4, 2)), np.ones((4, 3))])
    with pytest.raises(ValueError, match="rows"):
        m.backward(np.ones((3, 5)))


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_one_tensor_listed_as_two_outputs_gets_both_gradients(backend):
    x = fm.Input(2)
    h = fm.Dense(2, 2, bias=False)(x)
    m = fm.Model(x, [h, h], dtype="float64", seed=0, backend=backend)
    X = np.array([[1.0, 2.0]])
    a, b = m.forward(X)
    np.testing.assert_array_equal(a, b)
    m.zero_grad()
    dx = m.backward([np.array([[1.0, 0.0]]), np.array([[0.5, 2.0]])])
    np.testing.assert_allclose(dx, np.array([[1.5, 2.0]]) @ m.layers[0].W.T, rtol=1e-15)
    np.testing.assert_allclose(m.grads.reshape(2, 2), X.T @ np.array([[1.5, 2.0]]),
                               rtol=1e-15)
