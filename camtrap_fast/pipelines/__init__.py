"""Pipelines: an epoch order -> decoded, augmented, normalized batches on the device.

`make_loader(manifest, split, LoaderConfig(...))` decides backend (DALI | PIL)
and device (cpu | cuda) once and returns a `Loader`; `loader.epoch(order, epoch)`
yields (inputs, labels). `config` holds the config and the seeded crop draws
both backends share, `normalize` the uint8 -> float step done on the device,
`pil_backend` and `dali_backend` the two implementations (DALI is imported only
when it is used).
"""

from camtrap_fast.pipelines.config import LoaderConfig, default_workers
from camtrap_fast.pipelines.factory import Loader, dali_available, make_loader, resolve_backend, resolve_device
from camtrap_fast.pipelines.normalize import IMAGENET_MEAN, IMAGENET_STD, to_inputs

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Loader",
    "LoaderConfig",
    "dali_available",
    "default_workers",
    "make_loader",
    "resolve_backend",
    "resolve_device",
    "to_inputs",
]
