"""The layer half of the ONNX exporter: a small graph builder and one emitter per layer kind.

An emitter takes ``(builder, layer, x)``, where ``x`` is the name of the layer's input
tensor, adds the nodes of the layer's inference computation and returns the name of its
output tensor. Nothing here knows about Sequential: a chain of layers is
:func:`emit_sequence`, and a graph model calls :func:`emit_layer` once per node with the
tensor name of that node's input, and adds its merge nodes with :meth:`GraphBuilder.op`
("Add", "Sub", "Mul", "Concat"; ``fastmlp.onnx_export``).

The formulas are those of the NumPy reference (``fastmlp.reference``) in evaluation mode,
composed from ONNX operators where ONNX has no single operator with the same meaning
(SiLU, GELU, Step) or where its single operator is less accurate than the reference
(Softplus, as ``max(x, 0) + log(1 + e^{-|x|})``; LayerNorm, whose variance is the mean of
the squared deviations rather than ``E[x²] − E[x]²``; BatchNorm, as
``(x − mean)·(1/sqrt(var + eps))·γ + β``: ONNX Runtime's float64 BatchNormalization
differs from that by up to 2e-11).
"""
import numpy as np

from fastmlp.layers import (ELU, GELU, Activation, ArcTan, BatchNorm, Chain, Dense, Dropout,
                            GaussianNoise, HardTanh, Identity, ImageAugment, LayerNorm,
                            LeakyReLU, Maxout, PReLU, ReLU, Residual, SiLU, Sigmoid, Softmax,
                            Softplus, Step, Tanh)

#: layers that are the identity at inference (training-time noise, augmentation): exported
#: as nothing
IDENTITY_AT_INFERENCE = (Dropout, GaussianNoise, ImageAugment)


class GraphBuilder:
    """Collects the nodes and initializers of one ONNX graph, with unique tensor names.

    Parameters
    ----------
    dtype : numpy dtype
        float32 or float64: the element type of every float tensor.
    opset : int
        The default-domain opset (decides how a few operators take their axes).
    """

    def __init__(self, dtype, opset):
        from onnx import helper, numpy_helper
        self._helper, self._numpy_helper = helper, numpy_helper
        self.dtype, self.opset = np.dtype(dtype), int(opset)
        self.nodes, self.initializers = [], []
        self._count = 0

    def _name(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value, hint="c", dtype=None):
        """Name of a new initializer holding ``value`` (in the graph's dtype by default)."""
        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self._name(hint)
        self.initializers.append(self._numpy_helper.from_array(np.ascontiguousarray(array),
                                                               name))
        return name

    def op(self, op_type, *inputs, hint=None, **attrs):
        """Add one node; returns the name of its (single) output."""
        out = self._name(hint or op_type.lower())
        self.nodes.append(self._helper.make_node(op_type, list(inputs), [out],
                                                 name=self._name("n_" + op_type), **attrs))
        return out

    def reduce(self, op_type, x, axis):
        """``op_type`` (ReduceMean, ReduceMax) over one axis, keeping it; the axes are an
        attribute before opset 18 and an input from 18 on."""
        if self.opset < 18:
            return self.op(op_type, x, axes=[axis], keepdims=1)
        return self.op(op_type, x, self.const([axis], "axes", np.int64), keepdims=1)


# --- activations -------------------------------------------------------------------------

def _poly(b, x, coeffs):
    """Σ_k coeffs[k]·x^k by Horner's rule."""
    out = b.const(coeffs[-1])
    for c in coeffs[-2::-1]:
        out = b.op("Add", b.op("Mul", out, x), b.const(c))
    return out


def _erf(b, x):
    """erf(x). ONNX Runtime has no float64 Erf: there it is the series
    erf(u) = 2/√π·e^{−u²}·Σ_n 2^n u^{2n+1} / (1·3·…·(2n+1)) on u = clip(x, −6, 6) (positive
    terms; 100 of them; measured against scipy: absolute error 4.4e-15 over [−8, 8])."""
    if b.dtype != np.float64:
        return b.op("Erf", x)
    u = b.op("Clip", x, b.const(-6.0), b.const(6.0))
    # in t = u²/36 ∈ [0, 1]: the coefficients stay above 1e-4 (in u², below 1e-150,
    # ONNX Runtime's graph optimizer lost them)
    coeffs = [1.0]
    for n in range(1, 100):
        coeffs.append(coeffs[-1] * 72.0 / (2 * n + 1))
    u2 = b.op("Mul", u, u)
    series = b.op("Mul", u, _poly(b, b.op("Mul", u2, b.const(1 / 36)), coeffs))
    scale = b.op("Mul", b.op("Exp", b.op("Neg", u2)), b.const(2.0 / np.sqrt(np.pi)))
    return b.op("Mul", scale, series, hint="erf")


