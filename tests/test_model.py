"""build_model, user weights files, backbone/head split and phase-2 freezing."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from camtrap_fast.errors import UserError
from camtrap_fast.model import (
    build_model,
    head_name,
    split_backbone_head,
)


@pytest.fixture(scope="module")
def resnet52():
    torch.manual_seed(0)
    return build_model("resnet18", 52)


def test_resnet18_head_for_52_classes(resnet52):
    head = resnet52.fc
    assert isinstance(head, nn.Linear) and head.out_features == 52
    assert sum(p.numel() for p in head.parameters()) == 512 * 52 + 52 == 26_676


def test_weights_round_trip(tmp_path, resnet52):
    path = tmp_path / "weights.pt"
    torch.save(resnet52.state_dict(), path)
    loaded = build_model("resnet18", num_classes=52, weights_path=path)
    for key, value in resnet52.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_checkpoint_wrapper_is_unwrapped(tmp_path, resnet52):
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": resnet52.state_dict(), "epoch": 3}, path)
    loaded = build_model("resnet18", 52, path)
    torch.testing.assert_close(loaded.fc.weight, resnet52.fc.weight, rtol=0, atol=0)


def test_imagenet_shaped_head_is_skipped_and_reinitialized(tmp_path, caplog):
    imagenet = build_model("resnet18", 1000)
    path = tmp_path / "imagenet.pt"
    torch.save(imagenet.state_dict(), path)
    with caplog.at_level(logging.INFO, logger="camtrap_fast.model"):
        model = build_model("resnet18", 52, path)
    assert model.fc.weight.shape == (52, 512)
    torch.testing.assert_close(model.conv1.weight, imagenet.conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(model.layer4[1].bn2.running_var, imagenet.layer4[1].bn2.running_var, rtol=0, atol=0)
    assert "fc.bias, fc.weight" in caplog.text


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such weights file"):
        build_model("resnet18", 52, tmp_path / "nope.pt")


def test_garbage_file_is_a_user_error(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"not a torch file at all")
    with pytest.raises(UserError, match=r"garbage\.pt: cannot read a state dict"):
        build_model("resnet18", 52, path)


def test_non_state_dict_is_a_user_error(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(UserError, match="not a state dict"):
        build_model("resnet18", 52, path)


def test_wrong_architecture_names_the_first_key(tmp_path):
    path = tmp_path / "mobilenet.pt"
    torch.save(build_model("mobilenet_v3_small", 52).state_dict(), path)
    with pytest.raises(UserError, match=r"mobilenet\.pt: missing key 'conv1\.weight'"):
        build_model("resnet18", 52, path)


def test_missing_backbone_key_and_wrong_shape(tmp_path, resnet52):
    state = resnet52.state_dict()
    del state["layer2.0.conv1.weight"]
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    with pytest.raises(UserError, match="missing key 'layer2.0.conv1.weight'"):
        build_model("resnet18", 52, path)
    state = resnet52.state_dict()
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(state, path)
    with pytest.raises(UserError, match=r"key 'conv1\.weight' has shape \(64, 3, 3, 3\)"):
        build_model("resnet18", 52, path)


def test_unknown_architecture():
    with pytest.raises(UserError, match="unknown architecture 'resnet19'"):
        build_model("resnet19", 52)


@pytest.mark.parametrize("arch, dim", [("resnet18", 512), ("mobilenet_v3_small", 1024)])
def test_backbone_gives_pooled_features(arch, dim):
    torch.manual_seed(0)
    model = build_model(arch, 7).eval()
    backbone, head = split_backbone_head(model)
    inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = backbone(inputs)
        assert features.shape == (2, dim) and head.in_features == dim
        torch.testing.assert_close(head(features), model(inputs))


@pytest.mark.parametrize("arch, name", [("efficientnet_b0", "classifier.1"), ("convnext_tiny", "classifier.2"),
                                        ("vit_b_16", "heads.head"), ("densenet121", "classifier")])
def test_head_found_for_other_families(arch, name):
    with torch.device("meta"):  # structure only: no time spent initializing weights
        model = build_model(arch, 5)
    assert head_name(model) == name
