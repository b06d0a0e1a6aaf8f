"""LWS, learnable weight scaling (Kang et al. 2020): logits_c = s_c * (w_c . x + b_c), the phase-1 layer's weights
and bias frozen, one scale per class learned with class-balanced sampling and cross-entropy, starting at s = 1
(the phase-1 layer itself). Folded into a linear layer as rows s_c * w_c and bias s_c * b_c.

Only C numbers are trained, so the phase-1 logits g = W x + b are computed once per row (one matmul over the
training set) and every step works on a batch of g: z = s * g, softmax, and the gradient
d loss / d s_c = mean_i (softmax(z_i)_c - [y_i = c]) * g_ic. As in train.head_training, each epoch gathers its
rows in chunks into a reused buffer, batches are views made once, the gradient is kept batch_size times too
large with Adam's eps scaled to match, and the private fused Adam kernel updates s (FlatAdam). It computes
what `head_reference.train_lws_reference` computes with autograd (tests check they agree). The epochs, early
stopping and the kept epoch are train.head_epochs.fit_epochs's, as for every gradient-trained head.
"""

from __future__ import annotations

import time

import torch

from camtrap_fast.train.head_config import HeadConfig
from camtrap_fast.train.head_epochs import fit_epochs, predict_rows
from camtrap_fast.train.head_training import CHUNK_BATCHES, FlatAdam
from camtrap_fast.train.heads.contract import HeadFit, HeadInputs, from_head_result, linear_logits
from camtrap_fast.train.heads.gradient import balanced_epochs
from camtrap_fast.train.parallelism import torch_threads


class _ScaleTrainer:
    """The per-class scales, their gradient and Adam state, and one fused epoch over precomputed logits."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, config: HeadConfig):
        self.config, self.weight, self.bias = config, weight, bias
        self.num_classes = c = len(weight)
        self.scales = torch.ones(c)
        self.grad = torch.zeros(c)
        self.adam = FlatAdam(self.scales, self.grad, config, config.eps * config.batch_size)
        self.steps_done = 0
        chunk = CHUNK_BATCHES * config.batch_size
        self.rows = torch.empty(chunk, c)  # the phase-1 logits g of the chunk's rows
        self.targets = torch.empty(chunk, 1, dtype=torch.int64)
        self.logits = torch.empty(chunk, c)  # z = s * g, kept per batch for the chunk's loss
        self.dlogits = torch.empty(chunk, c)
        self.minus_one = torch.full((config.batch_size, 1), -1.0)
        self.full_chunk_batches = self._batch_views(chunk)

    def _batch_views(self, n: int) -> list[tuple[torch.Tensor, ...]]:
        b = self.config.batch_size
        return list(zip(*(buffer[:n].split(b) for buffer in (self.rows, self.targets, self.logits, self.dlogits))))

    def state(self) -> dict[str, torch.Tensor]:
        scales = self.scales.clone()
        return {"weight": self.weight * scales[:, None], "bias": self.bias * scales, "scales": scales}

    def predict(self, phase1_logits: torch.Tensor) -> torch.Tensor:
        return predict_rows(phase1_logits, lambda rows: rows * self.scales)

    def train_epoch(self, phase1_logits: torch.Tensor, labels: torch.Tensor, order: torch.Tensor,
                    targets: torch.Tensor) -> float:
        """One pass over `order` (targets: labels[order]); returns the mean of the batch losses."""
        b = self.config.batch_size
        num_batches = -(-len(order) // b)
        step_counts = torch.arange(self.steps_done + 1, self.steps_done + num_batches + 1,
                                   dtype=torch.float32).unbind(0)
        loss_sum, step, chunk = torch.zeros(()), 0, len(self.rows)
        for start in range(0, len(order), chunk):
            indices = order[start : start + chunk]
            n = len(indices)
            torch.index_select(phase1_logits, 0, indices, out=self.rows[:n])
            self.targets[:n, 0].copy_(targets[start : start + n])
            batches = self.full_chunk_batches if n == chunk else self._batch_views(n)
            for g, targets, z, dz in batches:
                rows = len(g)
                torch.mul(g, self.scales, out=z)
                if self.config.public_ops:
                    torch.softmax(z, 1, out=dz)
                else:  # the private op skips the public one's argument handling (head_training._softmax_into)
                    torch._softmax(z, 1, False, out=dz)
                dz.scatter_add_(1, targets, self.minus_one if rows == b else self.minus_one[:rows])
                torch.sum(dz.mul_(g), 0, out=self.grad)  # batch_size x the gradient of the batch's mean loss
                if rows != b:  # a short last batch: its mean divides by rows
                    self.grad.mul_(b / rows)
                self.adam.step(step_counts[step])
                step += 1
            log_p = torch.log_softmax(self.logits[:n], 1).gather(1, self.targets[:n]).squeeze(1)
            sizes = torch.tensor([len(v[0]) for v in batches], dtype=torch.float32)
            loss_sum -= (torch.zeros(len(batches)).index_add_(0, torch.arange(n) // b, log_p) / sizes).sum()
        self.steps_done += num_batches
        return float(loss_sum) / num_batches


def fit_lws(inputs: HeadInputs) -> HeadFit:
    started = time.perf_counter()
    weight, bias = inputs.phase1_layer()
    order_for_epoch, per_epoch = balanced_epochs(inputs.train_labels, inputs.num_classes, inputs.seed)
    with torch_threads(inputs.config.num_threads, torch.device("cpu")), torch.no_grad():
        train_logits = linear_logits(weight, bias, inputs.train_features.cpu())
        val_logits = linear_logits(weight, bias, inputs.val_features.cpu()) if inputs.has_val else None
        trainer = _ScaleTrainer(weight, bias, inputs.config)
        result = fit_epochs(trainer, train_logits, inputs.train_labels.cpu(), val_logits,
                            inputs.val_labels.cpu() if inputs.has_val else None, inputs.config, inputs.seed,
                            order_for_epoch, started)
    return from_head_result("lws", result, per_epoch, {
        "init": "phase-1 layer, scales 1", "sampling": "class-balanced", "loss": "ce",
        "scales": [round(float(s), 6) for s in result.head_state["scales"]]})
