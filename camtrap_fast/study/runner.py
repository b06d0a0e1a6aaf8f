"""`run_study(config)`: every run of the study (train, then every phase-2 method on its cached features), then
the tables, figures and claims.

    STUDY/study.json                  the study's resolved options; a rerun with others is refused, naming them
                                      (more --seeds are added: only their runs are trained)
    STUDY/runs/REGIME/LOSS/seed-S/    ordinary training runs (+ study.json when finished)
    STUDY/table.csv, table.md         the study's tables, mean ± std over seeds
    STUDY/table_focal.md              the focal-loss study's Table II: one column per --loss (--frames first:
                                      each followed by the same on the first frame of each test sequence)
    STUDY/claims.md                   the study's claims, checked
    STUDY/species/MODEL.md, .csv      the appendix's per-species table per model
    STUDY/figures/                    per-species F1 change per two-phase model; macro F1 against accuracy

A killed study rerun with the same command skips the finished runs (their study.json), resumes the interrupted
one (`train(..., resume=True)`: phase 1 from its last finished epoch, phase 2 from the feature cache) and ends
with the same tables, byte for byte: runs are seeded and deterministic on CPU, and the tables are made from the
runs' metrics.json alone. Shared work is done once: one shard set; each split's eval images, decoded once for
all runs (pipelines.decoded); one feature cache per run, which phase 2 and every method read (a baseline's is
extracted once by `heads`); all methods fitted on that cache in one call.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from camtrap_fast import atomic
from camtrap_fast.errors import UserError
from camtrap_fast.pipelines.decoded import DecodedSplits
from camtrap_fast.sampling.scale import STUDY_TRAIN_IMAGES
from camtrap_fast.shards.manifest import load_manifest
from camtrap_fast.study.claims import check_claims, claims_md
from camtrap_fast.study.collect import StudyScores, collect
from camtrap_fast.study.config import RUN_MARKER, STUDY_FORMAT, StudyConfig, StudyRun
from camtrap_fast.study.first_frames import first_frame_scores, first_frame_set
from camtrap_fast.study.focal_table import table_focal_md
from camtrap_fast.study.figures import plot_f1_change, plot_summary
from camtrap_fast.study.tables import species_csv, species_md, table_csv, table_md
from camtrap_fast.train.heads.runner import fit_heads
from camtrap_fast.train.rundir import Run
from camtrap_fast.train.training import train

STUDY_FILE = "study.json"


@dataclass(frozen=True, eq=False)
class StudyResult:
    out: Path
    runs: int
    trained: int  # runs trained (or resumed) by this call; the rest had finished before
    seconds: float
    scores: StudyScores
    files: tuple[Path, ...]


def run_study(config: StudyConfig, progress: bool = True) -> StudyResult:
    study_started = time.perf_counter()
    manifest = load_manifest(config.train.shards)
    if config.frames == "first":  # refused before any training when the shards record no sequences
        first_frame_set(manifest, _scored_split(manifest))
    config = _claim_folder(config, manifest.fingerprint)
    runs = config.runs()
    seconds_of: dict[str, list[float]] = {}
    trained = 0
    decoded = DecodedSplits()  # every run's eval images, decoded once for the whole study
    for number, run in enumerate(runs, 1):
        head = f"study: run {number}/{len(runs)} ({run})"
        if run.finished():
            print(f"{head}: finished before, skipped", flush=True)
            continue
        left = _estimate_left([r for r in runs[number - 1:] if not r.finished()], seconds_of)
        what = "two-phase" if run.regime.two_phase else "baseline, phase 1"
        resumed = run.root.exists() and any(run.root.iterdir())  # train(resume=True) accepts a used folder
        continued = Run(run.root).config_path.is_file()  # ... but only a started run is continued
        print(f"{head}: {'resuming ' if continued else ''}{what}, sampling {run.regime.spec.text}; elapsed "
              f"{_duration(time.perf_counter() - study_started)}, {left}", flush=True)
        run_started = time.perf_counter()
        _train_run(config, run, resumed, progress, decoded)
        seconds_of.setdefault(run.label, []).append(time.perf_counter() - run_started)
        trained += 1
    scores = collect(config)
    files = write_outputs(config, scores, manifest)
    seconds = time.perf_counter() - study_started
    shared = (f"; eval images decoded once ({decoded.decoded_images}), served {decoded.served_images} times"
              if decoded.decoded_images else "")
    print(f"study: {len(runs)} runs ({trained} trained now, {len(runs) - trained} finished before) in "
          f"{_duration(seconds)}{shared}; tables in {config.out}", flush=True)
    return StudyResult(config.out, len(runs), trained, seconds, scores, files)


def _train_run(config: StudyConfig, run: StudyRun, resumed: bool, progress: bool, decoded: DecodedSplits) -> None:
    """Train (or resume) the run unless its training finished, fit every method on its cache, then mark it done."""
    summary_path = run.root / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    if ("phase2" if run.regime.two_phase else "phase1") not in summary:
        train(config.run_config(run), run.root, resume=resumed, progress=progress,
              make_eval_loader=decoded.make_loader)
    methods_started = time.perf_counter()
    result = fit_heads(run.root, config.methods, device=config.train.device,
                       skip_corrupt=config.train.loader.skip_corrupt, make_eval_loader=decoded.make_loader)
    extracted = f"features extracted for {', '.join(result.extracted)}, " if result.extracted else ""
    print(f"  phase-2 methods: {extracted}{len(result.rows)} fitted in "
          f"{time.perf_counter() - methods_started:.1f} s", flush=True)
    atomic.write_text(run.root / RUN_MARKER, json.dumps(run.marker, indent=1) + "\n")


def _claim_folder(config: StudyConfig, fingerprint: str) -> StudyConfig:
    """Start a new study in --out, or continue the same one (perhaps with seeds added); refuse anything else
    before any work. Returns the config to run: a continued study keeps its seeds' order."""
    out, path = config.out, config.out / STUDY_FILE
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: --out exists and is not a folder")
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UserError(f"{path}: cannot read ({error}); choose another --out") from None
        if not isinstance(saved, dict) or saved.get("format") != STUDY_FORMAT:
            raise UserError(f"{path}: not a {STUDY_FORMAT} file; choose another --out")
        differences = config.differences(saved, fingerprint)
        if differences and set(out.iterdir()) == {path}:
            # No run ever started (an option its first run refused, or a kill before it): nothing to keep, so
            # the corrected command starts the study afresh instead of being held to the refused options.
            print(f"study: {path} is from a study that never started a run; starting again with these options",
                  flush=True)
            atomic.write_text(path, json.dumps(config.as_dict(fingerprint), indent=1) + "\n")
            return config
        if differences:
            raise UserError(f"{out}: holds a study with other options: {'; '.join(differences)}; rerun with the "
                            "study's options to continue it, or choose another --out")
        added = config.added_seeds(saved)
        config = config.continuing(saved)
        if added:
            print(f"study: adding seeds {','.join(map(str, added))} to the study's "
                  f"{','.join(map(str, saved['seeds']))}; its finished runs are kept", flush=True)
            atomic.write_text(path, json.dumps(config.as_dict(fingerprint), indent=1) + "\n")
        return config
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: --out is not empty and holds no study ({STUDY_FILE}); choose another --out")
    atomic.write_text(path, json.dumps(config.as_dict(fingerprint), indent=1) + "\n")
    return config


