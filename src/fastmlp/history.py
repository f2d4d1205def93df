"""History: what fit measured, per epoch."""
from typing import Any, Dict, Optional

from fastmlp._typing import PathLike


class History:
    """Per-epoch record of a fit: ``history.history["loss"][i]`` is epoch i's training loss.

    Keys: ``loss`` (the running mean of the epoch's batch losses; with metrics, the
    evaluation-mode loss on the training rows at the epoch's end, as the metrics),
    ``val_loss`` and ``val_<metric>`` when there is validation data, ``<metric>`` for each
    metric on the training data, ``lr`` (learning rate used) and ``epoch_time`` (seconds).
    ``phase[i]`` is ``"train"``, or ``"refit"`` for the epochs of
    ``EarlyStopping(refit=...)``; ``diagnostics`` holds the records of a
    ``fm.Diagnostics`` callback (``None`` without one).
    """

    def __init__(self) -> None:
        self.history = {}
        self.epoch = []
        self.phase = []
        self.diagnostics = None      # the records of a fm.Diagnostics callback, if any

    def append(self, epoch: int, logs: Dict[str, float], phase: str = "train") -> None:
        self.epoch.append(epoch)
        self.phase.append(phase)
        for key, value in logs.items():
            self.history.setdefault(key, [None] * (len(self.epoch) - 1)).append(value)
        for key, values in self.history.items():
            if len(values) < len(self.epoch):
                values.append(None)

    def __getitem__(self, key):
        return self.history[key]

    def __len__(self):
        return len(self.epoch)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"

    def plot(self, path: Optional[PathLike] = None) -> Any:
        """Draw the training/validation curves of every metric, one panel each.

        Saves a PNG to ``path`` when given (without pyplot: no window, no change of the
        matplotlib backend); returns the matplotlib Figure. Needs matplotlib
        (``pip install "fastmlp[plot]"``).
        """
        from fastmlp._plotting import finish_axes, finish_figure, new_figure
        names = [k for k in self.history if not k.startswith("val_")
                 and k not in ("lr", "epoch_time")]
        names += [k[4:] for k in self.history if k.startswith("val_") and k[4:] not in names]
        if not names:
            raise ValueError("History is empty: nothing to plot")
        fig = new_figure((5 * len(names), 3.6), path, "History.plot")
        axes = fig.subplots(1, len(names), squeeze=False)
        epochs = [e + 1 for e in self.epoch]
        for ax, name in zip(axes[0], names):
            for key, label in ((name, "train"), (f"val_{name}", "validation")):
                if key in self.history:
                    pts = [(e, v) for e, v in zip(epochs, self.history[key]) if v is not None]
                    if pts:
                        ax.plot(*zip(*pts), label=label, marker="." if len(pts) < 30 else None)
            finish_axes(ax, name, "epoch")
        return finish_figure(fig, path)

    def plot_diagnostics(self, path: Optional[PathLike] = None) -> Any:
        """Draw the records of ``fm.Diagnostics`` (one panel per quantity, one line per
        layer, against the training step; norms on a log scale); saves a PNG to ``path``
        when given; returns the Figure."""
        from fastmlp._plotting import finish_axes, finish_figure, new_figure
        rec = self.diagnostics
        if not rec or not rec["step"].shape[0]:
            raise ValueError("no diagnostics recorded: fit with callbacks=[fm.Diagnostics()] "
                             "before plot_diagnostics")
        keys = [k for k in rec if k != "step"]
        fig = new_figure((4.2 * 3, 3.2 * 2), path, "History.plot_diagnostics")
        for ax, key in zip(fig.subplots(2, 3).ravel(), keys):
            for i in range(rec[key].shape[1]):
                ax.plot(rec["step"], rec[key][:, i], label=f"layer {i}")
            if key in ("grad_norm", "weight_norm", "update_ratio"):
                ax.set_yscale("log")
            finish_axes(ax, key, "step", legend=key == keys[0])
        return finish_figure(fig, path)
