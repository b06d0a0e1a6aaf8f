"""Predict: classify new photos (or a MegaDetector file's detections) with a trained run, per frame and per
sequence, into CSV, MegaDetector JSON or Camtrap DP.

`items` says what is classified, `classify` runs the model, `sequences` pools frames into captures and
`writers` writes the formats camera-trap tools read; `job` ties them together for the CLI.
"""

from camtrap_fast.predict.job import PredictJob, PredictSummary, run_predict

__all__ = ["PredictJob", "PredictSummary", "run_predict"]
