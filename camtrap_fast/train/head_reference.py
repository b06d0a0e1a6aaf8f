"""The plain PyTorch loops the fast phase-2 code is tested and benchmarked against.

Nothing in training calls these: they are the readable definition of what the fused loop
(`head_training.train_head`) computes, kept beside it so tests pin the two together and
bench/phase2_head.py measures the fused loop against them in the same run.
"""

from __future__ import annotations

import torch
from torch import nn

from camtrap_fast.losses import LossConfig, build_loss
from camtrap_fast.train.head_config import HeadConfig
from camtrap_fast.train.head_training import shuffled_order, torch_threads


def train_head_reference(
    head: nn.Linear, features: torch.Tensor, labels: torch.Tensor, config: HeadConfig, epochs: int,
    loss: LossConfig = LossConfig(), seed: int = 0,
) -> tuple[dict[str, torch.Tensor], list[float]]:
    """The plain loop train_head's fused epochs must match: nn.Linear, the loss module, torch.optim.Adam, one
    step per batch of the same shuffled order. No validation or early stopping. Runs on the CPU with the
    same thread count as train_head. Returns the head's state and each epoch's mean batch loss."""
    model = nn.Linear(head.in_features, head.out_features)
    model.load_state_dict(head.state_dict())
    features, labels = features.cpu(), labels.cpu().to(torch.int64)
    loss_fn = build_loss(loss, torch.bincount(labels, minlength=head.out_features).numpy())
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas, eps=config.eps)
    epoch_losses = []
    with torch_threads(config.num_threads, torch.device("cpu")):
        for epoch in range(1, epochs + 1):
            order = shuffled_order(len(labels), seed, epoch)
            losses = []
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size]
                optimizer.zero_grad()
                batch_loss = loss_fn(model(features[batch].float()), labels[batch])
                batch_loss.backward()
                optimizer.step()
                losses.append(batch_loss.detach())
            epoch_losses.append(float(torch.stack(losses).mean()))
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}, epoch_losses
