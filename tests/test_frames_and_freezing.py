"""First-frame selection (shards.frames), head-only epochs (train.freezing), the monitor rule and the lr range
test's suggestion, on their own (no shards, no training run)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from camtrap_fast.shards.frames import FramesUnknown, first_frames
from camtrap_fast.train.lr_find import lr_schedule, range_test, smooth, suggest


def test_first_frame_by_frame_num_then_datetime_then_key():
    keys = ["a3", "a1", "a2", "b_x", "b_y", "c2_d0", "c2_d1", "c1_d0", "lone", "d2", "d1"]
    sequences = ["A", "A", "A", "B", "B", "C", "C", "C", "", "D", "D"]
    sources = ["a3.jpg", "a1.jpg", "a2.jpg", "bx.jpg", "by.jpg", "c2.jpg", "c2.jpg", "c1.jpg", "lone.jpg", "d2.jpg",
               "d1.jpg"]
    facts = {"a3": (1, None), "a1": (3, None), "a2": (2, None),  # frame_num beats key order
             "b_x": (None, "2020-01-01T10:00:05+01:00"), "b_y": (None, "2020-01-01T09:00:01+00:00"),  # offsets
             "c2_d0": (None, None), "c2_d1": (None, None), "c1_d0": (None, None),  # key order; crops kept together
             "d2": (5, None), "d1": (None, None)}  # D: not every frame numbered, no times: key order
    chosen = first_frames(keys, sequences, sources, facts, "where")
    assert [k for k, m in zip(keys, chosen.mask) if m] == ["a3", "b_y", "c1_d0", "lone", "d1"]  # b_y: 09:00:01 UTC
    assert chosen.sequences == 5 and chosen.ordered_by == {"frame_num": 1, "datetime": 1, "key": 2}
    # two crops of the first frame are both kept
    crops = first_frames(["f1_d0", "f1_d1", "f2_d0"], ["S", "S", "S"], ["f1", "f1", "f2"],
                         {"f1_d0": (1, None), "f1_d1": (1, None), "f2_d0": (2, None)}, "where")
    assert crops.mask.tolist() == [True, True, False]


def test_first_frames_without_sequences_are_refused_in_one_line():
    with pytest.raises(FramesUnknown) as error:
        first_frames(["k1", "k2"], ["", ""], ["a", "b"], {}, "shards/test")
    assert str(error.value).startswith("shards/test: the shards record no sequence ids") and "\n" not in str(error.value)


def _tiny_model():
    from camtrap_fast.model import build_model

    torch.manual_seed(0)
    return build_model("resnet18", 4, None)


def test_head_only_epochs_leave_the_backbone_and_its_batchnorm_alone():
    from camtrap_fast.model import head_module
    from camtrap_fast.train.freezing import set_head_only
    from camtrap_fast.train.loops import train_one_epoch

    model = _tiny_model()
    torch.manual_seed(1)
    batches = [(torch.randn(8, 3, 32, 32), torch.randint(0, 4, (8,))) for _ in range(3)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = torch.nn.CrossEntropyLoss()
    set_head_only(model, True)
    train_one_epoch(model, batches, 24, 0, optimizer, loss, torch.device("cpu"), False, head_only=True)
    head = {f"fc.{name}" for name, _ in head_module(model).named_parameters()}
    after = {k: v.clone() for k, v in model.state_dict().items()}
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == head  # no backbone weight, and no BatchNorm running mean / var / count, moved
    set_head_only(model, False)
    train_one_epoch(model, batches, 24, 1, optimizer, loss, torch.device("cpu"), False)
    final = model.state_dict()
    assert not torch.equal(after["conv1.weight"], final["conv1.weight"])
    assert not torch.equal(after["bn1.running_mean"], final["bn1.running_mean"])


def test_monitor_rule():
    from camtrap_fast.train.phase1 import Phase1State, improved

    state = Phase1State(best_macro_f1=0.3, best_val_loss=1.2)
    assert improved({"val_macro_f1": 0.31, "val_loss": 1.5}, state, "macro-f1")
    assert not improved({"val_macro_f1": 0.31, "val_loss": 1.5}, state, "loss")
    assert improved({"val_macro_f1": 0.1, "val_loss": 1.1}, state, "loss")


def test_suggestion_is_the_steepest_descent_before_the_minimum():
    lrs = lr_schedule(1e-6, 1.0, 61)
    x = np.log10(lrs)
    curve = 3 - 2 / (1 + np.exp(-(x + 3) * 4)) + np.where(x > -1, (x + 1) ** 2 * 20, 0)  # steepest at 1e-3
    assert suggest(lrs, curve) == pytest.approx(1e-3, rel=0.3)
    assert suggest(lrs, np.linspace(1, 2, 61)) is None  # a loss that only climbs: no descent to suggest from
    assert smooth([1.0, 1.0, 1.0]) == pytest.approx([1.0, 1.0, 1.0])  # debiased: no warm-up bias


def test_range_test_leaves_the_model_and_random_state_alone_and_stops_on_divergence():
    model = _tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(5)
    batches = iter([(torch.randn(4, 3, 32, 32), torch.randint(0, 4, (4,))) for _ in range(25)])
    state = torch.get_rng_state()
    finding = range_test(model, batches, torch.nn.CrossEntropyLoss(), torch.device("cpu"), 1e-3, 1e5, 25,
                         batch_size=4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), state)
    assert finding.stopped in ("diverged", "not finite") and len(finding.lrs) < 25
    assert finding.lrs == tuple(lr_schedule(1e-3, 1e5, 25)[: len(finding.lrs)])
