"""Trainer on graph models: several inputs and outputs, a loss per output with
loss_weights, metrics per output, validation split, shuffling and sample weights over all
inputs together."""
import numpy as np
import pytest

import fastmlp as fm


def two_heads(dtype="float64", seed=0):
    a, b = fm.Input(5, name="num"), fm.Input(3, name="cat")
    h = fm.Concatenate()([fm.Dense(5, 8, activation="tanh")(a),
                          fm.Dense(3, 8, activation="tanh")(b)])
    trunk = fm.Dense(16, 8, activation="relu")(h)
    out1, out2 = fm.Dense(8, 3)(trunk, name="cls"), fm.Dense(8, 1)(trunk, name="value")
    return fm.Model(inputs=[a, b], outputs=[out1, out2], dtype=dtype, seed=seed)


def tabular(rng, n=600):
    A, B = rng.normal(size=(n, 5)), rng.normal(size=(n, 3))
    y_class = (A[:, 0] + B[:, 1] > 0).astype(int) + (A[:, 2] > 1)
    y_value = (A[:, 1] * B[:, 0] + 0.5 * A[:, 3])[:, None]
    return A, B, y_class, y_value


def test_two_input_two_head_example_converges(rng):
    A, B, yc, yv = tabular(rng)
    model = two_heads()
    trainer = fm.Trainer(model, [fm.CrossEntropyLoss(), fm.MSELoss()], fm.Adam(1e-2),
                         loss_weights=[1.0, 0.5], metrics={"cls": "accuracy", "value": "r2"})
    hist = trainer.fit([A, B], [yc, yv], epochs=30, validation_split=0.1, verbose=0)
    logs = hist.history
    assert set(logs) >= {"loss", "cls_loss", "value_loss", "cls_accuracy", "value_r2",
                         "val_loss", "val_cls_accuracy", "val_value_r2"}
    assert logs["loss"][-1] < 0.5 * logs["loss"][0]
    assert logs["val_cls_accuracy"][-1] > 0.85 and logs["val_value_r2"][-1] > 0.7
    np.testing.assert_allclose(logs["loss"][-1],
                               logs["cls_loss"][-1] + 0.5 * logs["value_loss"][-1])
    pred = trainer.predict([A, B])
    assert [p.shape for p in pred] == [(600, 3), (600, 1)]
    proba = trainer.predict_proba([A, B])
    np.testing.assert_allclose(proba[0].sum(axis=1), 1.0)


def test_concatenated_inputs_train_as_the_sequential_on_stacked_columns(rng):
    """Shuffling and batches take the same rows of every input: a graph that concatenates
    its inputs trains exactly as a Sequential on the stacked columns."""
    A, B, yc, _ = tabular(rng, 200)
    a, b = fm.Input(5), fm.Input(3)
    h = fm.Dense(8, 6, activation="tanh")(fm.Concatenate()([a, b]))
    graph = fm.Model([a, b], fm.Dense(6, 3)(h), dtype="float64", seed=4)
    seq = fm.Sequential([fm.Dense(8, 6, activation="tanh"), fm.Dense(6, 3)],
                        dtype="float64", seed=4)
    np.testing.assert_array_equal(graph.params, seq.params)
    hg = fm.Trainer(graph, "categorical_crossentropy", fm.Adam(1e-2)).fit(
        [A, B], yc, epochs=3, batch_size=16, verbose=0, validation_split=0.2)
    hs = fm.Trainer(seq, "categorical_crossentropy", fm.Adam(1e-2)).fit(
        np.hstack([A, B]), yc, epochs=3, batch_size=16, verbose=0, validation_split=0.2)
    np.testing.assert_allclose(graph.params, seq.params, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hg.history["val_loss"], hs.history["val_loss"], rtol=1e-9)


def test_loss_weight_zero_leaves_a_head_untrained(rng):
    A, B, yc, yv = tabular(rng, 100)
    model = two_heads()
    value_head = model.layers[-1]
    before = value_head.W.copy()
    fm.Trainer(model, {"cls": "categorical_crossentropy", "value": "mse"}, "adam",
               loss_weights={"value": 0.0, "cls": 1.0}).fit(
        {"num": A, "cat": B}, {"cls": yc, "value": yv}, epochs=2, verbose=0)
    np.testing.assert_array_equal(value_head.W, before)
    assert not np.array_equal(model.layers[0].W, two_heads().layers[0].W)


