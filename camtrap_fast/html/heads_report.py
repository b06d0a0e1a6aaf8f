"""RUN/heads/report.html: the phase-2 methods of `camtrap-fast heads RUN`, compared on one page.

    methods       heads/summary.csv as a sortable table (accuracy, macro P/R/F1, rarest/commonest-k, chosen)
    per species   each species' F1 under every method, sortable; a row opens the species' row of each method's
                  per_class.csv
    figure        heads/f1_by_species.png (each method's per-species F1 minus retrain's)
"""

from __future__ import annotations

import csv
from pathlib import Path

from camtrap_fast.errors import UserError
from camtrap_fast.html import page
from camtrap_fast.html.page import esc, number
from camtrap_fast.html.run_files import REPORT_FILE
from camtrap_fast.report import read_metrics
from camtrap_fast.train.heads.summary import COLUMNS, HEADERS


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_heads_report(heads_dir: str | Path) -> Path:
    """Write HEADS/report.html (HEADS: a run's heads/ folder) and return its path."""
    heads = Path(heads_dir)
    summary_path = heads / "summary.csv"
    if not summary_path.is_file():
        raise UserError(f"{heads}: no summary.csv; run `camtrap-fast heads {heads.parent}` first")
    summary = _rows(summary_path)
    methods = [row["method"] for row in summary]
    per_class = {m: _rows(heads / m / "per_class.csv") for m in methods if (heads / m / "per_class.csv").is_file()}
    split = ""
    if methods and (heads / methods[0] / "metrics.json").is_file():
        split = str(read_metrics(heads / methods[0]).get("split", ""))
    columns = list(summary[0]) if summary else []
    headers = [HEADERS[COLUMNS.index(c)] if c in COLUMNS else c for c in columns]
    table = page.table(headers, ([row[c] if c in ("method", "chosen") else number(_float(row[c])) if c != "seconds"
                                  else number(_float(row[c]), 2) for c in columns] for row in summary),
                       [c not in ("method", "chosen") for c in columns], table_id="methods-table")
    sections = [("methods", "Phase-2 methods", f'<p class="note">Scores on the {esc(split or "test")} split; each '
                 "method fits the final layer on the run's cached frozen-backbone features. Click a column to "
                 f"sort.</p>{table}"),
                ("species", "Per species", _species(per_class, methods)),
                ("figure", "F1 against retrain", page.figure(heads / "f1_by_species.png", "per-species F1 by method"))]
    out = heads / REPORT_FILE
    page.write_page(out, page.document(f"camtrap-fast heads: {heads.parent.resolve().name}", sections))
    return out


def _float(text: str):
    return float(text) if text not in ("", None) else None


def _species(per_class: dict[str, list[dict]], methods: list[str]) -> str:
    if not per_class:
        return '<p class="empty">no per_class.csv</p>'
    reference = next(iter(per_class.values()))
    shown = [m for m in methods if m in per_class]
    by_method = {m: {row["Species"]: row for row in rows} for m, rows in per_class.items()}
    head = ("<th>Species</th><th class=n>Count (Train)</th><th class=n>Count (Test)</th>"
            + "".join(f"<th class=n>F1 {esc(m)}</th>" for m in shown))
    body = []
    for row in reference:
        species = row["Species"]
        cells = (f"<td>{esc(species)}</td><td class=n>{esc(row['Count (Train)'])}</td>"
                 f"<td class=n>{esc(row['Count (Test)'])}</td>"
                 + "".join(f"<td class=n>{esc(by_method[m].get(species, {}).get('F1-score', ''))}</td>" for m in shown))
        body.append(f'<tr class="expander">{cells}</tr>')
        detail_rows = [[m] + [by_method[m].get(species, {}).get(c, "") for c in
                              ("Precision", "Recall", "F1-score", "Count (Epoch)")] for m in shown]
        detail = page.table(("method", "Precision", "Recall", "F1-score", "Count (Epoch)"), detail_rows,
                            [False, True, True, True, True], sortable=False)
        body.append(f'<tr class="detail" hidden><td colspan="{3 + len(shown)}">{detail}</td></tr>')
    return ('<p class="note">Each species\' F1 under every method (blank: undefined, no test photo and no '
            "prediction); species by training images, most first. Click a row for precision, recall and the epoch "
            "counts per method.</p>"
            f'<table class="sortable" id="heads-species-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")
