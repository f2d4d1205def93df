"""Command line: ``python -m fastmlp demo`` (the main job) and ``python -m fastmlp bench``."""
import argparse
import os
import sys


def _prog():
    """How the user called us: the console script ``fastmlp`` or ``python -m fastmlp``."""
    name = os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else "")
    return "fastmlp" if os.path.splitext(name)[0] == "fastmlp" else "python -m fastmlp"


def main(argv=None):
    from fastmlp import __version__
    parser = argparse.ArgumentParser(prog=_prog(),
                                     description="fastmlp: fast CPU training of MLPs")
    parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train an MLP on scikit-learn's handwritten digits")
    demo.add_argument("--epochs", type=int, default=100)
    demo.add_argument("--batch-size", type=int, default=32)
    demo.add_argument("--plot", default="digits_curves.png",
                      help="where to save the learning curves (PNG; needs matplotlib)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    demo.add_argument("--distributed", action="store_true",
                      help="data parallel over MPI: run as 'mpiexec -n 2 python -m fastmlp "
                           "demo --distributed' (needs pip install 'fastmlp[mpi]')")
    bench = sub.add_parser("bench", help="time fastmlp against its NumPy reference, PyTorch, "
                                         "JAX and ONNX Runtime (those installed: "
                                         "pip install '.[bench]'); prints one table")
    bench.add_argument("--quick", action="store_true",
                       help="fewer repetitions and smaller epochs (about 4 minutes)")
    bench.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    bench.add_argument("--only", default=None, metavar="TEXT",
                       help="run only the cases whose name contains TEXT (e.g. 'mnist')")
    bench.add_argument("--threads", type=int, default=None, metavar="N",
                       help="limit fastmlp, BLAS and PyTorch to N threads (default: as "
                            "configured, PyTorch 2)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from fastmlp.demo import run
        return run(epochs=args.epochs, batch_size=args.batch_size, plot=args.plot,
                   seed=args.seed, verbose=args.verbose, distributed=args.distributed)
    if args.command == "bench":
        from fastmlp.bench import run
        run(quick=args.quick, torch=not args.no_torch, only=args.only, threads=args.threads)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
