"""The learning-rate range test (Smith 2017; fast.ai's `lr_find`): train a copy of the model for up to
`iterations` batches of the training plan with the lr growing exponentially from `start_lr` to `end_lr`, record
each batch's loss, smooth it, stop when it diverges, and suggest the lr where the smoothed loss falls fastest.

- Smoothing: fast.ai's debiased exponential moving average, beta 0.98.
- Divergence: the smoothed loss above `divergence` (4) times its minimum so far, or not finite.
- Suggestion: the steepest descent of the smoothed loss against log lr (fast.ai's `steep`), looked for between
  the first tenth of the points (the average is still warming up there) and the minimum of the smoothed loss
  (past it the loss climbs: no descent to find). None when that stretch has fewer than 3 points.

The model, its optimizer and torch's random state are left as they were: the test trains a deep copy, and
`train --lr auto` then trains the original from the same initial weights with the chosen lr, exactly as
`train --lr VALUE` would (tested).
"""

from __future__ import annotations

import copy
import io
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from camtrap_fast.atomic import write_bytes, write_text
from camtrap_fast.train.freezing import freeze_batchnorm, set_head_only
from camtrap_fast.train.loops import autocast_for, model_layout

LR_FIND_FORMAT = "camtrap-fast-lr-find/1"
SMOOTHING = 0.98
DIVERGENCE = 4.0


@dataclass(frozen=True)
class LrFinding:
    lrs: tuple[float, ...]
    losses: tuple[float, ...]  # each batch's loss
    smoothed: tuple[float, ...]
    suggestion: float | None
    stopped: str  # why the test ended: "diverged", "not finite" or "end of the lr range"
    seconds: float
    start_lr: float
    end_lr: float
    iterations: int
    batch_size: int

    def as_dict(self) -> dict:
        return {"format": LR_FIND_FORMAT, **asdict(self)}

    def describe(self) -> str:
        what = f"suggested lr {self.suggestion:.3g}" if self.suggestion is not None else "no suggestion"
        return (f"{what} (steepest descent of the smoothed loss) after {len(self.lrs)} batches of "
                f"{self.batch_size}, lr {self.lrs[0]:.2g} to {self.lrs[-1]:.2g} ({self.stopped}) in "
                f"{self.seconds:.1f} s")


def lr_schedule(start_lr: float, end_lr: float, iterations: int) -> np.ndarray:
    return start_lr * (end_lr / start_lr) ** (np.arange(iterations) / max(iterations - 1, 1))


def smooth(losses: Iterable[float], beta: float = SMOOTHING) -> list[float]:
    average, out = 0.0, []
    for i, loss in enumerate(losses, start=1):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta**i))
    return out


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> float | None:
    """The lr of the steepest descent of `smoothed` in log lr, between the first tenth and the minimum."""
    finite = np.isfinite(smoothed)
    if finite.sum() < 3:
        return None
    lrs, smoothed = lrs[finite], smoothed[finite]
    start, end = len(lrs) // 10, int(np.argmin(smoothed)) + 1
    if end - start < 3:
        return None
    slopes = np.gradient(smoothed[start:end], np.log(lrs[start:end]))
    return float(lrs[start + int(np.argmin(slopes))])


def range_test(model: torch.nn.Module, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], loss_fn, device,
               start_lr: float = 1e-7, end_lr: float = 10.0, iterations: int = 100, batch_size: int = 0,
               divergence: float = DIVERGENCE, head_only: bool = False) -> LrFinding:
    """Run the range test on a deep copy of `model` over the first `iterations` of `batches`; head_only: train
    the copy's final layer alone, its backbone frozen (what --freeze-epochs trains first, as fast.ai's lr_find on
    a frozen learner)."""
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr}, {end_lr}")
    started = time.perf_counter()
    rng_state = torch.get_rng_state()
    trial = copy.deepcopy(model).train()
    set_head_only(trial, head_only)
    if head_only:
        freeze_batchnorm(trial)
    optimizer = torch.optim.Adam([p for p in trial.parameters() if p.requires_grad], lr=start_lr)
    schedule = lr_schedule(start_lr, end_lr, iterations)
    lrs, losses, smoothed = [], [], []
    stopped, average, best = "end of the lr range", 0.0, math.inf
    try:
        for step, (inputs, labels) in zip(range(iterations), batches):
            for group in optimizer.param_groups:
                group["lr"] = float(schedule[step])
            with autocast_for(device):
                loss = loss_fn(trial(model_layout(inputs, device)), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            lrs.append(float(schedule[step]))
            losses.append(value)
            average = SMOOTHING * average + (1 - SMOOTHING) * value
            smoothed.append(average / (1 - SMOOTHING ** (step + 1)))
            if not math.isfinite(smoothed[-1]):
                stopped = "not finite"
                break
            best = min(best, smoothed[-1])
            if smoothed[-1] > divergence * best:
                stopped = "diverged"
                break
    finally:
        torch.set_rng_state(rng_state)
        if hasattr(batches, "close"):  # a generator left half-read: let the loader's epoch end now, not at exit
            batches.close()
    if not lrs:
        raise ValueError("the training plan gave no batch to test")
    suggestion = suggest(np.asarray(lrs), np.asarray(smoothed))
    return LrFinding(tuple(lrs), tuple(losses), tuple(smoothed), suggestion, stopped, time.perf_counter() - started,
                     start_lr, end_lr, iterations, batch_size)


def plan_batches(loader, labels: np.ndarray, plan, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The training plan's batches, epoch after epoch (seeded as the run's epochs), for as long as asked."""
    from camtrap_fast.sampling import epoch_order

    epoch = 0
    while True:
        yield from loader.epoch(epoch_order(labels, plan, seed, epoch), epoch)
        epoch += 1


def write_finding(out_dir: Path, finding: LrFinding, title: str) -> tuple[Path, Path]:
    """out_dir/lr_find.json and out_dir/lr_find.png (loss against lr, log scale, the suggestion marked)."""
    import json

    from matplotlib.figure import Figure

    json_path = write_text(out_dir / "lr_find.json", json.dumps(finding.as_dict(), indent=1) + "\n")
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    ax.plot(finding.lrs, finding.losses, color="0.75", linewidth=0.8, label="batch loss")
    ax.plot(finding.lrs, finding.smoothed, color="C0", linewidth=2, label=f"smoothed (EMA, beta {SMOOTHING})")
    if finding.suggestion is not None:
        ax.axvline(finding.suggestion, color="C3", linestyle="--", label=f"suggestion {finding.suggestion:.3g}")
    finite = [v for v in finding.smoothed if math.isfinite(v)]
    if finite:  # the divergence can be orders of magnitude: keep the descent readable
        low = min(min(finite), *(v for v in finding.losses if math.isfinite(v)))
        high = min(max(finite), DIVERGENCE * min(finite))
        ax.set_ylim(low - 0.1 * (high - low + 1e-12), high + 0.1 * (high - low + 1e-12))
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    png_path = write_bytes(out_dir / "lr_find.png", buffer.getvalue())
    return json_path, png_path


def read_finding(path: Path) -> LrFinding:
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    if data.pop("format", None) != LR_FIND_FORMAT:
        raise ValueError(f"{path}: not a {LR_FIND_FORMAT} file")
    for name in ("lrs", "losses", "smoothed"):
        data[name] = tuple(data[name])
    return LrFinding(**data)
