"""Losses: focal loss reduces to cross-entropy, class-weight normalizations, configuration errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from camtrap_fast.losses import FocalLoss, LossConfig, build_loss, class_weight_vector


def make_loss(name="ce", class_counts=None, **options):
    return build_loss(LossConfig(name, **options), class_counts)

COUNTS = np.array([48377, 3920, 470, 88, 8, 1])


def test_focal_with_gamma_0_is_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(64, 6) * 3
    target = torch.randint(0, 6, (64,))
    loss = make_loss("focal", COUNTS, focal_gamma=0.0, focal_alpha=None)(logits, target)
    torch.testing.assert_close(loss, F.cross_entropy(logits, target), rtol=1e-6, atol=1e-7)


def test_focal_matches_its_formula():
    torch.manual_seed(1)
    logits = torch.randn(32, 6)
    target = torch.randint(0, 6, (32,))
    alpha = class_weight_vector(COUNTS)
    p_t = torch.softmax(logits, 1)[torch.arange(32), target]
    expected = (-alpha[target] * (1 - p_t) ** 2 * torch.log(p_t)).mean()  # mean over the batch, not over alpha
    loss = make_loss("focal", COUNTS, focal_gamma=2.0, focal_alpha="inverse-frequency")(logits, target)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-7)


def test_constant_alpha_scales_the_loss():
    logits, target = torch.randn(8, 6), torch.randint(0, 6, (8,))
    plain = make_loss("focal", COUNTS)(logits, target)
    scaled = make_loss("focal", COUNTS, focal_alpha=0.25)(logits, target)
    torch.testing.assert_close(scaled, 0.25 * plain)


def test_focal_gradient_is_finite_when_confident():
    logits = torch.tensor([[60.0, 0.0, 0.0]], requires_grad=True)  # p_t == 1 in float32
    FocalLoss(gamma=0.5)(logits, torch.tensor([0])).backward()
    assert torch.isfinite(logits.grad).all()


def test_inverse_frequency_mean_weight_over_training_distribution_is_one():
    weights = class_weight_vector(COUNTS, "inverse-frequency").double().numpy()
    assert (COUNTS * weights).sum() / COUNTS.sum() == pytest.approx(1.0, rel=1e-6)
    assert weights[-1] / weights[0] == pytest.approx(48377, rel=1e-6)


def test_effective_number_weights_sum_to_num_classes():
    weights = class_weight_vector(COUNTS, "effective-number", beta=0.999).double().numpy()
    assert weights.sum() == pytest.approx(len(COUNTS), rel=1e-6)
    raw = (1 - 0.999) / (1 - 0.999 ** COUNTS)
    np.testing.assert_allclose(weights / weights[0], raw / raw[0], rtol=1e-5)
    np.testing.assert_allclose(class_weight_vector(COUNTS, "effective-number", beta=0.0).numpy(), 1.0)


def test_classes_without_training_images_get_weight_zero():
    counts = np.array([100, 0, 10, 0])
    for scheme in ("inverse-frequency", "effective-number"):
        weights = class_weight_vector(counts, scheme).double().numpy()
        assert weights[1] == 0 and weights[3] == 0 and (weights[[0, 2]] > 0).all()
    inverse = class_weight_vector(counts, "inverse-frequency").double().numpy()
    assert (counts * inverse).sum() / counts.sum() == pytest.approx(1.0)
    assert class_weight_vector(counts, "effective-number").sum().item() == pytest.approx(2.0)  # classes with images


def test_weighted_ce_is_torch_cross_entropy_with_weights():
    loss = make_loss("weighted-ce", COUNTS, class_weights="effective-number", beta=0.99)
    assert isinstance(loss, nn.CrossEntropyLoss)
    torch.testing.assert_close(loss.weight, class_weight_vector(COUNTS, "effective-number", 0.99))
    assert make_loss("ce").weight is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "hinge"}, "unknown loss"),
        ({"name": "focal", "focal_gamma": -1}, "focal_gamma"),
        ({"name": "focal", "focal_alpha": "sqrt"}, "focal_alpha"),
        ({"name": "focal", "focal_alpha": 0}, "focal_alpha"),
        ({"name": "weighted-ce", "class_weights": "median"}, "class_weights"),
        ({"name": "weighted-ce", "beta": 1.0}, "beta"),
    ],
)
def test_bad_configs_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_loss(class_counts=COUNTS, **kwargs)


def test_weighting_needs_counts():
    with pytest.raises(ValueError, match="class_counts"):
        make_loss("weighted-ce")
    with pytest.raises(ValueError, match="all 0"):
        class_weight_vector([0, 0])
    assert LossConfig("focal").per_class_weights(None) is None
