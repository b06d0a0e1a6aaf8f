"""Phase-2 head training: the fused loop equals the plain nn.Linear + Adam loop; early stopping keeps the best."""

from __future__ import annotations

import shutil
import threading

import pytest
import torch
from torch import nn

import camtrap_fast.train.head_epochs as epochs_module
import camtrap_fast.train.head_training as head_module
from camtrap_fast.losses import LossConfig
from camtrap_fast.model import split_backbone_head
from camtrap_fast.train.features import extract_features
from camtrap_fast.train import headloop
from camtrap_fast.train.head_config import HeadConfig
from camtrap_fast.train.head_reference import train_head_reference
from camtrap_fast.train.head_training import train_head

N, D, C = 700, 24, 6


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    labels = torch.multinomial(torch.tensor([0.5, 0.25, 0.12, 0.08, 0.04, 0.01]), N, replacement=True)
    features = torch.randn(C, D)[labels] + torch.randn(N, D)
    val_labels = torch.arange(120) % C
    val_features = torch.randn(C, D)[val_labels] + torch.randn(120, D)
    return features, labels, val_features, val_labels, nn.Linear(D, C)


LOSSES = [
    LossConfig(),
    LossConfig("weighted-ce"),
    LossConfig("weighted-ce", class_weights="effective-number", beta=0.99),
    LossConfig("focal", focal_gamma=2.0),
    LossConfig("focal", focal_gamma=0.0, focal_alpha="inverse-frequency"),
    LossConfig("focal", focal_gamma=0.5, focal_alpha=0.25),
]


# The fused loop three ways: its compiled steps (train/headloop.c, the default where built), its torch steps with
# the private ops, and with the public ops.
LOOPS = [(True, False), (False, False), (False, True)]


def test_the_compiled_loop_is_built_and_loads():
    """Where a C compiler exists, `make setup` has built it; a missing build would silently cost 2-3x."""
    if shutil.which("cc") is None and not headloop.LIBRARY.is_file():
        pytest.skip("no C compiler: the torch loop is the one in use")
    assert headloop.load() is not None, f"{headloop.LIBRARY} missing or failing its self-check: run make setup"


def test_missing_isa_names_what_the_running_cpu_lacks():
    assert headloop.missing_isa(0b1001, {"avx", "sse2"}) == ["avx512f"]
    assert headloop.missing_isa(0b0111, {"avx", "avx2", "fma"}) == []
    assert headloop.missing_isa(0b1111, None) == []  # flags unreadable: nothing to compare


def test_a_build_for_another_cpu_falls_back_to_the_torch_loop(monkeypatch, caplog):
    """Built on a newer machine than this one (a shared folder on a cluster): a warning and the torch loop, not
    SIGILL on the first AVX-512 instruction."""
    if not headloop.LIBRARY.is_file():
        pytest.skip("the compiled loop is not built here (test_the_compiled_loop_is_built_and_loads says why)")
    monkeypatch.setattr(headloop, "missing_isa", lambda built, flags: ["avx512f"])
    headloop.load.cache_clear()
    try:
        with caplog.at_level("WARNING", logger=headloop.__name__):
            assert headloop.load() is None
        assert "avx512f, which this one lacks" in caplog.text and "make setup" in caplog.text
    finally:
        headloop.load.cache_clear()


