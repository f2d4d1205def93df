"""Stochastic gradient descent with momentum (torch.optim.SGD)."""
from fastmlp._codes import OptFamily
from fastmlp._serial import register
from fastmlp.optim.base import KernelSpec, Optimizer, as_real, check_flag, check_nonneg


@register
class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    With gradient :math:`g_t`, parameters :math:`p` and momentum buffer :math:`b`:

    .. math::

        d_t &= g_t + \lambda p_{t-1} \\
        b_t &= d_t \ (t = 1), \qquad b_t = \mu b_{t-1} + (1 - \tau) d_t \ (t > 1) \\
        p_t &= p_{t-1} - \gamma \, (d_t + \mu b_t) \ \text{(Nesterov)}, \quad
               p_{t-1} - \gamma b_t \ \text{(otherwise)}

    and :math:`p_t = p_{t-1} - \gamma d_t` when :math:`\mu = 0` (no buffer is allocated).

    Parameters
    ----------
    lr : float
        Learning rate :math:`\gamma` (>= 0).
    momentum : float
        Momentum factor :math:`\mu` (>= 0).
    dampening : float
        Dampening :math:`\tau` of the momentum.
    weight_decay : float
        L2 penalty :math:`\lambda` (>= 0), added to the gradient.
    nesterov : bool
        Nesterov momentum; requires ``momentum > 0`` and ``dampening == 0``.

    Examples
    --------
    >>> opt = SGD(lr=0.1, momentum=0.9, nesterov=True)
    >>> opt.step(model)   # doctest: +SKIP
    """

    kernel = KernelSpec(OptFamily.OPT_SGD, "sgd_step",
                        ("lr", "momentum", "dampening", "weight_decay", "nesterov"))
    _slots = ("momentum_buffer",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov)

    @classmethod
    def _validate(cls, momentum, dampening, weight_decay, nesterov):
        momentum = check_nonneg(momentum, "momentum")
        dampening = as_real(dampening, "dampening")
        if dampening != dampening or abs(dampening) == float("inf"):
            raise ValueError(f"Invalid dampening value: {dampening}")
        weight_decay = check_nonneg(weight_decay, "weight_decay")
        nesterov = check_flag(nesterov, "nesterov")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        return dict(momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                    nesterov=nesterov)

    def _active(self, slot):      # the dict directly, as Optimizer._kwargs
        return self._hyper["momentum"] != 0

