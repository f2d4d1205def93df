"""RMSprop (torch.optim.RMSprop)."""
from fastmlp._codes import OptFamily
from fastmlp._serial import register
from fastmlp.optim.base import KernelSpec, Optimizer, check_flag, check_nonneg


@register
class RMSprop(Optimizer):
    r"""RMSprop: divide the gradient by a running root mean square.

    .. math::

        d_t &= g_t + \lambda p_{t-1} \\
        v_t &= \alpha v_{t-1} + (1 - \alpha) d_t^2 \\
        m_t &= \alpha m_{t-1} + (1 - \alpha) d_t, \quad
               \hat v_t = v_t - m_t^2 \ \text{(centered; otherwise } \hat v_t = v_t) \\
        a_t &= \sqrt{\hat v_t} + \epsilon \\
        b_t &= \mu b_{t-1} + d_t / a_t, \quad p_t = p_{t-1} - \gamma b_t
               \ \text{(momentum } \mu > 0) \\
        p_t &= p_{t-1} - \gamma d_t / a_t \ \text{(otherwise)}

    Parameters
    ----------
    lr : float
        Learning rate :math:`\gamma` (>= 0).
    alpha : float
        Smoothing constant :math:`\alpha` (>= 0).
    eps : float
        Term :math:`\epsilon` added to the denominator (>= 0).
    weight_decay : float
        L2 penalty :math:`\lambda` (>= 0).
    momentum : float
        Momentum factor :math:`\mu` (>= 0).
    centered : bool
        Normalize by an estimate of the variance instead of the second moment.

    Examples
    --------
    >>> opt = RMSprop(lr=0.01, centered=True, momentum=0.9)
    >>> opt.step(model)   # doctest: +SKIP
    """

    kernel = KernelSpec(OptFamily.OPT_RMSPROP, "rmsprop_step",
                        ("lr", "alpha", "eps", "weight_decay", "momentum"))
    _slots = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        super().__init__(lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered)

    @classmethod
    def _validate(cls, alpha, eps, weight_decay, momentum, centered):
        return dict(alpha=check_nonneg(alpha, "alpha"), eps=check_nonneg(eps, "epsilon"),
                    weight_decay=check_nonneg(weight_decay, "weight_decay"),
                    momentum=check_nonneg(momentum, "momentum"),
                    centered=check_flag(centered, "centered"))

    def _active(self, slot):      # the dict directly, as Optimizer._kwargs
        if slot == "grad_avg":
            return self._hyper["centered"]
        if slot == "momentum_buffer":
            return self._hyper["momentum"] > 0
        return True