@pytest.mark.parametrize("loss", LOSSES, ids=lambda c: f"{c.name}-g{c.focal_gamma}-{c.focal_alpha}-{c.class_weights}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("compiled", "public_ops"), LOOPS, ids=["compiled", "private-ops", "public-ops"])
def test_fused_matches_reference(problem, loss, dtype, compiled, public_ops, monkeypatch):
    features, labels, _, _, head = problem
    features = features.to(dtype)
    monkeypatch.setattr(head_module, "COMPILED_LOOP", compiled)
    config = HeadConfig(epochs=3, batch_size=64, patience=None, lr=3e-3, public_ops=public_ops)
    reference, reference_losses = train_head_reference(head, features, labels, config, epochs=3, loss=loss)
    result = train_head(head, features, labels, None, None, config, loss)
    assert result.best_epoch == 3
    torch.testing.assert_close(result.head_state["weight"], reference["weight"], rtol=0, atol=1e-5)
    torch.testing.assert_close(result.head_state["bias"], reference["bias"], rtol=0, atol=1e-5)
    fused_losses = [record.train_loss for record in result.history[1:]]
    assert fused_losses == pytest.approx(reference_losses, abs=1e-5)


@pytest.mark.parametrize("patience", [None, 1], ids=["every-epoch", "early-stop"])
def test_validation_on_a_helper_thread_keeps_the_epoch_and_history_of_validating_in_turn(problem, monkeypatch,
                                                                                         patience):
    """fit_epochs validates epoch e on a helper thread while e + 1 trains (one core spare), and works out e + 1's
    order there while e trains; the starting head (epoch 0) validates there too, while epoch 1 trains, and the last
    epoch, which nothing trains beside, on the training thread. The epoch kept, its weights and every history value
    but the seconds are those of validating each epoch before the next."""
    if headloop.load() is None:
        pytest.skip("the compiled loop is not built here (test_the_compiled_loop_is_built_and_loads says why)")
    features, labels, val_features, val_labels, head = problem
    config = HeadConfig(epochs=10, patience=patience, lr=3e-2, num_threads=None)
    results, snapshots, frozen = {}, [], head_module._FusedHead.frozen
    monkeypatch.setattr(head_module._FusedHead, "frozen", lambda self: snapshots.append(1) or frozen(self))
    orders, shuffled_order = [], epochs_module.shuffled_order
    monkeypatch.setattr(epochs_module, "shuffled_order", lambda n, seed, epoch: orders.append(
        (epoch, threading.current_thread() is threading.main_thread())) or shuffled_order(n, seed, epoch))
    validated_on_main, evaluate = [], epochs_module._evaluate
    monkeypatch.setattr(epochs_module, "_evaluate", lambda *args: validated_on_main.append(
        threading.current_thread() is threading.main_thread()) or evaluate(*args))
    for cores in (1, 2):  # 1: no core to spare, validation in turn; 2: on the helper thread
        monkeypatch.setattr(headloop, "usable_cores", lambda cores=cores: cores)
        orders.clear()
        validated_on_main.clear()
        results[cores] = train_head(head, features, labels, val_features, val_labels, config)
        if cores == 1:
            assert all(validated_on_main)
        else:  # the starting head's and every epoch's on the helper, but the last one's where it came to the end
            last_on_main = len(validated_on_main) == config.epochs + 1
            assert validated_on_main == [False] * (len(validated_on_main) - last_on_main) + [True] * last_on_main
        assert bool(snapshots) == (cores == 2)
        trained = len(results[cores].history) - 1  # pipelined: one more epoch may have trained, and been dropped
        assert [epoch for epoch, _ in orders][:trained] == list(range(1, trained + 1))  # each epoch's once, in turn
        assert [on_main for epoch, on_main in orders if epoch > 1] == [cores == 1] * (len(orders) - 1)
    sequential, pipelined = results[1], results[2]
    assert pipelined.best_epoch == sequential.best_epoch
    for name in ("weight", "bias"):
        assert torch.equal(pipelined.head_state[name], sequential.head_state[name])
    drop_seconds = [(r.epoch, r.train_loss, r.val_macro_f1, r.val_accuracy, r.val_loss) for r in sequential.history]
    assert [(r.epoch, r.train_loss, r.val_macro_f1, r.val_accuracy, r.val_loss) for r in pipelined.history] \
        == drop_seconds
    if patience is not None:
        assert len(sequential.history) - 1 < config.epochs, "the early-stop case should stop early"


@pytest.mark.parametrize("bias", [1.0, 0.1], ids=["fp16-rows", "fp32-rows"])
def test_the_benchmarks_matmul_only_loop_times_the_matmuls_and_changes_no_weight(bias):
    """headloop_matmuls_timed (bench/phase2_head.py's limit): the steps' gather and matmuls without the loss or Adam;
    it returns the matmuls' seconds and leaves theta as it was, and an index outside the rows is refused. Every step
    reads the first batch of dlogits, class-major as the softmax steps lay it out. fp16 features are read as fp16
    rows with the inputs' bias column converted, which only an exact fp16 value allows (0.1 is not one: fp32 rows)."""
    loop = headloop.load()
    if loop is None:
        pytest.skip("the compiled loop is not built here (test_the_compiled_loop_is_built_and_loads says why)")
    features, width, classes = torch.randn(300, 40).half(), 48, 5
    inputs, theta = torch.zeros(128, width), torch.randn(classes * width)
    inputs[:, 40] = bias  # the bias input (_FusedHead's is 1)
    logits, dlogits, grad = torch.empty(128, classes), torch.randn(128, classes), torch.empty(classes * width)
    before, index = theta.clone(), torch.randperm(300)[:128]
    seconds = loop.matmuls_timed(features, index, inputs, logits, dlogits, theta, grad, 128, 64, 1)
    assert 0 < seconds < 1
    assert torch.equal(theta, before)
    # grad holds the last step's: its rows are features[index[64:]] (fp16 rows are read as they are, not via inputs),
    # against the softmax's class-major layout: row i, class c of a step's dlogits at c * batch + i
    class_major = dlogits.flatten()[:classes * 64].view(classes, 64)
    torch.testing.assert_close(grad.view(classes, width)[:, :40], class_major @ features[index[64:]].float())
    torch.testing.assert_close(grad.view(classes, width)[:, 40], bias * class_major.sum(1))
    with pytest.raises(IndexError):
        loop.matmuls_timed(features, torch.tensor([0, 300]), inputs, logits, dlogits, theta, grad, 2, 64, 1)


def test_a_build_that_cannot_widen_fp16_trains_fp16_features_from_a_torch_gather(problem, monkeypatch):
    """A library built for an x86 without F16C gathers fp32 only: fp16 features then take torch's gather into the
    chunk buffer, and the compiled steps train on it."""
    loop = headloop.load()
    if loop is None:
        pytest.skip("the compiled loop is not built here (test_the_compiled_loop_is_built_and_loads says why)")
    features, labels, _, _, head = problem
    features = features.half()
    config = HeadConfig(epochs=2, batch_size=64, patience=None)
    expected = train_head(head, features, labels, None, None, config)
    monkeypatch.setattr(loop, "gather_dtypes", (torch.float32,))
    assert not loop.gathers(features)
    result = train_head(head, features, labels, None, None, config)
    torch.testing.assert_close(result.head_state["weight"], expected.head_state["weight"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "torch"])
def test_partial_chunks_and_batches(problem, monkeypatch, compiled):
    features, labels, _, _, head = problem
    monkeypatch.setattr(head_module, "COMPILED_LOOP", compiled)
    monkeypatch.setattr(head_module, "CHUNK_BATCHES", 3)  # 700 rows: chunks of 192, 192, 192, 124 (64 + 60)
    config = HeadConfig(epochs=2, batch_size=64, patience=None)
    reference, _ = train_head_reference(head, features, labels, config, epochs=2, loss=LossConfig("weighted-ce"))
    result = train_head(head, features, labels, None, None, config, LossConfig("weighted-ce"))
    torch.testing.assert_close(result.head_state["weight"], reference["weight"], rtol=0, atol=1e-5)


def test_private_and_public_ops_give_identical_heads(problem, monkeypatch):
    """The torch loop's private kernels against the public ops (the compiled loop's exp and BLAS calls round
    differently, so it is held to the reference at 1e-5 above instead)."""
    features, labels, val_features, val_labels, head = problem
    monkeypatch.setattr(head_module, "COMPILED_LOOP", False)
    loss = LossConfig("focal", focal_alpha="inverse-frequency")
    private = train_head(head, features, labels, val_features, val_labels, HeadConfig(epochs=2), loss)
    public = train_head(head, features, labels, val_features, val_labels, HeadConfig(epochs=2, public_ops=True), loss)
    torch.testing.assert_close(public.head_state["weight"], private.head_state["weight"], rtol=0, atol=0)


def test_custom_epoch_orders_are_followed(problem):
    features, labels, _, _, head = problem
    config = HeadConfig(epochs=2, patience=None)
    order = torch.arange(len(labels)).flip(0)
    result = train_head(head, features, labels, None, None, config, order_for_epoch=lambda epoch: order)
    default = train_head(head, features, labels, None, None, config)
    assert not torch.equal(result.head_state["weight"], default.head_state["weight"])
    # the same order as the default's draws the same head
    same = train_head(head, features, labels, None, None, config,
                      order_for_epoch=lambda epoch: head_module.shuffled_order(len(labels), 0, epoch))
    torch.testing.assert_close(same.head_state["weight"], default.head_state["weight"], rtol=0, atol=0)


def test_early_stopping_keeps_the_best_epoch(problem, monkeypatch):
    features, labels, val_features, val_labels, head = problem
    scripted = iter([0.2, 0.5, 0.7, 0.6, 0.65, 0.69, 0.9])  # epoch 0 (the start), 1, 2, ...
    monkeypatch.setattr(epochs_module, "_evaluate", lambda *_: (next(scripted), 0.5))
    config = HeadConfig(epochs=10, patience=3, lr=3e-3)
    result = train_head(head, features, labels, val_features, val_labels, config)
    assert [r.epoch for r in result.history] == [0, 1, 2, 3, 4, 5]  # stopped 3 epochs after the best
    assert result.best_epoch == 2 and result.best_val_macro_f1 == 0.7
    after_two, _ = train_head_reference(head, features, labels, config, epochs=2)
    torch.testing.assert_close(result.head_state["weight"], after_two["weight"], rtol=0, atol=1e-5)


def test_real_validation_and_history(problem):
    features, labels, val_features, val_labels, head = problem
    before = head.weight.detach().clone()
    result = train_head(head, features, labels, val_features, val_labels, HeadConfig(epochs=4, patience=None, lr=1e-2))
    torch.testing.assert_close(head.weight.detach(), before, rtol=0, atol=0)  # the given head is not modified
    assert len(result.history) == 5 and result.history[0].train_loss is None
    assert result.best_val_macro_f1 == max(r.val_macro_f1 for r in result.history[1:])
    assert result.best_val_macro_f1 > result.history[0].val_macro_f1  # random start vs trained
    assert result.head_state["weight"].shape == (C, D) and result.seconds > 0
    nn.Linear(D, C).load_state_dict(result.head_state)
    # the validation loss beside the macro F1: cross-entropy of each epoch's head on the validation rows
    final = nn.Linear(D, C)
    final.load_state_dict(result.head_state)
    last = result.history[result.best_epoch]
    expected = nn.functional.cross_entropy(final(val_features), val_labels).item()
    assert last.val_loss == pytest.approx(expected, rel=1e-5)
    assert all(r.val_loss is not None for r in result.history)


def test_bad_inputs(problem):
    features, labels, _, _, head = problem
    with pytest.raises(ValueError, match="N x 24"):
        train_head(head, features[:, :5], labels, None, None)
    with pytest.raises(ValueError, match="class indices"):
        train_head(head, features, labels + C, None, None)
    with pytest.raises(ValueError, match="patience"):
        HeadConfig(patience=0)


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Dropout(0.5))
        self.fc = nn.Linear(8, 3)

    def forward(self, inputs):
        return self.fc(self.body(inputs))


