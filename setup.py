"""Build the fastmlp Cython core.

Build rules:
- Every module in ``MODULES`` is ``pyx/fastmlp/<name>.pyx`` and becomes the extension
  ``fastmlp.<name>``; its ``.pxd`` (if any) is what other modules cimport. A ``.pxi`` is a
  part of one module, textually included (the ops table of ``_plan``: ``_layer_ops.pxi``).
- Inline C kernels live in ``include/fastmlp/`` and are found through ``include_dirs``
  (with NumPy's headers: the hot entry points take arrays through its C API).
- BLAS comes from ``scipy.linalg.cython_blas`` (no link step of our own).
- OpenMP is used when the compiler accepts ``-fopenmp``; otherwise the build is serial
  (Cython guards ``prange`` with ``#ifdef _OPENMP``).
- ``-fopenmp-simd -fno-math-errno`` let GCC vectorize exp/tanh through glibc's libmvec
  (``#pragma omp declare simd`` in the headers). Never ``-ffast-math``: it would set
  flush-to-zero for the whole process.
- ``-fno-wrapv`` undoes the ``-fwrapv`` that Python's own CFLAGS pass to extensions: with
  it GCC keeps a loop counter it could otherwise fold away, runs out of registers in the
  GEMM micro-kernel and spills an accumulator (measured: 35 instead of 55 GFLOP/s). No
  code here relies on signed overflow wrapping.
- ``-ffp-contract=off``: no implicit a*b+c -> FMA contraction, so the elementwise kernels
  round exactly like their NumPy twins on every ISA (the AVX2 clones of the optimizer
  loops included); the GEMM asks for its FMAs explicitly.
- Generated ``.c`` files are build outputs and are never committed.
- The extensions compile in parallel, one job a CPU (``BuildExtParallel``): pip and
  ``python -m build`` call ``build_ext`` without ``-j``, and a serial build of the eleven
  modules took 8-12 minutes on a 2-vCPU machine (``_blas`` alone ~4), in parallel ~5.
  ``_blas`` comes first in ``MODULES`` so the longest compile starts first.
  ``FASTMLP_BUILD_JOBS`` overrides the count (``1``: serial).
"""
import glob
import os
import subprocess
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MODULES = ["_blas", "_activations", "_losses", "_plan", "_optim", "_train", "_norm", "_regularize",
           "_lamb", "_graph", "_graph_train"]

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "initializedcheck": False,
    "cdivision": True,
    "nonecheck": False,
    "embedsignature": True,
}


def _compiler_accepts(flag):
    """Try-compile an empty program with ``flag``; True when the C compiler takes it."""
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "t.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void){return omp_get_max_threads() < 0;}\n"
                    if "openmp" in flag else "int main(void){return 0;}\n")
        cmd = [cc, flag, src, "-o", os.path.join(tmp, "t")]
        try:
            return subprocess.run(cmd, capture_output=True).returncode == 0
        except OSError:
            return False


def _flags():
    compile_args = ["-O3", "-fno-wrapv", "-ffp-contract=off", "-fno-math-errno",
                    "-fno-trapping-math"]
    link_args = []
    if sys.platform != "win32" and _compiler_accepts("-fopenmp-simd"):
        compile_args.append("-fopenmp-simd")
    if os.environ.get("FASTMLP_NO_OPENMP") != "1" and _compiler_accepts("-fopenmp"):
        compile_args.append("-fopenmp")
        link_args.append("-fopenmp")
    extra = os.environ.get("FASTMLP_EXTRA_CFLAGS")  # e.g. sanitizer builds
    if extra:
        compile_args += extra.split()
        link_args += extra.split()
    return compile_args, link_args


def _build_jobs():
    """Parallel compile jobs: ``FASTMLP_BUILD_JOBS`` if set, else the usable CPUs."""
    jobs = os.environ.get("FASTMLP_BUILD_JOBS")
    if jobs:
        if not jobs.isdigit() or int(jobs) < 1:
            raise ValueError(f"FASTMLP_BUILD_JOBS must be a positive integer, got {jobs!r}")
        return int(jobs)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class BuildExtParallel(build_ext):
    """``build_ext`` that compiles the extensions in parallel unless ``-j`` was given."""

    def finalize_options(self):
        if self.parallel is None:
            self.parallel = _build_jobs()
        super().finalize_options()


def extensions():
    compile_args, link_args = _flags()
    # Every module is rebuilt when any C header or .pxi changes: setuptools compares only
    # the listed files with the built module, and Cython does not see headers included by
    # other headers (a changed pool.h was left out of _blas by an incremental build).
    headers = sorted(glob.glob("include/fastmlp/*.h") + glob.glob("pyx/fastmlp/*.pxi"))
    return [
        Extension(
            f"fastmlp.{name}",
            [f"pyx/fastmlp/{name}.pyx"],
            depends=headers,
            include_dirs=["include", numpy.get_include()],
            libraries=["m"],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for name in MODULES
    ]


setup(
    cmdclass={"build_ext": BuildExtParallel},
    ext_modules=cythonize(
        extensions(),
        include_path=["pyx"],
        compiler_directives=DIRECTIVES,
    ),
)
