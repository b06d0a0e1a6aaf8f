"""Predict: classify new photos (or a MegaDetector file's detections) with a trained run, per frame and per
sequence, into CSV, MegaDetector JSON or Camtrap DP.

`items` says what is classified, `classify` runs the model, `sequences` pools frames into captures and
`writers` writes the formats camera-trap tools read; `job` ties them together for the CLI.

The names below are imported on first use, so that the CLI can check --out's format (`formats`) before torch.
"""

from camtrap_fast.lazy import lazy_attributes

_EXPORTS = {"PredictJob": "camtrap_fast.predict.job", "PredictSummary": "camtrap_fast.predict.job",
            "run_predict": "camtrap_fast.predict.job"}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
