"""The HTML pages (RUN/report.html, RUN/heads/report.html, STUDY/report.html) and the app's classifier, on real
runs: the tiny synthetic set (whole frames, sequences) and the 21 ENA24 photos as MegaDetector crops. The
browser tests are in test_browser.py."""

from __future__ import annotations

import csv
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

from conftest import REPORT_RUN_OPTIONS as TINY

EDGE = ("african_elephants_with_exif_orientation.jpg", "african_elephants_cmyk.jpg", "african_elephants_bw.jpg")


class _Rows(HTMLParser):
    """Counts the rows of each table by id, and collects every src/href."""

    def __init__(self):
        super().__init__()
        self.rows: dict[str, int] = {}
        self.expanders: dict[str, int] = {}
        self.links: list[str] = []
        self._table: list[list] = []  # [id, inside its tbody] of each open table, innermost last

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table.append([attrs.get("id", ""), False])
        elif tag == "tbody" and self._table:
            self._table[-1][1] = True
        elif tag == "tr" and self._table and self._table[-1][1]:
            name = self._table[-1][0]
            if "detail" not in (attrs.get("class") or ""):
                self.rows[name] = self.rows.get(name, 0) + 1
            if "expander" in (attrs.get("class") or ""):
                self.expanders[name] = self.expanders.get(name, 0) + 1
        for key in ("src", "href"):
            if key in attrs:
                self.links.append(attrs[key])

    def handle_endtag(self, tag):
        if tag == "table" and self._table:
            self._table.pop()
        elif tag == "tbody" and self._table:
            self._table[-1][1] = False


