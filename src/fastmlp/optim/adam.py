"""Adam and AdamW (torch.optim.Adam, torch.optim.AdamW): one kernel, L2 or decoupled decay."""
from fastmlp._codes import OptFamily
from fastmlp._serial import register
from fastmlp.optim.base import KernelSpec, Optimizer, as_real, check_flag, check_nonneg


@register
class Adam(Optimizer):
    r"""Adam with L2 weight decay added to the gradient (torch.optim.Adam).

    .. math::

        d_t &= g_t + \lambda p_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) d_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2) d_t^2, \qquad
               \bar v_t = \max(\bar v_{t-1}, v_t) \text{ replaces } v_t
               \text{ with amsgrad} \\
        p_t &= p_{t-1} - \frac{\gamma}{1 - \beta_1^t} \,
               \frac{m_t}{\sqrt{v_t} \cdot c_t + \epsilon}, \qquad
               c_t = 1 / \sqrt{1 - \beta_2^t}

    :math:`c_t` is rounded to the parameters' type once per step (torch divides
    :math:`\sqrt{v_t}` by :math:`\sqrt{1 - \beta_2^t}`; the two denominators differ by at
    most one ulp, and the multiplication saves a division per parameter).

    Parameters
    ----------
    lr : float
        Learning rate :math:`\gamma` (>= 0).
    betas : (float, float)
        Decays :math:`(\beta_1, \beta_2)` of the first and second moments, each in [0, 1).
    eps : float
        Term :math:`\epsilon` added to the denominator (>= 0).
    weight_decay : float
        Weight decay :math:`\lambda` (>= 0): L2 for Adam, decoupled for AdamW.
    amsgrad : bool
        Use the running maximum of the second moment (AMSGrad).

    Examples
    --------
    >>> opt = Adam(lr=1e-3, betas=(0.9, 0.999))
    >>> opt.step(model)   # doctest: +SKIP
    """

    kernel = KernelSpec(OptFamily.OPT_ADAM, "adam_step",
                        ("lr", "beta1", "beta2", "eps", "weight_decay", "decoupled"))
    _slots = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False

    def __init__(self, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

    @classmethod
    def _validate(cls, betas, eps, weight_decay, amsgrad):
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair of floats, got {betas!r}") from None
        betas = (as_real(b1, "betas[0]"), as_real(b2, "betas[1]"))
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {b}")
        return dict(betas=betas, eps=check_nonneg(eps, "epsilon"),
                    weight_decay=check_nonneg(weight_decay, "weight_decay"),
                    amsgrad=check_flag(amsgrad, "amsgrad"))

    # _active and _kwargs run at every fused run (each epoch, each progress chunk): they
    # read the hyperparameters' dict directly, not through Optimizer.__getattr__ (~1 us
    # an attribute on a Zen 1 core, after a failed normal lookup)
    def _active(self, slot):
        return slot != "max_exp_avg_sq" or self._hyper["amsgrad"]

    def _kwargs(self):
        h = self._hyper
        beta1, beta2 = h["betas"]
        return dict(lr=self._lr, beta1=beta1, beta2=beta2, eps=h["eps"],
                    weight_decay=h["weight_decay"], decoupled=self._decoupled)


@register
class AdamW(Adam):
    r"""Adam with decoupled weight decay (torch.optim.AdamW).

    As :class:`Adam` with :math:`d_t = g_t`, and the parameters first decayed:
    :math:`p \leftarrow p \, (1 - \gamma \lambda)`, before the Adam update.

    Parameters
    ----------
    lr, betas, eps, amsgrad
        As for :class:`Adam`.
    weight_decay : float
        Decoupled weight decay :math:`\lambda` (>= 0; default 0.01).

    Examples
    --------
    >>> opt = AdamW(lr=1e-3, weight_decay=0.01)
    >>> opt.step(model)   # doctest: +SKIP
    """

    _decoupled = True

    def __init__(self, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, amsgrad: bool = False):
        super().__init__(lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