def _atan(b, x):
    """arctan(x). ONNX Runtime has no float64 Atan: there it is the float32 Atan refined by
    two Newton steps on f(y) = sin y − x·cos y (quadratic: 1e-7 → 1e-14 → rounding)."""
    if b.dtype != np.float64:
        return b.op("Atan", x)
    from onnx import TensorProto
    y = b.op("Cast", b.op("Atan", b.op("Cast", x, to=TensorProto.FLOAT)),
             to=TensorProto.DOUBLE)
    for _ in range(2):
        sin, cos = b.op("Sin", y), b.op("Cos", y)
        f = b.op("Sub", sin, b.op("Mul", x, cos))
        df = b.op("Add", cos, b.op("Mul", x, sin))
        y = b.op("Sub", y, b.op("Div", f, df), hint="atan")
    return y


def _gelu(b, x, layer):
    half_x = b.op("Mul", x, b.const(0.5))
    if layer.approximate == "tanh":
        cube = b.op("Mul", b.op("Mul", x, x), x)
        inner = b.op("Add", x, b.op("Mul", cube, b.const(0.044715)))
        t = b.op("Tanh", b.op("Mul", inner, b.const(np.sqrt(2.0 / np.pi))))
    else:
        t = _erf(b, b.op("Mul", x, b.const(0.70710678118654752440)))
    return b.op("Mul", half_x, b.op("Add", t, b.const(1.0)), hint="gelu")


def _softplus(b, x, layer):
    e = b.op("Exp", b.op("Neg", b.op("Abs", x)))
    return b.op("Add", b.op("Relu", x), b.op("Log", b.op("Add", e, b.const(1.0))),
                hint="softplus")


def _elu(b, x, layer):
    # composed: Elu's alpha is a float32 attribute (and ONNX Runtime has no float64 Elu)
    em1 = b.op("Sub", b.op("Exp", b.op("Min", x, b.const(0.0))), b.const(1.0))
    return b.op("Where", b.op("Greater", x, b.const(0.0)), x,
                b.op("Mul", em1, b.const(layer.alpha)), hint="elu")


#: activation name -> emitter ``(builder, x, layer) -> output``
_ACTIVATIONS = {
    "identity": lambda b, x, a: x,
    "sigmoid": lambda b, x, a: b.op("Sigmoid", x),
    "tanh": lambda b, x, a: b.op("Tanh", x),
    "relu": lambda b, x, a: b.op("Relu", x),
    # PRelu, not LeakyRelu: its slope is a tensor of the graph's dtype, not a float32
    "leaky_relu": lambda b, x, a: b.op("PRelu", x, b.const([a.alpha], "slope")),
    "elu": _elu,
    "softplus": _softplus,
    "arctan": lambda b, x, a: _atan(b, x),
    "hard_tanh": lambda b, x, a: b.op("Clip", x, b.const(-1.0), b.const(1.0)),
    "step": lambda b, x, a: b.op("Cast", b.op("Greater", x, b.const(0.0)),
                                 to=b._helper.np_dtype_to_tensor_dtype(b.dtype)),
    "silu": lambda b, x, a: b.op("Mul", x, b.op("Sigmoid", x), hint="silu"),
    "gelu": _gelu,
}


def _activation(b, x, act):
    return _ACTIVATIONS[act.name](b, x, act)


# --- layers --------------------------------------------------------------------------------

def _affine(b, x, W, bias):
    """``x W + bias`` as one Gemm (MatMul without a bias)."""
    w = b.const(W, "W")
    if bias is None:
        return b.op("MatMul", x, w)
    return b.op("Gemm", x, w, b.const(bias, "b"))