def _scored_split(manifest) -> str:
    test = manifest.splits.get("test")
    return "test" if test is not None and test.samples else "val"


def write_outputs(config: StudyConfig, scores: StudyScores, manifest=None) -> tuple[Path, ...]:
    out = config.out
    title = (f"Study on {config.train.shards.name}: {len(scores.models)} models × {len(scores.seeds)} seeds")
    notes = [_regime_note(config, scores, model) for model in scores.models]
    first = None
    if config.frames == "first":
        first = first_frame_scores(config, scores, manifest or load_manifest(config.train.shards))
    files = [atomic.write_text(out / "table.csv", table_csv(scores)),
             atomic.write_text(out / "table.md", table_md(scores, title, notes)),
             atomic.write_text(out / "table_focal.md", table_focal_md(scores, title, first)),
             atomic.write_text(out / "claims.md", claims_md(scores, check_claims(scores), f"Claims checked: {title}"))]
    for model in scores.models:
        files.append(atomic.write_text(out / "species" / f"{model.slug}.md", species_md(scores, model)))
        files.append(atomic.write_text(out / "species" / f"{model.slug}.csv", species_csv(scores, model)))
        if model.regime.two_phase:
            baseline = next((m for m in scores.models if m.loss == model.loss and m.regime.kind == "baseline"), None)
            files.append(plot_f1_change(out / "figures" / f"f1_change_{model.slug}.png", scores, model, baseline))
    files.append(plot_summary(out / "figures" / "macro_f1_vs_accuracy.png", scores))
    return tuple(files)


def _regime_note(config: StudyConfig, scores: StudyScores, model) -> str:
    spec = model.regime.spec
    epochs = scores.epoch_counts[(model.label, "1")]
    per_epoch = f", {sum(epochs)} images per phase-1 epoch" if epochs is not None else ""
    bands = f", ROS bands {spec.ros_ratios_text}" if spec.ros_cap else ""
    scaled = (f" (caps scaled ×{config.scale:.5f}: {config.train_images} training images / {STUDY_TRAIN_IMAGES:,})"
              if model.regime.scaled else "")
    loss = f", loss {model.loss}" if model.label != model.regime.name else ""
    return f"{model.label}: --regime {model.regime.name} → {spec.text}{scaled}{bands}{loss}{per_epoch}"


def _estimate_left(remaining: list[StudyRun], seconds_of: dict[str, list[float]]) -> str:
    """About how long the remaining runs (this one included) take: each at the mean of this call's finished runs
    of its model (regimes differ in epoch size), or of all finished runs until its model has one."""
    if not seconds_of:
        return "time left known after the first run"
    every = [s for values in seconds_of.values() for s in values]
    overall = sum(every) / len(every)
    left = sum(sum(seconds_of[r.label]) / len(seconds_of[r.label]) if r.label in seconds_of else overall
               for r in remaining)
    return f"about {_duration(left)} left"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")
