"""Timing shared by the benchmarks: the median wall time of a command, and
the pydtrace command as a user runs it."""

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


def timed_output(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """(seconds, stdout) of one run of argv; RuntimeError with its stderr if it fails."""
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({p.returncode}): {p.stderr.strip()[-300:]}")
    return took, p.stdout


def report_added(med: dict[str, float], head: str) -> None:
    """Print wall and added time per row (over "untraced") and pydtrace/bpftrace."""
    base = med["untraced"]
    print(head)
    print(f"{'':10} {'wall s':>8} {'added s':>8}")
    for name, t in med.items():
        print(f"{name:10} {t:8.3f} {t - base:8.3f}")
    if "bpftrace" in med:
        ratio = (med["pydtrace"] - base) / max(med["bpftrace"] - base, 1e-9)
        print(f"ratio pydtrace/bpftrace (added time): {ratio:.2f}")


ENTRY = "import sys; from pydtrace.cli.dtrace import main; sys.exit(main())"  # (scripts/pydtrace)


def pydtrace_command() -> list[str]:
    """The pydtrace command as installed (its launcher beside this
    Python, a venv's), without a version manager's shim; else the same entry
    point through `python -c` (not `-m pydtrace`, whose runpy a user's
    command does not load)."""
    script = os.path.join(os.path.dirname(sys.executable), "pydtrace")
    if os.access(script, os.X_OK):
        with open(script, "rb") as f:
            if f.read(2) == b"#!":
                return [sys.executable, script]
    return [sys.executable, "-c", ENTRY]