def _dense(b, layer, x):
    z = _affine(b, x, layer.W, layer.b if layer.bias else None)
    return _activation(b, z, layer.activation)


def _maxout(b, layer, x):
    z = _affine(b, x, layer.W, layer.b if layer.bias else None)
    z3 = b.op("Reshape", z, b.const([-1, layer.n_out, layer.pieces], "shape", np.int64))
    m = b.reduce("ReduceMax", z3, 2)
    return b.op("Reshape", m, b.const([-1, layer.n_out], "shape", np.int64), hint="maxout")


def _gamma_beta(b, layer):
    n = layer.n_out
    gamma = layer.weight if layer.affine else np.ones(n)
    beta = layer.bias if layer.affine else np.zeros(n)
    return b.const(gamma, "gamma"), b.const(beta, "beta")


def _batchnorm(b, layer, x):
    # composed, as the reference: ONNX Runtime's float64 BatchNormalization is off by up to
    # 2e-11 (relative) from (x − mean)·(1/sqrt(var + eps))
    gamma, beta = _gamma_beta(b, layer)
    inv = 1.0 / np.sqrt(np.asarray(layer.running_var, np.float64) + layer.eps)
    xhat = b.op("Mul", b.op("Sub", x, b.const(layer.running_mean, "mean")),
                b.const(inv, "inv_std"))
    return b.op("Add", b.op("Mul", xhat, gamma), beta, hint="batchnorm")


def _layernorm(b, layer, x):
    gamma, beta = _gamma_beta(b, layer)
    d = b.op("Sub", x, b.reduce("ReduceMean", x, 1))
    var = b.reduce("ReduceMean", b.op("Mul", d, d), 1)
    inv = b.op("Reciprocal", b.op("Sqrt", b.op("Add", var, b.const(layer.eps))))
    xhat = b.op("Mul", d, inv)
    return b.op("Add", b.op("Mul", xhat, gamma), beta, hint="layernorm")


#: exact layer class -> emitter ``(builder, layer, x) -> output``. Exact classes: a subclass
#: may compute something else (a user's own forward), so it is refused, not guessed.
EMITTERS = {
    Dense: _dense,
    Maxout: _maxout,
    PReLU: lambda b, layer, x: b.op("PRelu", x, b.const(layer.weight, "slope")),
    Softmax: lambda b, layer, x: b.op("Softmax", x, axis=1),
    BatchNorm: _batchnorm,
    LayerNorm: _layernorm,
    **{cls: (lambda b, layer, x: _activation(b, x, layer))
       for cls in (Activation, Identity, Sigmoid, Tanh, ReLU, LeakyReLU, ELU, Softplus,
                   ArcTan, HardTanh, Step, SiLU, GELU)},
    **{cls: (lambda b, layer, x: x) for cls in IDENTITY_AT_INFERENCE},
}


#: container class -> the ONNX operator joining its input with its layers' output (None:
#: the layers' output itself)
CONTAINERS = {Chain: None, Residual: "Add"}


def emit_layer(b, layer, x, where="layer"):
    """Add ``layer``'s inference computation on tensor ``x``; returns its output's name.

    Raises
    ------
    ValueError
        For a layer with no ONNX form (a layer written in NumPy, a subclass of a library
        layer), naming it by ``where``.
    """
    if type(layer) in CONTAINERS:
        y = emit_sequence(b, layer.layers, x, f"{where}.layers")
        return y if CONTAINERS[type(layer)] is None else b.op(CONTAINERS[type(layer)], x, y)
    emitter = EMITTERS.get(type(layer))
    if emitter is None:
        raise ValueError(
            f"{where} ({layer!r}) cannot be exported to ONNX: it is not one of fastmlp's "
            f"layer kinds (a layer written in NumPy, or a subclass of one, has no ONNX form). "
            f"Exportable: {', '.join(sorted(c.__name__ for c in [*EMITTERS, *CONTAINERS]))}")
    return emitter(b, layer, x)


def emit_sequence(b, layers, x, where="layers"):
    """The layers applied in order to tensor ``x``; returns the last output's name."""
    for i, layer in enumerate(layers):
        x = emit_layer(b, layer, x, f"{where}[{i}]")
    return x
