"""Sigmoid focal loss (TF Addons' SigmoidFocalCrossEntropy): loss and gradient against a NumPy transcription of
the published formula, alpha changing training (unlike softmax focal loss's scalar alpha), and the fused phase-2
loop equal to the plain autograd loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from camtrap_fast.errors import ConfigError
from camtrap_fast.losses import (LossConfig, SigmoidFocalLoss, build_loss, sigmoid_focal_dlogits,
                                 sigmoid_focal_per_sample)
from camtrap_fast.train.head_config import HeadConfig
from camtrap_fast.train.head_reference import train_head_reference
from camtrap_fast.train.head_training import train_head


def tfa_sigmoid_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=True):
    """tensorflow_addons/losses/focal_loss.py `sigmoid_focal_crossentropy`, line by line, in NumPy (float64)."""
    # ce = K.binary_crossentropy(y_true, y_pred, from_logits=True): tf.nn.sigmoid_cross_entropy_with_logits
    ce = np.maximum(y_pred, 0) - y_pred * y_true + np.log1p(np.exp(-np.abs(y_pred)))
    pred_prob = 1 / (1 + np.exp(-y_pred)) if from_logits else y_pred
    p_t = (y_true * pred_prob) + ((1 - y_true) * (1 - pred_prob))
    alpha_factor = 1.0
    modulating_factor = 1.0
    if alpha:
        alpha_factor = y_true * alpha + (1 - y_true) * (1 - alpha)
    if gamma:
        modulating_factor = np.power((1.0 - p_t), gamma)
    return np.sum(alpha_factor * modulating_factor * ce, axis=-1)


def numeric_gradient(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        grad[index] = (f(up) - f(down)) / (2 * h)
    return grad


GRID = [(None, 0.0), (0.25, 2.0), (0.5, 0.5), (0.25, 1.0), (0.5, 5.0), (0.9, 2.0)]


@pytest.mark.parametrize("alpha, gamma", GRID)
def test_loss_and_gradient_match_the_published_formula(alpha, gamma):
    rng = np.random.default_rng(int(gamma * 10) + (0 if alpha is None else int(alpha * 100)))
    logits = rng.normal(0, 3, (9, 5))
    target = rng.integers(0, 5, 9)
    y_true = np.eye(5)[target]

    def expected_loss(z):  # the batch mean of TF Addons' per-sample loss
        return tfa_sigmoid_focal_crossentropy(y_true, z, alpha, gamma).mean()

    z = torch.tensor(logits, dtype=torch.float32, requires_grad=True)
    t = torch.as_tensor(target)
    alpha_vector = None if alpha is None else torch.full((5,), alpha)
    per_sample = sigmoid_focal_per_sample(z, t, gamma, alpha_vector)
    np.testing.assert_allclose(per_sample.detach().numpy(), tfa_sigmoid_focal_crossentropy(y_true, logits, alpha, gamma),
                               rtol=2e-5, atol=1e-6)
    loss = build_loss(LossConfig("sigmoid-focal", focal_gamma=gamma, focal_alpha=alpha), np.ones(5))
    assert isinstance(loss, SigmoidFocalLoss)
    value = loss(z, t)
    assert value.item() == pytest.approx(expected_loss(logits), rel=2e-5)
    value.backward()
    numeric = numeric_gradient(expected_loss, logits)
    np.testing.assert_allclose(z.grad.numpy(), numeric, rtol=1e-4, atol=1e-6)  # phase 1: autograd
    closed = sigmoid_focal_dlogits(z.detach(), t, gamma, alpha_vector) / len(target)
    np.testing.assert_allclose(closed.numpy(), numeric, rtol=1e-4, atol=1e-6)  # phase 2: the closed form


def test_per_class_alpha_is_tf_addons_alpha_column_by_column():
    rng = np.random.default_rng(3)
    logits, target = rng.normal(0, 2, (6, 3)), rng.integers(0, 3, 6)
    y_true = np.eye(3)[target]
    alphas = (0.1, 0.5, 0.8)
    expected = sum(tfa_sigmoid_focal_crossentropy(y_true[:, [c]], logits[:, [c]], alphas[c], 2.0) for c in range(3))
    loss = build_loss(LossConfig("sigmoid-focal", focal_alpha=alphas), np.ones(3))
    assert loss(torch.tensor(logits, dtype=torch.float32), torch.as_tensor(target)).item() == pytest.approx(
        expected.mean(), rel=1e-5)


def test_extreme_logits_stay_finite():
    z = torch.tensor([[80.0, -80.0, 0.0], [-120.0, 120.0, 30.0]], requires_grad=True)
    t = torch.tensor([0, 0])
    loss = SigmoidFocalLoss(gamma=0.5, alpha=torch.full((3,), 0.25))(z, t)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
    assert torch.isfinite(sigmoid_focal_dlogits(z.detach(), t, 0.5, torch.full((3,), 0.25))).all()


@pytest.mark.parametrize("alpha, message", [(0, "leave it out"), (1.5, r"\(0, 1\]"), ("inverse-frequency", "sigmoid"),
                                            ((0.2, 1.2), r"\[0, 1\]")])
def test_bad_alphas_are_refused(alpha, message):
    with pytest.raises(ConfigError, match=message):
        LossConfig("sigmoid-focal", focal_alpha=alpha)


def _head_problem(seed=0, n=640, d=16, c=5):
    torch.manual_seed(seed)
    labels = torch.multinomial(torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03]), n, replacement=True)
    features = torch.randn(c, d)[labels] + torch.randn(n, d)
    return features, labels, nn.Linear(d, c)


def _movement_and_difference(name, first, second, steps_epochs=8):
    """How far training moved the head, and how far apart two alphas left it (the fused phase-2 loop)."""
    features, labels, head = _head_problem()
    config = HeadConfig(epochs=steps_epochs, batch_size=64, patience=None, lr=3e-3)
    a = train_head(head, features, labels, None, None, config, LossConfig(name, focal_gamma=2.0, focal_alpha=first))
    b = train_head(head, features, labels, None, None, config, LossConfig(name, focal_gamma=2.0, focal_alpha=second))
    moved = (a.head_state["weight"] - head.weight.detach()).norm()
    return float(moved), float((a.head_state["weight"] - b.head_state["weight"]).norm())


def test_alpha_changes_training_unlike_softmax_focal():
    moved, apart = _movement_and_difference("sigmoid-focal", 0.25, 0.5)
    assert apart > 0.1 * moved  # alpha trades positives against negatives: a different head
    moved_softmax, apart_softmax = _movement_and_difference("focal", 0.25, 0.5)
    assert apart_softmax < 0.01 * moved_softmax  # a constant factor: Adam all but ignores it (the finding)


def test_alpha_changes_phase1_training():
    """Phase 1 trains through autograd on the module: alpha changes what a few Adam steps do to a model."""
    features, labels, _ = _head_problem(1, n=256)
    results = []
    for alpha in (0.25, 0.5):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 5))
        start = [p.detach().clone() for p in model.parameters()]
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        loss_fn = build_loss(LossConfig("sigmoid-focal", focal_gamma=1.0, focal_alpha=alpha), np.ones(5))
        for batch in torch.arange(256).split(32):
            optimizer.zero_grad()
            loss_fn(model(features[batch]), labels[batch]).backward()
            optimizer.step()
        results.append(torch.cat([(p.detach() - s).flatten() for p, s in zip(model.parameters(), start)]))
    assert (results[0] - results[1]).norm() > 0.1 * results[0].norm()


FUSED_CASES = [LossConfig("sigmoid-focal", focal_gamma=2.0, focal_alpha=0.25),
               LossConfig("sigmoid-focal", focal_gamma=0.0),
               LossConfig("sigmoid-focal", focal_gamma=0.5, focal_alpha=(0.1, 0.3, 0.5, 0.7, 0.9)),
               LossConfig("sigmoid-focal", focal_gamma=5.0, focal_alpha=0.5)]


@pytest.mark.parametrize("loss", FUSED_CASES, ids=lambda c: f"g{c.focal_gamma}-a{c.focal_alpha}")
@pytest.mark.parametrize(("compiled", "public_ops"), [(True, False), (False, False), (False, True)],
                         ids=["compiled", "private-ops", "public-ops"])
def test_fused_loop_matches_reference_loop(loss, compiled, public_ops, monkeypatch):
    """The compiled steps (train/headloop.c's sigmoid_focal_row) and the torch steps (losses.sigmoid_focal_dlogits)."""
    import camtrap_fast.train.head_training as head_training

    monkeypatch.setattr(head_training, "COMPILED_LOOP", compiled)
    features, labels, head = _head_problem(2, n=700)  # 700 rows: a short last batch of 60
    config = HeadConfig(epochs=3, batch_size=64, patience=None, lr=3e-3, public_ops=public_ops)
    reference, reference_losses = train_head_reference(head, features, labels, config, epochs=3, loss=loss)
    result = train_head(head, features, labels, None, None, config, loss)
    torch.testing.assert_close(result.head_state["weight"], reference["weight"], rtol=0, atol=1e-5)
    torch.testing.assert_close(result.head_state["bias"], reference["bias"], rtol=0, atol=1e-5)
    assert [r.train_loss for r in result.history[1:]] == pytest.approx(reference_losses, abs=1e-5)
