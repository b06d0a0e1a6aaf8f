"""The app's HTTP server: the standard library's, on loopback unless told otherwise.

    GET  /          the page
    POST /classify  {"photos": [{"name", "data" (base64)}], "detections": {"name", "data"} | null} ->
                    {"results": [...]} (classifier.AppClassifier), or {"error": "..."} with status 400 / 413
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from camtrap_fast.app.classifier import AppClassifier, Upload
from camtrap_fast.app.page import app_page
from camtrap_fast.errors import CamtrapError, UserError

MAX_REQUEST_BYTES = 256 * 1024 * 1024


def _upload(value, what: str) -> Upload:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not isinstance(value.get("data"), str):
        raise UserError(f"{what}: expected {{name, data}}")
    try:
        return Upload(value["name"], base64.b64decode(value["data"], validate=True))
    except (binascii.Error, ValueError):
        raise UserError(f"{value['name']}: data is not base64") from None


class _Handler(BaseHTTPRequestHandler):
    server: "AppServer"

    def log_message(self, format, *args):  # the terminal shows what was classified, not every request
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def do_GET(self):
        if self.path in ("/", "/index.html"):
            self._send(200, self.server.page.encode(), "text/html; charset=utf-8")
        else:
            self._json(404, {"error": f"{self.path}: not found"})

    def do_POST(self):
        if self.path != "/classify":
            self._json(404, {"error": f"{self.path}: not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self._json(413, {"error": f"request of {length} bytes; send at most {MAX_REQUEST_BYTES // 2**20} MB at once"})
            self.close_connection = True
            return
        try:
            body = json.loads(self.rfile.read(length))
            photos = [_upload(p, "photo") for p in body.get("photos") or []]
            detections = _upload(body["detections"], "detections") if body.get("detections") else None
            results = self.server.classifier.classify(photos, detections)
        except UserError as error:
            self._json(400, {"error": str(error)})
            return
        except CamtrapError as error:  # a fault (e.g. the run's model unreadable): said on the page and here
            print(f"camtrap-fast app: error: {error}", flush=True)
            self._json(500, {"error": str(error)})
            return
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
            self._json(400, {"error": f"not a classify request ({error})"})
            return
        for result in results:
            said = "; ".join(a.get("error") or f"{a['top'][0][0]} {a['top'][0][1]:.2f}" for a in result["animals"])
            print(f"{result['file']}: {said}", flush=True)
        self._json(200, {"results": results})


class AppServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, run: Path, host: str, port: int, device: str):
        self.temp_root = Path(tempfile.mkdtemp(prefix="camtrap-fast-app-"))
        try:
            self.classifier = AppClassifier(run, device, self.temp_root)
            self.page = app_page(run.resolve().name, self.classifier.classes,
                                 self.classifier.preprocessing.get("crops") or {})
            super().__init__((host, port), _Handler)
        except BaseException:
            shutil.rmtree(self.temp_root, ignore_errors=True)
            raise

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def server_close(self) -> None:
        super().server_close()
        shutil.rmtree(self.temp_root, ignore_errors=True)
