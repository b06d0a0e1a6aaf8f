"""The inner loops: one phase-1 training epoch, and batched prediction over a split."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from camtrap_fast.train.freezing import freeze_batchnorm


@dataclass(frozen=True)
class EpochStats:
    loss: float
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA (no loss scaling needed); full precision on CPU, where bf16 is slower."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def model_layout(inputs: torch.Tensor, device: torch.device) -> torch.Tensor:
    """channels_last on CUDA (tensor cores); plain NCHW on CPU, where oneDNN's channels_last path ran
    ResNet-18 training about 3x slower on this project's 2-core dev VM. A no-op when already in layout."""
    layout = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    return inputs.contiguous(memory_format=layout)


def train_one_epoch(model, batches, num_samples: int, epoch: int, optimizer, loss_fn, device,
                    progress: bool, head_only: bool = False) -> EpochStats:
    """One pass over `batches` ((inputs, labels) from a loader's `epoch` or `stream`). head_only: the backbone is
    frozen (train.freezing), so its BatchNorm layers stay in eval mode: their running statistics are not updated."""
    model.train()
    if head_only:
        freeze_batchnorm(model)
    total_loss = torch.zeros((), device=device)
    images = 0
    start = time.perf_counter()
    bar = tqdm(total=num_samples, unit="img", desc=f"epoch {epoch + 1}", disable=None if progress else True, leave=False)
    for inputs, labels in batches:
        with autocast_for(device):
            loss = loss_fn(model(model_layout(inputs, device)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # Accumulate on the device: a .item() per step would synchronize every batch.
        total_loss += loss.detach() * len(labels)
        images += len(labels)
        bar.update(len(labels))
        bar.set_postfix_str(f"{images / (time.perf_counter() - start):.0f} img/s", refresh=False)
    bar.close()
    seconds = time.perf_counter() - start
    return EpochStats(float(total_loss) / max(images, 1), images, seconds)


@dataclass(frozen=True, eq=False)
class SplitPredictions:
    """A model's softmax outputs over a split, in index order; `positions` are the split positions of the rows
    (0..N-1 unless --skip-corrupt left samples out), so keys and sequences line up with what was predicted."""

    y_true: np.ndarray  # int64 (n,)
    probabilities: torch.Tensor  # float32 (n, C), on the CPU
    positions: np.ndarray  # int64 (n,)
    logits: torch.Tensor | None = None  # float32 (n, C), on the CPU: what a validation loss is computed on

    @property
    def y_pred(self) -> np.ndarray:
        return self.probabilities.max(dim=1).indices.numpy()

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(dim=1).values.numpy()


@torch.inference_mode()
def predict(forward, loader, num_samples: int, device) -> SplitPredictions:
    """The softmax outputs of `forward` over a split's first `num_samples` samples, in index order."""
    y_true, probabilities, all_logits = [], [], []
    for inputs, labels in loader.epoch(np.arange(num_samples, dtype=np.int64), 0):
        with autocast_for(device):
            logits = forward(model_layout(inputs, device))
        all_logits.append(logits.float().cpu())
        probabilities.append(torch.softmax(all_logits[-1], dim=1))
        y_true.append(labels.cpu())
    positions = np.setdiff1d(np.arange(num_samples, dtype=np.int64),
                             np.asarray(loader.skipped_positions, dtype=np.int64))
    return SplitPredictions(torch.cat(y_true).numpy(), torch.cat(probabilities), positions, torch.cat(all_logits))


@torch.inference_mode()
def split_loss(predictions: SplitPredictions, loss_fn, device) -> float:
    """The training loss (`loss_fn`, the run's) of a split's logits against its labels: the validation loss."""
    logits = predictions.logits.to(device)
    labels = torch.as_tensor(predictions.y_true, dtype=torch.int64, device=device)
    return float(loss_fn(logits, labels))
