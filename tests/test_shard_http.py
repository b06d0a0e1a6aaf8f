"""Images over HTTP: a loopback server serves the real photos, with injected 404s, 503s, slow, stalled and cut
responses; every image ends in a shard or in rejected.csv with its reason, and nothing hangs."""

from __future__ import annotations

import csv
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

FAULTS = ("ok", "slow", "flaky", "404", "503", "stall", "cut")


class _Photos(BaseHTTPRequestHandler):
    """GET /FAULT/NAME serves NAME from `root`, after the fault: ok, slow (0.3 s), flaky (503 twice, then the
    photo), 404, 503 (always), stall (longer than the client's timeout), cut (half the body, full length)."""

    root: Path
    hits: Counter

    def do_GET(self):  # noqa: N802 (http.server's name)
        fault, _, name = self.path.lstrip("/").partition("/")
        self.hits[self.path] += 1
        body = (self.root / name).read_bytes() if (self.root / name).is_file() else None
        if fault == "404" or body is None:
            return self.send_error(404)
        if fault == "503" or (fault == "flaky" and self.hits[self.path] <= 2):
            return self.send_error(503)
        if fault == "slow":
            time.sleep(0.3)
        if fault == "stall":
            time.sleep(3)
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if fault == "cut" else body)

    def log_message(self, *args):
        pass


class _Quiet(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that gave up on a stalled response: expected here


@pytest.fixture
def server(data_dir):
    handler = type("Handler", (_Photos,), {"root": data_dir / "ena24-small", "hits": Counter()})
    httpd = _Quiet(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.hits
    httpd.shutdown()
    httpd.server_close()


def _labels(data_dir: Path) -> list[tuple[str, str]]:
    with open(data_dir / "ena24-small" / "labels.csv", newline="") as f:
        return [(r["filepath"], r["label"]) for r in csv.DictReader(f)]


FETCH = ["--fetch-timeout", "1", "--fetch-tries", "3", "--fetch-concurrency", "8"]


def test_image_root_url_gives_the_same_shards_as_the_local_folder(server, data_dir, tmp_path, cli):
    url, hits = server
    common = ["--size", "64", "--shard-size", "5", "--quiet"]
    labels = data_dir / "ena24-small" / "labels.csv"
    assert cli("shard", labels, tmp_path / "local", *common)[0] == 0
    code, _, err = cli("shard", labels, tmp_path / "remote", "--image-root", f"{url}/ok/", *common, *FETCH,
                       "--workers", "2")
    assert code == 0, err
    local = {p.relative_to(tmp_path / "local"): p.read_bytes() for p in (tmp_path / "local").glob("*/*")}
    remote = {p.relative_to(tmp_path / "remote"): p.read_bytes() for p in (tmp_path / "remote").glob("*/*")}
    assert len(local) > 6 and local == remote  # tars, .idx and index.npz
    # every class here has 3 images, so each photo is decode-checked first (trainable.py), then sharded
    assert len(hits) == 21 and set(hits.values()) == {2}


def test_faults_are_retried_or_rejected_with_their_status(server, data_dir, tmp_path, cli):
    url, hits = server
    rows = [(f"{url}/{FAULTS[i % len(FAULTS)]}/{path}", label) for i, (path, label) in enumerate(_labels(data_dir))]
    source = tmp_path / "urls.csv"
    with open(source, "w", newline="") as f:
        csv.writer(f).writerows([("filepath", "label"), *rows])
    started = time.monotonic()
    code, _, err = cli("shard", source, tmp_path / "out", "--size", "64", "--split", "1,0,0", "--quiet", *FETCH)
    seconds = time.monotonic() - started
    assert code == 0, err
    with open(tmp_path / "out" / "rejected.csv", newline="") as f:
        rejected = {r["path"].split("/")[3]: (r["reason"], r["detail"]) for r in csv.DictReader(f)}
    assert {fault for fault in rejected} == {"404", "503", "stall", "cut"}
    assert rejected["404"][0] == "HTTP 404" and rejected["503"] == ("HTTP 503", rejected["503"][1])
    assert "after 3 tries" in rejected["503"][1]
    assert rejected["stall"][0] == "download failed" and "timed out" in rejected["stall"][1]
    assert rejected["cut"][0] == "download failed" and "truncated body" in rejected["cut"][1]
    from camtrap_fast.shards.manifest import load_manifest

    manifest = load_manifest(tmp_path / "out")
    by_fault = Counter(row[0].split("/")[3] for row in rows)
    served = by_fault["ok"] + by_fault["slow"] + by_fault["flaky"]
    assert manifest.splits["train"].samples == served  # the slow and the flaky ones arrived
    failed = sum(n for fault, n in by_fault.items() if fault in ("404", "503", "stall", "cut"))
    assert manifest.rejected == failed and served + failed == len(rows)  # nothing lost
    assert all(n == 1 for path, n in hits.items() if path.startswith("/404/"))  # a 404 is not retried
    assert all(n == 3 for path, n in hits.items() if path.startswith("/503/"))
    assert seconds < 60  # stalled responses cost their timeouts, never a hang


def test_unreachable_host_and_other_schemes_are_rejected_in_a_line(data_dir, tmp_path, cli):
    ena = data_dir / "ena24-small"
    rows = [(str(ena / p), label) for p, label in _labels(data_dir)]
    rows += [("http://127.0.0.1:9/none.jpg", rows[0][1]), ("s3://bucket/key.jpg", rows[0][1])]
    source = tmp_path / "mixed.csv"
    with open(source, "w", newline="") as f:
        csv.writer(f).writerows([("filepath", "label"), *rows])
    code, _, err = cli("shard", source, tmp_path / "out", "--size", "48", "--quiet", "--fetch-tries", "2",
                       "--fetch-timeout", "1")
    assert code == 0, err
    with open(tmp_path / "out" / "rejected.csv", newline="") as f:
        rejected = {r["path"]: (r["reason"], r["detail"]) for r in csv.DictReader(f)}
    assert rejected["http://127.0.0.1:9/none.jpg"][0] == "download failed"
    assert rejected["s3://bucket/key.jpg"] == ("remote media (not downloaded)",
                                               "s3:// is not read; give its https:// form "
                                               "(https://BUCKET.s3.amazonaws.com/KEY)")
    code, _, err = cli("shard", source, tmp_path / "bad", "--image-root", "s3://bucket/prefix")
    assert code == 2 and "only http(s):// URLs" in err
