"""What counting every syscall by name, system-wide, costs on each engine,
beside bpftrace and `perf trace -s`, in one run.

Run as root:  python3 benchmarks/tracefs_overhead.py [--count N]

For each tracer: start it, wait until it traces, run
`dd if=/dev/zero of=/dev/null bs=1 count=N` (two syscalls a byte), stop it
with SIGINT. Reported: dd's wall time, the time added to dd over an untraced
run, and the tracer's own CPU time (user + system, from wait4) over its
whole life. pydtrace: `syscall:::entry { @[probefunc] = count(); }` on the
tracefs and eBPF engines; bpftrace: raw_syscalls:sys_enter counted by id;
perf trace -s -a: its per-syscall summary (it reads the same raw_syscalls
events through perf buffers).
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parent.parent / "src")
PROG = 'BEGIN { printf("ready\\n"); } syscall:::entry { @[probefunc] = count(); }'


def _dd(count: int) -> float:
    t0 = time.monotonic()
    subprocess.run(["dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={count}"],
                   stderr=subprocess.DEVNULL, check=True)  # fmt: skip
    return time.monotonic() - t0


def _ready(p: subprocess.Popen, marker: bytes | None, settle: float) -> None:
    """Wait for marker on stdout (or settle seconds when the tool prints none)."""
    if marker is None:
        time.sleep(settle)
        return
    buf = b""
    deadline = time.monotonic() + 120
    while marker not in buf and time.monotonic() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 1)
        if r:
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"tracer ended: {p.args}")
            buf += chunk
    time.sleep(0.5)  # the probes of a one-liner are enabled before BEGIN prints


def _traced(argv: list[str], marker: bytes | None, count: int, env: dict) -> tuple:
    """(dd's seconds, the tracer's CPU seconds, drops it reported, its output)."""
    err = tempfile.TemporaryFile()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env)
    try:
        _ready(p, marker, 3.0)
        took = _dd(count)
        p.send_signal(signal.SIGINT)
        out = b""  # its summary, read so that it never blocks on a full pipe
        while chunk := os.read(p.stdout.fileno(), 65536):
            out += chunk
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = status
        err.seek(0)
        text = err.read().decode(errors="replace")
        drops = sum(int(m) for m in re.findall(r"(\d+) drops? on CPU", text))
        return took, ru.ru_utime + ru.ru_stime, drops, out.decode(errors="replace")
    finally:
        if p.returncode is None:
            p.kill()
            p.wait()


def _counted(out: str, name: str) -> str:
    """dd's write(2) calls as the tracer counted them (pydtrace's table)."""
    m = re.search(rf"^\s*{name}\s+(\d+)\s*$", out, re.M)
    return m.group(1) if m else "-"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1_000_000)
    a = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=SRC)
    py = [sys.executable, "-m", "pydtrace", "-q"]
    tools: list[tuple[str, list[str], bytes | None]] = [
        ("pydtrace tracefs", [*py, "-x", "engine=tracefs", "-n", PROG], b"ready"),
        ("pydtrace eBPF", [*py, "-x", "engine=ebpf", "-n", PROG], b"ready"),
    ]
    if shutil.which("bpftrace"):
        bt = ('BEGIN { printf("ready\\n"); } '
              "tracepoint:raw_syscalls:sys_enter { @[args->id] = count(); }")  # fmt: skip
        tools.append(("bpftrace", ["bpftrace", "-e", bt], b"ready"))
    if shutil.which("perf"):
        tools.append(("perf trace -s", ["perf", "trace", "-s", "-a"], None))
    base = min(_dd(a.count) for _ in range(2))
    print(f"dd bs=1 count={a.count}, untraced: {base:.2f} s\n")
    print(f"| {'tracer':<18} | {'dd (s)':>7} | {'added (s)':>9} | {'tracer CPU (s)':>14} "
          f"| {'drops':>8} | {'write counted':>13} |")  # fmt: skip
    print(f"|{'-' * 20}|{'-' * 9}|{'-' * 11}|{'-' * 16}|{'-' * 10}|{'-' * 15}|")
    for name, argv, marker in tools:
        took, cpu, drops, out = _traced(argv, marker, a.count, env)
        print(f"| {name:<18} | {took:7.2f} | {took - base:9.2f} | {cpu:14.2f} "
              f"| {drops:8} | {_counted(out, 'write'):>13} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
