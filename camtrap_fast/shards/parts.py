"""`--part K/N`: which planned shards a part writes, what it leaves behind for the merge, and the merge's checks.

A part writes the planned shards `K*C//N : (K+1)*C//N` of the plan's C (train, then val, then test; plan.py),
its progress log as it goes, and, when all are written, its record `.shard-part-K-of-N.json` (fingerprint,
plan digest, shard range). Every part also writes `.shard-plan.json`: what the merge needs from the plan
(classes, the rejections found before encoding, ...), the same bytes from every part, written atomically,
so concurrent parts can all write it. The merge trusts none of this blindly: every part must be there,
from the same N, with the plan's fingerprint and digest, and every shard it logged must be in place at
the size it logged. A one-machine run is part 0/1 followed by the merge, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from camtrap_fast.atomic import write_text
from camtrap_fast.errors import Fault, UserError
from camtrap_fast.shards.out_dir import PLAN_FILE
from camtrap_fast.shards.plan import Chunk, ShardPlan

PLAN_FORMAT = "camtrap-fast-shard-plan/1"
_RECORD = re.compile(r"\.shard-part-(\d+)-of-(\d+)\.json")


@dataclass(frozen=True)
class Part:
    index: int  # K, from 0
    count: int  # N

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise UserError(f"--part {self.index}/{self.count}: K must be from 0 to N-1 (with a SLURM array "
                            f"--array=0-{max(self.count - 1, 0)}, pass --part $SLURM_ARRAY_TASK_ID/{max(self.count, 1)})")

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def progress_path(self, out: Path) -> Path:
        return out / f".shard-progress-{self.index}-of-{self.count}.jsonl"

    def record_path(self, out: Path) -> Path:
        return out / f".shard-part-{self.index}-of-{self.count}.json"

    def chunks(self, chunks: list[Chunk]) -> list[Chunk]:
        """This part's equal, contiguous slice of the planned shards."""
        total = len(chunks)
        return chunks[self.index * total // self.count:(self.index + 1) * total // self.count]


def parse_part(text: str) -> Part:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise UserError(f"--part {text}: expected K/N, e.g. 0/4 (part K of N, K from 0 to N-1)")
    return Part(int(match.group(1)), int(match.group(2)))


def plan_record(plan: ShardPlan, image_size: int, quality: int) -> dict:
    """What the merge needs from the plan, as JSON (no image is listed but those rejected before encoding)."""
    train_images = Counter(r.label for r in plan.members["train"])
    return {
        "format": PLAN_FORMAT,
        "fingerprint": plan.fingerprint,
        "digest": plan.digest(),
        "listed": plan.listed,
        "classes": list(plan.classes),
        "image_size": image_size,
        "quality": quality,
        "wanted": plan.wanted,
        "crops": plan.crops,
        "chunks": [[c.number, c.split, c.shard] for c in plan.chunks],
        "train_images": {c: train_images.get(c, 0) for c in plan.classes},
        "outside": [list(pair) for pair in plan.outside],
        "rejections": [[r.path, r.reason, r.detail] for r in plan.rejections],
    }


def write_plan(out: Path, record: dict) -> None:
    write_text(out / PLAN_FILE, json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")


def write_part_record(out: Path, part: Part, record: dict, chunks: list[Chunk], command: tuple[str, ...]) -> None:
    write_text(part.record_path(out), json.dumps({
        "part": part.label, "fingerprint": record["fingerprint"], "digest": record["digest"],
        "chunks": [c.number for c in chunks], "command": list(command),
    }) + "\n")


def part_done(out: Path, part: Part, digest: str) -> bool:
    """Whether this part already finished for this very plan (a rerun then has nothing to do)."""
    try:
        return json.loads(part.record_path(out).read_text(encoding="utf-8")).get("digest") == digest
    except (OSError, ValueError, AttributeError):
        return False


@dataclass(frozen=True)
class FinishedParts:
    plan: dict
    parts: list[Part]
    commands: list[list[str]]


def check_parts(out: Path) -> FinishedParts:
    """Every part of one N-way run finished, from one plan; a UserError naming the first thing that is not so."""
    names = sorted(p.name for p in out.iterdir() if _RECORD.fullmatch(p.name)) if out.is_dir() else []
    if not names:
        raise UserError(f"{out}: no finished part to merge (run `camtrap-fast shard SOURCE {out} --part K/N` for "
                        "K = 0 .. N-1 first)")
    counts = sorted({int(_RECORD.fullmatch(n).group(2)) for n in names})
    if len(counts) > 1:
        raise UserError(f"{out}: holds parts of runs split {' and '.join(map(str, counts))} ways; run every part "
                        "with the same N (remove the other run's .shard-part-*-of-*.json files first)")
    count = counts[0]
    parts = [Part(k, count) for k in range(count)]
    missing = [p for p in parts if not p.record_path(out).exists()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(f"{out}: part {missing[0].label}{more} has not finished; run `camtrap-fast shard SOURCE "
                        f"{out} --part {missing[0].label}` (again), then merge")
    try:
        plan = json.loads((out / PLAN_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{out / PLAN_FILE}: missing; rerun any part (it writes the plan again), then merge") from None
    except (OSError, ValueError) as error:
        raise Fault(f"{out / PLAN_FILE}: cannot read ({error}); rerun any part, then merge") from None
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise Fault(f"{out / PLAN_FILE}: not a shard plan of this camtrap-fast; rerun any part, then merge")
    commands = []
    for part in parts:
        path = part.record_path(out)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise Fault(f"{path}: cannot read ({error}); rerun part {part.label}, then merge") from None
        if record.get("fingerprint") != plan["fingerprint"] or record.get("digest") != plan["digest"]:
            raise UserError(f"{path}: part {part.label} was made from other input or options than {PLAN_FILE} "
                            f"(fingerprint {record.get('fingerprint')}, not {plan['fingerprint']}); run every part "
                            "with the same SOURCE and options")
        expected = [c[0] for c in part.chunks(plan["chunks"])]
        if record.get("chunks") != expected:
            raise UserError(f"{path}: part {part.label} wrote other shards than the plan gives it; rerun it")
        commands.append(record.get("command") or [])
    return FinishedParts(plan, parts, commands)


def strip_part(command: tuple[str, ...]) -> tuple[str, ...]:
    """The command without `--part K/N`: what the manifest records, the same for every part and one machine."""
    out, skip = [], False
    for word in command:
        if skip:
            skip = False
        elif word == "--part":
            skip = True
        elif not word.startswith("--part="):
            out.append(word)
    return tuple(out)
