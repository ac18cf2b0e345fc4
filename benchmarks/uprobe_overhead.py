"""Cost of a pid-provider probe: pydtrace against bpftrace on the same uprobe, in one run.

    python3 benchmarks/uprobe_overhead.py [--count N] [--runs R]

The workload is a C program (compiled here) calling a noinline function N times
(1,000,000 by default). Each row is the median wall time of R runs (3 by default)
of the whole command, start-up included:

    untraced   the program alone
    bpftrace   bpftrace -e 'uprobe:<bin>:<func> /pid == cpid/ { @ = count(); }' -c <bin>
    pydtrace   pydtrace -q -n 'pid$target:a.out:<func>:entry { @ = count(); }' -c <bin>

"added" is the time over untraced; the ratio is pydtrace's added time / bpftrace's
(the issue's target: <= 1). Both counts are checked to be N.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import report_added  # benchmarks/timing.py, beside this script
from timing import timed_output as timed

SRC = str(Path(__file__).resolve().parents[1] / "src")
PROG = r"""
#include <stdlib.h>
long __attribute__((noinline)) hit(long i) { __asm__ volatile(""); return i + 1; }
int main(int argc, char **argv) {
    long n = atol(argv[1]), s = 0;
    for (long i = 0; i < n; i++) s += hit(i);
    return s == 0;
}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    o = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="uprobe-bench-"))
    src, exe = tmp / "hot.c", tmp / "hot"
    src.write_text(PROG)
    subprocess.run(["cc", "-O1", "-o", str(exe), str(src)], check=True)
    # as installed programs run: from cached bytecode (no PYTHONDONTWRITEBYTECODE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = SRC
    cmd = f"{exe} {o.count}"
    rows: dict[str, list[str]] = {"untraced": [str(exe), str(o.count)]}
    if shutil.which("bpftrace"):
        rows["bpftrace"] = ["bpftrace", "-e",
                            f"uprobe:{exe}:hit /pid == cpid/ {{ @ = count(); }}", "-c", cmd]  # fmt: skip
    rows["pydtrace"] = [sys.executable, "-m", "pydtrace", "-q", "-n",
                        "pid$target:a.out:hit:entry { @ = count(); }", "-c", cmd]  # fmt: skip
    med: dict[str, float] = {}
    for name, argv in rows.items():
        times = []
        for _ in range(o.runs):
            took, out = timed(argv, env)
            times.append(took)
            if name != "untraced":
                counts = [int(x) for x in re.findall(r"\b\d+\b", out)]
                if o.count not in counts:
                    raise RuntimeError(f"{name} counted {out.strip()!r}, not {o.count}")
        med[name] = statistics.median(times)
    report_added(med, f"{o.count} calls, median of {o.runs} runs")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
