"""Fully connected layers: Dense (with a fused activation) and Maxout."""
from fastmlp import init as initializers
from fastmlp._plan import LayerKind
from fastmlp._validation import check_positive_int
from fastmlp.layers.activations import activation_from_name
from fastmlp.layers.base import Layer
from fastmlp.reference import layers as ref_layers


class Dense(Layer):
    """Fully connected layer: ``Z = X W + b``, ``A = activation(Z)``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths. ``W`` has shape (n_in, n_out), ``b`` shape (n_out,).
    activation : str, Activation or None
        Applied to Z inside the same kernel pass ("relu", "tanh", ... or None for identity).
    init : str
        Weight initializer (see :mod:`fastmlp.init`); "auto" is He for the ReLU family,
        Glorot otherwise. Biases start at 0.
    bias : bool
        Whether the layer has the bias ``b``.

    Notes
    -----
    Backward, from dA: ``dZ = dA ⊙ f'(Z)``, ``dW += Xᵀ dZ``, ``db += Σ_rows dZ``,
    ``dX = dZ Wᵀ``. ``W``, ``b``, ``dW``, ``db`` are views into the model's arena.
    """

    def __init__(self, n_in, n_out, activation=None, init="auto", bias=True):
        super().__init__()
        self.n_in = check_positive_int(n_in, "n_in")
        self.n_out = check_positive_int(n_out, "n_out")
        self.activation = activation_from_name(activation)
        self.init = initializers.check_init(init)
        self.bias = bool(bias)

    @property
    def activation_name(self):
        return self.activation.name

    def build(self, n_in):
        if n_in != self.n_in:
            raise ValueError(f"{self!r} expects {self.n_in} inputs but receives {n_in}")
        return self.n_out

    def param_specs(self):
        specs = [("W", (self.n_in, self.n_out), "weight")]
        if self.bias:
            specs.append(("b", (self.n_out,), "bias"))
        return specs

    def init_params(self, rng, next_activation=None):
        act = self.activation.name if self.activation.name != "identity" else next_activation
        scheme = initializers.resolve(self.init, act)
        initializers.initialize(scheme, self.W, self.n_in, self.n_out, rng)
        if self.bias:
            self.b[...] = 0

    def core_desc(self, offsets):
        return dict(kind=LayerKind.K_DENSE, act=self.activation.code,
                    alpha=self.activation.alpha, n_in=self.n_in, n_out=self.n_out,
                    w_off=offsets["W"], b_off=offsets.get("b", -1))

    def forward(self, X, training=False):
        Z, A = ref_layers.dense_forward(X, self.W, self.b if self.bias else None,
                                        self.activation.code, self.activation.alpha)
        self._cache = (X, Z, A)
        return A

    def backward(self, dY):
        X, Z, A = self._need_cache()
        dX, dW, db = ref_layers.dense_backward(X, self.W, Z, A, dY, self.activation.code,
                                               self.activation.alpha)
        self.dW += dW
        if self.bias:
            self.db += db
        return dX

    def __repr__(self):
        args = [str(self.n_in), str(self.n_out)]
        if self.activation.name != "identity":
            args.append(f"activation={self.activation.name!r}")
        if not self.bias:
            args.append("bias=False")
        return f"Dense({', '.join(args)})"


class Maxout(Layer):
    """Maxout units (Goodfellow et al., 2013): each output is the max of ``pieces`` affine
    functions of the input.

    ``Z = X W + b`` with W of shape (n_in, n_out·pieces), where unit j owns columns
    j·pieces … j·pieces + pieces − 1; ``A_j = max_k Z_{j,k}``. The gradient flows to the
    winning piece of each unit (the first one on ties).
    """

    def __init__(self, n_in, n_out, pieces, init="auto", bias=True):
        super().__init__()
        self.n_in = check_positive_int(n_in, "n_in")
        self.n_out = check_positive_int(n_out, "n_out")
        self.pieces = check_positive_int(pieces, "pieces")
        self.init = initializers.check_init(init)
        self.bias = bool(bias)

    def build(self, n_in):
        if n_in != self.n_in:
            raise ValueError(f"{self!r} expects {self.n_in} inputs but receives {n_in}")
        return self.n_out

    def param_specs(self):
        specs = [("W", (self.n_in, self.n_out * self.pieces), "weight")]
        if self.bias:
            specs.append(("b", (self.n_out * self.pieces,), "bias"))
        return specs

    def init_params(self, rng, next_activation=None):
        scheme = initializers.resolve(self.init, None)
        initializers.initialize(scheme, self.W, self.n_in, self.n_out, rng)
        if self.bias:
            self.b[...] = 0

    def core_desc(self, offsets):
        return dict(kind=LayerKind.K_MAXOUT, n_in=self.n_in, n_out=self.n_out,
                    pieces=self.pieces, w_off=offsets["W"], b_off=offsets.get("b", -1))

    def forward(self, X, training=False):
        Z, A = ref_layers.maxout_forward(X, self.W, self.b if self.bias else None, self.pieces)
        self._cache = (X, Z)
        return A

    def backward(self, dY):
        X, Z = self._need_cache()
        dX, dW, db = ref_layers.maxout_backward(X, self.W, Z, dY, self.pieces)
        self.dW += dW
        if self.bias:
            self.db += db
        return dX

    def __repr__(self):
        return f"Maxout({self.n_in}, {self.n_out}, pieces={self.pieces})"
