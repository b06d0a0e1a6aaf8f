"""What each of the 52 demo species looks like: a table of body plans, colours and patterns.

Lengths are in body lengths (the torso ellipse is 1.0 long), angles in degrees in
a frame where +x is the way the animal faces and +y is up. Look-alike species
(the two gazelles, hartebeest and topi, the lions, the hyenas and aardwolf, the
small cats, the small antelopes) differ in a trait or two on purpose, so the
demo has confusable classes, and several cues are colour-only so that infrared
night frames are harder than day frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

RGB = tuple[int, int, int]

FORMS = ("quadruped", "bird", "insect")
PATTERNS = (
    "plain", "stripes", "bands", "spots", "speckles", "rosettes", "reticulated",
    "side_stripe", "saddle", "hstripes", "patches", "thighs",
)

WHITE: RGB = (232, 228, 218)
BLACK: RGB = (32, 29, 27)
DARK: RGB = (58, 46, 38)


@dataclass(frozen=True)
class Species:
    name: str
    form: str = "quadruped"
    size: float = 0.35  # standing height as a fraction of the frame height at the reference distance
    night_p: float = 0.3  # share of captures that are infrared night frames
    herd: int = 1  # most individuals of the species in one frame
    body_h: float = 0.42
    slope: float = 0.0  # shoulder height minus hip height (hyenas, giraffe); negative: hips higher
    hump: float = 0.0
    n_legs: int = 4
    leg_len: float = 0.55
    leg_w: float = 0.065
    neck_len: float = 0.28
    neck_w: float = 0.16
    neck_angle: float = 40.0
    head_len: float = 0.28
    head_h: float = 0.14
    head_angle: float = -40.0  # direction of the snout
    ear_len: float = 0.06
    ear_w: float = 0.04
    ear_round: bool = False
    ear_angle: float = 150.0  # relative to the snout direction
    horn_len: float = 0.0
    horn_angle: float = 20.0  # tilt back from vertical
    horn_bend: float = 0.0  # total curvature; positive curls backwards
    horn_w: float = 0.025
    horn_p: float = 1.0  # share of individuals with horns or tusks (females often have none)
    tusk_len: float = 0.0
    nose_horn: float = 0.0
    trunk_len: float = 0.0
    beak_len: float = 0.0
    tail_len: float = 0.3
    tail_w: float = 0.03
    tail_angle: float = -70.0  # elevation above "straight back"; negative droops
    tail_bend: float = 0.0
    tail_tuft: float = 0.0
    tail_bands: bool = False
    mane: float = 0.0  # ruff radius around the neck (lion, vulture)
    crest: float = 0.0  # hair strip along the neck and shoulders, or head feathers on birds
    quills: float = 0.0
    coats: tuple[RGB, ...] = ((180, 140, 95),)  # an individual wears one of these
    belly: RGB | None = None
    legs: RGB | None = None
    face: RGB | None = None
    neck_colour: RGB | None = None
    ear_colour: RGB | None = None
    wing: RGB | None = None
    rump: RGB | None = None
    tuft_colour: RGB = DARK
    mane_colour: RGB = (95, 62, 35)
    horn_colour: RGB = (62, 56, 50)
    pattern: str = "plain"
    pattern_colour: RGB = BLACK
    pattern_freq: float = 6.0  # pattern features per body length
    pattern_amount: float = 0.3  # coverage (spots, stripes) or position (saddle line)
    pattern_parts: str = "bn"  # b body, n neck, h head, l legs, t tail
    pattern_p: float = 1.0  # share of individuals that show the pattern
    colour_jitter: float = 0.04
    pattern_seed: float = 0.0  # set per individual so its spots and stripes stay put across frames

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"species {self.name}: form {self.form!r} is not one of {FORMS}")
        if self.pattern not in PATTERNS:
            raise ValueError(f"species {self.name}: pattern {self.pattern!r} is not one of {PATTERNS}")


def _bird(name: str, **traits) -> Species:
    base = dict(form="bird", n_legs=2, body_h=0.5, leg_w=0.035, ear_len=0.0, head_angle=0.0, tail_angle=-20.0,
                night_p=0.03, head_len=0.16, head_h=0.15)
    return Species(name, **{**base, **traits})


SPECIES_TABLE: tuple[Species, ...] = (
    Species("wildebeest", size=0.42, herd=4, night_p=0.25, body_h=0.46, slope=0.08, hump=0.05, leg_len=0.55,
            leg_w=0.07, neck_w=0.2, neck_angle=30, head_len=0.34, head_angle=-60, horn_len=0.17, horn_angle=75,
            horn_bend=-150, horn_w=0.035, tail_len=0.4, tail_tuft=0.08, crest=0.04, coats=((92, 88, 86),),
            face=(48, 44, 40), pattern="bands", pattern_colour=(66, 62, 60), pattern_freq=11, pattern_amount=0.45),
    Species("zebra", size=0.42, herd=3, night_p=0.25, body_h=0.48, leg_len=0.55, leg_w=0.07, neck_len=0.32,
            neck_w=0.19, neck_angle=45, head_len=0.34, head_h=0.13, head_angle=-50, ear_len=0.07, tail_len=0.35,
            tail_tuft=0.07, crest=0.04, coats=(WHITE,), mane_colour=BLACK, pattern="stripes", pattern_freq=9,
            pattern_amount=0.5, pattern_parts="bnhl"),
    Species("gazelleThomsons", size=0.26, herd=3, night_p=0.15, body_h=0.38, leg_len=0.62, leg_w=0.045,
            neck_len=0.3, neck_w=0.11, neck_angle=55, head_len=0.22, head_h=0.1, head_angle=-45, ear_len=0.07,
            horn_len=0.14, horn_angle=15, horn_bend=25, horn_w=0.018, tail_len=0.12, coats=((184, 134, 84),),
            belly=WHITE, pattern="side_stripe", pattern_colour=BLACK, pattern_amount=0.035),
    Species("elephant", size=0.85, herd=2, night_p=0.3, body_h=0.62, slope=0.03, leg_len=0.5, leg_w=0.17,
            neck_len=0.05, neck_w=0.35, neck_angle=0, head_len=0.3, head_h=0.32, head_angle=-75, ear_len=0.34,
            ear_w=0.3, ear_round=True, ear_angle=200, trunk_len=0.55, tusk_len=0.25, horn_p=0.8, tail_len=0.3,
            tail_tuft=0.04, coats=((112, 108, 104),), horn_colour=(225, 215, 190)),
    Species("buffalo", size=0.45, herd=3, night_p=0.35, body_h=0.55, hump=0.04, leg_len=0.38, leg_w=0.1,
            neck_len=0.12, neck_w=0.3, neck_angle=10, head_len=0.3, head_h=0.2, head_angle=-60, ear_len=0.08,
            horn_len=0.22, horn_angle=85, horn_bend=-130, horn_w=0.05, tail_len=0.35, tail_tuft=0.05,
            coats=((40, 37, 35),)),
    Species("warthog", size=0.22, night_p=0.1, body_h=0.5, slope=0.04, leg_len=0.33, leg_w=0.06, neck_len=0.05,
            neck_w=0.3, neck_angle=0, head_len=0.34, head_h=0.22, head_angle=-40, tusk_len=0.12, crest=0.05,
            tail_len=0.3, tail_w=0.015, tail_angle=70, tail_tuft=0.05, coats=((95, 86, 78),),
            horn_colour=(220, 210, 185)),
    Species("giraffe", size=1.1, night_p=0.2, body_h=0.5, slope=0.25, leg_len=0.95, leg_w=0.06, neck_len=0.9,
            neck_w=0.16, neck_angle=65, head_len=0.25, head_h=0.11, head_angle=-60, ear_len=0.07, horn_len=0.08,
            horn_angle=10, horn_w=0.03, tail_len=0.45, tail_tuft=0.08, coats=((232, 212, 168),),
            pattern="reticulated", pattern_colour=(150, 90, 45), pattern_freq=5, pattern_amount=0.12,
            pattern_parts="bnl"),
    Species("gazelleGrants", size=0.3, herd=2, night_p=0.15, body_h=0.4, leg_len=0.6, leg_w=0.048, neck_len=0.32,
            neck_w=0.12, neck_angle=55, head_len=0.24, head_h=0.1, head_angle=-45, ear_len=0.07, horn_len=0.24,
            horn_angle=20, horn_bend=35, horn_w=0.02, tail_len=0.12, coats=((198, 158, 108),), belly=WHITE,
            rump=WHITE, pattern="side_stripe", pattern_colour=(160, 120, 80), pattern_amount=0.025, pattern_p=0.5),
    Species("impala", size=0.33, herd=3, night_p=0.15, body_h=0.42, leg_len=0.6, leg_w=0.05, neck_len=0.32,
            neck_w=0.13, neck_angle=50, head_len=0.25, head_h=0.11, head_angle=-45, ear_len=0.08, horn_len=0.28,
            horn_angle=10, horn_bend=45, horn_w=0.02, horn_p=0.5, tail_len=0.14, coats=((170, 105, 60),),
            belly=WHITE, pattern="saddle", pattern_colour=(135, 80, 45), pattern_amount=0.35),
    _bird("otherBird", size=0.14, body_h=0.5, leg_len=0.35, neck_len=0.15, neck_w=0.2, neck_angle=50,
          head_h=0.22, beak_len=0.18, tail_len=0.35, tail_w=0.2, colour_jitter=0.2,
          coats=((90, 70, 50), (40, 40, 45), (180, 170, 150), (60, 90, 140), (150, 60, 40), (200, 200, 195))),
    Species("hartebeest", size=0.38, herd=2, night_p=0.15, body_h=0.45, slope=0.15, leg_len=0.6, leg_w=0.055,
            neck_len=0.3, neck_w=0.15, neck_angle=50, head_len=0.38, head_h=0.12, head_angle=-65, ear_len=0.07,
            horn_len=0.14, horn_angle=-10, horn_bend=100, horn_w=0.03, tail_len=0.3, tail_tuft=0.08,
            coats=((184, 134, 80),), belly=(202, 162, 112)),
    Species("hyenaSpotted", size=0.3, herd=2, night_p=0.7, body_h=0.45, slope=0.2, leg_len=0.5, leg_w=0.07,
            neck_len=0.22, neck_w=0.2, neck_angle=30, head_len=0.28, head_h=0.16, head_angle=-35, ear_len=0.06,
            ear_round=True, tail_len=0.22, tail_tuft=0.05, coats=((165, 140, 100),), pattern="spots",
            pattern_colour=(72, 56, 40), pattern_freq=7, pattern_amount=0.28, pattern_parts="bnl"),
    _bird("guineaFowl", size=0.13, herd=4, body_h=0.62, leg_len=0.22, neck_len=0.12, neck_w=0.15, neck_angle=60,
          head_h=0.14, beak_len=0.08, tail_len=0.15, tail_w=0.2, tail_angle=-40, coats=((55, 58, 65),),
          face=(120, 150, 190), pattern="speckles", pattern_colour=WHITE, pattern_freq=22, pattern_amount=0.22),
    Species("lionFemale", size=0.38, herd=2, night_p=0.45, body_h=0.42, slope=0.02, leg_len=0.5, leg_w=0.08,
            neck_len=0.22, neck_w=0.22, neck_angle=30, head_len=0.3, head_h=0.18, head_angle=-25, ear_len=0.05,
            ear_round=True, tail_len=0.6, tail_angle=-40, tail_bend=40, tail_tuft=0.06, coats=((185, 150, 100),),
            belly=(210, 185, 145)),
    Species("topi", size=0.38, herd=2, night_p=0.15, body_h=0.45, slope=0.13, leg_len=0.58, leg_w=0.055,
            neck_len=0.3, neck_w=0.15, neck_angle=50, head_len=0.33, head_h=0.12, head_angle=-60, ear_len=0.07,
            horn_len=0.14, horn_angle=20, horn_bend=40, horn_w=0.03, tail_len=0.3, tail_tuft=0.08,
            coats=((150, 85, 55),), face=(62, 42, 42), legs=(196, 158, 100), pattern="thighs",
            pattern_colour=(72, 50, 62), pattern_parts="bl"),
    Species("baboon", size=0.25, herd=2, night_p=0.05, body_h=0.45, slope=0.15, leg_len=0.45, leg_w=0.07,
            neck_len=0.05, neck_w=0.25, neck_angle=20, head_len=0.3, head_h=0.18, head_angle=-20, ear_len=0.03,
            ear_round=True, tail_len=0.45, tail_w=0.04, tail_angle=40, tail_bend=-130, coats=((120, 105, 70),),
            face=(62, 52, 52)),
    _bird("secretaryBird", size=0.5, body_h=0.45, leg_len=1.1, neck_len=0.3, neck_w=0.1, neck_angle=70,
          head_h=0.14, beak_len=0.08, crest=0.12, tail_len=0.6, tail_w=0.12, tail_angle=-25,
          coats=((175, 175, 170),), legs=BLACK, wing=BLACK, face=(200, 120, 60)),
    Species("eland", size=0.5, herd=2, night_p=0.2, body_h=0.55, hump=0.03, leg_len=0.5, leg_w=0.08,
            neck_len=0.25, neck_w=0.22, neck_angle=35, head_len=0.3, head_h=0.14, head_angle=-55, horn_len=0.22,
            horn_angle=25, horn_w=0.03, tail_len=0.35, tail_tuft=0.05, coats=((190, 160, 120),), pattern="stripes",
            pattern_colour=(226, 212, 182), pattern_freq=6, pattern_amount=0.15),
    Species("hippopotamus", size=0.4, night_p=0.7, body_h=0.62, leg_len=0.2, leg_w=0.14, neck_len=0.05,
            neck_w=0.5, neck_angle=0, head_len=0.38, head_h=0.3, head_angle=-20, ear_len=0.04, ear_round=True,
            tail_len=0.12, coats=((110, 90, 90),), belly=(160, 120, 110)),
    Species("dikDik", size=0.15, night_p=0.4, body_h=0.45, slope=-0.03, leg_len=0.55, leg_w=0.04, neck_len=0.2,
            neck_w=0.1, neck_angle=50, head_len=0.2, head_h=0.11, head_angle=-30, ear_len=0.08, horn_len=0.05,
            horn_angle=30, horn_p=0.5, tail_len=0.05, coats=((140, 120, 100),), legs=(170, 120, 80)),
    _bird("ostrich", size=0.9, body_h=0.55, leg_len=1.0, leg_w=0.07, neck_len=0.85, neck_w=0.07, neck_angle=80,
          head_h=0.1, beak_len=0.08, tail_len=0.25, tail_w=0.25, tail_angle=20,
          coats=((35, 32, 30), (130, 115, 95)), legs=(200, 150, 140), neck_colour=(190, 160, 150), wing=WHITE),
    Species("cheetah", size=0.3, night_p=0.1, body_h=0.34, slope=0.03, leg_len=0.62, leg_w=0.045, neck_len=0.2,
            neck_w=0.14, neck_angle=25, head_len=0.2, head_h=0.14, head_angle=-15, ear_len=0.04, ear_round=True,
            tail_len=0.7, tail_w=0.035, tail_angle=-50, tail_bend=60, coats=((205, 170, 105),),
            belly=(230, 215, 180), pattern="spots", pattern_freq=14, pattern_amount=0.3, pattern_parts="bnlt"),
    Species("reedbuck", size=0.32, night_p=0.35, body_h=0.42, leg_len=0.55, leg_w=0.05, neck_len=0.26,
            neck_w=0.13, neck_angle=50, head_len=0.24, head_h=0.11, head_angle=-40, ear_len=0.09, horn_len=0.15,
            horn_angle=-15, horn_bend=-40, horn_w=0.02, horn_p=0.5, tail_len=0.15, tail_w=0.05,
            coats=((175, 150, 110),), belly=WHITE),
    _bird("koriBustard", size=0.45, body_h=0.42, leg_len=0.55, neck_len=0.4, neck_w=0.1, neck_angle=60,
          head_h=0.12, beak_len=0.12, crest=0.05, tail_len=0.3, tail_w=0.15, tail_angle=-10,
          coats=((150, 130, 100),), neck_colour=(170, 170, 165), pattern="speckles",
          pattern_colour=(90, 75, 60), pattern_freq=18),
    Species("insectSpider", form="insect", size=0.12, night_p=0.5, n_legs=6, body_h=0.4, leg_len=0.3,
            leg_w=0.025, colour_jitter=0.15, coats=((40, 35, 30), (90, 70, 40), (60, 70, 40))),
    Species("jackal", size=0.2, night_p=0.6, body_h=0.38, leg_len=0.55, leg_w=0.045, neck_len=0.2, neck_w=0.14,
            neck_angle=40, head_len=0.26, head_h=0.12, head_angle=-20, ear_len=0.1, tail_len=0.4, tail_w=0.06,
            tail_angle=-45, tail_tuft=0.04, coats=((185, 140, 90),), belly=(215, 200, 170), pattern="saddle",
            pattern_colour=(75, 70, 65), pattern_amount=0.25, pattern_parts="b"),
    Species("lionMale", size=0.44, night_p=0.45, body_h=0.43, slope=0.03, leg_len=0.5, leg_w=0.085,
            neck_len=0.22, neck_w=0.24, neck_angle=30, head_len=0.32, head_h=0.2, head_angle=-25, ear_len=0.05,
            ear_round=True, mane=0.2, tail_len=0.6, tail_angle=-40, tail_bend=40, tail_tuft=0.06,
            coats=((185, 150, 100),), belly=(210, 185, 145)),
    Species("serval", size=0.22, night_p=0.6, body_h=0.36, leg_len=0.7, leg_w=0.045, neck_len=0.2, neck_w=0.13,
            neck_angle=40, head_len=0.2, head_h=0.13, head_angle=-15, ear_len=0.13, ear_w=0.06, tail_len=0.25,
            tail_angle=-40, coats=((200, 165, 100),), pattern="spots", pattern_freq=9, pattern_amount=0.33,
            pattern_parts="bnl"),
    Species("hare", size=0.11, night_p=0.8, body_h=0.55, slope=-0.1, leg_len=0.25, leg_w=0.06, neck_len=0.05,
            neck_w=0.3, neck_angle=20, head_len=0.22, head_h=0.15, head_angle=-20, ear_len=0.34, ear_w=0.05,
            ear_angle=125,
            tail_len=0.08, tail_w=0.06, tail_angle=20, tail_tuft=0.04, tuft_colour=WHITE, coats=((140, 120, 95),),
            belly=(185, 170, 150)),
    Species("mongoose", size=0.09, herd=3, night_p=0.1, body_h=0.32, leg_len=0.25, leg_w=0.05, neck_len=0.12,
            neck_w=0.17, neck_angle=20, head_len=0.2, head_h=0.12, head_angle=-15, ear_len=0.03, ear_round=True,
            tail_len=0.55, tail_w=0.07, tail_angle=-20, coats=((120, 105, 85),), pattern="bands",
            pattern_colour=(80, 70, 55), pattern_freq=10, pattern_amount=0.45),
    Species("porcupine", size=0.16, night_p=0.95, body_h=0.6, leg_len=0.18, leg_w=0.06, neck_len=0.05,
            neck_w=0.3, neck_angle=10, head_len=0.22, head_h=0.16, head_angle=-30, ear_len=0.03, ear_round=True,
            tail_len=0.12, quills=0.28, coats=((35, 32, 30),)),
    Species("vervetMonkey", size=0.18, night_p=0.05, body_h=0.42, slope=0.05, leg_len=0.45, leg_w=0.045,
            neck_len=0.05, neck_w=0.2, neck_angle=20, head_len=0.2, head_h=0.16, head_angle=-5, ear_len=0.03,
            ear_round=True, tail_len=0.8, tail_w=0.03, tail_angle=30, tail_bend=-100, coats=((140, 140, 120),),
            face=(40, 40, 40), belly=(200, 200, 190)),
    Species("batEaredFox", size=0.14, night_p=0.7, body_h=0.38, leg_len=0.45, leg_w=0.04, neck_len=0.18,
            neck_w=0.13, neck_angle=40, head_len=0.2, head_h=0.12, head_angle=-20, ear_len=0.2, ear_w=0.1,
            tail_len=0.4, tail_w=0.07, tail_angle=-35, tail_tuft=0.06, coats=((150, 140, 125),), legs=(50, 45, 40)),
    Species("aardvark", size=0.2, night_p=0.95, body_h=0.5, slope=-0.1, leg_len=0.3, leg_w=0.08, neck_len=0.05,
            neck_w=0.3, neck_angle=10, head_len=0.45, head_h=0.13, head_angle=-45, ear_len=0.2, ear_w=0.06,
            tail_len=0.5, tail_w=0.1, tail_angle=-35, coats=((170, 140, 120),)),
    Species("waterbuck", size=0.42, night_p=0.2, body_h=0.48, leg_len=0.5, leg_w=0.07, neck_len=0.3, neck_w=0.2,
            neck_angle=45, head_len=0.28, head_h=0.13, head_angle=-40, ear_len=0.1, horn_len=0.3, horn_angle=25,
            horn_bend=40, horn_w=0.025, horn_p=0.5, crest=0.03, tail_len=0.25, coats=((110, 95, 80),),
            rump=WHITE, mane_colour=(90, 78, 66)),
    Species("aardwolf", size=0.18, night_p=0.9, body_h=0.42, slope=0.15, leg_len=0.55, leg_w=0.045, neck_len=0.2,
            neck_w=0.16, neck_angle=35, head_len=0.24, head_h=0.12, head_angle=-25, ear_len=0.12, crest=0.05,
            tail_len=0.3, tail_w=0.07, tail_tuft=0.05, coats=((200, 175, 125),), mane_colour=(70, 60, 50),
            pattern="stripes", pattern_colour=(50, 45, 40), pattern_freq=6, pattern_amount=0.35, pattern_parts="bl"),
    Species("leopard", size=0.28, night_p=0.7, body_h=0.38, leg_len=0.45, leg_w=0.07, neck_len=0.2, neck_w=0.18,
            neck_angle=30, head_len=0.24, head_h=0.16, head_angle=-20, ear_len=0.04, ear_round=True, tail_len=0.7,
            tail_angle=-40, tail_bend=70, coats=((200, 160, 95),), belly=(230, 210, 170), pattern="rosettes",
            pattern_freq=9, pattern_amount=0.33, pattern_parts="bnlt"),
    Species("bushbuck", size=0.28, night_p=0.5, body_h=0.42, slope=-0.03, leg_len=0.5, leg_w=0.05, neck_len=0.25,
            neck_w=0.13, neck_angle=45, head_len=0.22, head_h=0.11, head_angle=-40, ear_len=0.1, horn_len=0.14,
            horn_angle=20, horn_w=0.02, horn_p=0.5, tail_len=0.15, coats=((140, 80, 45),), pattern="spots",
            pattern_colour=WHITE, pattern_freq=6, pattern_amount=0.14),
    _bird("vulture", size=0.35, body_h=0.6, leg_len=0.25, leg_w=0.05, neck_len=0.15, neck_w=0.12, neck_angle=40,
          head_h=0.12, beak_len=0.1, mane=0.08, mane_colour=(230, 220, 200), tail_len=0.25, tail_w=0.2,
          tail_angle=-30, coats=((110, 85, 60),), neck_colour=(200, 190, 175), wing=(70, 55, 40)),
    Species("duiker", size=0.2, night_p=0.6, body_h=0.42, slope=-0.08, leg_len=0.45, leg_w=0.04, neck_len=0.15,
            neck_w=0.13, neck_angle=35, head_len=0.22, head_h=0.11, head_angle=-40, ear_len=0.08, horn_len=0.07,
            horn_angle=40, tail_len=0.06, coats=((150, 130, 95),), face=(80, 60, 45)),
    Species("hyenaStriped", size=0.28, night_p=0.9, body_h=0.45, slope=0.18, leg_len=0.5, leg_w=0.065,
            neck_len=0.22, neck_w=0.19, neck_angle=30, head_len=0.28, head_h=0.15, head_angle=-35, ear_len=0.12,
            crest=0.08, mane_colour=(40, 36, 32), tail_len=0.3, tail_w=0.07, tail_tuft=0.05,
            coats=((170, 165, 150),), pattern="stripes", pattern_colour=(35, 32, 30), pattern_freq=8,
            pattern_amount=0.3, pattern_parts="bl"),
    Species("cattle", size=0.4, herd=3, night_p=0.1, body_h=0.5, leg_len=0.45, leg_w=0.08, neck_len=0.18,
            neck_w=0.24, neck_angle=25, head_len=0.3, head_h=0.15, head_angle=-55, ear_len=0.08, horn_len=0.18,
            horn_angle=60, horn_bend=-60, horn_w=0.035, horn_p=0.8, tail_len=0.45, tail_tuft=0.06,
            coats=((120, 70, 40), (40, 35, 32), (220, 215, 205), (150, 110, 70)), pattern="patches",
            pattern_colour=WHITE, pattern_amount=0.4, pattern_parts="bnh", pattern_p=0.6),
    Species("reptiles", size=0.09, night_p=0.2, body_h=0.22, leg_len=0.1, leg_w=0.05, neck_len=0.05,
            neck_w=0.15, neck_angle=0, head_len=0.22, head_h=0.1, head_angle=0, ear_len=0.0, tail_len=1.0,
            tail_w=0.09, tail_angle=-5, coats=((90, 100, 60), (120, 110, 90), (70, 70, 60)), pattern="speckles",
            pattern_colour=(40, 40, 30), pattern_freq=16, pattern_amount=0.25, pattern_parts="bnt"),
    Species("rhinoceros", size=0.48, night_p=0.4, body_h=0.55, hump=0.03, leg_len=0.33, leg_w=0.14,
            neck_len=0.05, neck_w=0.4, neck_angle=0, head_len=0.38, head_h=0.22, head_angle=-45, ear_len=0.07,
            nose_horn=0.2, tail_len=0.15, coats=((100, 98, 95),), horn_colour=(85, 80, 75)),
    Species("steenbok", size=0.17, night_p=0.3, body_h=0.42, leg_len=0.58, leg_w=0.04, neck_len=0.22,
            neck_w=0.1, neck_angle=50, head_len=0.2, head_h=0.1, head_angle=-35, ear_len=0.13, ear_w=0.06,
            horn_len=0.08, horn_angle=0, horn_p=0.5, tail_len=0.04, coats=((185, 115, 65),), belly=WHITE),
    Species("honeyBadger", size=0.14, night_p=0.8, body_h=0.42, leg_len=0.22, leg_w=0.08, neck_len=0.08,
            neck_w=0.3, neck_angle=10, head_len=0.22, head_h=0.15, head_angle=-25, ear_len=0.02, ear_round=True,
            tail_len=0.15, tail_w=0.06, tail_angle=30, coats=((30, 28, 26),), pattern="saddle",
            pattern_colour=(180, 180, 175), pattern_amount=0.55, pattern_parts="bnh"),
    Species("caracal", size=0.2, night_p=0.6, body_h=0.38, leg_len=0.58, leg_w=0.05, neck_len=0.2, neck_w=0.14,
            neck_angle=40, head_len=0.21, head_h=0.14, head_angle=-15, ear_len=0.12, ear_colour=BLACK,
            tail_len=0.2, tail_angle=-50, coats=((180, 120, 75),), belly=(220, 200, 170)),
    Species("civet", size=0.15, night_p=0.95, body_h=0.42, slope=-0.05, leg_len=0.35, leg_w=0.06, neck_len=0.12,
            neck_w=0.18, neck_angle=25, head_len=0.24, head_h=0.13, head_angle=-30, ear_len=0.05, ear_round=True,
            crest=0.03, mane_colour=BLACK, tail_len=0.45, tail_w=0.07, tail_angle=-40, tail_bands=True,
            coats=((150, 140, 120),), legs=BLACK, face=BLACK, pattern="spots", pattern_freq=8,
            pattern_amount=0.35),
    Species("wildcat", size=0.12, night_p=0.8, body_h=0.36, leg_len=0.45, leg_w=0.045, neck_len=0.15,
            neck_w=0.14, neck_angle=35, head_len=0.2, head_h=0.14, head_angle=-10, ear_len=0.07, tail_len=0.55,
            tail_w=0.05, tail_angle=-40, tail_bend=50, tail_bands=True, coats=((150, 135, 110),),
            pattern="stripes", pattern_colour=(100, 90, 75), pattern_freq=8, pattern_amount=0.4),
    Species("genet", size=0.1, night_p=0.95, body_h=0.3, leg_len=0.3, leg_w=0.04, neck_len=0.12, neck_w=0.13,
            neck_angle=25, head_len=0.22, head_h=0.11, head_angle=-15, ear_len=0.07, crest=0.02,
            mane_colour=BLACK, tail_len=0.85, tail_w=0.06, tail_angle=-15, tail_bands=True,
            coats=((190, 180, 160),), pattern="spots", pattern_colour=(40, 35, 30), pattern_freq=10,
            pattern_amount=0.3),
    Species("zorilla", size=0.1, night_p=0.95, body_h=0.36, leg_len=0.24, leg_w=0.05, neck_len=0.08,
            neck_w=0.2, neck_angle=10, head_len=0.2, head_h=0.13, head_angle=-20, ear_len=0.03, ear_round=True,
            tail_len=0.4, tail_w=0.1, tail_angle=10, coats=((25, 23, 22),), pattern="hstripes",
            pattern_colour=WHITE, pattern_freq=8, pattern_amount=0.3, pattern_parts="bnh"),
    Species("rodents", size=0.07, night_p=0.8, body_h=0.55, leg_len=0.15, leg_w=0.05, neck_len=0.05,
            neck_w=0.3, neck_angle=20, head_len=0.3, head_h=0.2, head_angle=-15, ear_len=0.07, ear_round=True,
            tail_len=0.8, tail_w=0.02, tail_angle=-15, coats=((120, 100, 80), (90, 85, 80), (160, 140, 110))),
)

SPECIES: dict[str, Species] = {s.name: s for s in SPECIES_TABLE}

# Traits scaled by a log-normal factor per individual, so no two animals share a silhouette.
_LENGTHS = ("body_h", "leg_len", "leg_w", "neck_len", "neck_w", "head_len", "head_h", "ear_len", "ear_w",
            "horn_len", "tusk_len", "tail_len", "tail_w", "tail_tuft", "mane", "crest", "quills", "trunk_len",
            "beak_len", "nose_horn")
_ANGLES = ("neck_angle", "head_angle", "horn_angle", "tail_angle", "tail_bend")
_COLOURS = ("belly", "legs", "face", "neck_colour", "ear_colour", "wing", "rump", "mane_colour", "pattern_colour")


def individualize(species: Species, rng: np.random.Generator) -> Species:
    """One animal of the species: proportions, colours and pattern vary around the species' traits."""
    changes: dict = {name: getattr(species, name) * math.exp(rng.normal(0.0, 0.08)) for name in _LENGTHS}
    changes.update({name: getattr(species, name) + rng.normal(0.0, 7.0) for name in _ANGLES})
    # One tint for the whole animal (a redder or greyer individual), not one per body part.
    tint = math.exp(rng.normal(0.0, 0.1)) * np.exp(rng.normal(0.0, species.colour_jitter, 3))
    coat = species.coats[int(rng.integers(len(species.coats)))]
    changes["coats"] = (_tinted(coat, tint),)
    for name in _COLOURS:
        colour = getattr(species, name)
        if colour is not None:
            changes[name] = _tinted(colour, tint)
    changes["pattern_freq"] = species.pattern_freq * math.exp(rng.normal(0.0, 0.1))
    changes["pattern_amount"] = species.pattern_amount * math.exp(rng.normal(0.0, 0.1))
    changes["pattern_seed"] = float(rng.uniform(0.0, 1000.0))
    if rng.random() >= species.horn_p:
        changes.update(horn_len=0.0, tusk_len=0.0)
    if rng.random() >= species.pattern_p:
        changes["pattern"] = "plain"
    if species.form == "insect" and rng.random() < 0.4:
        changes.update(n_legs=8, leg_len=changes["leg_len"] * 1.4)  # a spider
    return replace(species, **changes)


def _tinted(colour: RGB, tint: np.ndarray) -> RGB:
    r, g, b = np.clip(np.asarray(colour, dtype=np.float64) * tint, 0, 255).round()
    return int(r), int(g), int(b)
