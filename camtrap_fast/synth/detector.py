"""A simulated MegaDetector run over the demo photos: true boxes, jittered, with misses and false alarms.

What a real detector gets wrong, so that training on crops of it meets the same trouble:
edges off by a few percent of the box; small or mostly hidden animals missed more often and
found with lower confidence; now and then a box on empty ground at low confidence (some above
the usual 0.2 threshold, whose crops then carry the photo's species label, as with real output).
The output follows MegaDetector's batch-output format 1.4, so `shard --detections` reads it as
it reads the real thing.
"""

from __future__ import annotations

import numpy as np

CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}
FORMAT_VERSION = "1.4"
_EDGE_JITTER = 0.05  # standard deviation of each edge's error, as a fraction of the box side
_FALSE_BOXES_PER_IMAGE = 0.3  # mean of a Poisson count
_FALSE_CONF = (0.02, 0.3)


def detect(true_boxes: list[tuple[int, int, int, int]], width: int, height: int,
           rng: np.random.Generator) -> list[dict]:
    """MegaDetector-style detections (normalized [x_min, y_min, width, height]) for one photo, best first."""
    found = []
    for left, top, right, bottom in true_boxes:
        w, h = (right - left) / width, (bottom - top) / height
        smallness = max(0.0, 1.0 - w * h / 0.03)  # 1 for a speck, 0 from 3 % of the frame up
        miss, jitter, conf_draw = rng.random(), rng.normal(0.0, _EDGE_JITTER, 4), rng.beta(1.2, 4.0)
        if miss < 0.04 + 0.4 * smallness:
            continue
        x0 = left / width + jitter[0] * w
        y0 = top / height + jitter[1] * h
        x1 = right / width + jitter[2] * w
        y1 = bottom / height + jitter[3] * h
        conf = (0.99 - 0.6 * conf_draw) * (1.0 - 0.4 * smallness)
        found.append(_detection(x0, y0, x1, y1, conf))
    for _ in range(rng.poisson(_FALSE_BOXES_PER_IMAGE)):
        side_w, side_h = rng.uniform(0.05, 0.25, 2)
        x0, y0 = rng.uniform(0.0, 1.0 - side_w), rng.uniform(0.0, 1.0 - side_h)
        found.append(_detection(x0, y0, x0 + side_w, y0 + side_h, rng.uniform(*_FALSE_CONF)))
    return sorted(found, key=lambda d: -d["conf"])


def _detection(x0: float, y0: float, x1: float, y1: float, conf: float) -> dict:
    x0, y0, x1, y1 = (float(np.clip(v, 0.0, 1.0)) for v in (x0, y0, x1, y1))
    bbox = [round(x0, 4), round(y0, 4), round(max(x1 - x0, 0.001), 4), round(max(y1 - y0, 0.001), 4)]
    return {"category": "1", "conf": round(float(conf), 3), "bbox": bbox}


def batch_output(images: list[dict]) -> dict:
    """The whole file, for `images` = [{"file": ..., "detections": [...]}, ...]."""
    return {
        "info": {"format_version": FORMAT_VERSION, "detector": "camtrap-fast synth (true boxes, jittered)",
                 "detector_metadata": {"typical_detection_threshold": 0.2}},
        "detection_categories": CATEGORIES,
        "images": images,
    }
