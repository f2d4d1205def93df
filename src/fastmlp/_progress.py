"""Progress display for fit: a tqdm bar per epoch (verbose=1) or a line per epoch (2)."""
import sys


def _fmt(logs):
    return "  ".join(f"{k}={v:.4g}" for k, v in logs.items()
                     if k not in ("lr", "epoch_time") and v is not None)


class _Bar:
    def __init__(self, bar):
        self.bar = bar

    def update_to(self, rows, logs):
        self.bar.update(rows - self.bar.n)
        self.bar.set_postfix_str(_fmt(logs), refresh=False)


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
        if bar is not None:
            bar.bar.set_postfix_str(_fmt(logs), refresh=True)
            bar.bar.close()
            self._bar = None
        elif self.verbose == 2:
            print(f"Epoch {epoch + 1}/{self.epochs}  {_fmt(logs)}  "
                  f"({logs.get('epoch_time', 0):.2f}s)", file=self.file, flush=True)

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
