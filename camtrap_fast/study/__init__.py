"""Study: the study's whole protocol over several seeds — every regime, loss and seed an ordinary training run,
every phase-2 method on each run's cached features — and its tables, figures and checked claims.

`config` is what a study runs (and the STUDY/study.json a rerun must match), `options` its command line,
`runner` runs it, `collect` reads the runs' metrics back, `tables`, `figures` and `claims` (with `stats`: the
paired t interval) turn them into the study's outputs.

The names below are imported on first use, so that building the command line never pays for importing torch.
"""

from camtrap_fast.lazy import lazy_attributes

_EXPORTS = {
    "StudyConfig": "camtrap_fast.study.config",
    "StudyResult": "camtrap_fast.study.runner",
    "run_study": "camtrap_fast.study.runner",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
