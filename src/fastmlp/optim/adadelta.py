"""Adadelta (torch.optim.Adadelta)."""
from fastmlp._codes import OptFamily
from fastmlp._serial import register
from fastmlp.optim.base import KernelSpec, Optimizer, check_nonneg, check_unit


@register
class Adadelta(Optimizer):
    r"""Adadelta: step sizes from running averages of squared gradients and updates.

    .. math::

        d_t &= g_t + \lambda p_{t-1} \\
        v_t &= \rho v_{t-1} + (1 - \rho) d_t^2 \\
        \delta_t &= \sqrt{u_{t-1} + \epsilon} \,/\, \sqrt{v_t + \epsilon} \cdot d_t \\
        u_t &= \rho u_{t-1} + (1 - \rho) \delta_t^2 \\
        p_t &= p_{t-1} - \gamma \delta_t

    Parameters
    ----------
    lr : float
        Coefficient :math:`\gamma` that scales the update (>= 0).
    rho : float
        Decay :math:`\rho` of the running averages, in [0, 1].
    eps : float
        Term :math:`\epsilon` for numerical stability (>= 0).
    weight_decay : float
        L2 penalty :math:`\lambda` (>= 0).

    Examples
    --------
    >>> opt = Adadelta()
    >>> opt.step(model)   # doctest: +SKIP
    """

    kernel = KernelSpec(OptFamily.OPT_ADADELTA, "adadelta_step",
                        ("lr", "rho", "eps", "weight_decay"))
    _slots = ("square_avg", "acc_delta")

    def __init__(self, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0):
        super().__init__(lr, rho=rho, eps=eps, weight_decay=weight_decay)

    @classmethod
    def _validate(cls, rho, eps, weight_decay):
        return dict(rho=check_unit(rho, "rho"), eps=check_nonneg(eps, "epsilon"),
                    weight_decay=check_nonneg(weight_decay, "weight_decay"))

