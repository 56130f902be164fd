"""Adam and AdamW (torch's update rules, including bias correction and AMSGrad)."""
from __future__ import annotations

import numpy as np

from minigrad.optim.optimizer import Optimizer, ParamsT


class Adam(Optimizer):
    """Adam: per step t, with g = grad (+ weight_decay * p unless decoupled),

        m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g * g
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    (AMSGrad uses the running maximum of v.)  Args: ``params``, ``lr=1e-3``, ``betas=(0.9, 0.999)``,
    ``eps=1e-8``, ``weight_decay=0``, ``amsgrad=False``, ``maximize=False``.
    """

    _decoupled = False

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        # written as torch writes them, so that nan fails every check
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                                  "amsgrad": amsgrad, "maximize": maximize})

    def step(self) -> None:
        with np.errstate(all="ignore"):  # an inf gradient makes nan parameters, as in torch: no warning
            self._step()

    def _step(self) -> None:
        for group, p, state in self._params_with_grad():
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            g = -p.grad.data if group["maximize"] else p.grad.data
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(p.data)
                state["exp_avg_sq"] = np.zeros_like(p.data)
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = np.zeros_like(p.data)
            state["step"] += 1
            data = p.data
            if wd != 0:
                if self._decoupled:
                    data *= 1 - lr * wd
                else:
                    g = g + wd * data
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m += (1 - beta1) * (g - m)
            v *= beta2
            v += (1 - beta2) * (g * g)
            if group["amsgrad"]:
                v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            step = state["step"]
            step_size = lr / (1 - beta1 ** step)
            denom = np.sqrt(v) / (1 - beta2 ** step) ** 0.5 + eps
            data -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr * weight_decay`` before the Adam update (the decay
    never enters the moments).  Same arguments as ``Adam``; ``weight_decay`` defaults to 1e-2."""

    _decoupled = True

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