def test_sample_weights_per_output_and_shared(rng):
    A, B, yc, yv = tabular(rng, 64)
    model = two_heads()
    trainer = fm.Trainer(model, [fm.CrossEntropyLoss(), fm.MSELoss()], "sgd")
    w = rng.uniform(0, 2, 64)
    logs = trainer.evaluate([A, B], [yc, yv], sample_weight={"value": w})
    outs = model.predict([A, B])
    want = fm.CrossEntropyLoss()(outs[0], yc) + fm.MSELoss()(outs[1], yv, sample_weight=w)
    np.testing.assert_allclose(logs["loss"], want, rtol=1e-12)
    shared = trainer.evaluate([A, B], [yc, yv], sample_weight=w)
    np.testing.assert_allclose(shared["cls_loss"],
                               fm.CrossEntropyLoss()(outs[0], yc, sample_weight=w))
    ones, plain = two_heads(), two_heads()
    for m, sw in ((ones, np.ones(64)), (plain, None)):
        fm.Trainer(m, ["categorical_crossentropy", "mse"], fm.Adam(1e-2)).fit(
            [A, B], [yc, yv], epochs=2, verbose=0, sample_weight=sw)
    np.testing.assert_array_equal(ones.params, plain.params)


def test_validation_data_and_split_are_evaluated_on_the_held_out_rows(rng):
    A, B, yc, yv = tabular(rng, 120)
    model = two_heads()
    trainer = fm.Trainer(model, ["categorical_crossentropy", "mse"], "adam")
    hist = trainer.fit([A, B], [yc, yv], epochs=1, validation_split=0.25, verbose=0)
    idx = trainer._val_idx
    assert idx.shape == (30,)
    logs = trainer.evaluate([A[idx], B[idx]], [yc[idx], yv[idx]])
    np.testing.assert_allclose(hist.history["val_loss"][-1], logs["loss"], rtol=1e-12)
    hist = trainer.fit([A, B], [yc, yv], epochs=1, verbose=0,
                       validation_data=([A[:10], B[:10]], [yc[:10], yv[:10]]))
    assert np.isfinite(hist.history["val_value_loss"][-1])


def test_single_output_graph_keeps_plain_log_names(rng):
    x = fm.Input(4)
    m = fm.Model(x, fm.Dense(8, 2)(fm.Dense(4, 8, activation="relu")(x)), seed=0)
    X = rng.normal(size=(50, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    hist = fm.Trainer(m, "categorical_crossentropy", "adam", metrics=["accuracy"]).fit(
        X, y, epochs=2, verbose=0, validation_split=0.2)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr",
                                 "epoch_time"}


def test_trainer_argument_errors(rng):
    model = two_heads()
    with pytest.raises(ValueError, match="one entry per output"):
        fm.Trainer(model, ["mse"], "adam")
    with pytest.raises(ValueError, match="unknown output names"):
        fm.Trainer(model, {"nope": "mse"}, "adam")
    with pytest.raises(ValueError, match="loss_weights"):
        fm.Trainer(model, "mse", "adam", loss_weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="full-batch"):
        fm.Trainer(model, "mse", fm.LBFGS())
    trainer = fm.Trainer(model, ["categorical_crossentropy", "mse"], "adam")
    A, B, yc, yv = tabular(rng, 20)
    with pytest.raises(ValueError, match="class_weight"):
        trainer.fit([A, B], [yc, yv], class_weight="balanced", verbose=0)
    with pytest.raises(ValueError, match=r"y\['value'\].*rows"):
        trainer.fit([A, B], [yc, yv[:5]], verbose=0)
    with pytest.raises(TypeError, match="list of 2 arrays"):
        trainer.fit(A, [yc, yv], verbose=0)


def test_non_finite_loss_stops_with_the_last_finite_weights(rng):
    A, B, yc, yv = tabular(rng, 40)
    model = two_heads()
    trainer = fm.Trainer(model, ["categorical_crossentropy", "mse"], fm.SGD(lr=1e12))
    with pytest.raises(FloatingPointError, match="non-finite"):
        trainer.fit([A, B], [yc, yv * 1e10], epochs=5, verbose=0)
    assert np.isfinite(model.params).all()


def test_readme_graph_section_runs(rng):
    import os
    readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "README.md")
    if not os.path.exists(readme):
        pytest.skip("README.md is not next to tests/ (an installed test tree)")
    text = open(readme, encoding="utf-8").read()
    code = text[text.index("## Graphs"):].split("```python")[1].split("```")[0]
    A, B, yc, yv = tabular(rng, 100)
    scope = {"fm": fm, "np": np, "A": A, "B": B, "y_class": yc, "y_value": yv}
    exec(compile(code.replace("epochs=30", "epochs=2").replace(
        "validation_split=0.1)", "validation_split=0.1, verbose=0)"), "README.md", "exec"),
         scope)
    assert scope["g"].forward([[[1.0]], [[-3.0]], [[4.0]]])[0, 0] == -8.0
    assert [d[0, 0] for d in (scope["dx"], scope["dy"], scope["dz"])] == [4.0, 4.0, -2.0]


