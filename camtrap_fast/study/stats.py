"""Mean and sample standard deviation over seeds, and the paired t interval the claims are judged by.

Why a paired t interval, not a paired bootstrap: a study has 2-5 seeds. A bootstrap of N paired differences has
at most N^N resamples, and its percentile interval never reaches past the smallest and largest difference seen
(at 2 seeds it is exactly [d1, d2]), so it is far too narrow at small N. The t interval with N - 1 degrees of
freedom is exact for normal differences and honestly wide at small N (t = 12.7 at 2 seeds, 4.30 at 3).

No scipy at run time (it is not a dependency): t quantiles for 1-30 degrees of freedom are tabulated (from
scipy.stats.t.ppf, to 6 decimals; tests compare), and the Cornish-Fisher expansion beyond, which agrees to 1e-7.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# t_{0.975} for 1..30 degrees of freedom.
T_975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
         2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
         2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)
Z_975 = 1.959963984540054


def t_975(df: int) -> float:
    """The 97.5 % quantile of Student's t with `df` degrees of freedom (a two-sided 95 % interval's factor)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T_975):
        return T_975[df - 1]
    z, n = Z_975, float(df)
    return (z + (z**3 + z) / (4 * n) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * n**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * n**3)
            + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * n**4))


def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def sample_std(values: Sequence[float]) -> float | None:
    """Standard deviation with N - 1 in the denominator; None for fewer than 2 values."""
    if len(values) < 2:
        return None
    m = mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))


@dataclass(frozen=True)
class Paired:
    """Per-seed differences A - B, their mean and the 95 % paired t interval: None below 2 seeds, and None when
    every seed gave the same difference (ties are common in a metric counted in test images, and a t interval of
    no width would claim a certainty those few seeds do not have)."""

    differences: tuple[float, ...]
    mean: float
    low: float | None
    high: float | None

    @property
    def seeds(self) -> int:
        return len(self.differences)


def paired(differences: Sequence[float]) -> Paired:
    values = tuple(float(d) for d in differences)
    if not values:
        raise ValueError("no paired differences: the two models share no seed")
    centre = mean(values)
    std = sample_std(values)
    # Differences of equal scores carry rounding noise (0.05000000000000004 against 0.04999999999999993), so
    # "no spread" is a spread at rounding level, which would otherwise give a zero-width interval and a verdict.
    if std is None or std <= 1e-12 * max(1.0, abs(centre)):  # None: one seed
        return Paired(values, centre, None, None)
    half = t_975(len(values) - 1) * std / math.sqrt(len(values))
    return Paired(values, centre, centre - half, centre + half)


def verdict(result: Paired, threshold: float = 0.0) -> str:
    """"holds" when the whole interval is above `threshold`, "does not hold" when it is below it, else
    "inconclusive at N seeds" (always so without an interval: below 2 seeds, or no spread at all)."""
    if result.low is not None and result.low > threshold:
        return "holds"
    if result.high is not None and result.high < threshold:
        return "does not hold"
    return f"inconclusive at {result.seeds} seed{'s' if result.seeds != 1 else ''}"
