"""Adam on one flat fp32 tensor, for the fused phase-2 loops (train.head_training, train.heads.lws)."""

from __future__ import annotations

import torch

from camtrap_fast.train.head_config import HeadConfig


class FlatAdam:
    """Adam on one flat fp32 tensor whose gradient the caller writes into `grad`: torch.optim.Adam(fused=True)'s
    kernel called directly (torch.optim.Adam.step() costs ~4x this per step, bench/phase2_head.py; 72,780 steps
    at S9 scale), or that step itself with HeadConfig.public_ops."""

    def __init__(self, theta: torch.Tensor, grad: torch.Tensor, config: HeadConfig, eps: float):
        self.theta, self.grad, self.config, self.eps = theta, grad, config, eps
        self.exp_avg = torch.zeros_like(theta)
        self.exp_avg_sq = torch.zeros_like(theta)
        self._optimizer: torch.optim.Adam | None = None  # public_ops only

    def step(self, step_count: torch.Tensor) -> None:
        beta1, beta2 = self.config.betas
        if self.config.public_ops:
            if self._optimizer is None:
                self.theta.grad = self.grad  # the gradient buffer the loop writes into
                self._optimizer = torch.optim.Adam([self.theta], lr=self.config.lr, betas=(beta1, beta2),
                                                   eps=self.eps, fused=True)
            self._optimizer.step()
            return
        torch._fused_adam_([self.theta], [self.grad], [self.exp_avg], [self.exp_avg_sq], [], [step_count],
                           lr=self.config.lr, beta1=beta1, beta2=beta2, weight_decay=0.0, eps=self.eps,
                           amsgrad=False, maximize=False)
