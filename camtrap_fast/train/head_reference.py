"""The plain PyTorch loops the fast phase-2 code is tested and benchmarked against.

Nothing in training calls these: they are the readable definition of what the fused loops
(`head_training.train_head`, `heads.lws`) compute, kept beside them so tests pin the two together and
bench/phase2_head.py and bench/phase2_methods.py measure the fused loops against them in the same run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from camtrap_fast.losses import LossConfig, build_loss
from camtrap_fast.train.head_config import HeadConfig
from camtrap_fast.train.head_training import shuffled_order
from camtrap_fast.train.parallelism import torch_threads


def _epochs(parameters, forward: Callable[[torch.Tensor], torch.Tensor], loss_fn, features, labels,
            config: HeadConfig, epochs: int, seed: int, order_for_epoch) -> list[float]:
    """Adam over `parameters`, one step per batch of each epoch's order; each epoch's mean batch loss."""
    optimizer = torch.optim.Adam(parameters, lr=config.lr, betas=config.betas, eps=config.eps)
    epoch_losses = []
    with torch_threads(config.num_threads, torch.device("cpu")):
        for epoch in range(1, epochs + 1):
            order = shuffled_order(len(labels), seed, epoch) if order_for_epoch is None else order_for_epoch(epoch)
            order = torch.as_tensor(order, dtype=torch.int64)
            losses = []
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size]
                optimizer.zero_grad()
                batch_loss = loss_fn(forward(features[batch].float()), labels[batch])
                batch_loss.backward()
                optimizer.step()
                losses.append(batch_loss.detach())
            epoch_losses.append(float(torch.stack(losses).mean()))
    return epoch_losses


def train_head_reference(
    head: nn.Linear, features: torch.Tensor, labels: torch.Tensor, config: HeadConfig, epochs: int,
    loss: LossConfig = LossConfig(), seed: int = 0, order_for_epoch: Callable[[int], torch.Tensor] | None = None,
    logit_offset: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], list[float]]:
    """The plain loop train_head's fused epochs must match: nn.Linear, the loss module, torch.optim.Adam, one
    step per batch of the same order (default the same shuffle). logit_offset: the loss sees logits + offset
    (balanced softmax), through autograd. No validation or early stopping. Runs on the CPU with the same thread
    count as train_head. Returns the head's state and each epoch's mean batch loss."""
    model = nn.Linear(head.in_features, head.out_features)
    model.load_state_dict(head.state_dict())
    features, labels = features.cpu(), labels.cpu().to(torch.int64)
    loss_fn = build_loss(loss, torch.bincount(labels, minlength=head.out_features).numpy())
    forward = model if logit_offset is None else (lambda x: model(x) + logit_offset)
    epoch_losses = _epochs(model.parameters(), forward, loss_fn, features, labels, config, epochs, seed,
                           order_for_epoch)
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}, epoch_losses


def train_lws_reference(
    head: nn.Linear, features: torch.Tensor, labels: torch.Tensor, config: HeadConfig, epochs: int,
    seed: int = 0, order_for_epoch: Callable[[int], torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], list[float]]:
    """LWS the plain way: the head frozen, logits = scales * head(x), one nn.Parameter scale per class from 1,
    cross-entropy, torch.optim.Adam. Returns the folded layer (scaled rows and bias, and the scales) and each
    epoch's mean batch loss."""
    weight, bias = head.weight.detach().float(), head.bias.detach().float()
    scales = nn.Parameter(torch.ones(head.out_features))
    features, labels = features.cpu(), labels.cpu().to(torch.int64)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, weight, bias) * scales

    epoch_losses = _epochs([scales], forward, nn.CrossEntropyLoss(), features, labels, config, epochs, seed,
                           order_for_epoch)
    s = scales.detach().clone()
    return {"weight": weight * s[:, None], "bias": bias * s, "scales": s}, epoch_losses
