"""Cost of recording every syscall: `ktrace -t c` on each engine against strace, in one run.

    python3 benchmarks/ktrace_overhead.py [--count N] [--runs R]

The workload is `dd if=/dev/zero of=/dev/null bs=1 count=N` (N reads and N
writes, about 2N syscalls, 50000 by default). Each row is the median wall
time of R runs (3 by default) of the whole command, start-up included:

    untraced   dd alone
    strace     strace -f -o FILE dd ...
    ptrace     ktrace --engine ptrace -t c -f FILE dd ...
    ebpf       ktrace --engine ebpf -t c -f FILE dd ...   (when available)

The ratio column is time / strace's (the issue's targets: ptrace <= 1, eBPF <= 0.5).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({p.returncode}): {p.stderr.strip()[-300:]}")
    return took


def engines() -> list[str]:
    out = ["ptrace"]
    try:
        sys.path.insert(0, SRC)
        import importlib

        importlib.import_module("pydtrace.ktrace.record_ebpf")
        from pydtrace.engines.ebpf.features import can_use_bpf

        if can_use_bpf()[0]:
            out.append("ebpf")
    except Exception as e:  # the engine is missing or this user may not load BPF
        print(f"(eBPF engine not measured: {e or type(e).__name__})")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=50000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    # as installed programs run: from cached bytecode (no PYTHONDONTWRITEBYTECODE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = SRC
    dd = ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={a.count}"]
    d = tempfile.mkdtemp(prefix="ktrace-bench-")
    rows: dict[str, list[float]] = {"untraced": []}
    cmds = {"untraced": dd}
    if shutil.which("strace"):
        cmds["strace"] = ["strace", "-f", "-o", f"{d}/strace.out", *dd]
    for eng in engines():
        cmds[eng] = [sys.executable, "-m", "pydtrace.cli.ktrace", "--engine", eng, "-t", "c",
                     "-f", f"{d}/{eng}.out", *dd]  # fmt: skip
    failed: dict[str, str] = {}
    try:
        for _ in range(a.runs):  # interleaved, so drifting machine load hits all alike
            for name, argv in cmds.items():
                if name in failed:
                    continue
                try:
                    rows.setdefault(name, []).append(timed(argv, env))
                except RuntimeError as e:
                    failed[name] = str(e)
                    rows.pop(name, None)
        sizes = {n: os.path.getsize(f"{d}/{n}.out") for n in cmds if os.path.exists(f"{d}/{n}.out")}
    finally:
        shutil.rmtree(d, ignore_errors=True)
    med = {n: statistics.median(v) for n, v in rows.items()}
    base = med.get("strace")
    print(f"dd bs=1 count={a.count}, median of {a.runs} runs (wall time, start-up included)")
    print(f"{'':10} {'seconds':>8} {'/strace':>8} {'file':>12}")
    for n, t in med.items():
        ratio = f"{t / base:8.2f}" if base else f"{'-':>8}"
        size = f"{sizes[n]:12d}" if n in sizes else f"{'':12}"
        print(f"{n:10} {t:8.2f} {ratio} {size}")
    for n, why in failed.items():
        print(f"{n:10} failed: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