def test_extract_features():
    model = TinyNet().train()
    backbone, head = split_backbone_head(model)
    batches = [(torch.randn(2, 3, 16, 16), torch.tensor([0, 2])), (torch.randn(1, 3, 16, 16), [1])]
    features, labels = extract_features(backbone, batches, "cpu", prepare=lambda x: x * 2)
    assert features.shape == (3, 8) and features.dtype == torch.float16
    assert labels.tolist() == [0, 2, 1] and model.training  # eval only while extracting
    with torch.no_grad():
        expected = backbone.eval()(batches[0][0] * 2)  # eval: BatchNorm running stats, no dropout
    torch.testing.assert_close(features[:2].float(), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "torch"])
def test_an_order_outside_the_rows_is_refused(problem, monkeypatch, compiled):
    features, labels, _, _, head = problem
    monkeypatch.setattr(head_module, "COMPILED_LOOP", compiled)
    with pytest.raises(IndexError):
        train_head(head, features, labels, None, None, HeadConfig(epochs=1),
                   order_for_epoch=lambda epoch: torch.tensor([0, 1, len(labels)]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("loss", [LossConfig(), LossConfig("focal", focal_gamma=2.0, focal_alpha="inverse-frequency"),
                                  LossConfig("sigmoid-focal", focal_alpha=0.25, focal_gamma=1.0)],
                         ids=lambda c: c.name)
def test_the_compiled_loop_gives_the_same_bits_on_any_number_of_threads(problem, loss, dtype):
    """Each thread takes whole rows of the forward pass and whole columns of the gradient, summing in the same order,
    so the thread count (1 to more threads than the 4 column vectors of D=24 + bias) changes no bit: weights,
    training losses and validation scores alike, over fp32 features and over fp16 ones (read by their own tiles)."""
    if headloop.load() is None:
        pytest.skip("the compiled loop is not built here (test_the_compiled_loop_is_built_and_loads says why)")
    features, labels, val_features, val_labels, head = problem
    features = features.to(dtype)
    results = [train_head(head, features, labels, val_features, val_labels,
                          HeadConfig(epochs=2, patience=None, lr=3e-3, num_threads=threads), loss)
               for threads in (1, 2, 3, 8)]
    for result in results[1:]:
        assert torch.equal(result.head_state["weight"], results[0].head_state["weight"])
        assert torch.equal(result.head_state["bias"], results[0].head_state["bias"])
        assert [r.train_loss for r in result.history] == [r.train_loss for r in results[0].history]
        assert [r.val_loss for r in result.history] == [r.val_loss for r in results[0].history]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_the_row_toucher_reads_ahead_where_a_core_is_spare_and_changes_no_bit(problem, monkeypatch, dtype):
    """With a core the steps leave free, a helper thread reads each next step's rows (headloop.c's row toucher); it
    only reads, so the weights, losses and scores are the same bits as without it. Without a spare core it does not
    start."""
    loop = headloop.load()
    if loop is None:
        pytest.skip("the compiled loop is not built here (test_the_compiled_loop_is_built_and_loads says why)")
    features, labels, val_features, val_labels, head = problem
    # 657 steps an epoch (~1 ms): time for the toucher's thread to start and run (it starts once per epoch's call)
    features = (features.repeat(60, 1) + 0.1 * torch.randn(60 * len(features), D)).to(dtype)
    labels = labels.repeat(60)
    config = HeadConfig(epochs=3, patience=None, lr=3e-3, num_threads=1)
    results, touched = {}, {}
    for cores, toucher in ((2, True), (2, False), (1, True)):
        monkeypatch.setattr(headloop, "usable_cores", lambda cores=cores: cores)
        monkeypatch.setattr(head_module, "ROW_TOUCHER", toucher)
        # where it should run, trained again (the same bits each time) until it has: at nice 19 on a busy machine the
        # toucher may not be scheduled within a few milliseconds of epochs
        for _ in range(10 if (cores, toucher) == (2, True) else 1):
            before = loop.touched_steps()
            results[cores, toucher] = train_head(head, features, labels, val_features, val_labels, config)
            touched[cores, toucher] = loop.touched_steps() - before
            if touched[cores, toucher]:
                break
    assert touched[2, True] > 0
    assert touched[2, False] == touched[1, True] == 0
    reference = results[2, False]
    for result in (results[2, True], results[1, True]):
        for name in ("weight", "bias"):
            assert torch.equal(result.head_state[name], reference.head_state[name])
        assert [(r.train_loss, r.val_macro_f1, r.val_loss) for r in result.history] == \
            [(r.train_loss, r.val_macro_f1, r.val_loss) for r in reference.history]


@pytest.mark.parametrize("pause_us", [0, 300], ids=["as-scheduled", "toucher-held-up"])
def test_the_row_toucher_never_reads_an_order_after_its_call_returns(pause_us):
    """Each call's order is overwritten as soon as the call returns: the toucher must have stopped reading it by then
    (a stale read of the poisoned order would index far outside the features and crash the process). Held up after
    each step's rows (the test pause, as a toucher the scheduler leaves waiting), it is mid-read at most calls' end,
    where the call must wait for it."""
    loop = headloop.load()
    if loop is None:
        pytest.skip("the compiled loop is not built here (test_the_compiled_loop_is_built_and_loads says why)")
    before = loop.touched_steps()
    loop.set_toucher_test_pause(pause_us)
    try:
        calls = 300 if pause_us == 0 else 60
        # The toucher runs at nice 19: on a busy machine it may not be scheduled within one round of short calls
        # (seen once in ten beside a CI run), which would leave the test checking nothing. Rounds until it has run.
        for _ in range(20):
            _run_calls_and_poison_their_orders(loop, calls)
            if loop.touched_steps() > before:
                break
    finally:
        loop.set_toucher_test_pause(0)
    assert loop.touched_steps() > before, "the row toucher never ran in 20 rounds of calls"


def _run_calls_and_poison_their_orders(loop, calls: int) -> None:
    generator = torch.Generator().manual_seed(3)
    rows, width, classes, batch = 4000, 32, 4, 8
    features = torch.randn(rows, width - 16, generator=generator).half()
    theta = torch.zeros(classes * width)
    state = [torch.zeros_like(theta) for _ in range(3)]
    inputs = torch.zeros(batch, width)
    inputs[:, width - 16] = 1.0
    logits, dlogits = torch.empty(batch, classes), torch.empty(batch, classes)
    row_loss = torch.empty(400, dtype=torch.float64)
    for call in range(calls):
        n = 9 + call % 390
        order = torch.randint(0, rows, (n,), generator=generator)
        targets = torch.randint(0, classes, (n,), generator=generator)
        taken, _ = loop.run(features, order, inputs, targets, None, logits, dlogits, theta, *state, n, batch,
                            headloop.LOSS_SOFTMAX, 0.0, 1e-6, None, 1e-3, (0.9, 0.999), 1e-8, call, 1, row_loss,
                            touch_rows=True)
        assert taken == -(-n // batch)
        order.fill_(2 ** 40)  # poison (a read of it lands terabytes past the features), then free
        del order
    assert torch.isfinite(theta).all()


@pytest.mark.parametrize("loss", [LossConfig(), LossConfig("weighted-ce")], ids=lambda c: c.name)
def test_fp16_features_train_to_the_same_bits_as_their_values_in_fp32(problem, loss):
    """The steps read fp16 features as fp16 rows, widened in the tiles (4 x 4 forward tiles at 16 lanes), and fp32
    ones as fp32 rows (8 x 2): every fp16 is an fp32 and every tile sums in the same order, so the same values train
    to the same bits either way (weighted-ce: the chunked calls that scale rows)."""
    if headloop.load() is None:
        pytest.skip("the compiled loop is not built here (test_the_compiled_loop_is_built_and_loads says why)")
    features, labels, val_features, val_labels, head = problem
    config = HeadConfig(epochs=2, patience=None, lr=3e-3)
    half = train_head(head, features.half(), labels, val_features, val_labels, config, loss)
    full = train_head(head, features.half().float(), labels, val_features, val_labels, config, loss)
    for name in ("weight", "bias"):
        assert torch.equal(half.head_state[name], full.head_state[name])
    assert [r.train_loss for r in half.history] == [r.train_loss for r in full.history]


def test_the_compiled_loop_threads_are_the_configured_ones_capped_at_the_usable_cores(monkeypatch):
    assert headloop.threads_for(3) == 3
    monkeypatch.setattr(headloop, "DEFAULT_THREADS", 2)
    monkeypatch.setattr(headloop.os, "sched_getaffinity", lambda pid: {0})
    assert headloop.threads_for(None) == 1
    monkeypatch.setattr(headloop.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert headloop.threads_for(None) == 2


def test_the_validation_logits_use_every_usable_core_unless_threads_are_configured(monkeypatch):
    monkeypatch.setattr(headloop.os, "sched_getaffinity", lambda pid: {0, 1})
    assert headloop.logits_threads_for(None) == 2
    assert headloop.logits_threads_for(1) == 1
    monkeypatch.setattr(headloop.os, "sched_getaffinity", lambda pid: set(range(64)))
    assert headloop.logits_threads_for(None) == 8


def test_fp16_validation_rows_give_the_fp32_rows_logits_bit_for_bit():
    """headloop_logits over fp16 rows (the fp16 steps' tiles, half the bytes per epoch) against the same values as
    fp32 rows: the same logits, bit for bit, on 1 and 3 threads, and the head's validation keeps fp16 features as
    fp16 rows (its bias column an exact fp16 1)."""
    loop = headloop.load()
    if loop is None or not loop.half_logits:
        pytest.skip("the compiled loop is not built here, or without fp16 tiles (no F16C)")
    generator = torch.Generator().manual_seed(3)
    n, width, classes = 203, 48, 7  # rows not a multiple of any tile; 40 features, the bias, padding
    rows = torch.zeros(n, width, dtype=torch.float16)
    rows[:, :40] = torch.randn(n, 40, generator=generator).half()
    rows[:, 40] = 1.0
    theta = torch.randn(classes * width, generator=generator)
    for threads in (1, 3):
        from_half, from_float = torch.empty(n, classes), torch.empty(n, classes)
        loop.logits(rows, theta, from_half, threads)
        loop.logits(rows.float(), theta, from_float, threads)
        assert torch.equal(from_half, from_float)
    head = nn.Linear(40, classes)
    trainer = head_module._FusedHead(head, HeadConfig(), head_module._LossTerms(), torch.device("cpu"))
    padded = trainer._padded(rows[:, :40])
    assert padded.dtype == torch.float16 and torch.equal(padded[:, :41], rows[:, :41])
    assert trainer._padded(rows[:, :40].float()).dtype == torch.float32
    with pytest.raises(ValueError, match="torch.float64"):
        loop.logits(rows.double(), theta, from_half, 1)
