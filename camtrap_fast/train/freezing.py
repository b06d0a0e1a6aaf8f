"""Head-only training (`--freeze-epochs`): the backbone's parameters frozen and its BatchNorm layers in eval mode.

Freezing sets requires_grad: autograd then neither computes nor keeps anything for the backbone (a head-only epoch
costs a forward pass and the head's backward), and the frozen parameters' grads stay None, which Adam skips,
so the one optimizer of phase 1 serves both stages and its state resumes as it is. BatchNorm in eval mode keeps
the backbone's running statistics as they were (the pretrained ones with --weights), as fast.ai's `freeze` and
Keras' `trainable = False` do for a frozen base.
"""

from __future__ import annotations

from torch import nn

from camtrap_fast.model import head_module


def set_head_only(model: nn.Module, head_only: bool) -> None:
    """Freeze (head_only) or unfreeze every parameter outside the final Linear layer."""
    head_parameters = {id(p) for p in head_module(model).parameters()}
    for parameter in model.parameters():
        if id(parameter) not in head_parameters:
            parameter.requires_grad_(not head_only)
            if head_only:
                parameter.grad = None


def freeze_batchnorm(model: nn.Module) -> None:
    """Every BatchNorm layer to eval mode (call after model.train())."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
