"""The optimizer update alone over a 1,000,000-parameter float32 arena (10 updates per call):
SGD with momentum 0.9 (lr 0.01) and Adam (lr 1e-3).

- core: ``opt.step(model)`` with fastmlp's kernel, on a Dense(999, 1000) model (exactly 1M
  parameters in its arena);
- numpy: the same call on the NumPy backend (the reference twin, written for clarity);
- numpy-ufunc: the formula written the fast NumPy way, in place with ``out=`` ufuncs;
- torch: ``torch.optim.SGD`` / ``Adam`` on one 1M tensor (the default implementation).
A memory-bound pass: SGD-momentum reads 3 and writes 2 arrays of 4 MB, Adam 4 and 3.
"""
import pytest

from fastmlp import bench

CALLS = 10
KINDS = {"sgd": "SGD-momentum", "adam": "Adam"}


@pytest.mark.parametrize("impl", ["core", "numpy", "ufunc", "torch"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_optimizer(timed, request, kind, impl):
    if impl == "torch":
        request.getfixturevalue("torch")
    work = bench.optimizer_steps(kind, impl, n_calls=CALLS)
    name = {"ufunc": "numpy-ufunc"}.get(impl, impl)
    timed(f"optimizer {KINDS[kind]} 1M params ({CALLS} updates/call)", name, work, CALLS,
          "update")
