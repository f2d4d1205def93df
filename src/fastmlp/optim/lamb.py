"""LAMB (You et al., 2020): Adam with a per-tensor trust ratio, equal to ``optax.lamb``."""
import numpy as np

from fastmlp._codes import OptFamily
from fastmlp._ops import ops_of
from fastmlp._serial import register
from fastmlp.optim.adam import Adam
from fastmlp.optim.base import KernelSpec, Optimizer


@register
class LAMB(Optimizer):
    r"""Layer-wise Adaptive Moments for Batch training (``optax.lamb``).

    For each parameter tensor :math:`p` (each W and each b, separately):

    .. math::

        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        u_t &= \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}
               + \lambda p_{t-1} \\
        p_t &= p_{t-1} - \gamma \, r_t u_t, \qquad
        r_t = \frac{\lVert p_{t-1} \rVert_2}{\lVert u_t \rVert_2}
        \quad (1 \text{ when either norm is } 0)

    The trust ratio :math:`r_t` makes the step of every tensor proportional to its norm, so
    one learning rate suits layers of very different scales (large batches). Runs fused in
    the training step (``fastmlp._lamb``, over the arena's per-tensor ranges).

    Parameters
    ----------
    lr : float
        Learning rate :math:`\gamma` (>= 0).
    betas : (float, float)
        :math:`(\beta_1, \beta_2)`, each in [0, 1).
    eps : float
        :math:`\epsilon` (>= 0), optax's default 1e-6.
    weight_decay : float
        Decoupled weight decay :math:`\lambda` (>= 0), inside the trust-ratio scaling.

    Examples
    --------
    >>> opt = LAMB(lr=1e-3, weight_decay=0.01)
    """

    #: a per-tensor kernel: ``core(params, grads, *states, ranges, step, **hyper)``
    kernel = KernelSpec(OptFamily.OPT_LAMB, "lamb_step",
                        ("lr", "beta1", "beta2", "eps", "weight_decay"))
    _slots = ("exp_avg", "exp_avg_sq")

    def __init__(self, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0):
        super().__init__(lr, betas=betas, eps=eps, weight_decay=weight_decay)

    @classmethod
    def _validate(cls, betas, eps, weight_decay):
        hyper = Adam._validate(betas, eps, weight_decay, False)
        del hyper["amsgrad"]
        return hyper

    def _kwargs(self):     # the dict directly, as Adam's (see there)
        h = self._hyper
        beta1, beta2 = h["betas"]
        return dict(lr=self._lr, beta1=beta1, beta2=beta2, eps=h["eps"],
                    weight_decay=h["weight_decay"])

    @staticmethod
    def _tensor_ranges(model):
        """(offset, size) of every parameter tensor of the arena, flattened."""
        return np.array([(p["offset"], int(np.prod(p["shape"], dtype=np.int64)))
                         for p in model.param_info], dtype=np.intp).reshape(-1)

    def _update(self, model, params, grads):
        """One LAMB update of the arena, tensor by tensor (``Optimizer.step`` calls it)."""
        kernel = getattr(ops_of(model), self.kernel.op)
        kernel(params, grads, self.state["exp_avg"], self.state["exp_avg_sq"],
               self._tensor_ranges(model), self.step_count + 1, **self._kwargs())

    def _bind_fused(self, model):
        """As the base class, with the tensor ranges in the hyperparameters (``ranges``)."""
        family, hyper, states, t = super()._bind_fused(model)
        return family, {**hyper, "ranges": self._tensor_ranges(model)}, states, t
