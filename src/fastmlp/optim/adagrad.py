"""Adagrad (torch.optim.Adagrad)."""
from fastmlp._codes import OptFamily
from fastmlp._serial import register
from fastmlp.optim.base import KernelSpec, Optimizer, check_nonneg


@register
class Adagrad(Optimizer):
    r"""Adagrad: per-coordinate learning rates from the sum of squared gradients.

    .. math::

        \tilde\gamma_t &= \gamma / (1 + (t - 1)\,\eta) \\
        d_t &= g_t + \lambda p_{t-1} \\
        s_t &= s_{t-1} + d_t^2, \qquad s_0 = \text{initial\_accumulator\_value} \\
        p_t &= p_{t-1} - \tilde\gamma_t \, d_t / (\sqrt{s_t} + \epsilon)

    Parameters
    ----------
    lr : float
        Learning rate :math:`\gamma` (>= 0).
    lr_decay : float
        Learning-rate decay :math:`\eta` (>= 0).
    weight_decay : float
        L2 penalty :math:`\lambda` (>= 0).
    initial_accumulator_value : float
        Initial value of the sum of squares (>= 0).
    eps : float
        Term :math:`\epsilon` added to the denominator (>= 0).

    Examples
    --------
    >>> opt = Adagrad(lr=0.1)
    >>> opt.step(model)   # doctest: +SKIP
    """

    kernel = KernelSpec(OptFamily.OPT_ADAGRAD, "adagrad_step",
                        ("lr", "lr_decay", "weight_decay", "eps"))
    _slots = ("state_sum",)

    def __init__(self, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        super().__init__(lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps)

    @classmethod
    def _validate(cls, lr_decay, weight_decay, initial_accumulator_value, eps):
        return dict(lr_decay=check_nonneg(lr_decay, "lr_decay"),
                    weight_decay=check_nonneg(weight_decay, "weight_decay"),
                    initial_accumulator_value=check_nonneg(initial_accumulator_value,
                                                           "initial_accumulator_value"),
                    eps=check_nonneg(eps, "epsilon"))

    @property
    def _initial(self):
        return {"state_sum": self.initial_accumulator_value}

