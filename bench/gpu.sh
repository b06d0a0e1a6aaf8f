#!/usr/bin/env bash
# The prepared GPU benchmark: one command, one JSON (bench/gpu.py says what is in it), at most 6 minutes.
#   bash bench/gpu.sh [--out FILE] [bench/gpu.py options]      (default FILE: bench/results/gpu.json)
# On the GPU machine it needs only its own python3 (torch, torchvision); DALI, when brought as wheels into
# /root/site (DEVELOPERS.md, "The GPU machine"), is found there. Without a GPU the GPU parts are skipped and
# the JSON says so.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d /root/site ]; then export PYTHONPATH="/root/site${PYTHONPATH:+:$PYTHONPATH}"; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
# 6 minutes in all, data making included; SIGTERM first so the partial output is still flushed.
exec timeout --kill-after=10 ${GPU_BENCH_SECONDS:-360} "$PYTHON" bench/gpu.py "$@"