def test_lr_find_on_a_graph_leaves_it_as_it_was(rng):
    A, B, yc, yv = tabular(rng, 200)
    model = two_heads()
    before = model.params.copy()
    trainer = fm.Trainer(model, ["categorical_crossentropy", "mse"], "adam")
    result = fm.lr_find(trainer, [A, B], [yc, yv], steps=30)
    assert len(result.lrs) >= 10 and np.isfinite(result.losses[0])
    np.testing.assert_array_equal(model.params, before)


def test_example_prints_both_heads():
    import os
    import subprocess
    import sys
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples", "graph_multitask.py")
    if not os.path.exists(path):
        pytest.skip("examples/ is not next to tests/")
    out = subprocess.run([sys.executable, path], capture_output=True, text=True, timeout=300,
                         check=True).stdout
    assert "cultivar head: accuracy" in out and "alcohol head:  R²" in out


def test_a_softmax_head_before_cross_entropy_warns():
    x = fm.Input(3)
    probs = fm.Softmax()(fm.Dense(3, 4)(x))
    value = fm.Add()([fm.Dense(3, 1)(x), fm.Dense(3, 1)(x)])      # a merge head: no check
    m = fm.Model(x, [probs, value])
    with pytest.warns(UserWarning, match="double softmax"):
        fm.Trainer(m, [fm.CrossEntropyLoss(), fm.MSELoss()], "adam")


def test_penalties_constraints_and_frozen_layers_apply_to_graphs(rng):
    A, B, yc, yv = tabular(rng, 80)
    a, b = fm.Input(5), fm.Input(3)
    frozen = fm.Dense(3, 4, activation="tanh")
    capped = fm.Dense(5, 4, activation="tanh", constraint=fm.MaxNorm(0.5),
                      regularizer=fm.L1Penalty(1e-2))
    h = fm.Concatenate()([capped(a), frozen(b)])
    m = fm.Model([a, b], [fm.Dense(8, 3)(h), fm.Dense(8, 1)(h)], dtype="float64", seed=0)
    frozen.trainable = False
    before = frozen.W.copy()
    trainer = fm.Trainer(m, ["categorical_crossentropy", "mse"], fm.Adam(1e-2),
                         regularizers=[fm.L2Penalty(1e-3)])
    hist = trainer.fit([A, B], [yc, yv], epochs=3, verbose=0)
    np.testing.assert_array_equal(frozen.W, before)
    assert np.linalg.norm(capped.W, axis=0).max() <= 0.5 + 1e-12
    logs = trainer.evaluate([A, B], [yc, yv])
    outs = m.predict([A, B])
    plain = fm.CrossEntropyLoss()(outs[0], yc) + fm.MSELoss()(outs[1], yv)
    assert logs["loss"] > plain                          # the penalties are in the loss
    assert np.isfinite(hist.history["loss"]).all()
