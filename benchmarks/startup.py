"""Start-up: wall time and peak memory of two one-liners, pydtrace beside bpftrace.

    BEGIN { exit(0); }              bpftrace -e 'BEGIN { exit(); }'
    syscall::read:entry { exit(0); }  bpftrace -e 'tracepoint:syscalls:sys_enter_read { exit(); }'

Run as root (bpftrace needs it):  python3 benchmarks/startup.py [--runs N]
Each run is timed from outside (wall clock around the child) and its peak
resident memory is the kernel's own (wait4's ru_maxrss, as /usr/bin/time -v
reports it). pydtrace and bpftrace run in turn, A B A B ..., and the table
gives the median of each and their ratio. A reader runs beside the read
probe (head -c1 every 10 ms), as on a busy machine, so that it fires.

pydtrace runs as installed: its command beside this Python when
there is one (a venv's), else the same entry point through `python -c`, from
cached bytecode (compiled first, as pip does; PYTHONDONTWRITEBYTECODE is
dropped from the environment).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

from timing import pydtrace_command  # benchmarks/timing.py, beside this script

PROGRAMS = (
    ("BEGIN { exit(0); }", "BEGIN { exit(); }"),
    ("syscall::read:entry { exit(0); }", "tracepoint:syscalls:sys_enter_read { exit(); }"),
)


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak MiB) of one run; exits with its stderr if it fails."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert p.stderr is not None
    err = p.stderr.read()  # until the command (and all it started) closed it
    _, status, usage = os.wait4(p.pid, 0)
    took = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stderr.close()
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({p.returncode}): {err.decode(errors='replace')[-300:]}")
    return took, usage.ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=11, help="runs of each command (default 11)")
    a = ap.parse_args()
    import pydtrace

    pkg = os.path.dirname(pydtrace.__file__)
    subprocess.run([sys.executable, "-m", "compileall", "-q", pkg], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    ours = pydtrace_command()
    bpftrace = shutil.which("bpftrace")
    reader = subprocess.Popen(
        ["/bin/sh", "-c", "while :; do head -c1 /etc/hostname >/dev/null; sleep 0.01; done"],
        start_new_session=True,
    )
    try:
        print(f"pydtrace: {' '.join(ours[1:2])} (median of {a.runs} runs, interleaved)")
        print(f"{'program':34} {'tool':9} {'wall s':>7} {'peak MiB':>9}")
        for d, bt in PROGRAMS:
            cmds = {"pydtrace": [*ours, "-q", "-n", d]}
            if bpftrace:
                cmds["bpftrace"] = [bpftrace, "-e", bt]
            runs: dict[str, list[tuple[float, float]]] = {k: [] for k in cmds}
            for _ in range(a.runs):
                for name, cmd in cmds.items():
                    runs[name].append(run_once(cmd, env))
                    # the run's detaching settles first (pydtrace leaves a tracepoint's
                    # ~40 ms close to a holder process after it exits; an attach meanwhile
                    # waits behind it): neither tool's start pays for the other's end
                    time.sleep(0.3)
            med = {k: (statistics.median(w for w, _ in v), statistics.median(m for _, m in v))
                   for k, v in runs.items()}  # fmt: skip
            label = d
            for name, (wall, peak) in med.items():
                print(f"{label:34} {name:9} {wall:7.3f} {peak:9.1f}")
                label = ""
            if "bpftrace" in med:
                (pw, pm), (bw, bm) = med["pydtrace"], med["bpftrace"]
                print(f"{'':34} {'ratio':9} {pw / bw:7.2f} {pm / bm:9.2f}")
    finally:
        os.killpg(reader.pid, signal.SIGKILL)
        reader.wait()


if __name__ == "__main__":
    main()
