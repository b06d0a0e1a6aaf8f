"""`fit_heads(RUN, methods)`: the chosen phase-2 methods fitted on one run's cached features and reported.

    RUN/heads/METHOD/       metrics.json per_class.csv predictions.csv (the report of a phase, plus the method,
                            its chosen tau or kept epoch, its seconds), head.pt (the fitted layer's state dict)
    RUN/heads/summary.csv   one SummaryRow per method; summary.md the same as a Markdown table
    RUN/heads/f1_by_species.png   each method's per-species F1 against retrain's

Features come from the run's cache (RUN/features/{split}.pt). A two-phase run has them already; a baseline
run's are extracted here once with its phase-1 model (then the fits follow Kang et al.'s order: features
learned on the imbalanced data, the classifier rebalanced). A cache made by another checkpoint, other shards or
another transform is never used: it is extracted again (train.features), so no image is decoded twice for a
run whose cache is current, and none more than once per `heads` call. Fitting runs on the CPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from camtrap_fast import atomic
from camtrap_fast.atomic import save_torch
from camtrap_fast.devices import resolve_device
from camtrap_fast.errors import UserError
from camtrap_fast.model import split_backbone_head
from camtrap_fast.pipelines import make_loader
from camtrap_fast.report import plot_f1_by_method
from camtrap_fast.train.distributed import World
from camtrap_fast.train.evaluation import write_phase_report
from camtrap_fast.train.head_config import PHASE2_METHODS
from camtrap_fast.train.heads.contract import HeadFit, HeadInputs
from camtrap_fast.train.heads.registry import fit_method
from camtrap_fast.train.heads.summary import SummaryRow, summary_csv, summary_markdown
from camtrap_fast.train.phase2 import cache_features, head_predictions
from camtrap_fast.train.rundir import Run
from camtrap_fast.train.session import Session

REFERENCE = "retrain"  # the method the per-species chart compares against: the study's phase 2


@dataclass(frozen=True, eq=False)
class HeadsResult:
    """What one `heads` call did. extracted: the splits whose features were extracted now (the rest were read
    from the cache); fits: the fitted layers, by method, in the order fitted."""

    run: Path
    out_dir: Path
    split: str
    seed: int
    rows: tuple[SummaryRow, ...]
    fits: dict[str, HeadFit]
    extracted: tuple[str, ...]
    extraction_seconds: float
    chart: Path | None
    notes: tuple[str, ...]


def fit_heads(run_dir: str | Path, methods: Sequence[str] = PHASE2_METHODS, seed: int | None = None,
              device: str = "auto", shards: Path | None = None, skip_corrupt: bool = False,
              confusion_png: bool = False, on_fit: Callable[[HeadFit], None] | None = None,
              make_eval_loader: Callable = make_loader) -> HeadsResult:
    """Fit `methods` on the run's cached features (extracting them first where missing), write RUN/heads/.

    seed: None uses the run's own, so `retrain` reproduces a retrain run's phase 2 exactly. on_fit: called after
    each method is fitted (progress). make_eval_loader: as `train`'s."""
    run = Run(Path(run_dir))
    config = run.load_config()
    # phase1/model.pt is saved at every improved epoch; metrics.json only once phase 1 has finished.
    if not (run.phase_dir(1) / "metrics.json").is_file():
        raise UserError(f"{run.root}: phase 1 has not finished ({run.phase_dir(1) / 'metrics.json'} missing); "
                        "finish it with `camtrap-fast train ... --resume` (the run's options), then run `heads`")
    if not run.model_path(1).is_file():
        raise UserError(f"{run.root}: the run has no phase-1 model ({run.model_path(1)} missing); "
                        "`heads` needs a finished training run")
    unknown = [m for m in methods if m not in PHASE2_METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown phase-2 methods {unknown}; choose from {PHASE2_METHODS}")
    seed = config.seed if seed is None else seed
    manifest = run.manifest(shards)
    torch_device = resolve_device(device)
    # --compare is phase 2's chart against a baseline run; heads never reads that run, which may be gone.
    session_config = dataclasses.replace(config, compare=None,
                                         loader=dataclasses.replace(config.loader, skip_corrupt=skip_corrupt))
    session = Session(session_config, run, manifest, torch_device, World(), progress=False)
    split = session.eval_split
    model, _, classes = run.load_model(torch_device, phase=1)
    splits = [s for s in ("train", "val", split) if s in session.sizes]
    # Loaders cost nothing until used (PIL workers and DALI pipelines start on the first epoch), and a split whose
    # cache is current is never iterated.
    loaders = {s: make_eval_loader(manifest, s, session.loader_config("eval")) for s in dict.fromkeys(splits)}
    try:
        caches, extraction_seconds = cache_features(session, model, loaders)
        skipped = {s: len(loader.skipped_samples) for s, loader in loaders.items() if loader.skipped_samples}
    finally:
        for loader in loaders.values():
            loader.close()
    _, head = split_backbone_head(model)
    phase1_head = nn.Linear(head.in_features, head.out_features, bias=head.bias is not None)
    phase1_head.load_state_dict({k: v.detach().cpu().float() for k, v in head.state_dict().items()})
    inputs = HeadInputs.from_caches(phase1_head, caches, config.head, config.loss, seed)

    out_dir = run.heads_dir
    train_counts = session.train_counts
    keys = manifest.load_index(split).keys(caches[split].positions.tolist())  # --skip-corrupt leaves rows out
    notes = []
    if split == "val":
        notes.append("the shards have no test split: scores are on val, the split that also chose each method's "
                     "tau or epoch (optimistic); reshard with a test fraction")
    if not inputs.has_val:
        notes.append("the shards have no val split: tau is fixed at 1 and every epoch runs (no early stopping)")
    if skipped:
        notes.append("corrupt samples skipped while extracting features (--skip-corrupt): "
                     + ", ".join(f"{n} in {s}" for s, n in skipped.items()))
    fits, metrics_of = {}, {}
    for name in methods:
        fit = fit_method(name, inputs)
        fits[name] = fit
        y_true, y_pred, confidence = head_predictions(fit.head_state, caches[split])
        extra = {"split": split, "seed": seed, "run": str(run.root.absolute()), **fit.report_fields(),
                 "epoch_images_per_class": None if fit.epoch_counts is None else dict(zip(classes, fit.epoch_counts)),
                 "notes": notes}
        metrics_of[name] = write_phase_report(out_dir / name, y_true, y_pred, confidence, keys, classes,
                                              train_counts, extra, fit.epoch_counts, confusion_png)
        save_torch(out_dir / name / "head.pt", fit.head_state)
        if on_fit is not None:
            on_fit(fit)
    rows = tuple(SummaryRow.from_metrics(metrics_of[name]) for name in methods)
    atomic.write_text(out_dir / "summary.csv", summary_csv(rows))
    atomic.write_text(out_dir / "summary.md", f"Phase-2 methods on `{run.root}` ({len(caches['train'].labels)} "
                      f"training features; scores on {split}; seed {seed})\n\n" + summary_markdown(rows))
    chart = _chart(out_dir / "f1_by_species.png", classes, train_counts, metrics_of, notes)
    extracted = tuple(s for s, cache in caches.items() if cache.seconds > 0)
    return HeadsResult(run.root, out_dir, split, seed, rows, fits, extracted, extraction_seconds, chart, tuple(notes))


def _chart(path: Path, classes: list[str], train_counts: np.ndarray, metrics_of: dict, notes: list) -> Path | None:
    if REFERENCE not in metrics_of or len(metrics_of) < 2:
        path.unlink(missing_ok=True)  # an older call's chart would show other methods than summary.csv
        notes.append(f"{path.name} compares methods against {REFERENCE}: fit it and at least one other to draw it")
        return None
    f1 = {name: [np.nan if (v := metrics["per_class"][c]["f1"]) is None else v for c in classes]
          for name, metrics in metrics_of.items()}
    return plot_f1_by_method(path, classes, train_counts, f1, REFERENCE)
