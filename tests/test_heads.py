"""Phase-2 methods on cached features, each against a reference or a property: the fused loops against autograd,
the post-hoc methods at tau 0, NCM against scikit-learn, class-balanced epochs, seeding, the folded layers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

import camtrap_fast.train.heads.gradient as gradient
from camtrap_fast.errors import UserError
from camtrap_fast.losses import LossConfig
from camtrap_fast.train.head_config import PHASE2_METHODS, HeadConfig
from camtrap_fast.train.head_reference import train_head_reference, train_lws_reference
from camtrap_fast.train.head_training import _FusedHead, _LossTerms, train_head
from camtrap_fast.train.heads.contract import HeadInputs, linear_logits
from camtrap_fast.train.heads.gradient import balanced_epochs, balanced_softmax_offset, fresh_head
from camtrap_fast.train.heads.ncm import normalized_class_means
from camtrap_fast.train.heads.posthoc import TAU_GRID, log_priors
from camtrap_fast.train.heads.registry import METHODS, fit_method, parse_methods

N, D, C = 700, 24, 6
PRIORS = torch.tensor([0.5, 0.25, 0.12, 0.08, 0.04, 0.01])


def _split(count: int, generator: torch.Generator, centers: torch.Tensor, balanced: bool):
    labels = (torch.arange(count) % C if balanced else torch.multinomial(PRIORS, count, True, generator=generator))
    features = (centers[labels] + torch.randn(count, D, generator=generator)).relu()
    return features.to(torch.float16), labels


@pytest.fixture(scope="module")
def inputs() -> HeadInputs:
    generator = torch.Generator().manual_seed(0)
    centers = torch.randn(C, D, generator=generator) * 1.5
    train_x, train_y = _split(N, generator, centers, balanced=False)
    val_x, val_y = _split(180, generator, centers, balanced=True)
    torch.manual_seed(0)
    head = nn.Linear(D, C)
    # a phase-1 layer that has learnt something (on the imbalanced data), as the post-hoc methods assume
    trained = train_head(head, train_x, train_y, None, None, HeadConfig(epochs=3, patience=None, lr=1e-2))
    head.load_state_dict(trained.head_state)
    return HeadInputs(head, train_x, train_y, val_x, val_y, HeadConfig(epochs=4, patience=None, lr=3e-3),
                      LossConfig(), seed=3)


def _predict(fit, features):
    return linear_logits(fit.weight, fit.bias, features).argmax(1)


def test_registry_names_every_method_once():
    assert tuple(METHODS) == PHASE2_METHODS
    assert parse_methods("all") == PHASE2_METHODS and parse_methods(None) == PHASE2_METHODS
    assert parse_methods(" ncm,crt ") == ("ncm", "crt")
    for text, message in (("svm", "unknown method 'svm'"), ("ncm,ncm", "named twice"), (",", "unknown method")):
        with pytest.raises(UserError, match=message):
            parse_methods(text)


def test_tau_grid_is_zero_to_two_in_steps_of_five_hundredths():
    assert TAU_GRID[0] == 0 and TAU_GRID[-1] == 2 and len(TAU_GRID) == 41
    assert all(round(b - a, 10) == 0.05 for a, b in zip(TAU_GRID, TAU_GRID[1:]))


def test_tau_norm_at_tau_zero_is_the_layer_without_bias(inputs, monkeypatch):
    import camtrap_fast.train.heads.posthoc as posthoc

    monkeypatch.setattr(posthoc, "TAU_GRID", (0.0,))
    fit = fit_method("tau-norm", inputs)
    assert fit.value == 0.0
    torch.testing.assert_close(fit.weight, inputs.head.weight.detach(), rtol=0, atol=0)
    assert not fit.bias.any()
    expected = (inputs.val_features.float() @ inputs.head.weight.detach().T).argmax(1)
    assert torch.equal(_predict(fit, inputs.val_features), expected)


def test_tau_norm_rows_have_norm_to_the_one_minus_tau(inputs):
    fit = fit_method("tau-norm", inputs)
    norms = inputs.head.weight.detach().norm(dim=1)
    torch.testing.assert_close(fit.weight.norm(dim=1), norms.pow(1 - fit.value), rtol=1e-5, atol=1e-6)
    curve = dict(map(tuple, fit.details["tau_curve"]))
    assert list(curve) == list(TAU_GRID) and fit.val_macro_f1 == max(curve.values())
    assert fit.value == min(t for t, f1 in curve.items() if f1 == fit.val_macro_f1)  # ties: the smaller tau


def test_logit_adjust_at_tau_zero_is_argmax(inputs, monkeypatch):
    import camtrap_fast.train.heads.posthoc as posthoc

    monkeypatch.setattr(posthoc, "TAU_GRID", (0.0,))
    fit = fit_method("logit-adjust", inputs)
    assert torch.equal(_predict(fit, inputs.val_features), inputs.head(inputs.val_features.float()).argmax(1))


def test_logit_adjust_subtracts_tau_log_prior(inputs):
    fit = fit_method("logit-adjust", inputs)
    counts = torch.bincount(inputs.train_labels, minlength=C).double()
    expected = inputs.head.bias.detach() - fit.value * torch.log(counts / counts.sum()).float()
    torch.testing.assert_close(fit.bias, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(log_priors(counts.long()).exp().sum(), torch.tensor(1.0))


def test_ncm_equals_scikit_learn_nearest_centroid(inputs):
    from sklearn.neighbors import NearestCentroid

    def normalized(x):
        x = x.double()
        return (x / x.norm(dim=1, keepdim=True)).numpy()

    reference = NearestCentroid().fit(normalized(inputs.train_features), inputs.train_labels.numpy())
    means = normalized_class_means(inputs.train_features, inputs.train_labels, C)
    np.testing.assert_allclose(means.numpy(), reference.centroids_, rtol=0, atol=1e-6)
    # cosine to the mean = Euclidean distance between unit vectors: normalize the centroids as well
    reference.centroids_ = reference.centroids_ / np.linalg.norm(reference.centroids_, axis=1, keepdims=True)
    fit = fit_method("ncm", inputs)
    for features in (inputs.val_features, inputs.train_features):
        assert np.array_equal(_predict(fit, features).numpy(), reference.predict(normalized(features)))
    assert not fit.bias.any() and fit.parameter is None and fit.chosen == ""


def test_ncm_never_predicts_a_class_without_training_rows(inputs):
    labels = inputs.train_labels.clone()
    labels[labels == 5] = 4
    fit = fit_method("ncm", dataclasses.replace(inputs, train_labels=labels))
    assert (_predict(fit, inputs.val_features) != 5).all()


def test_balanced_epochs_are_exact_per_class(inputs):
    order_for_epoch, per_epoch = balanced_epochs(inputs.train_labels, C, seed=3)
    counts = np.bincount(inputs.train_labels.numpy(), minlength=C)
    assert (per_epoch == -(-N // C)).all()
    for epoch in (1, 2, 3):
        order = order_for_epoch(epoch)
        assert np.array_equal(np.bincount(inputs.train_labels[order].numpy(), minlength=C), per_epoch)
        # rare classes repeat their rows evenly: no row more than one copy above another of its class
        copies = np.bincount(order.numpy(), minlength=N)
        for c in range(C):
            member_copies = copies[inputs.train_labels.numpy() == c]
            assert member_copies.max() - member_copies.min() <= 1 and member_copies.sum() == per_epoch[c]
        assert counts[5] < per_epoch[5]  # the rarest class is oversampled
    assert not torch.equal(order_for_epoch(1), order_for_epoch(2))
    # a batch is balanced in expectation: positions are exchangeable, each class 1/C likely anywhere
    first = torch.stack([inputs.train_labels[order_for_epoch(e)[:64]] for e in range(1, 201)])
    shares = np.bincount(first.flatten().numpy(), minlength=C) / first.numel()
    assert np.abs(shares - 1 / C).max() < 0.02


@pytest.mark.parametrize("method", ["crt", "lws"])
def test_crt_and_lws_train_on_class_balanced_epochs(inputs, monkeypatch, method):
    seen = []
    real = gradient.balanced_epochs

    def recording(labels, num_classes, seed):
        order_for_epoch, per_epoch = real(labels, num_classes, seed)

        def record(epoch):
            order = order_for_epoch(epoch)
            seen.append(np.bincount(labels[order].numpy(), minlength=num_classes))
            return order

        return record, per_epoch

    import camtrap_fast.train.heads.lws as lws

    monkeypatch.setattr(gradient if method == "crt" else lws, "balanced_epochs", recording)
    fit = fit_method(method, inputs)
    assert len(seen) == inputs.config.epochs
    for counts in seen:  # per-class counts per epoch exact (the brief allows +-1)
        assert np.abs(counts - counts.mean()).max() <= 1
    assert fit.epoch_counts == tuple(seen[0].tolist())


def test_crt_is_train_head_from_a_fresh_layer_on_balanced_epochs(inputs):
    order_for_epoch, _ = balanced_epochs(inputs.train_labels, C, inputs.seed)
    head = fresh_head(D, C, inputs.seed)
    bound = 1 / D ** 0.5
    assert head.weight.abs().max() <= bound and head.bias.abs().max() <= bound
    assert torch.equal(head.weight, fresh_head(D, C, inputs.seed).weight)
    reference, _ = train_head_reference(head, inputs.train_features, inputs.train_labels, inputs.config,
                                        inputs.config.epochs, order_for_epoch=order_for_epoch)
    fit = fit_method("crt", inputs)
    torch.testing.assert_close(fit.weight, reference["weight"], rtol=0, atol=1e-5)
    torch.testing.assert_close(fit.bias, reference["bias"], rtol=0, atol=1e-5)


def test_balanced_softmax_gradient_equals_autograd(inputs):
    """One fused step's closed-form gradient against autograd of cross-entropy on logits + log n_y."""
    head = inputs.head
    counts = inputs.train_counts()
    offset = balanced_softmax_offset(counts)
    config = HeadConfig(batch_size=N, epochs=1)
    trainer = _FusedHead(head, config, _LossTerms(logit_offset=offset), torch.device("cpu"))
    order = torch.arange(N)
    trainer.train_epoch(inputs.train_features, inputs.train_labels, order, inputs.train_labels[order])
    fused = trainer.grad_w[:, : D + 1] / N  # kept batch_size times the loss's gradient

    model = nn.Linear(D, C)
    model.load_state_dict(head.state_dict())
    loss = nn.functional.cross_entropy(model(inputs.train_features.float()) + offset, inputs.train_labels)
    loss.backward()
    torch.testing.assert_close(fused[:, :D], model.weight.grad, rtol=0, atol=1e-6)
    torch.testing.assert_close(fused[:, D], model.bias.grad, rtol=0, atol=1e-6)
    plain = nn.functional.cross_entropy(head(inputs.train_features.float()), inputs.train_labels)
    assert not torch.allclose(torch.autograd.grad(plain, head.bias)[0], model.bias.grad)  # the offset matters


