"""Pipelines: an epoch order -> decoded, augmented, normalized batches on the device.

`make_loader(manifest, split, LoaderConfig(...))` (`factory`) decides backend
(DALI | PIL) once and returns a `Loader` (`loader`: the contract and batch
types); `loader.epoch(order, epoch)` yields (inputs, labels). `config` holds the
config, `crop_geometry` the seeded crop draws both backends share,
`jpeg_header` the header walk every sample gets, `normalize` the uint8 -> float
step done on the device, `streaming` an epoch's samples read sequentially, and
`pil_backend` and `dali_backend` the two implementations (DALI is imported only
when it is used). `eval_inputs` is the eval transform for images outside a
shard (predict).
"""

from camtrap_fast.pipelines.config import LoaderConfig, default_workers
from camtrap_fast.pipelines.factory import dali_available, make_loader, resolve_backend
from camtrap_fast.pipelines.loader import Loader
from camtrap_fast.pipelines.normalize import IMAGENET_MEAN, IMAGENET_STD, to_inputs
from camtrap_fast.pipelines.pil_backend import eval_inputs

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Loader",
    "LoaderConfig",
    "dali_available",
    "default_workers",
    "eval_inputs",
    "make_loader",
    "resolve_backend",
    "to_inputs",
]
