"""Long runs: pydtrace's memory over a long trace under a steady syscall load.

    python3 benchmarks/soak.py [--minutes M] [--rate N] [--only NAME ...]

A load process makes about --rate read(2) calls a second on /dev/zero (in
batches, with sleeps between them, so the rate stays steady on a busy
machine) and, once a second, execs /bin/true so that processes come and go.
Each program below runs against it for M minutes (default 10); pydtrace's
resident set (VmRSS of its process) is sampled every 5 s.

    agg       eBPF, system-wide: @[execname, probefunc] = count() over
              syscall:::entry, printa and trunc every 10 s (what a `top`-like
              script does)
    printf    eBPF, system-wide: one printf per read of the load process
              (the stream goes to a pipe this script drains)
    ptrace    ptrace engine: the same aggregation over the load process
              started by -c (-x engine=ptrace)

The table gives RSS after the first minute, at the end, the largest, and the
growth from the first minute to the end in KiB per minute: a flat line is
what must hold (a leak shows as a steady positive slope). Drops and errors
pydtrace printed on stderr are counted.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
SAMPLE_S = 5.0

LOAD = r"""
import os, subprocess, sys, time
rate = int(sys.argv[1])
fd = os.open("/dev/zero", os.O_RDONLY)
batch = max(rate // 50, 1)
next_exec = time.monotonic()
while True:
    t0 = time.monotonic()
    for _ in range(batch):
        os.read(fd, 1)
    if t0 >= next_exec:
        subprocess.run(["/bin/true"])
        next_exec = t0 + 1.0
    time.sleep(max(0.0, 0.02 - (time.monotonic() - t0)))
"""

AGG = """syscall:::entry { @[execname, probefunc] = count(); }
tick-10s { printa(@); trunc(@); }"""
PRINTF = """syscall::read:entry /pid == $1/ { printf("%d %s %d\\n", pid, execname, arg2); }"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _drain(stream, counts: dict[str, int], key: str) -> None:
    """Read a pipe to its end, counting lines (and lines naming drops)."""
    for line in iter(stream.readline, b""):
        counts[key] += 1
        if b"drop" in line or b"error" in line:
            counts["drops"] += 1


def soak(name: str, minutes: float, rate: int) -> dict[str, float]:
    load_cmd = [sys.executable, "-c", LOAD, str(rate)]
    py = [sys.executable, "-m", "pydtrace", "-q"]
    load = None
    if name == "ptrace":
        # -c takes one command line: the load goes through a file
        script = Path(f"/tmp/pydtrace-soak-{os.getpid()}.py")
        script.write_text(LOAD)
        argv = [*py, "-x", "engine=ptrace", "-n", AGG, "-c", f"{sys.executable} {script} {rate}"]
    else:
        load = subprocess.Popen(load_cmd)
        prog = AGG if name == "agg" else PRINTF
        argv = [*py, "-x", "engine=ebpf", "-n", prog]
        if name == "printf":
            argv.append(str(load.pid))
    tracer = subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    counts = {"out": 0, "err": 0, "drops": 0}
    readers = [
        threading.Thread(target=_drain, args=(tracer.stdout, counts, "out"), daemon=True),
        threading.Thread(target=_drain, args=(tracer.stderr, counts, "err"), daemon=True),
    ]
    for t in readers:
        t.start()
    samples: list[tuple[float, int]] = []
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < minutes * 60 and tracer.poll() is None:
            time.sleep(SAMPLE_S)
            rss = _rss_kib(tracer.pid)
            if rss is not None:
                samples.append((time.monotonic() - t0, rss))
    finally:
        tracer.send_signal(signal.SIGINT)
        try:
            tracer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait()
        if load is not None:
            load.kill()
            load.wait()
        for t in readers:
            t.join(timeout=5)
        if name == "ptrace":
            script.unlink(missing_ok=True)
    after_1m = [(t, r) for t, r in samples if t >= 60] or samples
    first_t, first = after_1m[0]
    last_t, last = after_1m[-1]
    slope = (last - first) / max((last_t - first_t) / 60, 1e-9)
    return {
        "rss_1m": first,
        "rss_end": last,
        "rss_max": max(r for _, r in samples),
        "kib_per_min": slope,
        "lines": counts["out"],
        "drop_lines": counts["drops"],
        "status": tracer.returncode,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=20000, help="load reads per second")
    ap.add_argument("--only", nargs="*", default=["agg", "printf", "ptrace"])
    args = ap.parse_args()
    if os.geteuid() != 0 and set(args.only) & {"agg", "printf"}:
        sys.exit("soak.py: the eBPF rows need root (use --only ptrace)")
    print(f"{args.minutes:g} min each, load {args.rate} reads/s; RSS in KiB")
    print(
        f"{'':8} {'rss@1m':>8} {'rss end':>8} {'rss max':>8} {'KiB/min':>8} {'lines':>9} {'drops':>6}"
    )
    for name in args.only:
        r = soak(name, args.minutes, args.rate)
        print(
            f"{name:8} {r['rss_1m']:8d} {r['rss_end']:8d} {r['rss_max']:8d}"
            f" {r['kib_per_min']:8.1f} {r['lines']:9d} {r['drop_lines']:6d}",
            flush=True,
        )


if __name__ == "__main__":
    main()
