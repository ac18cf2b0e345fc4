"""Sampling user stacks: pydtrace against bpftrace on the same busy program, in one run.

    python3 benchmarks/profile_ustack.py [--loops N] [--runs R]

The workload is a C program (compiled here, with frame pointers) that spins
through three nested functions for about two seconds. Each row is the median
wall time of R runs (3 by default) of the whole command: start-up, the
sampling at 997 Hz, and printing the stacks (each resolved to symbols):

    untraced   the program alone
    bpftrace   bpftrace -e 'profile:hz:997 /pid == cpid/ { @[ustack] = count(); }' -c <bin>
    pydtrace   pydtrace -q -n 'profile-997 /pid == $target/ { @[ustack()] = count(); }' -c <bin>

"added" is the time over untraced; the ratio is pydtrace's added time / bpftrace's
(the issue's target: <= 1). The symbols column says whether the stacks were
printed with names (bpftrace resolves at exit, when a -c command is gone).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import timed_output as timed  # benchmarks/timing.py, beside this script

SRC = str(Path(__file__).resolve().parents[1] / "src")
PROG = r"""
#include <stdlib.h>
__attribute__((noinline)) long leaf(long i) { return (i * 2654435761u) >> 7; }
__attribute__((noinline)) long middle(long n) { long s = 0; for (long i = 0; i < n; i++) s += leaf(i); return s; }
__attribute__((noinline)) long top(long n) { return middle(n) + middle(n / 2); }
int main(int argc, char **argv) {
    long loops = atol(argv[1]), s = 0;
    for (long k = 0; k < loops; k++) s += top(1000000);
    return s == 42;
}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=600)
    ap.add_argument("--runs", type=int, default=3)
    o = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="profile-bench-"))
    src, exe = tmp / "busy.c", tmp / "busy"
    src.write_text(PROG)
    subprocess.run(["cc", "-O0", "-fno-omit-frame-pointer", "-o", str(exe), str(src)], check=True)
    # as installed programs run: from cached bytecode (no PYTHONDONTWRITEBYTECODE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = SRC
    cmd = f"{exe} {o.loops}"
    rows: dict[str, list[str]] = {"untraced": [str(exe), str(o.loops)]}
    if shutil.which("bpftrace"):
        rows["bpftrace"] = ["bpftrace", "-e",
                            "profile:hz:997 /pid == cpid/ { @[ustack] = count(); }", "-c", cmd]  # fmt: skip
    rows["pydtrace"] = [sys.executable, "-m", "pydtrace", "-q", "-n",
                        "profile-997 /pid == $target/ { @[ustack()] = count(); }", "-c", cmd]  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in rows}
    resolved: dict[str, bool] = {}
    for _ in range(o.runs):  # interleaved, so drifting machine load hits all alike
        for name, argv in rows.items():
            took, out = timed(argv, env)
            times[name].append(took)
            resolved[name] = "leaf" in out  # symbols, not raw addresses
    if not resolved["pydtrace"]:
        raise RuntimeError("pydtrace printed no stack naming leaf()")
    med = {name: statistics.median(t) for name, t in times.items()}
    base = med["untraced"]
    print(f"{o.loops} loops, median of {o.runs} runs")
    print(f"{'':10} {'wall s':>8} {'added s':>8}  symbols")
    for name, t in med.items():
        sym = "" if name == "untraced" else ("resolved" if resolved[name] else "raw addresses")
        print(f"{name:10} {t:8.3f} {t - base:8.3f}  {sym}")
    if "bpftrace" in med:
        ratio = (med["pydtrace"] - base) / max(med["bpftrace"] - base, 1e-9)
        print(f"ratio pydtrace/bpftrace (added time): {ratio:.2f}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
