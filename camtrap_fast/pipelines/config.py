"""What a loader must produce: `LoaderConfig` (crop geometry itself is in `crop_geometry`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from camtrap_fast.devices import valid_device_text
from camtrap_fast.errors import ConfigError
from camtrap_fast.pipelines.crop_geometry import EVAL_CROPS

MODES = ("train", "eval")
BACKENDS = ("auto", "dali", "pil")


MAX_WORKERS = 16  # past ~16 decode workers a GPU is usually the limit


def available_cpus() -> int:
    """CPUs this process may use (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Loader workers when nothing else needs the CPUs (eval, predict, training on a GPU): all of them, capped."""
    return max(1, min(MAX_WORKERS, available_cpus()))


@dataclass(frozen=True)
class LoaderConfig:
    """How to turn an epoch order into batches; `make_loader` resolves the `auto` choices once."""

    mode: str  # "train": random resized crop + flip; "eval": resize shorter side + centre crop
    backend: str = "auto"  # auto: DALI when running on CUDA and DALI is installed, else PIL
    device: str = "auto"  # auto | cpu | cuda | cuda:N; where `inputs` and `labels` are delivered
    batch_size: int = 64
    image_size: int = 224  # output side in pixels
    resize_size: int | None = None  # eval: shorter side before the centre crop; None: image_size * 256 / 224
    eval_crop: str = "center"  # eval: "center" crop, or the "full" frame squeezed to the square
    crop_scale: tuple[float, float] = (0.08, 1.0)  # train: crop area as a fraction of the image
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # train: crop width / height
    drop_last: bool | None = None  # None: drop the last partial batch in train mode only
    seed: int = 0
    workers: int = field(default_factory=default_workers)  # PIL: DataLoader processes; DALI: decode threads
    skip_corrupt: bool = False  # False: a sample that cannot be read or decoded is a UserError naming it
    feed_workers: int | None = None  # DALI: processes feeding JPEG bytes; None: 2 on CUDA, 0 (main thread) on CPU
    prefetch: int = 2  # batches prepared ahead, per worker (PIL) or per pipeline (DALI)
    # PIL: the workers' scheduling niceness (os.nice). > 0 when they share the CPUs with CPU training, so that they
    # fill the cores' idle moments rather than preempt torch's threads mid-operation (train.parallelism).
    worker_nice: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if not valid_device_text(self.device):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        for name in ("batch_size", "image_size", "prefetch"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("workers", self.workers, minimum=0)
        _check_int("worker_nice", self.worker_nice, minimum=0)
        _check_int("seed", self.seed, minimum=0)
        if self.feed_workers is not None:
            _check_int("feed_workers", self.feed_workers, minimum=0)
        if self.resize_size is not None:
            _check_int("resize_size", self.resize_size, minimum=1)
            if self.resize_size < self.image_size:
                raise ValueError(
                    f"resize_size {self.resize_size} is smaller than image_size {self.image_size}; "
                    "the centre crop must fit: use resize_size >= image_size (or None for the usual 256/224 ratio)"
                )
        if self.eval_crop not in EVAL_CROPS:
            raise ValueError(f"eval_crop must be one of {EVAL_CROPS}, got {self.eval_crop!r}")
        low, high = _pair("crop_scale", self.crop_scale)
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        low, high = _pair("crop_ratio", self.crop_ratio)
        if not 0 < low <= high:
            raise ValueError(f"crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")
        if self.drop_last is not None and not isinstance(self.drop_last, bool):
            raise ValueError(f"drop_last must be True, False or None, got {self.drop_last!r}")

    @property
    def train(self) -> bool:
        return self.mode == "train"

    @property
    def drops_last(self) -> bool:
        return self.train if self.drop_last is None else self.drop_last

    @property
    def eval_resize(self) -> int:
        """Shorter side before the eval centre crop (the usual 256 for 224)."""
        return self.resize_size if self.resize_size is not None else round(self.image_size * 256 / 224)


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")


def _pair(name: str, value) -> tuple[float, float]:
    if not isinstance(value, tuple) or len(value) != 2 or not all(isinstance(v, (int, float)) for v in value):
        raise ValueError(f"{name} must be a (low, high) tuple of numbers, got {value!r}")
    return float(value[0]), float(value[1])


# The smallest training crop: the torchvision classifiers downsample by 32, so a smaller crop leaves the last
# stage less than one cell (ResNet-18 at 7 px runs, but on a single pixel).
MIN_IMAGE_SIZE = 32


@dataclass(frozen=True)
class LoaderOptions:
    """The part of `LoaderConfig` a training run sets once: what `train` records and every loader of the run
    is made from (`for_mode`); the rest (mode, batch size, device, seed) is the run's."""

    backend: str = "auto"
    image_size: int = 224  # crop side in pixels
    crop_scale_min: float = 0.08  # train: smallest random-resized-crop area, as a fraction of the image
    # PIL: decode processes (0: decode in the main process); DALI: decode threads (0 -> 1). None: chosen for the
    # machine when the loader is made (training: train.parallelism; eval and predict: default_workers).
    workers: int | None = None
    skip_corrupt: bool = False
    eval_crop: str = "center"  # how eval, the reports and predict see a frame: "center" crop or "full" frame

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError("backend", self.backend, f"choose {', '.join(BACKENDS)}")
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) \
                or self.image_size < MIN_IMAGE_SIZE:
            raise ConfigError("image_size", self.image_size,
                              f"must be a whole number of pixels >= {MIN_IMAGE_SIZE} (the networks downsample by 32)")
        if not 0 < self.crop_scale_min <= 1:
            raise ConfigError("crop_scale_min", self.crop_scale_min, "must be in (0, 1]")
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 0):
            raise ConfigError("workers", self.workers, "must be a whole number >= 0")
        if self.eval_crop not in EVAL_CROPS:
            raise ConfigError("eval_crop", self.eval_crop, f"choose {' or '.join(EVAL_CROPS)}")

    def for_mode(self, mode: str, batch_size: int, device: str, seed: int = 0,
                 workers: int | None = None, worker_nice: int = 0) -> LoaderConfig:
        """The LoaderConfig; `workers` (a training run's resolved split) stands in for automatic workers."""
        extra = {"crop_scale": (self.crop_scale_min, 1.0)} if mode == "train" else {}
        if self.workers is not None:
            workers = self.workers
        return LoaderConfig(mode=mode, backend=self.backend, device=device, batch_size=batch_size,
                            image_size=self.image_size, workers=default_workers() if workers is None else workers,
                            seed=seed, worker_nice=worker_nice,
                            skip_corrupt=self.skip_corrupt, eval_crop=self.eval_crop, **extra)
