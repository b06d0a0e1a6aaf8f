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

from camtrap_fast.lazy import lazy_attributes

# Imported on first use: `pipelines.config` (LoaderConfig, LoaderOptions) is read when the command line is
# built, which must not pay for importing torch and PIL.
_EXPORTS = {
    "IMAGENET_MEAN": "camtrap_fast.pipelines.normalize",
    "IMAGENET_STD": "camtrap_fast.pipelines.normalize",
    "Loader": "camtrap_fast.pipelines.loader",
    "LoaderConfig": "camtrap_fast.pipelines.config",
    "LoaderOptions": "camtrap_fast.pipelines.config",
    "dali_available": "camtrap_fast.pipelines.factory",
    "default_workers": "camtrap_fast.pipelines.config",
    "eval_inputs": "camtrap_fast.pipelines.pil_backend",
    "make_loader": "camtrap_fast.pipelines.factory",
    "resolve_backend": "camtrap_fast.pipelines.factory",
    "to_inputs": "camtrap_fast.pipelines.normalize",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
