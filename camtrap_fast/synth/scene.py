"""Drawing one camera-trap frame: a location's background, animals, daylight or infrared flash, motion blur.

Animals (their shapes and coats come from anatomy.py) are polygons drawn with
PIL into a part-id map at twice the output resolution (the 2x2 average is the
anti-aliasing); colour, pattern and shading are then filled in with numpy over
the animal's bounding box only, so a frame costs a few milliseconds whatever
its content.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from camtrap_fast.synth.anatomy import Pose, colourize, shapes_for
from camtrap_fast.synth.species import Species

_SS = 2  # supersampling factor


@dataclass(frozen=True)
class Location:
    name: str
    background: np.ndarray  # (H, W, 3) float32 scene colours before the light is applied
    nearness: np.ndarray  # (H, W) float32: 1 at the camera, 0 at the horizon and in the sky (flash falloff)
    grass: np.ndarray  # (H, W, 3) float32 foreground blades drawn over the animals, premultiplied by grass_alpha
    grass_alpha: np.ndarray  # (H, W, 1) float32
    noise: np.ndarray  # (H + 32, W + 32, 3) float32 standard normal; frames take shifted windows of it
    horizon_y: float
    bar: np.ndarray | None  # (bar_h, W) float32 data strip some cameras stamp at the bottom


@dataclass(frozen=True)
class Placement:
    animal: Species
    pose: Pose
    x: float  # body centre, output pixels
    y: float  # where the feet touch the ground, output pixels
    body_px: float  # torso length in output pixels
    facing: int  # +1 faces right, -1 faces left
    blur_px: float = 0.0  # horizontal motion blur length


@dataclass(frozen=True)
class Lighting:
    night: bool
    sun: float  # 0 at dawn and dusk, 1 at noon (day frames only)
    exposure: float


# ---------------------------------------------------------------- rasterizing and compositing animals

def _box_blur_x(a: np.ndarray, k: int) -> np.ndarray:
    pad = [(0, 0)] * a.ndim
    pad[1] = (k // 2 + 1, k - k // 2)
    c = np.cumsum(np.pad(a, pad), axis=1, dtype=np.float32)
    w = a.shape[1]
    return (c[:, k:k + w] - c[:, :w]) / k


def _halve(a: np.ndarray) -> np.ndarray:
    """2x2 box average (the supersampling filter); strided adds beat reshape().mean() here."""
    return (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) * np.float32(0.25)


def _render_animal(p: Placement, width: int, height: int, rng: np.random.Generator):
    """The animal as a premultiplied RGB + alpha patch: (x0, y0, premult, alpha, eye_xy) or None if off-frame."""
    shapes = shapes_for(p.animal, p.pose)
    s2, cx, gy = p.body_px * _SS, p.x * _SS, p.y * _SS
    local = np.array([xy for _, poly in shapes.polys for xy in poly])
    px = np.stack([cx + p.facing * s2 * local[:, 0], gy - s2 * (local[:, 1] - shapes.ground)], axis=1)
    pad = int(math.ceil(p.blur_px)) + 1
    x0 = max(int(math.floor(px[:, 0].min() / _SS)) - pad, 0)
    x1 = min(int(math.ceil(px[:, 0].max() / _SS)) + pad, width)
    y0 = max(int(math.floor(px[:, 1].min() / _SS)) - 1, 0)
    y1 = min(int(math.ceil(px[:, 1].max() / _SS)) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    h, w = y1 - y0, x1 - x0
    canvas = Image.new("L", (w * _SS, h * _SS))
    draw = ImageDraw.Draw(canvas)
    flat = (px - [x0 * _SS + 0.5, y0 * _SS + 0.5]).ravel().tolist()  # PIL puts pixel centres on integers
    start = 0
    for part, poly in shapes.polys:
        draw.polygon(flat[start:start + 2 * len(poly)], fill=part)
        start += 2 * len(poly)
    part = np.asarray(canvas)
    if not part.any():
        return None
    u = p.facing * (np.arange(w * _SS) + x0 * _SS + 0.5 - cx) / s2
    v = shapes.ground + (gy - (np.arange(h * _SS) + y0 * _SS + 0.5)) / s2
    rgb = colourize(p.animal, part, u, v, shapes, rng)
    alpha = (part > 0).astype(np.float32)
    premult = rgb * alpha[..., None]
    if p.blur_px >= 0.5:
        k = max(2, int(round(p.blur_px * _SS)))
        premult, alpha = _box_blur_x(premult, k), _box_blur_x(alpha, k)
    premult = _halve(premult)
    alpha = _halve(alpha)
    eye = None
    if shapes.eye is not None:
        eye = ((cx + p.facing * s2 * shapes.eye[0]) / _SS, (gy - s2 * (shapes.eye[1] - shapes.ground)) / _SS)
    return x0, y0, premult, alpha, eye


def _cast_shadow(img: np.ndarray, p: Placement, strength: float) -> None:
    rx, ry = max(p.body_px * 0.55, 1.0), max(p.body_px * 0.07, 0.7)
    height, width = img.shape[:2]
    x0, x1 = max(int(p.x - rx), 0), min(int(p.x + rx) + 1, width)
    y0, y1 = max(int(p.y - ry), 0), min(int(p.y + ry) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return
    d = ((np.arange(x0, x1) + 0.5 - p.x) / rx)[None, :] ** 2 + ((np.arange(y0, y1) + 0.5 - p.y) / ry)[:, None] ** 2
    img[y0:y1, x0:x1] *= (1.0 - strength * np.clip(1.0 - d, 0.0, 1.0)).astype(np.float32)[..., None]


# ---------------------------------------------------------------- locations and frames

_SKIES = ((92, 134, 190), (125, 158, 202), (165, 176, 188), (108, 150, 206), (140, 165, 195))
_GROUNDS = ((188, 164, 104), (126, 134, 72), (160, 136, 98), (104, 94, 74), (150, 112, 80), (170, 150, 90))
_HAZE = np.array((222, 224, 220), dtype=np.float32)


def _noise(rng: np.random.Generator, height: int, width: int, cells_h: int, cells_w: int) -> np.ndarray:
    """Smooth value noise in [0, 1]: a coarse random grid upsampled bicubically (PIL does it in C)."""
    grid = rng.random((max(cells_h, 1) + 1, max(cells_w, 1) + 1), dtype=np.float32)
    smooth = np.asarray(Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC))
    return np.clip(smooth, 0.0, 1.0)


def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _colour(palette, rng: np.random.Generator) -> np.ndarray:
    base = np.asarray(palette[int(rng.integers(len(palette)))], dtype=np.float32)
    return base * np.exp(rng.normal(0.0, 0.06, 3)).astype(np.float32)


def make_location(name: str, width: int, height: int, rng: np.random.Generator) -> Location:
    """One camera's fixed view: sky, horizon, ground texture, trees, rocks, foreground grass."""
    yy = np.arange(height, dtype=np.float32)[:, None] + 0.5
    horizon = height * rng.uniform(0.25, 0.5)
    hy = horizon + (_noise(rng, 1, width, 1, 3)[0] - 0.5) * height * rng.uniform(0.02, 0.14)
    sky_top = _colour(_SKIES, rng)
    t = np.clip(yy / hy[None, :], 0.0, 1.0)[..., None]
    sky = sky_top * (1 - t) + (0.4 * sky_top + 0.6 * _HAZE) * t
    clouds = (_smoothstep(0.5, 0.85, _noise(rng, height, width, 3, 4)) * rng.uniform(0.0, 0.9))[..., None]
    sky = sky * (1 - clouds) + np.float32(238) * clouds

    g1 = _colour(_GROUNDS, rng)
    # Patches of the same ground, lighter or darker and slightly re-tinted (never a new hue).
    g2 = g1 * np.float32(math.exp(rng.normal(0.0, 0.12))) * np.exp(rng.normal(0.0, 0.04, 3)).astype(np.float32)
    patches = _smoothstep(0.2, 0.8, _noise(rng, height, width, 4, 6))[..., None]
    fine = _noise(rng, height, width, height // 3, width // 3)
    streaks = _noise(rng, height, width, height // 12, width // 2)
    ground = (g1 * (1 - patches) + g2 * patches) * ((0.8 + 0.3 * fine) * (0.9 + 0.2 * streaks))[..., None]
    nearness = np.clip((yy - hy[None, :]) / (height - hy[None, :]), 0.0, 1.0).astype(np.float32)
    haze = ((1 - nearness) ** 4 * 0.35)[..., None]
    ground = ground * (1 - haze) + _HAZE * haze
    is_sky = yy < hy[None, :]
    background = np.where(is_sky[..., None], sky, ground)

    treeline = hy - height * rng.uniform(0.0, 0.07) * _noise(rng, 1, width, 1, width // 6)[0]
    tree_rgb = (np.float32([78, 88, 62]) * np.exp(rng.normal(0.0, 0.1, 3)).astype(np.float32)) * 0.6 + _HAZE * 0.4 * 0.5
    background = np.where(((yy >= treeline[None, :]) & is_sky)[..., None], tree_rgb * (0.85 + 0.3 * fine)[..., None],
                          background)

    props = Image.new("L", (width, height))
    draw = ImageDraw.Draw(props)
    for _ in range(int(rng.integers(0, 4))):  # acacias: a trunk under a flat crown
        x = rng.uniform(0, width)
        base = float(np.interp(x, np.arange(width), hy)) + rng.uniform(0, 0.08) * height
        tall = rng.uniform(0.12, 0.6) * height
        lean = rng.normal(0.0, 0.1) * tall
        draw.line([(x, base), (x + lean, base - tall)], fill=1, width=max(1, int(tall * 0.05)))
        draw.ellipse([x + lean - tall * 0.7, base - tall * 1.12, x + lean + tall * 0.7, base - tall * 0.9], fill=1)
    for _ in range(int(rng.integers(0, 3))):  # rocks and termite mounds
        x, y = rng.uniform(0, width), rng.uniform(horizon + 0.2 * (height - horizon), height)
        rx = rng.uniform(0.03, 0.12) * width
        draw.ellipse([x - rx, y - rx * rng.uniform(0.3, 0.6), x + rx, y + rx * 0.2], fill=2)
    props = np.asarray(props)
    tree_colour = np.float32([52, 60, 40]) * (0.8 + 0.4 * fine)[..., None]
    rock_colour = _colour(((128, 122, 112), (150, 110, 80), (105, 100, 95)), rng) * (0.7 + 0.5 * fine)[..., None]
    background = np.where((props == 1)[..., None], tree_colour, background)
    background = np.where((props == 2)[..., None], rock_colour, background)
    nearness = np.where(props == 1, np.float32(0.05), nearness)

    blades = Image.new("L", (width, height))
    draw = ImageDraw.Draw(blades)
    for _ in range(int(rng.integers(0, width // 2 + 1))):
        x, tall = rng.uniform(0, width), rng.uniform(0.03, 0.22) * height * rng.uniform(0.3, 1.0)
        draw.line([(x, height), (x + rng.normal(0.0, 0.3) * tall, height - tall)], fill=230,
                  width=max(1, width // 160))
    grass_alpha = (np.asarray(blades, dtype=np.float32) / 255.0)[..., None]
    grass = (g1 * 0.75)[None, None, :] * (0.8 + 0.4 * fine)[..., None] * grass_alpha

    bar = None
    if rng.random() < 0.4:  # a camera that stamps a data strip: dark band with pale "text"
        bar_h = max(3, height // 16)
        bar = np.full((bar_h, width), 16.0, dtype=np.float32)
        for _ in range(int(rng.integers(3, 7))):
            x = int(rng.integers(0, max(width - 12, 1)))
            span = bar[1:-1, x:x + int(rng.integers(5, 14))]
            span[rng.random(span.shape) < 0.45] = 205.0
    noise = rng.standard_normal((height + 32, width + 32, 3), dtype=np.float32)
    return Location(name, background.astype(np.float32), nearness.astype(np.float32), grass.astype(np.float32),
                    grass_alpha, noise, float(horizon), bar)


def _sensor_noise(location: Location, rng: np.random.Generator) -> np.ndarray:
    """Per-pixel noise: a random window into the location's noise tile (cheaper than fresh normals per frame)."""
    height, width = location.background.shape[:2]
    dy, dx = rng.integers(0, 33, 2)
    return location.noise[dy:dy + height, dx:dx + width]


def _daylight(img: np.ndarray, light: Lighting, noise: np.ndarray) -> np.ndarray:
    warm = 1.0 - light.sun  # low sun: warmer and dimmer
    gain = light.exposure * (0.62 + 0.45 * light.sun)
    img *= np.float32(gain) * np.array([1 + 0.12 * warm, 1 - 0.02 * warm, 1 - 0.2 * warm], dtype=np.float32)
    img += noise * np.float32(2.5)
    return img


def _infrared(img: np.ndarray, nearness: np.ndarray, light: Lighting, eyes: list, noise: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
    """Grey IR-flash frame: colour gone, brightness falls off with distance, eyes may shine."""
    grey = img @ np.array([0.25, 0.5, 0.25], dtype=np.float32)  # foliage reflects near-IR well
    height, width = grey.shape
    xx = (np.arange(width, dtype=np.float32) + 0.5) / width - 0.5
    yy = (np.arange(height, dtype=np.float32) + 0.5) / height - 0.5
    vignette = 1.0 - 0.9 * (xx[None, :] ** 2 + yy[:, None] ** 2)
    grey *= (0.1 + 1.05 * nearness ** 0.7) * vignette * np.float32(light.exposure)
    for (ex, ey), p in eyes:
        if rng.random() < 0.7:
            r = max(0.8, p.body_px * p.animal.head_h * 0.15)
            x0, x1 = max(int(ex - r), 0), min(int(ex + r) + 1, width)
            y0, y1 = max(int(ey - r), 0), min(int(ey + r) + 1, height)
            if x1 > x0 and y1 > y0:
                d = np.hypot(np.arange(x0, x1) + 0.5 - ex, (np.arange(y0, y1) + 0.5 - ey)[:, None])
                patch = grey[y0:y1, x0:x1]
                np.maximum(patch, np.where(d <= r, np.float32(245), patch), out=patch)
    grey += noise[..., 0] * np.float32(5.0)
    return np.repeat(grey[..., None], 3, axis=2)


def render_frame(location: Location, placements: list[Placement], light: Lighting,
                 rng: np.random.Generator, boxes: list | None = None) -> np.ndarray:
    """One frame as (H, W, 3) uint8; night frames have three identical channels.

    With `boxes`, appends each visible animal's true box, (left, top, right, bottom) in pixels: the
    extent of its drawn silhouette (alpha > 0.25, before grass in front of it), far animals first.
    """
    img = location.background.copy()
    nearness = location.nearness.copy()
    height, width = nearness.shape
    eyes = []
    for p in sorted(placements, key=lambda q: q.y):  # far animals first
        _cast_shadow(img, p, 0.15 if light.night else 0.2 + 0.2 * light.sun)
        layer = _render_animal(p, width, height, rng)
        if layer is None:
            continue
        x0, y0, premult, alpha, eye = layer
        h, w = alpha.shape
        if boxes is not None:
            rows, cols = np.flatnonzero((alpha > 0.25).any(axis=1)), np.flatnonzero((alpha > 0.25).any(axis=0))
            if len(rows):
                boxes.append((x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1))
        region = img[y0:y0 + h, x0:x0 + w]
        region *= (1.0 - alpha)[..., None]
        region += premult * np.float32(1.5) if light.night else premult  # fur reflects near-IR strongly
        # Under the flash an animal is as bright as the ground it stands on.
        near = float(np.clip((p.y - location.horizon_y) / (height - location.horizon_y), 0.3, 1.0))
        patch = nearness[y0:y0 + h, x0:x0 + w]
        patch *= 1.0 - alpha
        patch += alpha * near
        if eye is not None and 0 <= eye[0] < width and 0 <= eye[1] < height:
            eyes.append((eye, p))
    img *= 1.0 - location.grass_alpha
    img += location.grass
    noise = _sensor_noise(location, rng)
    img = _infrared(img, nearness, light, eyes, noise, rng) if light.night else _daylight(img, light, noise)
    if location.bar is not None:
        img[height - location.bar.shape[0]:] = location.bar[..., None]
    return np.clip(img + 0.5, 0.0, 255.0).astype(np.uint8)
