"""The built-in demo dataset: procedurally drawn camera-trap captures with Snapshot Serengeti S9 class sizes.

Nothing is downloaded. Every class of the S9 train split keeps its share of
images (times `scale`, with a floor for the rarest), drawn as sequences of
1-3 frames at a handful of camera locations, as day (colour) or infrared night
(grey) frames, and written as JPEGs plus one COCO Camera Traps JSON (one annotation
per visible animal, with its true box), and optionally a simulated MegaDetector
output (`detections`). The same config always gives byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from camtrap_fast import __version__
from camtrap_fast.atomic import write_text
from camtrap_fast.errors import UserError
from camtrap_fast.synth.anatomy import Pose, silhouette_size
from camtrap_fast.synth.counts import load_class_counts, scale_class_counts
from camtrap_fast.synth.detector import batch_output, detect
from camtrap_fast.synth.scene import Lighting, Location, Placement, make_location, render_frame
from camtrap_fast.synth.species import SPECIES, Species, individualize

__all__ = ["SynthConfig", "SynthSummary", "synthesize"]

log = logging.getLogger(__name__)

ANNOTATIONS_NAME = "annotations.json"
DETECTIONS_NAME = "detections.json"
IMAGES_DIR = "images"
_FIRST_DAY = dt.datetime(2014, 7, 1)
_SPAN_DAYS = 150
_NIGHT_HOURS = (19, 29)  # 19:00 to 04:59; day captures fall in 07:00-16:59, so pushes below never cross over
_DAY_HOURS = (7, 17)


@dataclass(frozen=True)
class SynthConfig:
    out_dir: Path
    scale: float = 0.01  # fraction of the S9 train class sizes (155,254 images in all)
    size: int = 96  # shorter image side in pixels; images are 4:3 landscape
    seed: int = 0
    overwrite: bool = False  # replace OUT_DIR/images and OUT_DIR/annotations.json in a non-empty OUT_DIR
    num_locations: int = 10
    min_per_class: int = 6  # leaves the rarest classes enough images for an 80/10/10 split
    jpeg_quality: int = 90
    detections: bool = False  # also write OUT_DIR/detections.json, a simulated MegaDetector run

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if not _is_number(self.scale) or not (math.isfinite(self.scale) and 0 < self.scale <= 1):
            raise UserError(f"--scale {self.scale}: must be above 0 and at most 1 "
                            "(1 = the full 155,254-image S9 train split)")
        if not _is_int(self.size) or not 32 <= self.size <= 1024:
            raise UserError(f"--size {self.size}: the shorter image side must be a whole number of pixels "
                            "from 32 to 1024")
        if not _is_int(self.seed) or self.seed < 0:
            raise UserError(f"--seed {self.seed}: must be a whole number >= 0")
        if not _is_int(self.num_locations) or not 1 <= self.num_locations <= 1000:
            raise UserError(f"num_locations {self.num_locations}: must be a whole number from 1 to 1000")
        if not _is_int(self.min_per_class) or self.min_per_class < 1:
            raise UserError(f"min_per_class {self.min_per_class}: must be a whole number >= 1")
        if not _is_int(self.jpeg_quality) or not 1 <= self.jpeg_quality <= 95:
            raise UserError(f"jpeg_quality {self.jpeg_quality}: must be a whole number from 1 to 95")

    @property
    def height(self) -> int:
        return self.size

    @property
    def width(self) -> int:
        return int(round(self.size * 4 / 3))


@dataclass(frozen=True)
class SynthSummary:
    out_dir: Path
    annotations_path: Path
    num_images: int
    num_sequences: int
    num_night_images: int
    num_locations: int
    class_counts: dict[str, int]  # images per class, in the packaged table's order (largest first)
    seconds: float
    num_boxes: int = 0  # true animal boxes in the COCO file
    detections_path: Path | None = None
    num_detections: int = 0  # in detections.json, false alarms included

    @property
    def images_per_s(self) -> float:
        return self.num_images / self.seconds if self.seconds > 0 else float("inf")

    @property
    def smallest_class(self) -> tuple[str, int]:
        return min(self.class_counts.items(), key=lambda item: item[1])

    @property
    def largest_class(self) -> tuple[str, int]:
        return max(self.class_counts.items(), key=lambda item: item[1])


@dataclass(frozen=True)
class _Sequence:
    species: str
    category_id: int
    num_frames: int
    location: int
    night: bool
    start: dt.datetime


@dataclass(frozen=True)
class _Track:
    """One animal across the frames of a sequence: where it starts and how it moves."""
    animal: Species
    pose: Pose
    x: float
    y: float
    body_px: float
    facing: int
    vx: float
    vy: float
    phase_step: float
    blur_p: float


def synthesize(config: SynthConfig) -> SynthSummary:
    """Write the demo dataset under config.out_dir: JPEGs in images/, then annotations.json (atomically, last)."""
    started = time.perf_counter()
    _prepare_out_dir(config)
    counts = scale_class_counts(load_class_counts("train"), config.scale, config.min_per_class)
    undrawn = sorted(set(counts) - set(SPECIES))
    if undrawn:
        raise RuntimeError(f"species table lacks {', '.join(undrawn)}: camtrap_fast/synth/species.py is out of date")
    sequences = _plan(counts, config)
    locations = [make_location(f"loc{i:02d}", config.width, config.height, np.random.default_rng([config.seed, 1, i]))
                 for i in range(config.num_locations)]

    images, annotations, night_images, detected = [], [], 0, []
    for index, seq in enumerate(sequences):
        seq_id = f"seq{index:06d}"
        location = locations[seq.location]
        folder = config.out_dir / IMAGES_DIR / location.name
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([config.seed, 2, index])
        for frame_num, (pixels, boxes) in enumerate(_frames(seq, location, config, rng), start=1):
            image_id = f"{location.name}/{seq_id}_f{frame_num}"
            file_name = f"{IMAGES_DIR}/{image_id}.jpg"
            Image.fromarray(pixels).save(config.out_dir / file_name, format="JPEG", quality=config.jpeg_quality)
            taken = seq.start + dt.timedelta(seconds=frame_num - 1)
            images.append({
                "id": image_id, "file_name": file_name, "width": config.width, "height": config.height,
                "seq_id": seq_id, "seq_num_frames": seq.num_frames, "frame_num": frame_num,
                "location": location.name, "datetime": taken.strftime("%Y-%m-%d %H:%M:%S"),
            })
            # One annotation per visible animal, with its box (COCO: [x, y, width, height] in pixels); an
            # image whose animals are all out of view still gets its species, without a box.
            for box in boxes or [None]:
                annotation = {"id": f"ann{len(annotations):07d}", "image_id": image_id, "category_id": seq.category_id}
                if box is not None:
                    annotation["bbox"] = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
                annotations.append(annotation)
            if config.detections:  # its own random stream: the photos are the same with or without
                found = detect(boxes, config.width, config.height, np.random.default_rng([config.seed, 3, len(images)]))
                detected.append({"file": file_name, "detections": found})
            night_images += seq.night
        if index % 200 == 0:
            log.debug("synth: %d/%d sequences drawn", index, len(sequences))

    detections_path = None
    if config.detections:
        detections_path = config.out_dir / DETECTIONS_NAME
        write_json(detections_path, batch_output(detected))
    annotations_path = config.out_dir / ANNOTATIONS_NAME
    write_json(annotations_path, {
        "info": {
            "version": "1.0",
            "description": "camtrap-fast synthetic camera-trap demo: procedural scenes with Snapshot Serengeti "
                           "season-9 train class sizes",
            "year": _FIRST_DAY.year,
            "contributor": f"camtrap-fast {__version__} synth",
            "synth": {"scale": config.scale, "size": config.size, "seed": config.seed,
                      "num_locations": config.num_locations, "min_per_class": config.min_per_class,
                      "jpeg_quality": config.jpeg_quality},
        },
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name} for i, name in enumerate(counts, start=1)],
    })
    return SynthSummary(config.out_dir, annotations_path, len(images), len(sequences), night_images,
                        config.num_locations, dict(counts), time.perf_counter() - started,
                        sum("bbox" in a for a in annotations), detections_path,
                        sum(len(d["detections"]) for d in detected))


def _prepare_out_dir(config: SynthConfig) -> None:
    out = config.out_dir
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not config.overwrite:
            raise UserError(f"{out}: directory is not empty; pass --overwrite to replace its images/ "
                            f"and {ANNOTATIONS_NAME}")
        # The JSON goes first, so an interrupted overwrite never leaves a JSON naming deleted images.
        (out / ANNOTATIONS_NAME).unlink(missing_ok=True)
        (out / DETECTIONS_NAME).unlink(missing_ok=True)
        images = out / IMAGES_DIR
        if images.is_dir() and not images.is_symlink():
            shutil.rmtree(images)
        elif images.exists() or images.is_symlink():
            images.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{out}: cannot create the output directory ({error.strerror})") from None


def _plan(counts: dict[str, int], config: SynthConfig) -> list[_Sequence]:
    """Cut every class into sequences and give each a camera, a day or night, and a start time."""
    rng = np.random.default_rng([config.seed, 0])
    planned = []
    for category_id, (name, count) in enumerate(counts.items(), start=1):
        species = SPECIES[name]
        for num_frames in _sequence_lengths(count, rng):
            night = bool(rng.random() < species.night_p)
            hours = _NIGHT_HOURS if night else _DAY_HOURS
            start = _FIRST_DAY + dt.timedelta(days=int(rng.integers(_SPAN_DAYS)),
                                              seconds=int(rng.integers(hours[0] * 3600, hours[1] * 3600)))
            planned.append(_Sequence(name, category_id, num_frames, int(rng.integers(config.num_locations)), night,
                                     start))
    planned.sort(key=lambda s: (s.location, s.start, s.category_id))
    # One camera cannot be in two captures at once: keep a minute between a sequence's last frame and the next.
    sequences, free_from = [], {}
    for seq in planned:
        if seq.location in free_from and seq.start < free_from[seq.location]:
            seq = replace(seq, start=free_from[seq.location])
        free_from[seq.location] = seq.start + dt.timedelta(seconds=seq.num_frames - 1 + 60)
        sequences.append(seq)
    return sequences


def _sequence_lengths(count: int, rng: np.random.Generator) -> list[int]:
    # At least three sequences per class (when it has three images), so a split grouped by sequence can
    # give a rare class to train, val and test.
    longest = max(1, min(3, count // 3))
    weights = np.array([0.2, 0.3, 0.5])[:longest]
    weights /= weights.sum()
    lengths, left = [], count
    while left > 0:
        lengths.append(min(int(rng.choice(longest, p=weights)) + 1, left))
        left -= lengths[-1]
    return lengths


def _frames(seq: _Sequence, location: Location, config: SynthConfig,
            rng: np.random.Generator) -> Iterator[tuple[np.ndarray, list]]:
    """Each frame's pixels and its animals' true boxes (left, top, right, bottom in pixels)."""
    species = SPECIES[seq.species]
    herd = 1 if species.herd == 1 or rng.random() < 0.5 else int(rng.integers(2, species.herd + 1))
    facing = 1 if rng.random() < 0.5 else -1
    tracks = [_start_track(individualize(species, rng), facing if rng.random() < 0.8 else -facing, location, config,
                           seq.night, rng) for _ in range(herd)]
    hour = seq.start.hour + seq.start.minute / 60
    sun = 0.0 if seq.night else max(0.0, math.sin(math.pi * (hour - 6) / 12))
    for frame in range(seq.num_frames):
        light = Lighting(seq.night, sun, exposure=math.exp(rng.normal(0.0, 0.06)))
        boxes: list = []
        yield render_frame(location, [_place(t, frame, config, rng) for t in tracks], light, rng, boxes), boxes


def _start_track(animal: Species, facing: int, location: Location, config: SynthConfig, night: bool,
                 rng: np.random.Generator) -> _Track:
    width, height = config.width, config.height
    tall, long = silhouette_size(animal)
    # Distance sets both size and how low in the frame the feet are; the range is wide enough that
    # apparent size alone does not give the species away. Small animals only trigger the camera up close.
    depth = math.exp(rng.uniform(math.log(0.6), math.log(1.8))) * (1.4 if animal.size < 0.2 else 1.0)
    height_px = min(max(animal.size * depth * height, 0.2 * height), 1.6 * height)
    body_px = height_px / tall
    ground = height - location.horizon_y
    y = location.horizon_y + ground * float(np.clip(0.15 + 0.55 * (depth - 0.6) / 1.2 + rng.normal(0.0, 0.12),
                                                    0.08, 1.12))
    span = long * body_px
    if rng.random() < 0.75 and span < 0.7 * width:
        x = rng.uniform(0.35 * span, width - 0.35 * span)
    else:  # partly out of frame at one side
        x = rng.uniform(-0.1 * span, 0.3 * span)
        x = x if rng.random() < 0.5 else width - x
    grazing = animal.form == "quadruped" and animal.neck_len > 0.18 and rng.random() < 0.3
    walking = not grazing and rng.random() < 0.6
    pose = Pose(
        neck_angle=-30 + rng.normal(0.0, 8.0) if grazing else animal.neck_angle + rng.normal(0.0, 6.0),
        head_angle=-95 + rng.normal(0.0, 8.0) if grazing else animal.head_angle + rng.normal(0.0, 8.0),
        leg_phase=rng.uniform(0.0, 2 * math.pi),
        stride=rng.uniform(10.0, 28.0) if walking else rng.uniform(0.0, 4.0),
    )
    speed = rng.uniform(0.1, 0.45) if walking else rng.uniform(0.0, 0.05)
    return _Track(animal, pose, float(x), float(y), float(body_px), facing, facing * speed * body_px,
                  rng.normal(0.0, 0.01 * height), rng.uniform(0.9, 1.8) if walking else 0.1,
                  (0.45 if night else 0.12) if walking else (0.2 if night else 0.03))


def _place(track: _Track, frame: int, config: SynthConfig, rng: np.random.Generator) -> Placement:
    span = track.body_px * 1.5
    x = float(np.clip(track.x + frame * track.vx, -0.1 * span, config.width + 0.1 * span))  # stays in view
    pose = replace(track.pose, leg_phase=track.pose.leg_phase + frame * track.phase_step,
                   neck_angle=track.pose.neck_angle + rng.normal(0.0, 3.0))
    blur = 0.0
    if rng.random() < track.blur_p:
        blur = abs(track.vx) * rng.uniform(0.1, 0.3) + rng.uniform(0.5, 2.0) * config.size / 96
    return Placement(track.animal, pose, x, track.y + frame * track.vy, track.body_px, track.facing, blur)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=1) + "\n")
