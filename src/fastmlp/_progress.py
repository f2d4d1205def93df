"""Progress display for fit: a tqdm bar per epoch (verbose=1) or a line per epoch (2).

verbose=1 is Keras' layout in two parts: during the epoch the bar shows the running training
loss only (it fits any terminal); when the epoch ends, the bar stays as it is and every value
of the epoch's logs follows on the lines below it. verbose=2 prints one line per
epoch. In a terminal, the values wrap at its width (never inside a value); written to a file
or a pipe, a line is never cut.

What the values measure: ``loss`` is the running mean of the batch losses in training mode
(dropout on), unless the trainer has metrics: then ``loss`` and the metrics are both
measured at the end of the epoch in evaluation mode on the training rows, like ``val_*``
on the validation rows (see :meth:`fastmlp.Trainer.fit`).
"""
import os
import sys
import textwrap


def _items(logs):
    return [f"{k}={v:.4g}" for k, v in logs.items()
            if k not in ("lr", "epoch_time") and v is not None]


def _width(file):
    """The terminal's width, or None when ``file`` is not a terminal."""
    try:
        if not file.isatty():
            return None
        return os.get_terminal_size(file.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return None


def _wrap(first, items, width, indent="  "):
    """``first`` then the items two spaces apart, wrapped at ``width`` (no wrap: None)."""
    text = "  ".join([first] + items) if first else indent + "  ".join(items)
    if width is None:
        return text
    return "\n".join(textwrap.wrap(text, width=max(width - 1, 20), subsequent_indent=indent,
                                   break_long_words=False, break_on_hyphens=False))


class _Bar:
    def __init__(self, bar):
        self.bar = bar

    def update_to(self, rows, logs):
        self.bar.update(rows - self.bar.n)
        self.bar.set_postfix_str(_items({"loss": logs.get("loss")})[0], refresh=False)


class Progress:
    """Shows fit's progress: ``verbose`` 0 (nothing), 1 (bar) or 2 (one line per epoch)."""

    def __init__(self, verbose, epochs, rows_per_epoch, file=None):
        self.verbose, self.epochs, self.rows = verbose, epochs, rows_per_epoch
        self.file = file or sys.stderr
        self._bar = None

    def start_epoch(self, epoch):
        if self.verbose != 1:
            return None
        from tqdm.auto import tqdm
        self._bar = tqdm(total=self.rows, unit="rows", unit_scale=True, file=self.file,
                         desc=f"Epoch {epoch + 1}/{self.epochs}", leave=True,
                         dynamic_ncols=True, mininterval=0.1)
        return _Bar(self._bar)

    def end_epoch(self, bar, epoch, logs):
        width = _width(self.file)
        if bar is not None:
            bar.bar.close()                 # as it stands: with the last running loss
            self._bar = None
            print(_wrap("", _items(logs), width), file=self.file, flush=True)
        elif self.verbose == 2:
            items = _items(logs) + [f"({logs.get('epoch_time', 0):.2f}s)"]
            print(_wrap(f"Epoch {epoch + 1}/{self.epochs}", items, width), file=self.file,
                  flush=True)

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def chunk_hook(bar, batch_cbs):
    """The ``on_chunk`` of an epoch: moves the progress bar (or None) and calls the
    callbacks' ``on_batch_end``; None when neither needs it."""
    if bar is None and not batch_cbs:
        return None

    def hook(steps, rows, loss_sum):
        logs = {"loss": loss_sum / max(rows, 1)}
        if bar is not None:
            bar.update_to(rows, logs)
        for cb in batch_cbs:
            cb.on_batch_end(steps - 1, logs)
    return hook
