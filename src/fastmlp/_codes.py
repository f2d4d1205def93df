"""The integer codes shared by the Python layer and the compiled core, defined once here.

Pure Python (no compiled import), so ``fastmlp.reference`` and the layers' descriptors read
their codes without the build. The core declares the same enums in its ``.pxd`` files and
headers (``_activations.pxd`` / ``activations.h``, ``_plan.pxd``, ``_train.pxd``,
``_losses.pxd``, ``_regularize.pxd``); :func:`fastmlp._codes_check.check_compiled_codes`
compares the two at ``import fastmlp`` and refuses a build whose codes differ.

Adding a member here is half of adding a concept: ``tests/test_invariants.py`` then asks for
its Python class, its kernel and its reference twin.
"""
from enum import IntEnum, IntFlag

__all__ = ["Act", "ACT_NAMES", "LayerKind", "LayerFlag", "OptFamily", "LossCode",
           "Reduction", "ConstraintKind", "SENTINELS"]


class Act(IntEnum):
    """Activation codes of the elementwise kernels (``fm_act`` in ``activations.h``)."""
    FM_IDENTITY = 0
    FM_SIGMOID = 1
    FM_TANH = 2
    FM_RELU = 3
    FM_LEAKY_RELU = 4
    FM_ELU = 5
    FM_SOFTPLUS = 6
    FM_ARCTAN = 7
    FM_HARD_TANH = 8
    FM_STEP = 9
    FM_SILU = 10
    FM_GELU = 11


#: activation name (``Activation.name``, ``Dense(activation=...)``) -> code
ACT_NAMES = {
    "identity": Act.FM_IDENTITY,
    "sigmoid": Act.FM_SIGMOID,
    "tanh": Act.FM_TANH,
    "relu": Act.FM_RELU,
    "leaky_relu": Act.FM_LEAKY_RELU,
    "elu": Act.FM_ELU,
    "softplus": Act.FM_SOFTPLUS,
    "arctan": Act.FM_ARCTAN,
    "hard_tanh": Act.FM_HARD_TANH,
    "step": Act.FM_STEP,
    "silu": Act.FM_SILU,
    "gelu": Act.FM_GELU,
}


class LayerKind(IntEnum):
    """Kinds of plan node (``_plan.pxd``); see the descriptor contract there."""
    K_DENSE = 0
    K_ACT = 1
    K_PRELU = 2
    K_SOFTMAX = 3
    K_MAXOUT = 4
    K_DROPOUT = 5
    K_NOISE = 6
    K_BATCHNORM = 7
    K_LAYERNORM = 8
    K_RES_BEGIN = 9
    K_RES_END = 10
    K_AUGMENT = 11


class LayerFlag(IntFlag):
    """Bits of a layer descriptor's ``flags`` (``_plan.pxd``)."""
    F_TRANS_W = 1
    F_AFFINE = 2
    F_ACCUM_W = 4


class OptFamily(IntEnum):
    """Optimizer kernel families run by the fused loop (``_train.pxd``)."""
    OPT_SGD = 0
    OPT_ADAGRAD = 1
    OPT_RMSPROP = 2
    OPT_ADADELTA = 3
    OPT_ADAM = 4
    OPT_LAMB = 5


class LossCode(IntEnum):
    """Loss kernels (``_losses.pxd``)."""
    LOSS_MSE = 0
    LOSS_L1 = 1
    LOSS_HUBER = 2
    LOSS_BCE_WITH_LOGITS = 3
    LOSS_CROSS_ENTROPY = 4
    LOSS_MULTI_MARGIN = 5


class Reduction(IntEnum):
    """How a loss kernel scales a batch (``_losses.pxd``)."""
    REDUCTION_MEAN = 0
    REDUCTION_SUM = 1


class ConstraintKind(IntEnum):
    """Projections applied after the optimizer update (``_regularize.pxd``)."""
    C_MAXNORM = 0
    C_NONNEG = 1
    C_SOFT_THRESHOLD = 2


#: compiled enum members that count the codes of their enum rather than name one
SENTINELS = frozenset({"FM_N_ACT", "LOSS_N_CODES", "K_N_KINDS"})
