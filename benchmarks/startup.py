"""Start-up time: `pydtrace -q -n 'BEGIN { exit(0); }'` beside bpftrace's equivalent.

Run as root (bpftrace needs it):  python3 benchmarks/startup.py [--runs N]
Prints the median wall time of each and the ratio, measured in one run.
pydtrace's bytecode is compiled first, as `pip install` does, so that an
environment with PYTHONDONTWRITEBYTECODE set does not time the compiler.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from timing import median_time  # benchmarks/timing.py, beside this script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=11)
    a = ap.parse_args()
    import pydtrace

    pkg = os.path.dirname(pydtrace.__file__)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", pkg], check=True, stdout=subprocess.DEVNULL
    )
    ours = [sys.executable, "-m", "pydtrace", "-q", "-n", "BEGIN { exit(0); }"]
    # Python itself, not a wrapper: version managers' shims (pyenv) add their own start-up.
    rows = [("pydtrace", median_time(ours, a.runs))]
    if shutil.which("bpftrace"):
        rows.append(("bpftrace", median_time(["bpftrace", "-e", "BEGIN { exit(); }"], a.runs)))
    print(f"{'tool':<10} {'median s':>9}   (of {a.runs} runs)")
    for name, t in rows:
        print(f"{name:<10} {t:9.3f}")
    if len(rows) == 2:
        print(f"pydtrace / bpftrace = {rows[0][1] / rows[1][1]:.2f}")


if __name__ == "__main__":
    main()