def test_balanced_softmax_training_matches_autograd_and_predicts_plain_logits(inputs):
    offset = balanced_softmax_offset(inputs.train_counts())
    assert torch.allclose(offset, torch.log(inputs.train_counts().float()))
    reference, losses = train_head_reference(inputs.head, inputs.train_features, inputs.train_labels, inputs.config,
                                             inputs.config.epochs, seed=inputs.seed, logit_offset=offset)
    no_val = dataclasses.replace(inputs, val_features=None, val_labels=None)
    fit = fit_method("balanced-softmax", no_val)
    torch.testing.assert_close(fit.weight, reference["weight"], rtol=0, atol=1e-5)
    torch.testing.assert_close(fit.bias, reference["bias"], rtol=0, atol=1e-5)  # plain bias, offset taken out
    fused_losses = [record["train_loss"] for record in fit.details["head_history"][1:]]
    assert fused_losses == pytest.approx(losses, abs=1e-5)


@pytest.mark.parametrize("public_ops", [False, True], ids=["private-ops", "public-ops"])
def test_lws_matches_autograd(inputs, public_ops):
    config = dataclasses.replace(inputs.config, public_ops=public_ops, batch_size=64)
    order_for_epoch, _ = balanced_epochs(inputs.train_labels, C, inputs.seed)
    reference, losses = train_lws_reference(inputs.head, inputs.train_features, inputs.train_labels, config,
                                            config.epochs, order_for_epoch=order_for_epoch)
    fit = fit_method("lws", dataclasses.replace(inputs, config=config, val_features=None, val_labels=None))
    torch.testing.assert_close(torch.tensor(fit.details["scales"]), reference["scales"], rtol=0, atol=1e-5)
    torch.testing.assert_close(fit.weight, reference["weight"], rtol=0, atol=1e-5)
    torch.testing.assert_close(fit.bias, reference["bias"], rtol=0, atol=1e-5)
    assert [r["train_loss"] for r in fit.details["head_history"][1:]] == pytest.approx(losses, abs=1e-5)
    # the folded layer: each class's row and bias times its scale
    scales = reference["scales"]
    torch.testing.assert_close(fit.weight, inputs.head.weight.detach() * scales[:, None], rtol=1e-6, atol=1e-6)


