"""STUDY/report.html: a study's tables, checked claims, per-species tables and figures on one page.

Everything is read from what `camtrap-fast study` wrote (table.md, claims.md, species/MODEL.csv, figures/*.png),
so the page says exactly what the files say; each run's own report.html is linked when it exists.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from camtrap_fast.errors import UserError
from camtrap_fast.html import page
from camtrap_fast.html.page import esc
from camtrap_fast.html.run_files import REPORT_FILE
from camtrap_fast.study.config import RUN_MARKER

STUDY_MARKER = "study.json"


def study_runs(study: Path) -> list[Path]:
    """The study's finished runs (their study.json written), in path order."""
    return sorted(p.parent for p in (study / "runs").glob(f"*/*/seed-*/{RUN_MARKER}"))


def write_study_report(study_dir: str | Path) -> Path:
    """Write STUDY/report.html and return its path."""
    study = Path(study_dir)
    if not (study / "table.md").is_file():
        raise UserError(f"{study}: no table.md; is it a finished `camtrap-fast study` output folder?")
    sections = [("tables", "Tables", page.markdown((study / "table.md").read_text(encoding="utf-8")))]
    if (study / "claims.md").is_file():
        sections.append(("claims", "Claims", page.markdown((study / "claims.md").read_text(encoding="utf-8"))))
    species = []
    for path in sorted((study / "species").glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        if rows:
            numeric = [name not in ("species",) for name in rows[0]]
            species.append(f"<details><summary>{esc(path.stem)} ({len(rows) - 1} rows)</summary>"
                           + page.table(rows[0], rows[1:], numeric, table_id=f"species-{path.stem}") + "</details>")
    sections.append(("species", "Per species", '<p class="note">The appendix\'s per-species tables, one per model '
                     "(mean and std over seeds); sortable.</p>" + ("".join(species) or '<p class="empty">none</p>')))
    figures = "".join(f"<h3>{esc(p.stem)}</h3>" + page.figure(p, p.stem) for p in sorted((study / "figures").glob("*.png")))
    sections.append(("figures", "Figures", figures or '<p class="empty">none</p>'))
    sections.append(("runs", "Runs", _runs(study)))
    config = json.loads((study / STUDY_MARKER).read_text(encoding="utf-8")) if (study / STUDY_MARKER).is_file() else {}
    sections.append(("config", "Config", page.json_block(config)))
    out = study / REPORT_FILE
    page.write_page(out, page.document(f"camtrap-fast study: {study.resolve().name}", sections))
    return out


def _runs(study: Path) -> str:
    rows = []
    for run in study_runs(study):
        marker = json.loads((run / RUN_MARKER).read_text(encoding="utf-8"))
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8")) if (run / "summary.json").is_file() else {}
        final = summary.get("phase2") or summary.get("phase1") or {}
        link = run.relative_to(study) / REPORT_FILE
        report = (f'<a href="{esc(link.as_posix())}">report</a>' if (run / REPORT_FILE).is_file() else "")
        heads = run.relative_to(study) / "heads" / REPORT_FILE
        heads_link = (f'<a href="{esc(heads.as_posix())}">heads</a>' if (run / "heads" / REPORT_FILE).is_file() else "")
        rows.append(f"<tr><td>{esc(marker.get('regime'))}</td><td>{esc(marker.get('loss'))}</td>"
                    f"<td class=n>{esc(marker.get('seed'))}</td>"
                    f"<td class=n>{page.number(final.get('accuracy'))}</td><td class=n>{page.number(final.get('macro_f1'))}</td>"
                    f"<td>{report} {heads_link}</td></tr>")
    head = ("<th>regime</th><th>loss</th><th class=n>seed</th><th class=n>final accuracy</th>"
            "<th class=n>final macro F1</th><th>pages</th>")
    return (f'<table class="sortable" id="runs-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
            "</table>")
