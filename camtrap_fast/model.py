"""torchvision classifier -> (backbone, head): build, load user weights, split for phase 2."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torchvision
from torch import nn

from camtrap_fast.errors import UserError

log = logging.getLogger(__name__)

# Where torchvision classifiers keep their final layer: fc (ResNet, RegNet, ShuffleNet, GoogLeNet),
# classifier (EfficientNet, MobileNet, ConvNeXt, DenseNet, VGG, MaxViT), heads (ViT), head (Swin).
HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")
# Keys a state dict may lack without harm: BatchNorm re-counts batches from 0.
OPTIONAL_KEY_SUFFIXES = ("num_batches_tracked",)


def classification_archs() -> list[str]:
    return torchvision.models.list_models(module=torchvision.models)


def build_model(
    arch: str = "resnet18", num_classes: int | None = None, weights_path: str | Path | None = None
) -> nn.Module:
    """A torchvision classifier for num_classes (required), randomly initialized (as in the study) unless
    weights_path is given.

    weights_path: a state dict saved with torch.save, for example ImageNet weights. A final layer
    whose shape does not fit num_classes is skipped and keeps its fresh initialization.
    """
    if num_classes is None:
        raise TypeError("build_model() needs num_classes")
    if arch not in classification_archs():
        raise UserError(f"unknown architecture {arch!r}; use a torchvision classification model such as resnet18, "
                        "resnet50, efficientnet_b0, mobilenet_v3_large, convnext_tiny or vit_b_16")
    if num_classes < 1:
        raise UserError(f"num_classes must be >= 1, got {num_classes}")
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    if weights_path is not None:
        load_weights(model, Path(weights_path))
    return model


def head_name(model: nn.Module) -> str:
    """Dotted name of the final nn.Linear (e.g. 'fc', 'classifier.3', 'heads.head')."""
    for attribute in HEAD_ATTRIBUTES:
        module = getattr(model, attribute, None)
        if isinstance(module, nn.Linear):
            return attribute
        if isinstance(module, nn.Module):
            linears = [name for name, sub in module.named_modules() if isinstance(sub, nn.Linear)]
            if linears:
                return f"{attribute}.{linears[-1]}"
    raise UserError(f"{type(model).__name__} has no final nn.Linear under {', '.join(HEAD_ATTRIBUTES)}; "
                    "two-phase training needs a linear classifier head")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise UserError(f"{path}: no such weights file")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many types (pickle, zip, runtime) for unreadable files
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise UserError(f"{path}: cannot read a state dict ({type(error).__name__}: {first_line})") from None
    # Training checkpoints often wrap the state dict; accept the two common wrappers.
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
    if not isinstance(loaded, Mapping) or not loaded:
        raise UserError(f"{path}: not a state dict (expected a mapping of parameter names to tensors)")
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise UserError(f"{path}: not a state dict: entry {key!r} is a {type(value).__name__}, not a tensor")
    return dict(loaded)


def load_weights(model: nn.Module, path: Path) -> list[str]:
    """Load a state-dict file into model; returns the head keys that were skipped (shape mismatch or absent)."""
    state = _read_state_dict(path)
    expected = model.state_dict()
    head = head_name(model)
    head_keys = {f"{head}.weight", f"{head}.bias"}
    for key, tensor in expected.items():
        if key in head_keys or (key.endswith(OPTIONAL_KEY_SUFFIXES) and key not in state):
            continue
        if key not in state:
            raise UserError(f"{path}: missing key {key!r} for {type(model).__name__} "
                            "(weights for another architecture?)")
        if state[key].shape != tensor.shape:
            raise UserError(f"{path}: key {key!r} has shape {tuple(state[key].shape)}, the model expects "
                            f"{tuple(tensor.shape)} (weights for another architecture?)")
    for key in state:
        if key not in expected:
            raise UserError(f"{path}: unexpected key {key!r} for {type(model).__name__} "
                            "(weights for another architecture?)")
    skipped = sorted(k for k in head_keys if k not in state or state[k].shape != expected[k].shape)
    if skipped:
        log.info("%s: skipped %s (shape does not fit %d classes); the head keeps its fresh initialization",
                 path, ", ".join(skipped), head_module(model).out_features)
    model.load_state_dict({k: v for k, v in state.items() if k not in skipped}, strict=False)
    return skipped


def head_module(model: nn.Module) -> nn.Linear:
    return model.get_submodule(head_name(model))


class Backbone(nn.Module):
    """model up to (not including) its final Linear: returns the pooled features the head sees.

    Runs the whole model and captures the head's input with a forward pre-hook, so the model is never
    modified and the backbone always follows the model's train/eval mode and device. The head's own
    matmul is computed and discarded; it is negligible next to the backbone.
    """

    def __init__(self, model: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.model = model
        self._head = [head]  # a list, so the head is not registered twice as a submodule

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []

        def capture(_module: nn.Module, args: tuple) -> None:
            captured.append(args[0])

        handle = self._head[0].register_forward_pre_hook(capture)
        try:
            self.model(inputs)
        finally:
            handle.remove()
        if len(captured) != 1:
            raise RuntimeError(f"the head ran {len(captured)} times in one forward pass; "
                               "cannot tell which of its inputs are the features")
        return captured[0]


def split_backbone_head(model: nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Linear]:
    """(backbone, head): backbone(inputs) gives the head's input features (resnet18: 512-d)."""
    head = head_module(model)
    return Backbone(model, head), head
