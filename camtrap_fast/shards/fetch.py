"""Images over HTTP(S): bounded concurrency, retries with backoff, and a reason for every file that keeps failing.

Remote images (`--image-root https://...`, or absolute URLs in the label source) are fetched by a few threads
in the shard process, ahead of the encoder and in order, and handed to it as bytes; a local path passes
through untouched. Standard library only (urllib): a bucket that LILA and most clouds serve over HTTPS needs
nothing more, and `s3://`/`gs://` are refused at ingest with the https:// form to use instead.

What is retried: 408, 425, 429, 5xx, timeouts, refused or reset connections and bodies cut short; a
Retry-After header is honoured up to `MAX_RETRY_AFTER_S`. What is not: any other 4xx (404, 403, ...): the
file is rejected at once, its status the reason (`HTTP 404`). A file still failing after `tries` is
rejected with its last status or `download failed` and what went wrong. Every request has a timeout on each
socket operation and a deadline for the whole body, so a stalled server costs time, never a hang.
"""

from __future__ import annotations

import http.client
import random
import socket
import time
import urllib.error
import urllib.request
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from camtrap_fast.ingest import records as reasons
from camtrap_fast.ingest.records import Rejection
from camtrap_fast.ingest.remote import is_http

RETRIED_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 30.0
READ_BLOCK = 1 << 20


@dataclass(frozen=True)
class FetchConfig:
    concurrency: int = 16  # requests in flight; a bucket serves many at once, each one waits on latency
    tries: int = 4  # attempts per file, the first included
    timeout_s: float = 30.0  # per connect and per read; the whole body gets BODY_TIMEOUTS times this
    backoff_s: float = 0.5  # wait before the first retry; doubles with each, plus up to 25 % jitter
    max_bytes: int = 200 << 20  # no camera-trap photo is this big; a server streaming forever is cut off

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.tries < 1 or self.timeout_s <= 0 or self.backoff_s < 0:
            raise ValueError("FetchConfig: concurrency and tries >= 1, timeout_s > 0, backoff_s >= 0")


BODY_TIMEOUTS = 4


class FetchFailed(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def with_data(tasks, config: FetchConfig):
    """(path, boxes) tasks -> the same, with (path, boxes, bytes) for remote paths, or their Rejection; in order.

    At most `2 * concurrency` fetched images wait in memory for the encoder."""
    pending: deque = deque()
    executor = None
    try:
        for task in tasks:
            if not is_http(task[0]):
                if not pending:
                    yield task
                else:
                    pending.append(task)
                continue
            if executor is None:
                executor = ThreadPoolExecutor(config.concurrency, thread_name_prefix="fetch")
            pending.append(executor.submit(_fetch_task, task, config))
            while len(pending) > 2 * config.concurrency or (pending and not hasattr(pending[0], "result")):
                yield _resolve(pending.popleft())
        while pending:
            yield _resolve(pending.popleft())
    finally:
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _resolve(item):
    return item.result() if hasattr(item, "result") else item


def _fetch_task(task, config: FetchConfig):
    path, boxes = task[0], task[1]
    try:
        return path, boxes, fetch(path, config)
    except FetchFailed as failed:
        return Rejection(path, failed.reason, failed.detail)


def fetch(url: str, config: FetchConfig) -> bytes:
    """The body of `url`, or FetchFailed with the reason rejected.csv gives."""
    last = (reasons.DOWNLOAD_FAILED, "no attempt")
    for attempt in range(config.tries):
        wait = config.backoff_s * 2 ** attempt * (1 + 0.25 * random.random())
        try:
            return _get(url, config)
        except urllib.error.HTTPError as error:
            status = error.code
            last = (reasons.http_status(status), f"{error.reason or 'error'} (after {attempt + 1} "
                                                 f"tr{'y' if attempt == 0 else 'ies'})")
            error.close()
            if status not in RETRIED_STATUS:
                raise FetchFailed(last[0], f"{error.reason or 'error'}") from None
            wait = max(wait, _retry_after(error.headers.get("Retry-After")))
        except urllib.error.URLError as error:
            if isinstance(error.reason, socket.gaierror):  # an unknown host does not come back by waiting
                raise FetchFailed(reasons.DOWNLOAD_FAILED, f"cannot resolve host ({error.reason.strerror})") from None
            last = (reasons.DOWNLOAD_FAILED, f"{_words(error.reason)} (after {attempt + 1} tries)")
        except http.client.IncompleteRead as error:
            expected = len(error.partial) + (error.expected or 0)
            last = (reasons.DOWNLOAD_FAILED, f"truncated body: {len(error.partial)} of {expected} bytes "
                                            f"(after {attempt + 1} tries)")
        except (TimeoutError, socket.timeout):
            last = (reasons.DOWNLOAD_FAILED, f"timed out ({config.timeout_s:g} s) (after {attempt + 1} tries)")
        except (ConnectionError, http.client.HTTPException, OSError) as error:
            last = (reasons.DOWNLOAD_FAILED, f"{_words(error)} (after {attempt + 1} tries)")
        if attempt + 1 < config.tries:
            time.sleep(wait)
    raise FetchFailed(*last)


def _get(url: str, config: FetchConfig) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "camtrap-fast"})
    deadline = time.monotonic() + BODY_TIMEOUTS * config.timeout_s
    with urllib.request.urlopen(request, timeout=config.timeout_s) as response:
        if response.status != 200:
            raise urllib.error.HTTPError(url, response.status, response.reason, response.headers, None)
        blocks, size = [], 0
        declared = response.headers.get("Content-Length")
        while True:
            block = response.read(READ_BLOCK)
            if not block:
                break
            blocks.append(block)
            size += len(block)
            if size > config.max_bytes:
                raise OSError(f"body larger than {config.max_bytes >> 20} MiB")
            if time.monotonic() > deadline:
                raise TimeoutError
        body = b"".join(blocks)
        # read(amt) does not raise IncompleteRead when the connection ends early: compare with the length declared
        if declared is not None and declared.isdigit() and len(body) < int(declared):
            raise http.client.IncompleteRead(body, int(declared) - len(body))
        return body


def _retry_after(value: str | None) -> float:
    try:
        return min(float(value), MAX_RETRY_AFTER_S) if value else 0.0
    except ValueError:
        return 0.0  # an HTTP date: rare from object stores; the backoff applies


def _words(error) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