def test_retrain_is_the_study_phase_two(inputs):
    result = train_head(inputs.head, inputs.train_features, inputs.train_labels, inputs.val_features,
                        inputs.val_labels, inputs.config, inputs.loss, inputs.seed)
    fit = fit_method("retrain", inputs)
    assert torch.equal(fit.weight, result.head_state["weight"]) and torch.equal(fit.bias, result.head_state["bias"])
    assert fit.value == result.best_epoch and fit.chosen == f"epoch {result.best_epoch}"
    assert fit.epoch_counts == tuple(inputs.train_counts().tolist())


@pytest.mark.parametrize("method", PHASE2_METHODS)
def test_every_method_is_seeded(inputs, method):
    first, again = fit_method(method, inputs), fit_method(method, inputs)
    assert torch.equal(first.weight, again.weight) and torch.equal(first.bias, again.bias)
    other = fit_method(method, dataclasses.replace(inputs, seed=inputs.seed + 1))
    if method in ("retrain", "crt", "lws", "balanced-softmax"):  # the seed draws their epochs (and cRT's init)
        assert not torch.equal(first.weight, other.weight)
    else:  # nothing random to draw
        assert torch.equal(first.weight, other.weight)
    assert first.weight.shape == (C, D) and first.bias.shape == (C,) and first.seconds > 0
    nn.Linear(D, C).load_state_dict(first.head_state)


def test_methods_rebalance_toward_rare_classes(inputs):
    """Not a reference test, a sanity check: on long-tailed data every rebalancing method predicts the rare
    classes at least as often as retraining on the original data does."""
    config = dataclasses.replace(inputs.config, epochs=10)
    trained = dataclasses.replace(inputs, config=config)
    retrain = fit_method("retrain", trained)
    start = dataclasses.replace(trained, head=_as_linear(retrain))
    rare = lambda fit: int((_predict(fit, inputs.val_features) >= 4).sum())  # noqa: E731
    for method in ("crt", "tau-norm", "lws", "ncm", "logit-adjust", "balanced-softmax"):
        assert rare(fit_method(method, start)) >= rare(retrain), method


def _as_linear(fit) -> nn.Linear:
    layer = nn.Linear(D, C)
    layer.load_state_dict(fit.head_state)
    return layer