def parse(path: Path) -> _Rows:
    parser = _Rows()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def page_data(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', text, re.S)
    return json.loads(match.group(1).replace("<\\/", "</"))


def test_train_writes_a_self_contained_report(report_runs):
    run = report_runs / "two-phase"
    page = run / "report.html"
    classes = json.loads((run / "classes.json").read_text())
    parsed = parse(page)
    with open(run / "phase2" / "per_class.csv", newline="") as f:
        species = [row["Species"] for row in csv.DictReader(f)]
    assert parsed.expanders["species-table"] == len(classes) == len(species)
    assert parsed.rows["scores-table"] == 2  # phase1, phase2
    assert parsed.rows["confusion-matrix"] == len(classes)
    assert all(link.startswith(("data:", "#")) for link in parsed.links), "a page must not reach the network"
    data = page_data(page)
    with open(run / "phase2" / "predictions.csv", newline="") as f:
        predictions = {row["key"]: row for row in csv.DictReader(f)}
    assert data["photos"], "the page shows test photos"
    for key, photo in data["photos"].items():  # every shown photo says what predictions.csv says of it
        assert (photo["t"], photo["p"]) == (predictions[key]["true"], predictions[key]["predicted"])
        assert data["images"][photo["i"]].startswith("data:image/jpeg;base64,")
    wrong = [k for k, p in data["photos"].items() if p["t"] != p["p"]]
    assert wrong and any(data["context"].get(k, {}).get("seq") for k in wrong), "sequences give context"
    assert page.stat().st_size < 15 * 2**20


def test_report_rebuilds_the_same_page_and_follows_eval(report_runs, cli):
    run = report_runs / "two-phase"
    before = (run / "report.html").read_bytes()
    code, out, err = cli("report", run, "--scores", "phase2")
    assert code == 0, err
    assert out.strip() == f"report: {run / 'report.html'}"
    assert (run / "report.html").read_bytes() == before, "deterministic: the same run gives the same page"
    code, out, err = cli("eval", run, "--split", "val", "--device", "cpu")
    assert code == 0, err
    assert out.strip().endswith(f"report: {run / 'report.html'}")
    parsed, data = parse(run / "report.html"), page_data(run / "report.html")
    assert parsed.rows["scores-table"] == 3
    with open(run / "eval-val" / "predictions.csv", newline="") as f:
        val_keys = {row["key"] for row in csv.DictReader(f)}
    assert set(data["photos"]) <= val_keys, "after eval the page shows that evaluation's photos"
    code, _, _ = cli("report", run)  # the default: the scores written last, here eval-val
    assert page_data(run / "report.html")["photos"] == data["photos"]


def test_crop_run_shows_each_crop_in_its_frame(report_runs, data_dir):
    data = page_data(report_runs / "crops" / "report.html")
    frames = [c["frame"] for c in data["context"].values() if "frame" in c]
    assert frames, "the crops' source photos are beside the MegaDetector file, so frames are shown"
    from PIL import Image
    import base64
    import io

    frame = Image.open(io.BytesIO(base64.b64decode(data["images"][frames[0]].split(",", 1)[1])))
    assert max(frame.size) == 480  # a real 1920x1080 ENA24 frame, as a thumbnail with its boxes


def test_a_report_without_its_shards_still_has_its_tables(report_runs, tmp_path, cli):
    run = tmp_path / "moved"
    shutil.copytree(report_runs / "two-phase", run, ignore=shutil.ignore_patterns("*.pt"))
    recorded = json.loads((run / "shards.json").read_text())
    (run / "shards.json").write_text(json.dumps({**recorded, "path": str(tmp_path / "gone")}))
    code, _, err = cli("report", run)
    assert code == 0, err
    text = (run / "report.html").read_text()
    assert "so no photos are shown" in text
    assert parse(run / "report.html").expanders["species-table"] == len(json.loads((run / "classes.json").read_text()))


def test_the_thumbnail_budget_caps_the_page(report_runs):
    from camtrap_fast.html.photos import pick
    from camtrap_fast.html.run_files import choose_focus, read_predictions, run_scores
    from camtrap_fast.html.thumbs import SplitPhotos, ThumbnailBudget
    from camtrap_fast.shards.manifest import load_manifest

    run = report_runs / "two-phase"
    classes = json.loads((run / "classes.json").read_text())
    focus = choose_focus(run_scores(run), "phase2")
    scored = read_predictions(focus, classes)
    manifest = load_manifest(json.loads((run / "shards.json").read_text())["path"])
    split = SplitPhotos(manifest.load_index("test"), manifest.root)
    import numpy as np

    counts = np.array([manifest.splits["train"].class_counts[c] for c in classes])
    full = pick(scored, split, classes, counts, [])
    small = pick(scored, split, classes, counts, [], ThumbnailBudget(max_bytes=20_000))
    assert small.budget.used <= 20_000 < full.budget.used
    assert small.budget.left_out > 0 and len(small.photos) < len(full.photos)
    # the most confident mistakes come first: what the budget keeps is the start of the full page's gallery
    assert small.confident_mistakes == full.confident_mistakes[:len(small.confident_mistakes)]


def test_heads_and_study_pages(report_runs, cli):
    run = report_runs / "two-phase"
    code, out, err = cli("heads", run, "--methods", "retrain,ncm,tau-norm")
    assert code == 0, err
    assert f"report: {run / 'heads' / 'report.html'}" in out
    parsed = parse(run / "heads" / "report.html")
    assert parsed.rows["methods-table"] == 3
    assert parsed.expanders["heads-species-table"] == len(json.loads((run / "classes.json").read_text()))
    study = report_runs / "study"
    assert (study / "report.html").is_file(), "study writes its page"
    code, out, err = cli("report", study)
    assert code == 0 and out.strip() == f"report: {study / 'report.html'}", err
    parsed = parse(study / "report.html")
    assert parsed.rows["runs-table"] == 2
    assert {"species-none", "species-ros-20-rus-40"} <= set(parsed.rows)
    assert sum(1 for link in parsed.links if link.endswith("report.html")) == 4  # each run's page and heads page
    for link in (link for link in parsed.links if link.endswith("report.html")):
        assert (study / link).is_file()


def test_report_refuses_what_is_not_a_run(tmp_path, cli):
    code, out, err = cli("report", tmp_path)
    assert code == 2 and err.count("\n") == 1 and "not a training run" in err
    code, _, err = cli("report", tmp_path / "nope")
    assert code == 2 and "no such folder" in err


def _predict_top(cli, run, photos, tmp_path, *extra) -> dict:
    out = tmp_path / "p.csv"
    code, _, err = cli("predict", run, *photos, "--out", out, "--device", "cpu", *extra)
    assert code == 0, err
    with open(out, newline="") as f:
        return {(Path(r["file"]).name, r["detection"]): [(r[f"class_{k}"], float(r[f"probability_{k}"]))
                                                          for k in range(1, 6) if r.get(f"class_{k}")]
                for r in csv.DictReader(f)}


def test_app_classifies_as_predict_does(report_runs, data_dir, tmp_path, cli):
    from camtrap_fast.app.classifier import AppClassifier, Upload

    run = report_runs / "two-phase"
    photos = [data_dir / "edge-cases" / name for name in EDGE]
    temp = tmp_path / "app-temp"
    temp.mkdir()
    app = AppClassifier(run, "cpu", temp)
    uploads = [Upload(p.name, p.read_bytes()) for p in photos] + [Upload("notes.txt", b"not a photo")]
    answers = app.classify(uploads, None)
    assert [a["file"] for a in answers] == [u.name for u in uploads]
    assert answers[-1]["animals"][0]["error"].startswith("not an image")
    expected = _predict_top(cli, run, photos, tmp_path)
    for answer in answers[:3]:
        (animal,) = answer["animals"]
        want = expected[(answer["file"], "")]
        assert [name for name, _ in animal["top"]] == [name for name, _ in want]
        assert [p for _, p in animal["top"]] == pytest.approx([p for _, p in want], abs=1e-4)
        assert animal["input"].startswith("data:image/png;base64,") and answer["photo"]
    assert list(temp.iterdir()) == [], "each request's files are removed when it is answered"
    twins = app.classify([Upload("same.jpg", photos[0].read_bytes()), Upload("same.jpg", photos[2].read_bytes())], None)
    assert [a["file"] for a in twins] == ["same.jpg", "same.jpg"]
    assert twins[0]["animals"][0]["top"] == answers[0]["animals"][0]["top"]
    assert twins[1]["animals"][0]["top"] == answers[2]["animals"][0]["top"]


def test_app_classifies_each_detection_of_a_megadetector_file(report_runs, data_dir, tmp_path, cli):
    from camtrap_fast.app.classifier import AppClassifier, Upload

    run, ena = report_runs / "crops", data_dir / "ena24-small"
    photos = sorted(ena.glob("*.jpg"))[:4]
    temp = tmp_path / "app-temp"
    temp.mkdir()
    app = AppClassifier(run, "cpu", temp)
    md = Upload("md.json", (ena / "md_annotations.json").read_bytes())
    answers = app.classify([Upload(p.name, p.read_bytes()) for p in photos], md)
    expected = _predict_top(cli, run, [ena], tmp_path, "--detections", ena / "md_annotations.json")
    animals = 0
    for answer in answers:
        for animal in answer["animals"]:
            want = expected[(answer["file"], str(animal["detection"]))]
            assert [n for n, _ in animal["top"]] == [n for n, _ in want]
            assert [p for _, p in animal["top"]] == pytest.approx([p for _, p in want], abs=1e-4)
            assert len(animal["bbox"]) == 4 and animal["number"] >= 1
            animals += 1
    assert animals >= len(photos)
    with pytest.raises(Exception, match="lists none of the photos"):
        app.classify([Upload("elsewhere.jpg", photos[0].read_bytes())], md)
    mixed = app.classify([Upload(photos[0].name, photos[0].read_bytes()), Upload("x.jpg", b"")], md)
    assert "top" in mixed[0]["animals"][0] and "does not list it" in mixed[1]["animals"][0]["error"]


def test_app_command_refuses_bad_input_in_one_line(tmp_path, cli):
    code, _, err = cli("app", tmp_path)
    assert code == 2 and "not a camtrap-fast training run" in err and err.count("\n") == 1
    code, _, err = cli("app", tmp_path, "--port", "70000")
    assert code == 2 and "--port 70000" in err
