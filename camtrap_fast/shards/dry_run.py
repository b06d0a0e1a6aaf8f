"""`shard --dry-run`: what the shards would hold, from the plan alone; no image is opened, nothing is written."""

from __future__ import annotations

from collections import Counter, defaultdict

from camtrap_fast.ingest.records import Record
from camtrap_fast.ingest.remote import is_http
from camtrap_fast.ingest.splits import SPLITS, missing_splits
from camtrap_fast.shards.plan import ShardPlan, planned_counts
from camtrap_fast.shards.trainable import RARE_IMAGES, dropped_classes, rare_paths

EXAMPLES = 2  # rejected paths shown per reason


def dry_run_report(plan: ShardPlan) -> list[str]:
    counts = planned_counts(plan)
    images = {s: len(plan.members[s]) for s in SPLITS}
    shards = Counter(c.split for c in plan.chunks)
    samples = {s: sum(counts[s].values()) for s in SPLITS}
    lines = [f"dry run: {plan.listed} images listed ({plan.format}); nothing was opened or written",
             f"{'split':<8}{'images':>10}{'samples':>10}{'shards':>8}"]
    for split in SPLITS:
        lines.append(f"{split:<8}{images[split]:>10}{samples[split]:>10}{shards[split]:>8}")
    width = max([12, *map(len, plan.classes)])
    lines.append(f"{'class':<{width}}" + "".join(f"{s:>10}" for s in SPLITS))
    for name in plan.classes:
        lines.append(f"{name:<{width}}" + "".join(f"{counts[s].get(name, 0):>10}" for s in SPLITS))
    by_reason: dict[str, list] = defaultdict(list)
    for rejection in plan.rejections:
        by_reason[rejection.reason].append(rejection)
    lines.append(f"{'rejected':<8}{len(plan.rejections):>10}  (before decoding; a file that cannot be read or "
                 "decoded is found only when sharding)")
    for reason, rejected in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        examples = "; ".join(f"{r.path}" + (f" ({r.detail})" if r.detail else "") for r in rejected[:EXAMPLES])
        lines.append(f"  {reason:<30}{len(rejected):>8}  e.g. {examples}")
    remote = sum(map(is_http, (r.path for r in plan.kept)))
    if remote:
        lines.append(f"{remote} images would be fetched over HTTP(S)")
    rare = rare_paths(plan.kept)
    if rare:
        lines.append(f"note: the {len(rare)} images of classes of at most {RARE_IMAGES} images are decoded first when "
                     "sharding, and a class whose images all fail then has no output")
    outside = [Record(path, path, label) for path, label in plan.outside]
    lines += [f"warning: class '{name}' would have no output: {why}"
              for name, why in dropped_classes(outside, plan.classes, plan.rejections).items()]
    small = missing_splits({s: dict(counts[s]) for s in SPLITS}, plan.wanted)
    lines += [f"warning: class '{name}' is too small to appear in {', '.join(missing)}" for name, missing in small.items()]
    return lines
