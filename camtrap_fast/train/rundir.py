"""`Run`: a training run directory — its layout, its atomic writes, the resume checks, its final model.

    RUN/
      config.json          the resolved TrainConfig (shards, weights and compare as absolute paths)
      environment.json     versions, device, CPU split (loader workers, torch threads), git sha, machine, start time
      classes.json         class names in label order
      preprocessing.json   shard size and quality, crop size: what predict repeats on new photos
      shards.json          the shard set this run trained on: path and fingerprint
      checkpoint.pt        phase-1 state after the last finished epoch (for --resume)
      phase1/              model.pt metrics.json per_class.csv predictions.csv confusion_matrix.png
      features/{split}.pt  the phase-2 feature cache (two-phase runs; a baseline run's after `heads`)
      phase2/              the same as phase1/ (the --phase2 method's layer), plus f1_change.png
      eval-{split}/        `camtrap-fast eval RUN --split SPLIT`
      summary.json         accuracy and macro-F1 per phase
      heads/METHOD/        `camtrap-fast heads RUN`: metrics.json per_class.csv predictions.csv head.pt per method
      heads/summary.csv    one row per method (summary.md: the same table); heads/f1_by_species.png

`Run` is the counterpart of the shards' `Manifest`: `train`, `eval` and `predict` find everything through it.
A run is only continued on purpose (`--resume`), with the same options and on the same shards.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from camtrap_fast import atomic
from camtrap_fast.environment import git_sha, machine, package_versions
from camtrap_fast.errors import UserError
from camtrap_fast.model import build_model
from camtrap_fast.shards.manifest import Manifest, load_manifest
from camtrap_fast.train.config import TrainConfig
from camtrap_fast.train.options import FLAG_OF_FIELD
from camtrap_fast.train.run_paths import require_run

# Options a resumed run may change: they do not change what is trained, or they extend it (--epochs).
# --skip-corrupt only leaves out samples that cannot be read, so every healthy sample trains as before; it is
# what the corrupt-sample error tells the user to add. --workers and --threads change speed only
# (train.parallelism), so a resume on a machine whose automatic split differs is not refused.
RESUMABLE_CHANGES = ("device", "loader.workers", "threads", "loader.skip_corrupt", "compare", "phase1.epochs",
                     "phase1.patience")


@dataclass(frozen=True)
class Run:
    root: Path

    # --- layout -------------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def checkpoint_path(self) -> Path:
        return self.root / "checkpoint.pt"

    @property
    def features_dir(self) -> Path:
        return self.root / "features"

    @property
    def summary_path(self) -> Path:
        return self.root / "summary.json"

    def phase_dir(self, phase: int) -> Path:
        return self.root / f"phase{phase}"

    def eval_dir(self, split: str) -> Path:
        return self.root / f"eval-{split}"

    @property
    def heads_dir(self) -> Path:
        return self.root / "heads"

    def model_path(self, phase: int) -> Path:
        return self.phase_dir(phase) / "model.pt"

    def final_phase(self) -> int:
        """2 when phase 2 finished, else 1."""
        return 2 if (self.phase_dir(2) / "metrics.json").exists() else 1

    # --- writing ------------------------------------------------------------------------------------

    def write_json(self, name: str, data) -> Path:
        return atomic.write_text(self.root / name, json.dumps(data, indent=1) + "\n")

    def check_new(self) -> None:
        """Refuse a used --out before any work: a run is only continued on purpose, with --resume."""
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"{self.root}: --out exists and is not a folder")
        if self.root.exists() and any(self.root.iterdir()):
            raise UserError(f"{self.root}: run directory is not empty; pass --resume to continue it "
                            "or choose another --out")

    def start(self, config: TrainConfig, manifest: Manifest, device: torch.device,
              parallelism: dict | None = None) -> None:
        """Write what describes the run (environment, classes, preprocessing, shards, then config) into RUN/.

        config.json is written last: it marks a started run, and a resume reads the others (a run killed between
        these writes has no config.json, so it is started again rather than resumed with shards.json missing)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.write_json("environment.json", {
            "versions": package_versions(), "git_sha": git_sha(), "machine": machine(), "device": str(device),
            "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            # The split of the CPUs this machine chose (train.parallelism); config.json keeps what was asked.
            "parallelism": parallelism, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        self.write_json("classes.json", list(manifest.classes))
        # What predict must repeat on new photos, even after the shards are gone.
        self.write_json("preprocessing.json", {"shard_size": manifest.image_size, "shard_quality": manifest.quality,
                                               "image_size": config.loader.image_size,
                                               "eval_crop": config.loader.eval_crop,
                                               "crops": dict(manifest.crops)})
        self.write_json("shards.json", {"path": str(manifest.root.absolute()), "fingerprint": manifest.fingerprint})
        atomic.write_text(self.config_path, config.to_json())

    # --- reading ------------------------------------------------------------------------------------

    def load_config(self) -> TrainConfig:
        require_run(self.root)
        try:
            return TrainConfig.from_json(self.config_path.read_text(encoding="utf-8"))
        except (ValueError, KeyError, TypeError) as error:
            raise UserError(f"{self.config_path}: not a camtrap-fast training config ({error}); "
                            "an older camtrap-fast may have written it: train the run again") from None

    def read_json(self, name: str):
        path = self.root / name
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path}: missing; is {self.root} a camtrap-fast training run?") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UserError(f"{path}: cannot read ({error})") from None

    def classes(self) -> list[str]:
        return list(self.read_json("classes.json"))

    def preprocessing(self) -> dict:
        return dict(self.read_json("preprocessing.json"))

    def manifest(self, shards: Path | None = None) -> Manifest:
        """The shards this run trained on (or `shards`, when they moved), refused if they are other data."""
        recorded = self.read_json("shards.json")
        where = Path(shards) if shards is not None else Path(recorded["path"])
        if shards is None and not (where / "manifest.json").is_file():
            raise UserError(f"{where}: the shards this run trained on are not there any more; "
                            "pass --shards NEW_PATH if they moved")
        manifest = load_manifest(where)
        if manifest.fingerprint != recorded["fingerprint"]:
            raise UserError(f"{where}: holds other shards than the ones {self.root} trained on (fingerprint "
                            f"{manifest.fingerprint}, run {recorded['fingerprint']}): re-sharded or another dataset")
        return manifest

    def check_resume(self, config: TrainConfig, manifest: Manifest) -> None:
        """Refuse to continue this run with other options or on other data, naming what differs."""
        saved = self.load_config()
        differences = [(name, old, new) for name, old, new in saved.differences(config)
                       if name not in RESUMABLE_CHANGES]
        if differences:
            listed = "; ".join(f"{FLAG_OF_FIELD.get(name, name)} {old} in the run, {new} now"
                               for name, old, new in differences)
            raise UserError(f"{self.root}: --resume with options that differ from the run's: {listed}; "
                            "resume with the run's options or train into another --out")
        recorded = self.read_json("shards.json")
        if recorded["fingerprint"] != manifest.fingerprint:
            raise UserError(f"{manifest.root}: holds other shards than the ones {self.root} was trained on "
                            "(the shard fingerprint differs: re-sharded with other options or inputs); "
                            "train into another --out")

    def load_model(self, device: torch.device, phase: int | None = None):
        """(model in eval mode on `device`, config, classes) for the final phase's model (or `phase`'s)."""
        config = self.load_config()
        phase = self.final_phase() if phase is None else phase
        path = self.model_path(phase)
        if not path.is_file():
            raise UserError(f"{self.root}: the run has no trained model yet ({path} missing)")
        classes = self.classes()
        model = build_model(config.model.arch, len(classes), None)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.to(device).eval(), config, classes
