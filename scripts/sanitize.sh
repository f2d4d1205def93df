#!/usr/bin/env bash
# Build the fastmlp core with AddressSanitizer + UndefinedBehaviorSanitizer and run the
# tests against it, without touching the normal editable build of the working tree.
#
#   scripts/sanitize.sh                    # the default subset of test files (below)
#   scripts/sanitize.sh tests/test_io.py   # or any pytest arguments, relative to the repo
#
# How it works:
#   1. copy the tree (without build outputs) to $ASAN_TREE (default /tmp/fastmlp-asan);
#   2. create a venv there with --system-site-packages (numpy, scipy, Cython, pytest and
#      hypothesis come from the system) and install that copy editable into it with
#      FASTMLP_EXTRA_CFLAGS="-fsanitize=address,undefined ..." (setup.py adds them to the
#      compile and link flags of every extension);
#   3. run pytest with libasan preloaded (the interpreter itself is not instrumented, and
#      ASan must be the first DSO loaded). Leak detection is off: CPython leaks by design at
#      exit. UBSan halts on the first error and prints a stack trace.
# Every sanitizer report goes to $ASAN_TREE/logs/*.<pid> (log_path), so reports from worker
# processes are not lost; the script counts them and exits non-zero if there is any.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TREE=${ASAN_TREE:-/tmp/fastmlp-asan}
VENV=$TREE/.venv
LOGS=$TREE/logs
CFLAGS_SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g -O1"

mkdir -p "$TREE"
find "$TREE" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
tar -C "$REPO" -c --exclude=.git --exclude='*.so' --exclude='pyx/fastmlp/*.c' \
    --exclude=build --exclude='*.egg-info' --exclude=.venv --exclude=logs \
    --exclude=__pycache__ --exclude=.hypothesis . | tar -C "$TREE" -x
[ -x "$VENV/bin/python" ] || python -m venv --system-site-packages "$VENV"

start=$(date +%s)
( cd "$TREE" && FASTMLP_EXTRA_CFLAGS="$CFLAGS_SAN" \
    "$VENV/bin/pip" install --no-build-isolation --no-deps -q -e . )
built=$(date +%s)

LIBASAN=$(gcc -print-file-name=libasan.so)
LIBUBSAN=$(gcc -print-file-name=libubsan.so)
rm -rf "$LOGS" && mkdir -p "$LOGS"
if [ $# -eq 0 ]; then
  set -- tests/test_blas.py tests/test_optim.py tests/test_layers.py \
         tests/test_sequential.py tests/test_losses.py tests/test_trainer.py \
         tests/test_threads.py tests/test_layers_extra.py tests/test_io.py \
         tests/test_properties.py tests/test_graph.py tests/test_graph_exec.py \
         tests/test_epilogue.py
fi

# the installed module must be the instrumented one
( cd /tmp && LD_PRELOAD="$LIBASAN $LIBUBSAN" ASAN_OPTIONS=detect_leaks=0 "$VENV/bin/python" -c "import fastmlp, sys; \
  assert fastmlp.__file__.startswith('$TREE'), fastmlp.__file__" ) \
  || { echo "fastmlp is not imported from $TREE" >&2; exit 2; }

set +e
( cd "$TREE" && \
  LD_PRELOAD="$LIBASAN $LIBUBSAN" \
  ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$LOGS/asan:allocator_may_return_null=1" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$LOGS/ubsan" \
  PYTHONMALLOC=malloc \
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider -x "$@" )
status=$?
set -e
end=$(date +%s)

reports=$(cat "$LOGS"/* 2>/dev/null | grep -cE "ERROR: AddressSanitizer|runtime error:" || true)
echo "sanitize.sh: build $((built - start)) s, tests $((end - built)) s, pytest exit $status," \
     "sanitizer reports: $reports (logs in $LOGS)"
if [ "$reports" -ne 0 ]; then
  cat "$LOGS"/* >&2
  exit 1
fi
exit $status
