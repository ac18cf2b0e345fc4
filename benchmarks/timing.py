"""Timing shared by the benchmarks: the median wall time of a command."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time


def median_time(cmd: list[str], runs: int) -> float:
    """Median seconds of `runs` runs of cmd; exits with its stderr if it fails.

    PYTHONDONTWRITEBYTECODE is dropped so that Python programs run as installed
    ones do, from cached bytecode.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False, env=env
        )
        times.append(time.perf_counter() - t0)
        if p.returncode != 0:
            sys.exit(
                f"{cmd[0]} failed ({p.returncode}): {p.stderr.decode(errors='replace')[-300:]}"
            )
    return statistics.median(times)
