"""Drawing one camera-trap frame: a location's background, animals, daylight or infrared flash, motion blur.

Animals are polygons drawn with PIL into a part-id map at twice the output
resolution (the 2x2 average is the anti-aliasing); colour, pattern and shading
are then filled in with numpy over the animal's bounding box only, so a frame
costs a few milliseconds whatever its content.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from camtrap_fast.synth.species import BLACK, WHITE, Species

# Part ids in the part map; 0 is "no animal".
BODY, NECK, HEAD, NEAR_LEG, FAR_LEG, TAIL, TUFT, HORN, MANE, EAR, EYE, TUSK, WING, QUILL, BEAK = range(1, 16)
_PART_LETTERS = {"b": (BODY,), "n": (NECK,), "h": (HEAD,), "l": (NEAR_LEG, FAR_LEG), "t": (TAIL,)}
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
class Pose:
    neck_angle: float
    head_angle: float
    leg_phase: float  # radians through the gait cycle
    stride: float  # leg swing amplitude in degrees; 0 is standing


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


# ---------------------------------------------------------------- shapes (local units: body lengths, y up)
# Geometry runs on plain float tuples: the shapes have a few hundred points in all, where numpy's
# per-call overhead would cost more than the arithmetic.

Point = tuple[float, float]


def _dir(angle: float) -> Point:
    return math.cos(math.radians(angle)), math.sin(math.radians(angle))


def _at(p: Point, d: Point, length: float = 1.0) -> Point:
    return p[0] + d[0] * length, p[1] + d[1] * length


def _local(centre: Point, angle: float, along: float, across: float) -> Point:
    """`centre` + (along, across) in a frame turned by `angle` (the head's own axes)."""
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return centre[0] + c * along - s * across, centre[1] + s * along + c * across


_UNIT_CIRCLES = {n: (np.cos(np.linspace(0, 2 * math.pi, n, endpoint=False)),
                     np.sin(np.linspace(0, 2 * math.pi, n, endpoint=False))) for n in (8, 12, 20, 32)}


def _ellipse(centre: Point, rx: float, ry: float, angle: float = 0.0, n: int = 20) -> list[Point]:
    cos_t, sin_t = _UNIT_CIRCLES[n]
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    x, y = rx * cos_t, ry * sin_t
    return list(zip((centre[0] + c * x - s * y).tolist(), (centre[1] + s * x + c * y).tolist()))


def _segment(p0: Point, p1: Point, w0: float, w1: float) -> list[Point]:
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    norm = max(math.hypot(dx, dy), 1e-9)
    nx, ny = -dy / norm / 2, dx / norm / 2
    return [(p0[0] + nx * w0, p0[1] + ny * w0), (p1[0] + nx * w1, p1[1] + ny * w1),
            (p1[0] - nx * w1, p1[1] - ny * w1), (p0[0] - nx * w0, p0[1] - ny * w0)]


def _curve(start: Point, angle: float, length: float, bend: float, w0: float, w1: float, n: int = 4):
    """A tapering, bending stroke (horn, tail, trunk) as quads; also returns its end point and direction."""
    quads, p = [], start
    for k in range(n):
        q = _at(p, _dir(angle + bend * (k + 0.5) / n), length / n)
        quads.append(_segment(p, q, w0 + (w1 - w0) * k / n, w0 + (w1 - w0) * (k + 1) / n))
        p = q
    return quads, p, angle + bend


@dataclass(frozen=True)
class _Shapes:
    polys: list  # (part, [points]) in drawing order
    ground: float  # local y of the feet
    eye: Point | None
    tail_base: Point


def _leg(top: Point, ground: float, swing: float, lift: float, knee_dx: float, w: float) -> list:
    height = top[1] - ground
    foot = (top[0] + math.sin(math.radians(swing)) * height, ground + lift * height)
    knee = ((top[0] + foot[0]) / 2 + knee_dx * height, (top[1] + foot[1]) / 2)
    return [_segment(top, knee, w, 0.75 * w), _segment(knee, foot, 0.7 * w, 0.5 * w)]


def _head(a: Species, pose: Pose, centre: Point, polys: list) -> Point:
    """Cranium, snout and head ornaments at `centre`; returns the eye position."""
    ha, hh = pose.head_angle, a.head_h
    turn = ha - a.head_angle  # ears and horns ride on the skull
    if a.ear_len > 0:
        ear_dir = _dir(ha + a.ear_angle)
        base = _local(centre, ha, -0.2 * hh, 0.35 * hh)
        if a.ear_round:
            ear = _ellipse(_at(base, ear_dir, 0.45 * a.ear_len), 0.55 * a.ear_len, max(a.ear_w, 0.4 * a.ear_len),
                           ha + a.ear_angle)
        else:
            side = _dir(ha + a.ear_angle + 90)
            ear = [_at(base, side, a.ear_w / 2), _at(base, ear_dir, a.ear_len), _at(base, side, -a.ear_w / 2)]
        polys.append((EAR, ear))
    if a.form == "bird":
        polys.append((HEAD, _ellipse(centre, hh / 2, hh / 2)))
        polys.append((BEAK, [_local(centre, ha, 0.35 * hh, 0.2 * hh),
                             _local(centre, ha, 0.35 * hh + a.beak_len, -0.12 * a.beak_len),
                             _local(centre, ha, 0.35 * hh, -0.2 * hh)]))
        for k in range(3 if a.crest > 0 else 0):
            polys.append((MANE, _segment(centre, _at(centre, _dir(140 + 12 * k + turn), a.crest), 0.03, 0.01)))
    else:
        snout_len = max(a.head_len - 0.3 * hh, 0.05)
        tip = _at(centre, _dir(ha), snout_len)
        polys.append((HEAD, _ellipse(centre, 0.55 * hh, 0.5 * hh, ha)))
        polys.append((HEAD, _segment(centre, tip, 0.85 * hh, 0.5 * hh)))
        polys.append((HEAD, _ellipse(tip, 0.26 * hh, 0.24 * hh, ha)))
        if a.trunk_len > 0:
            quads, _, _ = _curve(tip, ha, a.trunk_len, -95 - ha, 0.45 * hh, 0.2 * hh, n=5)
            polys += [(HEAD, q) for q in quads]
        if a.nose_horn > 0:
            for along, size in ((0.85, 1.0), (0.55, 0.5)):
                base = _local(centre, ha, a.head_len * along, 0.35 * hh)
                polys.append((HORN, [_at(base, _dir(ha), -0.05 * size), _at(base, _dir(ha + 100), a.nose_horn * size),
                                     _at(base, _dir(ha), 0.04 * size)]))
        if a.tusk_len > 0:
            quads, _, _ = _curve(_local(centre, ha, 0.55 * a.head_len, -0.25 * hh), ha - 25, a.tusk_len, 80,
                                 0.05, 0.015)
            polys += [(TUSK, q) for q in quads]
    if a.horn_len > 0:
        for dx in (-0.03, 0.0):  # the far horn peeks out behind the near one
            quads, _, _ = _curve(_local(centre, ha, -0.05 * hh + dx, 0.45 * hh), 90 + a.horn_angle + turn,
                                 a.horn_len, a.horn_bend, a.horn_w, 0.3 * a.horn_w)
            polys += [(HORN, q) for q in quads]
    eye = _local(centre, ha, 0.15 * hh, 0.18 * hh)
    polys.append((EYE, _ellipse(eye, 0.09 * hh, 0.09 * hh, n=8)))
    return eye


def _vertebrate(a: Species, pose: Pose) -> _Shapes:
    b = a.body_h / 2
    k = a.slope / 0.6  # torso tilt: shoulders (x=+0.3) sit `slope` above hips (x=-0.3)
    ground = -b - a.leg_len
    bird = a.form == "bird"
    polys: list = []
    # Diagonal pairs move together (a walk); far legs are drawn first so near ones overlap them.
    if bird:
        legs = (((0.04, -0.6 * b), math.pi, FAR_LEG), ((-0.04, -0.6 * b), 0.0, NEAR_LEG))
    else:
        front, hind = (0.3, -0.2 * b), (-0.3, -0.2 * b)
        legs = ((front, math.pi, FAR_LEG), (hind, 0.0, FAR_LEG), (front, 0.0, NEAR_LEG), (hind, math.pi, NEAR_LEG))
    for (x, y), offset, part in legs:
        phase = pose.leg_phase + offset
        hind_leg = x < 0 and not bird
        knee_dx = -0.1 if bird else (-0.09 if hind_leg else 0.02)
        top = (x + (0.03 if part == FAR_LEG else 0.0), y + k * x)
        lift = 0.1 * max(0.0, math.cos(phase)) * min(pose.stride / 20.0, 1.0)
        quads = _leg(top, ground, pose.stride * math.sin(phase), lift, knee_dx, a.leg_w * (1.35 if hind_leg else 1.0))
        polys += [(part, q) for q in quads]
        if bird:
            foot = quads[-1][1]
            polys.append((part, _segment(foot, (foot[0] + 0.1, foot[1]), 0.03, 0.02)))

    tail_base = (-0.47, -0.47 * k + (0.2 if bird else 0.45) * b)
    if bird:
        d = _dir(180 - a.tail_angle)
        end = _at(tail_base, d, a.tail_len)
        side = (-d[1], d[0])
        polys.append((TAIL, [_at(tail_base, side, 0.3 * a.tail_w), _at(end, side, 0.5 * a.tail_w),
                             _at(end, side, -0.5 * a.tail_w), _at(tail_base, side, -0.3 * a.tail_w)]))
    elif a.tail_len > 0:
        quads, end, end_angle = _curve(tail_base, 180 - a.tail_angle, a.tail_len, -a.tail_bend, a.tail_w,
                                       0.45 * a.tail_w)
        polys += [(TAIL, q) for q in quads]
        if a.tail_tuft > 0:
            polys.append((TUFT, _ellipse(_at(end, _dir(end_angle), 0.6 * a.tail_tuft), 1.3 * a.tail_tuft,
                                         0.75 * a.tail_tuft, end_angle, n=12)))

    cos_t, sin_t = _UNIT_CIRCLES[32]
    body_x = 0.5 * cos_t
    body_y = b * sin_t + k * body_x + a.hump * np.exp(-(((body_x - 0.22) / 0.15) ** 2)) * (sin_t > 0)
    polys.append((BODY, list(zip(body_x.tolist(), body_y.tolist()))))
    if bird:
        polys.append((WING, _ellipse((-0.05, 0.25 * b - 0.05 * k), 0.42, 0.62 * b, -8 + math.degrees(math.atan(k)))))
    if a.quills > 0:
        for t in np.linspace(0.15 * math.pi, 0.95 * math.pi, 11).tolist():
            root = (0.45 * math.cos(t), 0.9 * b * math.sin(t) + k * 0.45 * math.cos(t))
            normal = math.degrees(math.atan2(math.sin(t) / b, math.cos(t) / 0.5)) + 25
            length = a.quills * (0.8 + 0.4 * ((t * 7.3) % 1.0))
            polys.append((QUILL, _segment(root, _at(root, _dir(normal), length), 0.045, 0.008)))

    neck_base = (0.38, k * 0.38 + 0.2 * b) if bird else (0.36, k * 0.36 + 0.3 * b)
    neck_end = _at(neck_base, _dir(pose.neck_angle), a.neck_len)
    polys.append((NECK, _segment(neck_base, neck_end, a.neck_w, 0.7 * a.neck_w)))
    if a.crest > 0 and not bird:
        up = _dir(pose.neck_angle + 90)
        back = (0.0, b + 0.5 * a.hump)
        polys.append((MANE, [back, (0.0, back[1] + 0.6 * a.crest), _at(neck_base, up, 0.45 * a.neck_w + a.crest),
                             _at(neck_end, up, 0.35 * a.neck_w + 0.7 * a.crest), _at(neck_end, up, 0.3 * a.neck_w),
                             _at(neck_base, up, 0.4 * a.neck_w)]))
    if a.mane > 0:
        centre = neck_end if bird else _at(neck_base, (neck_end[0] - neck_base[0], neck_end[1] - neck_base[1]), 0.8)
        polys.append((MANE, _ellipse(centre, a.mane * (0.9 if bird else 1.1), a.mane, pose.neck_angle)))
    eye = _head(a, pose, neck_end, polys)
    return _Shapes(polys, ground, eye, tail_base)


def _insect(a: Species, pose: Pose) -> _Shapes:
    spider = a.n_legs == 8
    ground = -0.5 * a.body_h - 0.5 * a.leg_len
    polys: list = []
    pairs = a.n_legs // 2
    for part, dx in ((FAR_LEG, 0.04), (NEAR_LEG, 0.0)):
        for i in range(pairs):
            spread = (i - (pairs - 1) / 2) / max((pairs - 1) / 2, 1)
            wiggle = 0.05 * math.sin(pose.leg_phase + i * 2.1 + (math.pi if part == FAR_LEG else 0.0))
            root = (0.08 + 0.08 * spread + dx, 0.0)
            knee = (root[0] + 0.22 * spread + wiggle, 0.12 + 0.35 * a.leg_len)
            foot = (root[0] + 0.45 * spread * (1 + a.leg_len) + wiggle, ground)
            polys += [(part, _segment(root, knee, a.leg_w, 0.8 * a.leg_w)),
                      (part, _segment(knee, foot, 0.8 * a.leg_w, 0.5 * a.leg_w))]
    abdomen = (0.32, 0.6 * a.body_h) if spider else (0.3, 0.5 * a.body_h)
    polys.append((BODY, _ellipse((-0.22, 0.04), *abdomen)))
    polys.append((BODY, _ellipse((0.12, 0.02), 0.14, 0.3 * a.body_h)))
    head = (0.3, 0.03)
    polys.append((HEAD, _ellipse(head, 0.08, 0.08, n=12)))
    if not spider:
        for lift in (0.15, 0.25):
            polys.append((NEAR_LEG, _segment(head, (head[0] + 0.28, head[1] + lift), 0.015, 0.01)))
    return _Shapes(polys, ground, None, (-0.5, 0.0))


def shapes_for(animal: Species, pose: Pose) -> _Shapes:
    return _insect(animal, pose) if animal.form == "insect" else _vertebrate(animal, pose)


def silhouette_size(animal: Species) -> tuple[float, float]:
    """Height and length of the animal's silhouette at rest, in body lengths."""
    shapes = shapes_for(animal, Pose(animal.neck_angle, animal.head_angle, 0.0, 0.0))
    pts = np.array([xy for _, poly in shapes.polys for xy in poly])
    return float(pts[:, 1].max() - shapes.ground), float(pts[:, 0].max() - pts[:, 0].min())


# ---------------------------------------------------------------- colour and pattern

def _hash(i: np.ndarray, j: np.ndarray, seed: float) -> np.ndarray:
    """A cheap deterministic per-cell random number in [0, 1): the classic sin-fract hash."""
    x = np.sin(i * 127.1 + j * 311.7 + seed * 74.7) * 43758.5453
    return x - np.floor(x)


def _cells(u: np.ndarray, v: np.ndarray, freq: float, seed: float):
    gu, gv = u * freq + seed * 0.37, v * freq + seed * 0.61
    i, j = np.floor(gu), np.floor(gv)
    du = gu - (i + 0.2 + 0.6 * _hash(i, j, seed))
    dv = gv - (j + 0.2 + 0.6 * _hash(i, j, seed + 1))
    return np.hypot(du, dv), 0.7 + 0.6 * _hash(i, j, seed + 2)


def _reticulation(u: np.ndarray, v: np.ndarray, freq: float, seed: float) -> np.ndarray:
    """Distance between nearest and second-nearest cell centres: small on the network of light lines."""
    gu, gv = u * freq, v * freq
    i0, j0 = np.floor(gu), np.floor(gv)
    f1 = np.full(np.broadcast(gu, gv).shape, np.inf)
    f2 = f1.copy()
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            i, j = i0 + di, j0 + dj
            d = np.hypot(gu - (i + 0.15 + 0.7 * _hash(i, j, seed)), gv - (j + 0.15 + 0.7 * _hash(i, j, seed + 1)))
            f2 = np.where(d < f1, f1, np.minimum(f2, d))
            f1 = np.minimum(f1, d)
    return f2 - f1


def _pattern(a: Species, u: np.ndarray, v: np.ndarray, ground: float):
    """Where the pattern colour goes, and where the coat is darkened (rosette centres); None if nowhere."""
    f, amount, seed, k, b = a.pattern_freq, a.pattern_amount, a.pattern_seed, a.slope / 0.6, a.body_h / 2
    phase = seed % (2 * math.pi)
    threshold = math.cos(math.pi * min(max(amount, 0.02), 0.98))  # sin(.) > t covers `amount` of the coat
    if a.pattern == "stripes":
        return np.sin(2 * math.pi * f * (u + 0.25 * v + 0.04 * np.sin(6 * math.pi * v)) + phase) > threshold, None
    if a.pattern == "bands":
        return np.sin(2 * math.pi * f * u + phase) > threshold, None
    if a.pattern == "hstripes":
        return np.sin(2 * math.pi * f * (v - k * u) + phase) > threshold, None
    if a.pattern in ("spots", "speckles", "rosettes"):
        d, size = _cells(u, v, f, seed)
        r = min(math.sqrt(amount / math.pi), 0.4) * size
        if a.pattern == "rosettes":
            return (d < r) & (d > 0.55 * r), d <= 0.55 * r
        return d < r, None
    if a.pattern == "reticulated":
        return _reticulation(u, v, f, seed) > amount, None
    if a.pattern == "side_stripe":
        return (np.abs(v - (k * u - 0.15 * b)) < amount) & (np.abs(u) < 0.38), None
    if a.pattern == "saddle":
        return v > k * u + b * (1 - 2 * amount) + 0.03 * np.sin(6 * math.pi * u + phase), None
    if a.pattern == "patches":
        rng = np.random.default_rng(int(seed * 1000))
        fu, fv, ph = rng.uniform(3, 9, 3), rng.uniform(3, 9, 3), rng.uniform(0, 2 * math.pi, 3)
        field = sum(np.sin(fu[n] * u + fv[n] * v * (-1) ** n + ph[n]) for n in range(3))
        return field > (1 - 2 * amount) * 1.5, None
    if a.pattern == "thighs":
        return (np.abs(u) > 0.22) & (v < k * u) & (v > ground + 0.5 * a.leg_len), None
    return None, None


def _colourize(a: Species, part: np.ndarray, u: np.ndarray, v: np.ndarray, shapes: _Shapes,
               rng: np.random.Generator) -> np.ndarray:
    coat = np.asarray(a.coats[0], dtype=np.float32)
    lut = np.zeros((16, 3), dtype=np.float32)
    lut[[BODY, TAIL]] = coat
    lut[NECK] = a.neck_colour or coat
    lut[HEAD] = a.face or coat
    legs = np.asarray(a.legs or coat, dtype=np.float32)
    lut[NEAR_LEG], lut[FAR_LEG] = legs, legs * 0.72  # the far side is in shade
    lut[TUFT], lut[HORN], lut[TUSK], lut[BEAK] = a.tuft_colour, a.horn_colour, a.horn_colour, a.horn_colour
    lut[MANE], lut[EAR], lut[EYE], lut[QUILL] = a.mane_colour, a.ear_colour or coat, (18, 16, 14), WHITE
    lut[WING] = a.wing or coat * 0.75
    rgb = lut[part]

    uu, vv = u[None, :], v[:, None]
    k, b = a.slope / 0.6, a.body_h / 2
    body = part == BODY
    if a.belly is not None and a.form != "insect":
        rgb[body & (vv < k * uu - 0.3 * b)] = a.belly
    if a.rump is not None:
        rgb[body & (uu < -0.33) & (vv > k * uu - 0.35 * b)] = a.rump
    if a.pattern != "plain":
        mask, darken = _pattern(a, uu, vv, shapes.ground)
        chosen = np.zeros(16, dtype=bool)
        chosen[[p for letter in a.pattern_parts for p in _PART_LETTERS[letter]]] = True
        on = chosen[part]
        if a.pattern == "stripes" and "l" in a.pattern_parts:  # legs carry horizontal rings
            legs_on = (part == NEAR_LEG) | (part == FAR_LEG)
            mask = np.where(legs_on, np.sin(2 * math.pi * a.pattern_freq * 1.3 * vv + a.pattern_seed) > 0, mask)
        if mask is not None:
            rgb[on & mask] = a.pattern_colour
        if darken is not None:
            rgb[on & darken] *= 0.8
    if a.quills > 0:
        rgb[(part == QUILL) & (np.sin(2 * math.pi * 16 * np.hypot(uu, vv)) > 0)] = BLACK
    if a.tail_bands:
        d = np.hypot(uu - shapes.tail_base[0], vv - shapes.tail_base[1])
        rgb[(part == TAIL) & (np.sin(2 * math.pi * d * 6 / max(a.tail_len, 0.05)) > 0.2)] = a.tuft_colour
    if a.form != "insect":
        hoof = ((part == NEAR_LEG) | (part == FAR_LEG)) & (vv < shapes.ground + 0.04)
        rgb[hoof] *= 0.45

    # Lit from above, plus a little fur texture.
    top = max(float(v.max()) - shapes.ground, 1e-3)
    shade = 0.78 + 0.32 * np.clip((v - shapes.ground) / top, 0.0, 1.0)
    rgb *= shade[:, None, None].astype(np.float32)
    rgb *= 1.0 + 0.05 * rng.standard_normal(part.shape, dtype=np.float32)[..., None]
    return rgb


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
    rgb = _colourize(p.animal, part, u, v, shapes, rng)
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
                 rng: np.random.Generator) -> np.ndarray:
    """One frame as (H, W, 3) uint8; night frames have three identical channels."""
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
