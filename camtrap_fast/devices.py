"""The one device decision: `--device auto | cpu | cuda | cuda:N`, resolved once at the edge.

Every later stage takes the `torch.device` it is given. Under torchrun each rank trains and loads on its
own GPU: a plain `cuda` (or `auto` on a GPU machine) becomes `cuda:LOCAL_RANK` there.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from camtrap_fast.errors import UserError

if TYPE_CHECKING:
    import torch

CHOICES = "auto, cpu, cuda or cuda:N"
_CUDA_INDEX = re.compile(r"cuda:(\d+)")


def valid_device_text(text: str) -> bool:
    return text in ("auto", "cpu", "cuda") or _CUDA_INDEX.fullmatch(text) is not None


def resolve_device(text: str, local_rank: int | None = None) -> torch.device:
    """The torch.device for `text`; with `local_rank` (torchrun), an unindexed CUDA device becomes that rank's."""
    import torch  # here, so that validating options never pays for importing torch

    if not valid_device_text(text):
        raise UserError(f"--device {text}: choose {CHOICES}")
    if text == "cpu" or (text == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError(f"--device {text}: no CUDA GPU is available here; use --device cpu (or auto)")
    count = torch.cuda.device_count()
    match = _CUDA_INDEX.fullmatch(text)
    if match is not None:
        index = int(match.group(1))
        if index >= count:
            raise UserError(f"--device {text}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
        return torch.device("cuda", index)
    return torch.device("cuda", local_rank if local_rank is not None else torch.cuda.current_device())
