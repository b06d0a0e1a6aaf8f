"""Phase 2 on cached features: retrain only the linear head with Adam on the original (imbalanced)
distribution, early-stopping on validation macro F1 (the features come from `train.features`).

Speed: 155k x 512 features, 52 classes, batch 64 and 30 epochs are 72,780 sequential Adam steps of
two tiny matmuls each (2 x 64 x 512 x 52 multiply-adds, about 0.5 TFLOP in all). On a CPU the cost of
a per-step autograd graph, loss module and optimizer in Python exceeds the matmuls, so the loop here:
- folds the bias into the weight as an extra input column of ones, so one matmul gives logits and one
  gives the whole gradient (weight and bias) without autograd: d loss / d logits is closed-form;
- keeps weight, gradient and Adam moments as single flat tensors updated by one fused Adam kernel;
- keeps the gradient batch_size times too large, Adam's eps scaled to match (the same updates, a division less),
  and gathers each epoch's shuffled rows (fp16 stays fp16 until then) in chunks into a reused buffer.
Each torch step still costs ~10 dispatches of ~3 us, as much as its arithmetic, so where `make setup` built it the
steps run in C (train/headloop.c via headloop.py: the same arithmetic, its own matmul tiles and threads, the gather
inside each step, one call an epoch; its loss_gradient is the one place per loss of d loss / d logits). The torch
steps below are its fallback, two of them through private ops (`_softmax_into`, `FlatAdam`) that
bench/phase2_head.py times against their public equivalents and the tests pin to the plain loop. It computes what
`head_reference.train_head_reference` computes with nn.Linear, a loss module and torch.optim.Adam (tests check
they agree); read that one for the math.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable

import torch
from torch import nn

from camtrap_fast.cycle_collector import cycle_collector
from camtrap_fast.losses import (FOCAL_MIN_MARGIN, LossConfig, build_loss, sigmoid_focal_dlogits,
                                 sigmoid_focal_per_sample)
from camtrap_fast.train import headloop
from camtrap_fast.train.flat_adam import FlatAdam
from camtrap_fast.train.head_config import HeadConfig
from camtrap_fast.train.head_epochs import (EVAL_ROWS, EpochRecord, HeadResult, check_inputs, fit_epochs,
                                            predict_rows, shuffled_order)
from camtrap_fast.train.head_loss_terms import LossTerms as _LossTerms, loss_terms as _loss_terms
from camtrap_fast.train.huge_pages import move_to_huge_pages
from camtrap_fast.train.parallelism import torch_threads

__all__ = ["EpochRecord", "FlatAdam", "HeadConfig", "HeadResult", "fit_epochs", "predict_rows", "shuffled_order",
           "train_head"]

# Batches gathered at a time by the torch loop (and the compiled one where it cannot gather or scales rows): per-chunk
# work small per step, the chunk (32 x 64 rows x 528 fp32 = 4.3 MB) in the last-level cache while it trains.
CHUNK_BATCHES = 32
ROW_ALIGN = 16  # fp32 values: 64 bytes, one cache line and one AVX-512 vector (headloop.c's LANES)
# Train through the compiled step loop (train/headloop.c) when it is built; the torch loop below is its fallback
# and its reference (tests pin both to head_reference; bench/phase2_head.py times both).
COMPILED_LOOP = True
# Where the compiled steps leave a core free, a helper thread reads each next step's rows while this one trains
# (headloop.c's row toucher): the same bits, a gather from cache instead of DRAM. Off only to measure what it gives
# (bench/phase2_head.py).
ROW_TOUCHER = True


class _FusedHead:
    """Weight, gradient and Adam state of a linear head as flat tensors, and the fused training epoch."""

    def __init__(self, head: nn.Linear, config: HeadConfig, terms: _LossTerms, device: torch.device):
        self.config, self.terms = config, terms
        self.in_features, self.num_classes = d, c = head.in_features, head.out_features
        # Columns: D feature weights, the bias (its input is a constant 1), then zeros up to a multiple of 16, so
        # that every row starts 64-byte aligned and holds whole vectors. The padding's inputs are 0, so its
        # gradient is 0 and Adam leaves its weights at 0: the result is exactly the unpadded one.
        width = -(-(d + 1) // ROW_ALIGN) * ROW_ALIGN
        self.theta = torch.zeros(c * width, device=device)
        self.weight = self.theta.view(c, width)
        self.weight[:, :d].copy_(head.weight.detach())
        if head.bias is not None:
            self.weight[:, d].copy_(head.bias.detach())
        self.offset = torch.zeros(c, device=device)
        if terms.logit_offset is not None:
            if terms.logit_offset.shape != (c,):
                raise ValueError(f"the loss has {len(terms.logit_offset)} logit offsets for a head of {c} classes")
            self.offset.copy_(terms.logit_offset)
            self.weight[:, d].add_(self.offset)
        self.grad = torch.zeros_like(self.theta)
        self.grad_w = self.grad.view(c, width)
        # The gradient is kept batch_size times the loss's; eps * batch_size gives the same updates (train_epoch).
        self.adam = FlatAdam(self.theta, self.grad, config, config.eps * config.batch_size)
        self.steps_done = 0
        self.class_weights = None
        if terms.class_weights is not None:
            if terms.class_weights.shape != (self.num_classes,):
                raise ValueError(f"the loss has {len(terms.class_weights)} class weights "
                                 f"for a head of {self.num_classes} classes")
            self.class_weights = terms.class_weights.to(device=device, dtype=torch.float32)
        self.positive_alpha = None
        if terms.positive_alpha is not None:
            if terms.positive_alpha.shape != (c,):
                raise ValueError(f"the loss has {len(terms.positive_alpha)} alphas for a head of {c} classes")
            self.positive_alpha = terms.positive_alpha.to(device=device, dtype=torch.float32)
        self.zero = torch.zeros((), device=device)
        # eval_logits' caches: the validation rows as the matmul reads them, one holder shared with every frozen()
        # view (they validate in turn on one helper thread, so the first view's copy serves them all), and the
        # logits of the weights as they are, (steps_done, logits), per view
        self._eval_rows: dict[str, torch.Tensor] = {}
        self._eval_logits = None
        chunk = CHUNK_BATCHES * config.batch_size
        self.inputs = torch.zeros(chunk, width, device=device)
        self.inputs[:, d] = 1.0  # the bias input
        self.targets = torch.empty(chunk, 1, dtype=torch.int64, device=device)
        self.staging: torch.Tensor | None = None  # rows in the features' dtype, when that is not fp32
        self.logits = torch.empty(chunk, self.num_classes, device=device)
        self.dlogits = torch.empty(chunk, self.num_classes, device=device)
        self.row_scale = torch.empty(chunk, 1, device=device)
        self.row_loss = torch.empty(chunk, dtype=torch.float64, device=device)  # the compiled loop's loss scratch
        self.minus_one = torch.full((config.batch_size, 1), -1.0, device=device)
        # The compiled steps where they can run (CPU, private ops; COMPILED_LOOP off for comparisons), else torch's.
        self.compiled = headloop.load() if COMPILED_LOOP and device.type == "cpu" and not config.public_ops else None
        self.compiled_threads = headloop.threads_for(config.num_threads)
        self.logits_threads = headloop.logits_threads_for(config.num_threads)
        # A core the steps leave free: validation runs there while the next epoch trains (head_epochs.fit_epochs), and
        # the row toucher reads the next step's rows there (at the lowest priority, so validation comes first).
        spare_core = self.compiled is not None and headloop.usable_cores() > self.compiled_threads
        self.pipelines_validation = spare_core
        self.touches_rows = spare_core and ROW_TOUCHER
        # Creating a view costs about as much as a small op, so a full chunk's batch views are made once.
        self.full_chunk_batches = self._batch_views(chunk)

    def _batch_views(self, n: int) -> list[tuple[torch.Tensor, ...]]:
        """Per batch of the chunk's first n rows: (inputs, targets, logits, dlogits, dlogits^T, row_scale) views."""
        b = self.config.batch_size
        views = [buffer[:n].split(b) for buffer in (self.inputs, self.targets, self.logits, self.dlogits)]
        views.append(self.dlogits[:n].t().split(b, dim=1))
        views.append(self.row_scale[:n].split(b))
        return list(zip(*views))

    def state(self) -> dict[str, torch.Tensor]:
        d = self.in_features
        return {"weight": self.weight[:, :d].contiguous().cpu(), "bias": (self.weight[:, d] - self.offset).cpu()}

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        return self.eval_logits(features).argmax(1)

    def frozen(self) -> _FusedHead:
        """The head as it is now, to validate on another thread while this one trains: a shallow copy with its own
        weights and logits cache, sharing the validation rows."""
        view = copy.copy(self)
        view.theta = self.theta.clone()
        view.weight, view._eval_logits = view.theta.view_as(self.weight), None
        view.logits_threads = max(1, min(8, headloop.usable_cores() - self.compiled_threads))
        return view

    def eval_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The head's logits (without the training-only offset) over `features`, for validation. Computed once per
        epoch (predict and the validation loss share them) from a copy of the rows made once, padded as the matmul
        reads them (_padded; widening 19k x 512 fp16 rows every epoch cost more than the matmul), so both are kept
        for the next call."""
        compiled = self.compiled is not None and features.device.type == "cpu" and len(features) > 0
        cache = self._eval_rows
        if cache.get("features") is not features:  # the tensor itself, held: never stale
            cache["rows"] = self._padded(features) if compiled else features.float()
            cache["features"], self._eval_logits = features, None
        if self._eval_logits is None or self._eval_logits[0] != self.steps_done:
            rows = cache["rows"]
            if compiled:  # the training steps' own matmul and threads; the offset comes out of the bias afterwards
                logits = torch.empty(len(rows), self.num_classes)
                self.compiled.logits(rows, self.theta, logits, self.logits_threads)
                if self.terms.logit_offset is not None:
                    logits.sub_(self.offset)
            else:
                weight_t, bias = self.weight[:, : self.in_features].t(), self.weight[:, self.in_features] - self.offset
                logits = torch.cat([torch.addmm(bias, part, weight_t) for part in rows.split(EVAL_ROWS)]) \
                    if len(rows) else torch.empty(0, self.num_classes, device=rows.device)
            self._eval_logits = (self.steps_done, logits)
        return self._eval_logits[1]

    def _padded(self, features: torch.Tensor) -> torch.Tensor:
        """Rows laid out as the training inputs are: the features, the bias's 1, zeros to the padded width. fp16 for
        fp16 features where the compiled logits take them (the same logits from half the bytes: 19k validation rows
        took 14-23 ms an epoch as fp32 on the helper thread beside training, 2026-12-03), else fp32."""
        half = features.dtype == torch.float16 and self.compiled.half_logits
        rows = torch.zeros(len(features), self.weight.shape[1], dtype=torch.float16 if half else torch.float32)
        rows[:, : self.in_features] = features
        rows[:, self.in_features] = 1.0
        return rows

    def _load_chunk(self, features: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> int:
        self._load_rows(features, indices)
        return self._load_targets(labels, indices)

    def _load_rows(self, features: torch.Tensor, indices: torch.Tensor) -> None:
        n = len(indices)
        d = self.in_features
        if self.compiled is not None and self.compiled.gather(features, indices, self.inputs):
            pass  # gathered and widened in C straight into the chunk buffer (torch's index_select: 3x the time)
        elif features.dtype == torch.float32:
            torch.index_select(features, 0, indices, out=self.inputs[:n, :d])
        else:  # gather in the storage dtype (less memory traffic), widen once per chunk
            if self.staging is None or self.staging.dtype != features.dtype:
                self.staging = torch.empty(len(self.inputs), features.shape[1], dtype=features.dtype,
                                           device=features.device)
            torch.index_select(features, 0, indices, out=self.staging[:n])
            self.inputs[:n, :d].copy_(self.staging[:n])

    def _load_targets(self, labels: torch.Tensor, indices: torch.Tensor) -> int:
        torch.index_select(labels, 0, indices, out=self.targets[: len(indices), 0])
        return len(indices)

    def _batch_sums(self, values: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-batch sums of values, batch index of each row) for the chunk's n rows."""
        batch = torch.arange(n, device=values.device) // self.config.batch_size
        sums = torch.zeros(-(-n // self.config.batch_size), device=values.device, dtype=values.dtype)
        return sums.index_add_(0, batch, values), batch

    def _static_row_scale(self, targets: torch.Tensor) -> None:
        """batch_size * s_i for the chunk's targets when s_i does not depend on the logits (see _LossTerms)."""
        n = len(targets)
        weight = self.class_weights[targets]
        if self.terms.weighted_mean:
            totals, batch = self._batch_sums(weight, n)
        else:
            totals, batch = self._batch_sums(torch.ones_like(weight), n)
        torch.mul(weight / totals[batch], self.config.batch_size, out=self.row_scale[:n, 0])

    def _chunk_loss(self, n: int) -> torch.Tensor:
        """Sum over the chunk's batches of each batch's loss, from the logits kept for the chunk."""
        logits, targets = self.logits[:n], self.targets[:n, 0]
        if self.terms.sigmoid:
            totals, _ = self._batch_sums(sigmoid_focal_per_sample(logits, targets, self.terms.gamma,
                                                                  self.positive_alpha), n)
            divisors, _ = self._batch_sums(torch.ones(n, device=logits.device), n)
            return (totals / divisors).sum()
        log_p = torch.log_softmax(logits, 1).gather(1, targets[:, None]).squeeze(1)  # half logsumexp's cost
        per_row = -log_p
        if self.terms.gamma != 0:
            per_row = per_row * (-torch.expm1(log_p)).clamp_min(FOCAL_MIN_MARGIN).pow(self.terms.gamma)
        weight = torch.ones_like(per_row) if self.class_weights is None else self.class_weights[targets]
        totals, batch = self._batch_sums(weight * per_row, n)
        divisors, _ = self._batch_sums(weight if self.terms.weighted_mean else torch.ones_like(weight), n)
        return (totals / divisors).sum()

    def train_epoch(self, features: torch.Tensor, labels: torch.Tensor, order: torch.Tensor,
                    targets: torch.Tensor) -> float:
        """One pass over `order` (targets: labels[order]); returns the mean of the batch losses.

        The gradient is kept batch_size times the loss's (no division per step) and Adam's eps is scaled
        to match: Adam's update is invariant to a constant gradient scale apart from eps, so
        eps * batch_size gives exactly the updates of the unscaled gradient.
        """
        b = self.config.batch_size
        dynamic_scale = self.terms.gamma != 0
        static_scale = self.class_weights is not None and not dynamic_scale
        num_batches = -(-len(order) // b)
        # Adam's step counts as 0-dim views of one tensor: one allocation per epoch, none per step (torch loop).
        first, device = self.steps_done + 1, self.theta.device
        step_counts = () if self.compiled is not None else \
            torch.arange(first, first + num_batches, dtype=torch.float32, device=device).unbind(0)
        loss_sum, compiled_loss_sum = self.zero.clone(), 0.0
        step = 0
        weight_t = self.weight.t()
        chunk = len(self.inputs)
        if self.compiled is not None and self.compiled.gathers(features) and not static_scale:
            chunk = max(len(order), 1)  # one C call an epoch (~1 us a step less): each batch gathered in its step
            self.row_loss = self.row_loss if len(self.row_loss) >= chunk else torch.empty(chunk, dtype=torch.float64)
        for start in range(0, len(order), chunk):
            indices = order[start : start + chunk]
            if self.compiled is not None:  # the same steps and losses in C, the gather too: no per-step dispatch
                chunk_targets = targets[start : start + chunk]  # the compiled steps read them in order
                if static_scale:
                    self._static_row_scale(chunk_targets)
                steps, chunk_loss = self._compiled_steps(features, indices, chunk_targets, static_scale,
                                                         dynamic_scale, self.steps_done + step)
                step += steps
                compiled_loss_sum += chunk_loss
                continue
            n = self._load_chunk(features, labels, indices)
            if static_scale:
                self._static_row_scale(self.targets[:n, 0])
            batches = self.full_chunk_batches if n == chunk else self._batch_views(n)
            for inputs, targets, logits, dlogits, dlogits_t, row_scale in batches:
                torch.mm(inputs, weight_t, out=logits)
                self._dlogits_into(logits, targets, row_scale, dlogits, static_scale or dynamic_scale)
                # gradient (x batch_size) = dlogits^T inputs, the bias column included
                torch.mm(dlogits_t, inputs, out=self.grad_w)
                self.adam.step(step_counts[step])
                step += 1
            loss_sum += self._chunk_loss(n)
        self.steps_done += num_batches
        return (float(loss_sum) + compiled_loss_sum) / num_batches

    def _compiled_steps(self, features: torch.Tensor, indices: torch.Tensor, targets: torch.Tensor,
                        static_scale: bool, dynamic_scale: bool, steps_done: int) -> tuple[int, float]:
        """The chunk's steps through headloop.c; its loss_gradient is this loop's per-loss d loss / d logits."""
        config = self.config
        if self.terms.sigmoid:  # one-vs-all: per-class alpha in place of class weights, no row scale
            loss, weights, row_scale = headloop.LOSS_SIGMOID_FOCAL, self.positive_alpha, None
        else:
            loss = headloop.LOSS_FOCAL if dynamic_scale else headloop.LOSS_SOFTMAX
            weights = self.class_weights if dynamic_scale else None
            row_scale = self.row_scale if static_scale else None
        if self.compiled.gathers(features):  # the loop's threads gather the chunk themselves
            source, indices = features, indices.to(torch.int64).contiguous()
        else:
            self._load_rows(features, indices)
            source, indices = None, None
        return self.compiled.run(
            source, indices, self.inputs, targets, row_scale, self.logits, self.dlogits, self.theta, self.grad,
            self.adam.exp_avg, self.adam.exp_avg_sq, len(targets), config.batch_size, loss, self.terms.gamma,
            FOCAL_MIN_MARGIN, weights, config.lr, config.betas, self.adam.eps, steps_done, self.compiled_threads,
            self.row_loss, touch_rows=self.touches_rows and source is not None)

    def _dlogits_into(self, logits: torch.Tensor, targets: torch.Tensor, row_scale: torch.Tensor,
                      dlogits: torch.Tensor, scaled: bool) -> None:
        """The torch steps' d loss / d logits of one batch, x batch_size, into dlogits (headloop.c's loss_gradient
        in C). scaled: each row's factor is in row_scale (class weights, focal); else a short last batch's mean
        divides by its rows, the others' by b. Sigmoid focal: `losses.sigmoid_focal_dlogits`, its closed form and
        the only place it is written (row_scale unused)."""
        b, rows = self.config.batch_size, len(logits)
        if self.terms.sigmoid:
            sigmoid_focal_dlogits(logits, targets[:, 0], self.terms.gamma, self.positive_alpha, out=dlogits)
            scaled = False
        else:
            self._softmax_into(logits, dlogits)
            if self.terms.gamma != 0:
                self._focal_row_scale(logits, dlogits, targets, row_scale)
            dlogits.scatter_add_(1, targets, self.minus_one if rows == b else self.minus_one[:rows])
        if scaled:
            dlogits.mul_(row_scale)
        elif rows != b:
            dlogits.mul_(b / rows)

    def _softmax_into(self, logits: torch.Tensor, out: torch.Tensor) -> None:
        if self.config.public_ops:
            torch.softmax(logits, 1, out=out)
        else:  # the private op skips the public one's argument handling: 2.4x faster at 64 x 52 (bench)
            torch._softmax(logits, 1, False, out=out)

    def _focal_row_scale(self, logits, probabilities, targets, row_scale) -> None:
        """batch_size * s_i * c_i for focal loss: c = (1-p)^gamma - gamma * p * (1-p)^(gamma-1) * log p, with p the
        probability of the true class (the derivative of -(1-p)^gamma log p through the softmax)."""
        gamma = self.terms.gamma
        log_p = logits.gather(1, targets) - torch.logsumexp(logits, 1, keepdim=True)
        p = probabilities.gather(1, targets)
        margin = (-torch.expm1(log_p)).clamp_min_(FOCAL_MIN_MARGIN)
        c = margin.pow(gamma - 1.0).mul_(torch.addcmul(margin, p, log_p, value=-gamma))
        if self.class_weights is not None:
            c.mul_(self.class_weights[targets])
        torch.mul(c, self.config.batch_size / len(logits), out=row_scale)


def train_head(
    head: nn.Linear,
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    val_features: torch.Tensor | None,
    val_labels: torch.Tensor | None,
    config: HeadConfig = HeadConfig(),
    loss: LossConfig = LossConfig(),
    seed: int = 0,
    order_for_epoch: Callable[[int], torch.Tensor] | None = None,
    logit_offset: torch.Tensor | None = None,
) -> HeadResult:
    """Retrain `head` (left unmodified) on cached features with a fresh Adam; keep the epoch with the best
    validation macro F1 and stop after `patience` epochs without improvement.

    Runs on the device the training features are on. The loss's class weights come from the training
    labels' counts, i.e. the distribution trained on. Each epoch visits the rows in
    `order_for_epoch(epoch)` (epochs count from 1; default: a shuffle of every row seeded by (seed, epoch)),
    so a class-balanced epoch plan trains through the same loop. logit_offset (C,): added to the logits
    in training only (balanced softmax), not in validation or the result. The starting head is evaluated
    as epoch 0 for the history but is never the result: phase 2 always returns a retrained head. Without
    validation data (None) every epoch runs and the last one is kept; best_val_macro_f1 is then NaN.
    """
    started = time.perf_counter()
    device = train_features.device
    train_labels = train_labels.to(device=device, dtype=torch.int64)
    check_inputs(head, train_features, train_labels, "training")
    has_val = val_features is not None and val_labels is not None and len(val_labels) > 0
    if has_val:
        check_inputs(head, val_features, val_labels, "validation")
    if len(train_labels) == 0:
        raise ValueError("no training features; phase 2 needs at least one labelled feature row")
    counts = torch.bincount(train_labels, minlength=head.out_features).cpu().numpy()
    terms = _loss_terms(loss, counts)
    if logit_offset is not None:
        terms = dataclasses.replace(terms, logit_offset=torch.as_tensor(logit_offset, dtype=torch.float32))
    val_loss_of = None
    if has_val:  # the run's loss (its class weights from the training counts) on the validation rows
        loss_fn = build_loss(loss, counts).to(device)
        val_rows, val_targets = val_features.to(device), val_labels.to(device=device, dtype=torch.int64)

        def val_loss_of(view: _FusedHead) -> float:
            return float(loss_fn(view.eval_logits(val_rows), val_targets))

    train_features = train_features.contiguous()
    move_to_huge_pages(train_features)  # every epoch gathers its rows in a fresh random order (huge_pages.py)
    # The cyclic GC off meanwhile: the loop makes no cycles, and its collections walked torch's objects (7 % of it).
    with torch_threads(config.num_threads, device), torch.no_grad(), cycle_collector(False):
        trainer = _FusedHead(head, config, terms, device)
        return fit_epochs(trainer, train_features, train_labels, val_features if has_val else None,
                          val_labels if has_val else None, config, seed, order_for_epoch, started, val_loss_of)
