"""Check that the compiled core was built with the codes of :mod:`fastmlp._codes`.

The ``.pxd`` files and C headers declare the same enums as ``fastmlp._codes``; a core built
from other sources (a half-added concept, a stale build) would silently run the wrong kernel,
so ``import fastmlp`` compares them once (a few dozen integers) and refuses to go on.
"""
from fastmlp import _activations, _codes, _losses, _plan, _regularize, _train

#: (compiled enum, its Python twin)
PAIRS = ((_activations.fm_act, _codes.Act), (_plan.LayerKind, _codes.LayerKind),
         (_plan.LayerFlag, _codes.LayerFlag), (_train.OptFamily, _codes.OptFamily),
         (_losses.LossCode, _codes.LossCode), (_losses.Reduction, _codes.Reduction),
         (_regularize.ConstraintKind, _codes.ConstraintKind))


def _members(enum):
    """``{name: int value}`` of an enum class (compiled or Python), sentinels apart."""
    names = [name for name in dir(enum) if name.isupper() and not name.startswith("_")]
    return {name: int(getattr(enum, name)) for name in names}


def compare(compiled, python):
    """The differences between a compiled enum and its Python twin, as readable lines."""
    have, want = _members(compiled), _members(python)
    problems = []
    for name in sorted(set(have) | set(want)):
        if name in _codes.SENTINELS:
            if have.get(name) != len(python):
                problems.append(f"{name} is {have.get(name)} in the core, "
                                f"{len(python)} members in fastmlp._codes")
        elif have.get(name) != want.get(name):
            problems.append(f"{python.__name__}.{name}: core {have.get(name)}, "
                            f"fastmlp._codes {want.get(name)}")
    return problems


def check_compiled_codes(pairs=PAIRS):
    """Raise ImportError when the core's enums differ from ``fastmlp._codes``."""
    problems = [line for compiled, python in pairs for line in compare(compiled, python)]
    if problems:
        raise ImportError("the compiled core does not match fastmlp._codes (rebuild it, or "
                          "add the code on both sides): " + "; ".join(problems))
