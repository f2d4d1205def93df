"""The package's import structure: every module imports alone in a fresh interpreter, and
the module-level imports form no cycle (dependencies point one way, low-level to high-level).

The graph is read from the sources with ``ast`` (imports inside functions are lazy and left
out of the acyclicity test; a second test allows only the few listed lazy upward imports).
"""
import ast
import importlib.machinery
import os
import subprocess
import sys

import pytest

import fastmlp

ROOT = os.path.dirname(fastmlp.__file__)

#: lazy (function-level) imports of a module above the importer, each with its reason; any
#: other import that closes a cycle fails test_no_cycle_through_lazy_imports
LAZY_UPWARD = {
    ("fastmlp.regularizers", "fastmlp.layers.dense"): "TyingPenalty checks it ties Dense layers",
    ("fastmlp.sequential", "fastmlp.interop"): "Sequential.to/from_torch_state_dict delegate",
    ("fastmlp.interop", "fastmlp._graph_torch"): "to_torch hands a graph Model to its exporter",
    ("fastmlp.trainer", "fastmlp._graph_fit"): "Trainer(graph_model) is a GraphTrainer",
}


def _modules():
    """``{dotted name: path}`` of the package's Python modules, and the extension modules."""
    py, ext = {}, set()
    for folder, _, files in os.walk(ROOT):
        for f in files:
            rel = os.path.relpath(os.path.join(folder, f), os.path.dirname(ROOT))
            if f.endswith(".py"):
                parts = rel[:-3].split(os.sep)
                name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                py[name] = os.path.join(folder, f)
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                if f.endswith(suffix):
                    ext.add(rel[:-len(suffix)].replace(os.sep, "."))
    return py, ext


MODULES, EXTENSIONS = _modules()


def _import_nodes(body, lazy):
    """The import statements of ``body``: module-level only (also inside ``if``/``try``/
    classes), or with ``lazy`` also those inside functions."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not lazy:
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                yield from _import_nodes([child], lazy)


def _targets(node, name):
    """Dotted names of the modules ``node`` imports (``from p import m`` imports ``p.m``
    when that is a module, else ``p``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        package = name if MODULES[name].endswith("__init__.py") else name.rpartition(".")[0]
        parts = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(parts + ([base] if base else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES or
            f"{base}.{a.name}" in EXTENSIONS else base for a in node.names]


def import_graph(lazy=False):
    """``{module: set of package modules it imports}``."""
    graph = {}
    for name, path in MODULES.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        graph[name] = {t for node in _import_nodes(tree.body, lazy)
                       for t in _targets(node, name) if t in MODULES and t != name}
    return graph


def find_cycle(graph):
    """One cycle of ``graph`` as a list of modules (first == last), or None."""
    state = {}

    def visit(v, path):
        state[v] = "open"
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == "open":
                return path[path.index(w):] + [w]
            if w not in state:
                cycle = visit(w, path)
                if cycle:
                    return cycle
        state[v] = "done"
        path.pop()
        return None

    for v in sorted(graph):
        if v not in state:
            cycle = visit(v, [])
            if cycle:
                return cycle
    return None


def test_the_graph_sees_the_imports():
    graph = import_graph()
    assert "fastmlp._serial" in graph["fastmlp.io"]
    assert "fastmlp.layers.base" in graph["fastmlp.layers.dense"]
    assert "fastmlp.sequential" not in graph["fastmlp.io"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_module_level_imports_form_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_cycle_through_lazy_imports():
    """With the imports inside functions, only the listed lazy upward imports close a
    cycle (the serialization cycle of _config, io, callbacks, trainer, sequential and the
    layers is gone)."""
    graph = import_graph(lazy=True)
    for importer, imported in LAZY_UPWARD:
        assert imported in graph[importer], f"{importer} no longer imports {imported}: " \
                                            "remove it from LAZY_UPWARD"
        graph[importer].discard(imported)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle through a lazy import: " + " -> ".join(cycle)


def test_serial_depends_on_nothing_of_the_package():
    assert import_graph(lazy=True)["fastmlp._serial"] == set()


# Import one module in a fresh interpreter where the package is a bare namespace (its
# __init__, which imports everything, is not run): the module's own imports must suffice,
# whatever was imported before it.
ALONE = r"""
import sys, types
pkg = types.ModuleType("fastmlp")
pkg.__path__ = [sys.argv[1]]
sys.modules["fastmlp"] = pkg
import importlib
importlib.import_module(sys.argv[2])
"""


def _run(code, *args):
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != "fastmlp"))
def test_each_module_imports_alone(name):
    _run(ALONE, ROOT, name)


def test_each_module_imports_after_the_package():
    """``import fastmlp.<module>`` first runs the package's __init__; the modules it does
    not import (CLI, benchmarks, estimators, ...) are imported each in their own process."""
    loaded = _run("import sys, fastmlp; print(' '.join(sys.modules))").split()
    for name in sorted(set(MODULES) - set(loaded)):
        _run(f"import {name}")
