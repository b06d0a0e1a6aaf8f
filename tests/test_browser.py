"""The pages in a real browser: headless Chromium (Debian's `chromium` package; `.ci/run` installs it) loads each
page from disk, and the tests check that it renders without console errors, that its tables have the expected
rows and that sorting, expanding and the confusion matrix work; and `camtrap-fast app` classifies an
EXIF-rotated, a CMYK and a grayscale photo dropped through the browser's file picker.

Skipped, with the reason, where no Chromium is installed (set CAMTRAP_FAST_CHROMIUM to use another binary).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chromium import Browser, find_chromium
from test_html import EDGE

CHROMIUM = find_chromium()
pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (apt-get install chromium, or set "
                                 "CAMTRAP_FAST_CHROMIUM); .ci/run installs it")]
REPO = Path(__file__).resolve().parents[1]
SHOTS = os.environ.get("CAMTRAP_FAST_SCREENSHOTS")  # a folder: each test leaves its screenshots there


@pytest.fixture(scope="module")
def browser():
    with Browser(CHROMIUM, 1300, 900) as b:
        yield b


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(Path(SHOTS) / f"{name}.png", full_page=False)


def test_run_report_renders_sorts_expands_and_shows_cell_photos(report_runs, browser):
    run = report_runs / "two-phase"
    classes = json.loads((run / "classes.json").read_text())
    page = browser.new_page()
    page.goto((run / "report.html").resolve().as_uri())
    assert page.errors == []
    assert page.evaluate("document.querySelectorAll('#species-table tbody tr.expander').length") == len(classes)
    assert page.evaluate("document.querySelectorAll('#confusion-matrix tbody tr').length") == len(classes)
    assert page.evaluate("document.querySelectorAll('#mistakes .photo img').length") > 0
    assert page.evaluate("Array.from(document.querySelectorAll('#mistakes .photo img'))"
                         ".every(img => img.complete && img.naturalWidth > 0)"), "thumbnails decode"
    # sort by F1 (descending after two clicks): the column's values come out ordered, blanks last
    f1 = page.evaluate("""(() => {
        const th = Array.from(document.querySelectorAll('#species-table th')).find(h => h.textContent === 'F1-score');
        th.click(); th.click();
        const col = Array.from(th.parentNode.children).indexOf(th);
        return Array.from(document.querySelectorAll('#species-table tbody tr.expander'))
            .map(r => r.cells[col].textContent); })()""")
    numbers = [float(v) for v in f1 if v]
    assert numbers == sorted(numbers, reverse=True) and all(f1[: len(numbers)])
    # a detail row still follows its species after sorting; opening it shows that species' photos
    opened = page.evaluate("""(() => {
        const row = document.querySelector('#species-table tbody tr.expander');
        row.click();
        const detail = row.nextElementSibling;
        const names = Array.from(detail.querySelectorAll('.strip')[0].querySelectorAll('.photo .cap:first-child'))
            .map(c => c.textContent);
        return {species: row.dataset.species, hidden: detail.hidden, names: names}; })()""")
    assert not opened["hidden"] and all(name == opened["species"] for name in opened["names"])
    cell = page.evaluate("""(() => {
        const td = Array.from(document.querySelectorAll('#confusion-matrix td[data-t]'))
            .find(c => c.dataset.t !== c.dataset.p && c.dataset.n !== '0');
        td.click();
        return {t: td.dataset.t, p: td.dataset.p, shown: document.querySelectorAll('#cm-panel .photo').length,
                heading: document.querySelector('#cm-panel h3').textContent}; })()""")
    assert cell["shown"] > 0 and f"true {cell['t']} → predicted {cell['p']}" in cell["heading"]
    _shot(page, "run-report")
    page.evaluate("document.querySelector('#mistakes .photo').click()")
    assert page.evaluate("!document.getElementById('viewer').hidden")
    assert page.errors == []
    _shot(page, "run-report-viewer")


def test_crop_report_shows_frames_and_heads_and_study_pages_render(report_runs, browser, cli):
    page = browser.new_page()
    page.goto((report_runs / "crops" / "report.html").resolve().as_uri())
    page.evaluate("""(() => { const id = Object.keys(DATA.context).find(k => DATA.context[k].frame);
                              openViewer(id); })()""")
    assert page.evaluate("document.querySelector('#viewer img.frame').naturalWidth") == 480
    assert page.errors == []
    _shot(page, "crop-frame")
    run = report_runs / "two-phase"
    if not (run / "heads" / "report.html").is_file():
        assert cli("heads", run, "--methods", "retrain,ncm")[0] == 0
    page = browser.new_page()
    page.goto((run / "heads" / "report.html").resolve().as_uri())
    methods = (run / "heads" / "summary.csv").read_text().count("\n") - 1
    assert page.evaluate("document.querySelectorAll('#methods-table tbody tr').length") == methods
    assert page.evaluate("document.querySelector('#figure img').naturalWidth") > 0
    assert page.errors == []
    _shot(page, "heads")
    study = report_runs / "study"
    page = browser.new_page()
    page.goto((study / "report.html").resolve().as_uri())
    assert page.evaluate("document.querySelectorAll('#runs-table tbody tr').length") == 2
    assert page.evaluate("document.querySelectorAll('#tables table').length") >= 3  # table.md's tables
    assert page.evaluate("Array.from(document.querySelectorAll('#figures img')).every(i => i.naturalWidth > 0)")
    # the links to the runs' pages resolve (opened from disk: they are relative)
    for link in page.evaluate("Array.from(document.querySelectorAll('#runs-table a')).map(a => a.href)"):
        assert Path(link.removeprefix("file://")).is_file()
    assert page.errors == []
    _shot(page, "study")


def _start_app(run: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "camtrap_fast", "app", str(run), "--port", "0", "--device",
                                "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = process.stdout.readline()
    match = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
    if not match:
        process.kill()
        raise AssertionError(f"app did not start: {line!r} {process.stderr.read()}")
    return process, match.group(1)


def test_app_classifies_edge_case_photos_through_the_browser(report_runs, browser, data_dir):
    run = report_runs / "two-phase"
    process, url = _start_app(run)
    try:
        page = browser.new_page()
        page.goto(url)
        photos = [data_dir / "edge-cases" / name for name in EDGE]
        page.set_files("#files", [*photos, REPO / "README.md"])
        page.wait_for("document.body.dataset.done === '1'", 120)
        shown = page.evaluate("""Array.from(document.querySelectorAll('.result')).map(r => ({
            file: r.dataset.file, rows: r.querySelectorAll('table.top5 tr').length - 1,
            error: (r.querySelector('.error') || {}).textContent || '',
            input: (r.querySelector('img.crop') || {}).naturalWidth || 0,
            photo: (r.querySelector('img.preview') || {}).naturalWidth || 0}))""")
        assert [s["file"] for s in shown] == [*EDGE, "README.md"]
        for s in shown[:3]:
            assert s["rows"] == 5 and s["error"] == "" and s["input"] == 32 and s["photo"] > 0, s
        assert shown[3]["rows"] == -1 and shown[3]["error"].startswith("not an image")
        # the EXIF-rotated photo is shown upright: portrait-stored, displayed as the landscape original
        sizes = page.evaluate("""Array.from(document.querySelectorAll('img.preview'))
            .map(i => [i.naturalWidth, i.naturalHeight])""")
        assert all(w > h for w, h in sizes)
        assert page.errors == []
        _shot(page, "app")
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "camtrap-fast app: stopped" in out and "Traceback" not in err
    temp = re.findall(r"camtrap-fast-app-\w+", out + err)
    assert not temp, "the app says nothing of its temporary folder, which it removes"


def test_app_classifies_each_animal_of_a_dropped_megadetector_file(report_runs, browser, data_dir):
    ena = data_dir / "ena24-small"
    detections = json.loads((ena / "md_annotations.json").read_text())
    photos = sorted(ena.glob("*.jpg"))[:3]
    listed = {Path(image["file"]).name: image for image in detections["images"]}
    process, url = _start_app(report_runs / "crops")
    try:
        page = browser.new_page()
        page.goto(url)
        page.set_files("#files", [*photos, ena / "md_annotations.json"])
        page.wait_for("document.body.dataset.done === '1'", 120)
        shown = page.evaluate("""Array.from(document.querySelectorAll('.result')).map(r => ({
            file: r.dataset.file, animals: r.querySelectorAll('.animal table.top5').length,
            errors: r.querySelectorAll('.animal .error').length}))""")
        assert [s["file"] for s in shown] == [p.name for p in photos]
        for s in shown:  # one top-5 table per detection the run's rule keeps (conf >= 0.2, animal)
            kept = [d for d in listed[s["file"]]["detections"] if d["conf"] >= 0.2 and d["category"] == "1"]
            assert s["animals"] == len(kept) and s["errors"] == 0, s
        assert page.errors == []
        _shot(page, "app-detections")
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 0
