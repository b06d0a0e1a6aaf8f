"""The animals themselves: procedural body, leg, head and ornament shapes, then coat colour and pattern.

Shapes are polygons in the animal's own frame (units of body length, y up,
feet at `ground`), tagged with a part id so colour and pattern can be filled
in per part once scene.py has rasterized them into a part map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from camtrap_fast.synth.species import BLACK, WHITE, Species

# Part ids in the part map; 0 is "no animal".
BODY, NECK, HEAD, NEAR_LEG, FAR_LEG, TAIL, TUFT, HORN, MANE, EAR, EYE, TUSK, WING, QUILL, BEAK = range(1, 16)
_PART_LETTERS = {"b": (BODY,), "n": (NECK,), "h": (HEAD,), "l": (NEAR_LEG, FAR_LEG), "t": (TAIL,)}


@dataclass(frozen=True)
class Pose:
    neck_angle: float
    head_angle: float
    leg_phase: float  # radians through the gait cycle
    stride: float  # leg swing amplitude in degrees; 0 is standing


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
class Shapes:
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


def _vertebrate(a: Species, pose: Pose) -> Shapes:
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
    return Shapes(polys, ground, eye, tail_base)


def _insect(a: Species, pose: Pose) -> Shapes:
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
    return Shapes(polys, ground, None, (-0.5, 0.0))


def shapes_for(animal: Species, pose: Pose) -> Shapes:
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


def colourize(a: Species, part: np.ndarray, u: np.ndarray, v: np.ndarray, shapes: Shapes,
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
