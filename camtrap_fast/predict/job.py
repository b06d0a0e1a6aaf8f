"""`PredictJob`: one `camtrap-fast predict` call, checked before any photo is read, and run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from camtrap_fast.atomic import check_target
from camtrap_fast.devices import resolve_device
from camtrap_fast.errors import UserError
from camtrap_fast.predict import writers
from camtrap_fast.predict.classify import classify
from camtrap_fast.predict.items import DetectionOptions, detection_items, photo_items
from camtrap_fast.predict.sequences import burst_ids, load_sequence_source, pooled, source_ids
from camtrap_fast.train.rundir import Run

AGGREGATES = ("none", "sequence")


@dataclass(frozen=True)
class PredictJob:
    run: Path
    inputs: tuple[Path, ...]
    out: Path
    format: str | None = None  # None: from --out's suffix
    top_k: int = 5
    batch_size: int = 64
    device: str = "auto"
    detections: Path | None = None  # a MegaDetector batch-output file: classify its detections' crops
    detection: DetectionOptions = field(default_factory=DetectionOptions)
    aggregate: str = "none"
    burst_seconds: float = 10.0  # frames of one folder this close in EXIF time are one sequence
    sequences: Path | None = None  # a COCO CT / Camtrap DP / CSV source whose seq_ids name the sequences
    image_root: Path | None = None  # where --sequences' relative photo paths start (default: its own folder)

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise UserError(f"--top-k {self.top_k}: must be at least 1")
        if self.batch_size < 1:
            raise UserError(f"--batch-size {self.batch_size}: must be at least 1")
        if self.aggregate not in AGGREGATES:
            raise UserError(f"--aggregate {self.aggregate}: choose {' or '.join(AGGREGATES)}")
        if not self.burst_seconds >= 0:
            raise UserError(f"--burst-seconds {self.burst_seconds}: must be >= 0")
        if self.sequences is not None and self.aggregate != "sequence":
            raise UserError("--sequences names the sequences for --aggregate sequence; add it")
        if self.image_root is not None and self.sequences is None:
            raise UserError("--image-root is where --sequences' photo paths start; add --sequences")
        if self.detections is not None and len(self.inputs) != 1:
            raise UserError("with --detections, give one folder: the one the detector ran on")
        if self.output_format == "md-json" and self.detections is None:
            raise UserError(f"--out {self.out}: MegaDetector JSON holds classifications of detector boxes; give "
                            "--detections MD.json, or write --format csv or camtrap-dp")
        if self.output_format == "camtrap-dp":
            writers.check_camtrap_dp_target(self.out)
        else:
            check_target(self.out)

    @property
    def output_format(self) -> str:
        return writers.choose_format(self.out, self.format)


@dataclass(frozen=True)
class PredictSummary:
    classified: int
    items: int
    failed: int
    not_classified: int  # detector failures and images without a qualifying detection
    other_files: int  # non-image files skipped in folders
    repeated: int  # photos given more than once (a folder and a file in it), classified once
    sequences: int
    out: Path
    format: str
    unmatched: int = 0  # photos that --sequences does not list (each its own sequence)
    photos: int = 0  # photos (not detections) classified or tried
    untimed: int = 0  # Camtrap DP: classified photos without a capture time (eventStart left empty)


def _package_media(source: Path | None, image_root: Path | None) -> dict | None:
    """The media facts of --sequences when it is a Camtrap DP package (observations then name its mediaIDs)."""
    from camtrap_fast.ingest.camtrap_dp import is_camtrap_dp, media_facts

    return media_facts(source, image_root) if source is not None and is_camtrap_dp(source) else None


def run_predict(job: PredictJob) -> PredictSummary:
    # The inputs that can be refused are read before the model and the photos: a bad --sequences costs nothing.
    sequence_of = load_sequence_source(job.sequences, job.image_root) if job.sequences is not None else None
    media = _package_media(job.sequences, job.image_root) if job.output_format == "camtrap-dp" else None
    device = resolve_device(job.device)
    run = Run(job.run)
    model, _, classes = run.load_model(device)
    preprocessing = run.preprocessing()
    other_files = repeated = 0
    crops = preprocessing.get("crops") or {}
    if job.detections is not None:
        items = detection_items(job.detections, job.inputs[0], job.detection.resolved(crops),
                                crops.get("empty_class") if crops.get("mode") == "detections" else None)
    else:
        items, other_files, repeated = photo_items(list(job.inputs))
    results = classify(model, items, preprocessing, job.batch_size, device)
    classified = sum(r.probs is not None for r in results)
    if classified == 0:
        first = next(r for r in results if r.error)
        raise UserError(f"none of the {len(results)} {'detections and images' if job.detections else 'files'} "
                        f"could be classified (first: {first.item.file}: {first.error}); nothing written")
    ids = pools = None
    unmatched = 0
    if job.aggregate == "sequence":
        if sequence_of is not None:
            ids, unmatched = source_ids(items, sequence_of)
        else:
            ids = burst_ids(items, job.burst_seconds)
        pools = pooled(results, ids)
    k = min(job.top_k, len(classes))
    fmt = job.output_format
    untimed = 0
    if fmt == "csv":
        writers.write_csv(job.out, results, classes, k, ids, pools)
    elif fmt == "md-json":
        writers.write_md_json(job.out, job.detections, results, classes, k, run.root, ids, pools)
    else:
        untimed = writers.write_camtrap_dp(job.out, results, classes, run.root, ids, pools, media).untimed_photos
    not_classified = sum(1 for r in results if r.item.not_classified)
    failed = sum(1 for r in results if r.probs is None) - not_classified
    return PredictSummary(classified, len(results), failed, not_classified, other_files, repeated,
                          len(pools) if pools is not None else 0, job.out, fmt, unmatched,
                          len({item.path for item in items}), untimed)
