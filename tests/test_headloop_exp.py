"""The compiled loop's vector exp against its scalar one, bit for bit, as each ISA level's build compiles them.

headloop_losses.h promises that exp_nonpositive_v gives exp_nonpositive's bits on every lane (the scalar function is
the one whose accuracy is stated). That holds only while the compiler keeps the two computations in the same order:
GCC's generic x86-64-v3 tuning once distributed the last "+ 1" over the scaling by 2^n, and with denormals flushed
(as the steps run) 224,855 floats in [-87, -74] came out up to 41 % off (bench/README.md, eighth session). This
compiles a small checker with the Makefile's flags for each ISA level this CPU can run and compares every 97th
float in [-90, -0] (11.5 million values; the compile is most of the ~2 s a level).
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from camtrap_fast.train.headloop import cpu_flags

ROOT = Path(__file__).resolve().parents[1]
HEADLOOP = ROOT / "camtrap_fast" / "train" / "headloop.c"


def makefile_flags() -> list[str]:
    """The Makefile's compile flags for _headloop.so (its one place), less -march (each test picks its own)."""
    recipe = re.search(r"cc (-O3 [^\n]*?) -fPIC -c", (ROOT / "Makefile").read_text())
    assert recipe, "the Makefile's _headloop.so compile line moved: update makefile_flags"
    return [flag for flag in recipe.group(1).split() if not flag.startswith("-march=")]

CHECKER = r"""
#include "@HEADLOOP@"
#include <stdio.h>

int main(void) {
    FLUSH_DENORMALS_BEGIN  /* as the steps run */
    const float last = -90.0f;
    uint32_t last_bits;
    memcpy(&last_bits, &last, 4);
    unsigned long long compared = 0, differ = 0;
    vfloat x;
    float scalar[LANES];
    int lane = 0;
    for (uint32_t bits = 0x80000000u; bits <= last_bits; bits += 97) {  /* -0 down to -90 */
        memcpy(&x[lane], &bits, 4);
        scalar[lane] = exp_nonpositive(x[lane]);
        if (++lane == LANES) {
            const vfloat vector = exp_nonpositive_v(x);
            for (int l = 0; l < LANES; l++, compared++)
                if (memcmp(&vector[l], &scalar[l], 4) != 0) {
                    if (differ++ < 3) printf("x = %a: vector %a, scalar %a\n", x[l], vector[l], scalar[l]);
                }
            lane = 0;
        }
    }
    FLUSH_DENORMALS_END
    printf("%llu compared, %llu differ\n", compared, differ);
    return differ != 0;
}
"""


def isa_levels() -> list[str]:
    """-march values whose code this CPU runs: native, and on x86-64 the generic levels it supports."""
    levels = ["native"]
    if platform.machine() in ("x86_64", "AMD64"):
        flags = cpu_flags() or set()
        levels.append("x86-64-v2")
        if {"avx2", "fma", "f16c"} <= flags:
            levels.append("x86-64-v3")
        if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
            levels.append("x86-64-v4")
    return levels


@pytest.mark.slow  # a compile of headloop.c per level, ~2 s each
@pytest.mark.parametrize("march", isa_levels())
def test_vector_exp_gives_the_scalar_exp_bits(tmp_path, march):
    if shutil.which("cc") is None:
        pytest.skip("no C compiler: the compiled loop is not built here either (test_head.py)")
    source = tmp_path / "exp_check.c"
    source.write_text(CHECKER.replace("@HEADLOOP@", str(HEADLOOP)))
    program = tmp_path / "exp_check"
    build = subprocess.run(["cc", *makefile_flags(), f"-march={march}", "-o", str(program), str(source), "-lm"],
                           capture_output=True, text=True)
    if build.returncode != 0 and march != "native" and "unrecognized" in build.stderr:
        pytest.skip(f"this compiler does not know -march={march}")
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(program)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"-march={march}: {run.stdout}"
    assert " 0 differ" in run.stdout
