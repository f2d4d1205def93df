"""Peak memory of one fit on 60,000 x 784 float32 (MNIST-sized), next to the data set's size.

    python benchmarks/memory_fit.py [--backend core|numpy|torch] [--epochs 1] [--batch 128]
                                    [--rows 60000] [--json]

Run it as its own process (the figure is the process's peak). It builds the model
(784-512-256-10 ReLU, softmax cross-entropy, Adam) and the data (generated in place as
float32, so making them leaves no peak behind), then reads the resident set size, resets the
peak (``/proc/self/clear_refs``), fits, and reads the peak again (``VmHWM``):

    growth = peak RSS during fit - RSS before fit

reported in MB and as a fraction of the data (X and y). ``tracemalloc`` also gives the peak
of the allocations NumPy and Python make during the fit (the copies and temporaries a fit
makes are among them; BLAS and C buffers are not). Linux only (``/proc``).
"""
import argparse
import json
import sys
import time
import tracemalloc

import numpy as np

MB = 1 << 20


def status_kb():
    """VmRSS and VmHWM of this process, in kB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def reset_peak():
    """Set VmHWM back to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def make_fit(backend, X, y, epochs, batch):
    """A function running the fit (the model and optimizer are built here, before it)."""
    from fastmlp import bench
    if backend == "torch":
        torch = bench.import_torch()
        if torch is None:
            sys.exit("PyTorch is not installed")
        net = bench.torch_model(torch, "mnist")
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

        def fit():
            for _ in range(epochs):
                perm = torch.randperm(X.shape[0])
                for s in range(0, X.shape[0], batch):
                    idx = perm[s:s + batch]
                    opt.zero_grad()
                    loss_fn(net(Xt[idx]), yt[idx]).backward()
                    opt.step()
        return fit
    tr = bench.trainer("mnist", backend)
    return lambda: tr.fit(X, y, epochs=epochs, batch_size=batch, verbose=0)


def measure(backend="core", rows=60_000, epochs=1, batch=128):
    """Run one fit in this process; returns the figures as a dict (sizes in MB)."""
    from fastmlp import bench
    X, y = bench.data("mnist", rows)
    fit = make_fit(backend, X, y, epochs, batch)
    data_mb = (X.nbytes + y.nbytes) / MB
    before = status_kb()["VmRSS"]
    exact = reset_peak()
    tracemalloc.start()
    t0 = time.perf_counter()
    fit()
    seconds = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = status_kb()["VmHWM"]
    growth = (peak - before) / 1024
    return {"backend": backend, "rows": rows, "epochs": epochs, "batch": batch,
            "data_mb": round(data_mb, 1), "rss_before_mb": round(before / 1024, 1),
            "peak_rss_mb": round(peak / 1024, 1), "growth_mb": round(growth, 1),
            "growth_over_data": round(growth / data_mb, 3),
            "tracemalloc_peak_mb": round(traced_peak / MB, 1),
            "peak_reset": exact, "fit_seconds": round(seconds, 2)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="core", choices=["core", "numpy", "torch"])
    p.add_argument("--rows", type=int, default=60_000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = p.parse_args(argv)
    r = measure(args.backend, args.rows, args.epochs, args.batch)
    if args.json:
        print(json.dumps(r))
        return 0
    note = "" if r["peak_reset"] else " (peak could not be reset: includes setup)"
    print(f"fit {r['backend']}: {r['rows']:,} x 784 float32, {r['epochs']} epoch(s) at batch "
          f"{r['batch']}, {r['fit_seconds']} s\n"
          f"  data (X + y)            {r['data_mb']:8.1f} MB\n"
          f"  RSS before fit          {r['rss_before_mb']:8.1f} MB\n"
          f"  peak RSS during fit     {r['peak_rss_mb']:8.1f} MB{note}\n"
          f"  growth                  {r['growth_mb']:8.1f} MB = "
          f"{100 * r['growth_over_data']:.1f} % of the data\n"
          f"  tracemalloc peak        {r['tracemalloc_peak_mb']:8.1f} MB (NumPy/Python "
          f"allocations during fit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
