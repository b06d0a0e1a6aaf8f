"""SummaryRow: one method's headline scores, as `heads` tabulates them (summary.csv, summary.md, the printed table).

Typed and built from a metrics.json alone, so a later comparison over many runs can collect rows from the
RUN/heads/METHOD/ directories without refitting anything.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields


@dataclass(frozen=True)
class SummaryRow:
    """rarest_k / commonest_k: pooled accuracy of the k classes with the fewest / most training images (None when
    fewer than k classes have test images); chosen: the tuned value or kept epoch in words; seconds: the fit."""

    method: str
    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    rarest_2: float | None
    rarest_5: float | None
    rarest_10: float | None
    commonest_2: float | None
    commonest_5: float | None
    commonest_10: float | None
    chosen: str
    seconds: float

    @staticmethod
    def from_metrics(metrics: dict) -> "SummaryRow":
        """From a heads (or phase-2) metrics.json."""
        rarest, commonest = metrics.get("rarest_accuracy") or {}, metrics.get("commonest_accuracy") or {}
        return SummaryRow(
            metrics.get("method", "retrain"), metrics["accuracy"], metrics["macro_precision"],
            metrics["macro_recall"], metrics["macro_f1"], rarest.get("2"), rarest.get("5"), rarest.get("10"),
            commonest.get("2"), commonest.get("5"), commonest.get("10"), metrics.get("chosen") or "",
            float(metrics.get("head_training_seconds") or 0.0))


COLUMNS = tuple(f.name for f in fields(SummaryRow))
HEADERS = ("method", "accuracy", "macro P", "macro R", "macro F1", "rarest-2", "rarest-5", "rarest-10",
           "commonest-2", "commonest-5", "commonest-10", "chosen", "seconds")


def _cells(row: SummaryRow, rounding: int = 3) -> list[str]:
    cells = []
    for name, value in zip(COLUMNS, astuple(row)):
        if isinstance(value, str):
            cells.append(value)
        elif value is None:
            cells.append("")
        elif name == "seconds":
            cells.append(f"{value:.2f}")
        else:
            cells.append(f"{value:.{rounding}f}")
    return cells


def summary_csv(rows: Sequence[SummaryRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(_cells(row, rounding=6) for row in rows)
    return buffer.getvalue()


def summary_markdown(rows: Sequence[SummaryRow]) -> str:
    align = ["---"] + ["---:"] * (len(HEADERS) - 3) + ["---", "---:"]  # text columns left, numbers right
    lines = [HEADERS, align] + [[cell or "–" for cell in _cells(row)] for row in rows]
    return "".join("| " + " | ".join(line) + " |\n" for line in lines)


def format_table(rows: Sequence[SummaryRow]) -> str:
    """The rows as a fixed-width text table, for the terminal."""
    table = [list(HEADERS)] + [[cell or "-" for cell in _cells(row)] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    left = {0, len(HEADERS) - 2}  # method and chosen read left-aligned
    return "\n".join("  ".join(cell.ljust(w) if i in left else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(line, widths))).rstrip() for line in table)
