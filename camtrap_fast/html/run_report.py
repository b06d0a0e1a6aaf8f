"""RUN/report.html: one self-contained page per training run, with the test photos behind its numbers.

    summary       data, sampling, phases, accuracy and macro P/R/F1 of every metrics folder, times
    species       the per-species table (per_class.csv's rows and columns), sortable; a row opens the species'
                  photos: correct, mistaken (true -> predicted, confidence) and others' photos taken for it
    confusion     the confusion matrix (row-normalized, most training images first); a cell shows its photos
    f1 change     phase2/f1_change.png (two-phase runs)
    galleries     most confident mistakes; the rarest species' photos; each with its frame / sequence context
    config        config.json, preprocessing.json, environment.json

The photos are those of one metrics folder (`run_files.choose_focus`): after `train` the final phase's scores on
the run's eval split, after `eval` that evaluation's.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from camtrap_fast.html import page
from camtrap_fast.html.page import esc, number
from camtrap_fast.html.photos import Gallery, pick
from camtrap_fast.html.run_files import (REPORT_FILE, ScoredPhotos, Scores, check_run, choose_focus, read_json,
                                         read_predictions, run_manifest, run_scores)
from camtrap_fast.html.thumbs import SplitPhotos
from camtrap_fast.report import frequency_order


def write_run_report(run_dir: str | Path, scores_name: str | None = None, shards: Path | None = None,
                     image_root: Path | None = None) -> Path:
    """Write RUN/report.html (atomically) and return its path."""
    run = Path(run_dir)
    check_run(run)
    classes = list(read_json(run / "classes.json"))
    config = read_json(run / "config.json")
    preprocessing = read_json(run / "preprocessing.json", {})
    all_scores = run_scores(run)
    focus = choose_focus(all_scores, scores_name)
    scored = read_predictions(focus, classes)
    manifest, no_photos = run_manifest(run, shards)
    train_counts = _train_counts(focus, classes)
    gallery, photo_note = Gallery(), no_photos
    if manifest is not None and scored is not None and focus.split in manifest.splits:
        crops = preprocessing.get("crops") or {}
        roots = [Path(p) for p in (image_root, Path(crops["detections"]).parent if crops.get("detections") else None)
                 if p is not None]
        split = SplitPhotos(manifest.load_index(focus.split), manifest.root)
        try:
            gallery = pick(scored, split, classes, train_counts, roots)
        finally:
            split.close()
        notes = []
        if gallery.budget.left_out:
            notes.append(f"{gallery.budget.left_out} photos left out: the page embeds at most "
                         f"{gallery.budget.max_bytes // 2**20} MB of thumbnails")
        if gallery.damaged:
            notes.append(f"{len(gallery.damaged)} photos not shown because their shard bytes are damaged (e.g. "
                         f"{gallery.damaged[0]}); run `camtrap-fast verify {manifest.root}`")
        photo_note = "; ".join(notes)
    elif scored is None:
        photo_note = f"{focus.name} has no predictions.csv, so no photos are shown"
    sections = [
        ("summary", "Summary", _summary(run, config, all_scores, focus, manifest, photo_note)),
        ("species", "Per species", _species_table(focus, classes, gallery, scored)),
        ("confusion", "Confusion matrix", _confusion(scored, classes, train_counts, gallery)),
    ]
    if (run / "phase2" / "f1_change.png").is_file():
        sections.append(("f1-change", "F1 change", page.figure(run / "phase2" / "f1_change.png", "F1 change per species")
                         + '<p class="note">Each species\' F1 after phase 2 minus after phase 1 (and minus the '
                         "baseline run's, with --compare), species from most to least training images.</p>"))
    sections += [
        ("mistakes", "Most confident mistakes", _strip(gallery.confident_mistakes, "eager", "no mistakes")
         + '<p class="note">The wrong predictions the model was surest of, often label noise (a frame of a sequence '
         "labelled with an animal that has left the view). Click a photo for its sequence or frame.</p>"),
        ("rare", "Rare species", _rare(gallery, classes, train_counts)),
        ("config", "Config", _config(run, config, preprocessing)),
    ]
    title = f"camtrap-fast run {run.resolve().name}"
    out = run / REPORT_FILE
    page.write_page(out, page.document(title, sections, gallery.page_data()))
    return out


def _train_counts(focus: Scores, classes: list[str]) -> np.ndarray:
    per_class = focus.metrics.get("per_class", {})
    return np.array([int((per_class.get(c) or {}).get("count_train") or 0) for c in classes], dtype=np.int64)


def _summary(run: Path, config: dict, all_scores: list[Scores], focus: Scores, manifest, photo_note: str) -> str:
    environment = read_json(run / "environment.json", {})
    summary = read_json(run / "summary.json", {})
    sampling = config.get("sampling", {})
    facts = [("run", str(run.resolve())), ("shards", config.get("shards", "")),
             ("model", f"{config.get('model', {}).get('arch', '?')}, {'two-phase' if config.get('two_phase') else 'one phase (baseline)'}"),
             ("sampling (phase 1)", sampling.get("spec", "")), ("loss", config.get("loss", {}).get("name", "")),
             ("started", environment.get("started", "")), ("device", environment.get("device", ""))]
    if manifest is not None:
        facts.insert(2, ("data", ", ".join(f"{s}: {info.samples} samples" for s, info in manifest.splits.items())
                         + f"; {manifest.num_classes} classes"))
    facts.append(("photos shown", f"{focus.name} ({focus.split} split)"))
    rows = []
    for s in all_scores:
        m = s.metrics
        rarest, commonest = m.get("rarest_accuracy") or {}, m.get("commonest_accuracy") or {}
        rows.append([s.name, m.get("phase", ""), s.split, "sequences" if s.sequence_level else "samples",
                     m.get("num_samples", ""), number(m.get("accuracy")), number(m.get("macro_precision")),
                     number(m.get("macro_recall")), number(m.get("macro_f1")), number(rarest.get("5")),
                     number(commonest.get("5")), number(m.get("seconds"), 1)])
    headers = ("scores", "phase", "split", "level", "n", "accuracy", "macro P", "macro R", "macro F1", "rarest-5",
               "commonest-5", "seconds")
    table = page.table(headers, rows, [False] * 4 + [True] * 8, table_id="scores-table")
    warnings = "".join(f'<p class="note">warning: {esc(w)}</p>' for w in summary.get("warnings", ()))
    notes = "".join(f'<p class="note">note: {esc(n)}</p>' for n in focus.metrics.get("notes", ()) or ())
    photos = f'<p class="note">{esc(photo_note)}</p>' if photo_note else ""
    return page.key_values(facts) + table + warnings + notes + photos


def _strip(ids: list[str], extra: str = "", none: str = "no photos") -> str:
    return (f'<div class="strip {extra}" data-photos="{esc(json.dumps(ids))}" data-none="{esc(none)}"></div>')


def _species_table(focus: Scores, classes: list[str], gallery: Gallery, scored: ScoredPhotos | None) -> str:
    csv_path = focus.path / "per_class.csv"
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    numeric = [name != "Species" for name in header]
    index = {name: i for i, name in enumerate(classes)}
    confused = _most_confused(scored, classes)
    head = "".join(f'<th{" class=n" if n else ""}>{esc(h)}</th>' for h, n in zip(header, numeric))
    head += "<th>most often taken for</th>"
    out = []
    for row in body:
        c = index.get(row[0])
        cells = "".join(f'<td{" class=n" if n else ""}>{esc(v)}</td>' for v, n in zip(row, numeric))
        taken = confused.get(c, "")
        out.append(f'<tr class="expander" data-species="{esc(row[0])}">{cells}<td>{esc(taken)}</td></tr>')
        if c is None:
            continue
        detail = (f"<b>correct</b>{_strip(gallery.correct.get(c, []), none='none correct')}"
                  f"<b>mistaken</b> (true {esc(row[0])} → predicted){_strip(gallery.mistaken.get(c, []), none='none mistaken')}"
                  f"<b>others taken for {esc(row[0])}</b>{_strip(gallery.false_alarms.get(c, []), none='none')}")
        out.append(f'<tr class="detail" hidden><td colspan="{len(header) + 1}">{detail}</td></tr>')
    note = ('<p class="note">Columns as in per_class.csv (Count (Train): the original training images; Count (Epoch): '
            "what one epoch trained on). Click a column to sort, a row for its photos (green: correct, red: mistaken, "
            f"with the model's confidence). From {esc(str(csv_path.relative_to(focus.path.parent)))}.</p>")
    return (f'{note}<table class="sortable" id="species-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(out)}</tbody></table>")


def _most_confused(scored: ScoredPhotos | None, classes: list[str]) -> dict[int, str]:
    """Per true class, the wrong prediction it got most often, with its count."""
    if scored is None:
        return {}
    n = len(classes)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (scored.y_true, scored.y_pred), 1)
    np.fill_diagonal(confusion, 0)
    return {c: f"{classes[int(confusion[c].argmax())]} ({int(confusion[c].max())})" for c in range(n)
            if confusion[c].any()}


def _confusion(scored: ScoredPhotos | None, classes: list[str], train_counts: np.ndarray, gallery: Gallery) -> str:
    if scored is None:
        return '<p class="note">no predictions.csv: no confusion matrix</p>'
    n = len(classes)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (scored.y_true, scored.y_pred), 1)
    support = confusion.sum(axis=1)
    order = frequency_order(train_counts if train_counts.any() else None, support)
    head = "<th></th>" + "".join(f'<th class="col">{esc(classes[c])}</th>' for c in order)
    rows = []
    for t in order:
        cells = []
        for p in order:
            count = int(confusion[t, p])
            fraction = count / support[t] if support[t] else 0.0
            shade = 255 - int(200 * fraction) if count else 250
            color = f"rgb({shade},{shade + (255 - shade) // 3},255)" if count else "#f7f8fa"
            photos = gallery.correct.get(int(t), []) if t == p else gallery.cells.get((int(t), int(p)), [])
            title = f"true {classes[t]} → predicted {classes[p]}: {count} ({fraction:.0%})"
            cells.append(f'<td style="background:{color}" title="{esc(title)}" data-t="{esc(classes[t])}" '
                         f'data-p="{esc(classes[p])}" data-n="{count}" data-f="{fraction:.0%}" '
                         f'data-photos="{esc(json.dumps(photos))}"></td>')
        rows.append(f'<tr><th>{esc(classes[t])} ({support[t]})</th>{"".join(cells)}</tr>')
    return ('<p class="note">Rows: the true species (test photos in brackets), most training images first; columns: '
            "the prediction; colour: the fraction of the row. Hover a cell for its count, click it for its photos.</p>"
            f'<div class="cm-layout"><div class="cm-wrap"><table class="cm" id="confusion-matrix"><thead><tr>{head}'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
            '<div id="cm-panel"><p class="note">Click a cell to see its photos here.</p></div></div>')


def _rare(gallery: Gallery, classes: list[str], train_counts: np.ndarray) -> str:
    if not gallery.rare:
        return '<p class="empty">no photos</p>'
    parts = ['<p class="note">The species with the fewest training images that have test photos, rarest first.</p>']
    for c, ids in gallery.rare.items():
        parts.append(f"<h3>{esc(classes[c])} <span class=tag>{int(train_counts[c])} training images</span></h3>"
                     + _strip(ids, "eager"))
    return "".join(parts)


def _config(run: Path, config: dict, preprocessing: dict) -> str:
    environment = read_json(run / "environment.json", {})
    return (f"<h3>config.json</h3>{page.json_block(config)}<h3>preprocessing.json</h3>{page.json_block(preprocessing)}"
            f"<h3>environment.json</h3>{page.json_block(environment)}")
