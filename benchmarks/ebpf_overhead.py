"""Cost of tracing in the kernel: pydtrace's eBPF engine against bpftrace, in one run.

    python3 benchmarks/ebpf_overhead.py [--count N] [--runs R] [--reads N]

The workload is `dd if=/dev/zero of=/dev/null bs=1 count=N` (2N+ syscalls).

1. System-wide (no -c): the tracer is started, the script waits until its
   probes fire (a marker clause on getppid, which dd never calls), then times
   R runs of dd while it is attached. Rows give dd's median time and the time
   added over the untraced median. Programs:
     count      pydtrace `syscall:::entry { @[probefunc] = count(); }`
                bpftrace `tracepoint:raw_syscalls:sys_enter { @[args->id] = count(); }`
                (the issue's pairing: one hash update per call, keyed by syscall number;
                 `--sys-enter-star` adds bpftrace `tracepoint:syscalls:sys_enter_* { @[probe] = count(); }`)
     openat     pydtrace `syscall::openat:entry { printf("%s\\n", copyinstr(arg1)); }`
                bpftrace `tracepoint:syscalls:sys_enter_openat { printf("%s\\n", str(args->filename)); }`
2. With the command as target (-c), whole wall time of the run (start-up included):
     count $target  pydtrace `syscall:::entry /pid == $target/ { @[probefunc] = count(); }`
                    bpftrace `tracepoint:raw_syscalls:sys_enter /pid == cpid/ { @[args->id] = count(); }`
     read printf    one printf per read() of `--reads` (dd bs=1 count=--reads): time, and how
                    many of the records reached the output (none may be lost)
3. Start-up: a one-liner with one syscall probe that exits in BEGIN; and `-c /bin/true`
   with one syscall probe (compile, load, attach, run, detach): median wall time and
   peak RSS (wait4's ru_maxrss).

Ratios are pydtrace / bpftrace (the issue's targets: added time <= 0.5x, start-up
<= 0.6x, peak memory <= 0.5x, read printf faster with no record lost).
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from timing import median_time  # benchmarks/timing.py, beside this script

SRC = str(Path(__file__).resolve().parents[1] / "src")
PYDTRACE = [sys.executable, "-m", "pydtrace", "-x", "engine=ebpf", "-q"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"  # the ready marker must not wait in a buffer
    return env


def _bpftrace(prog: str, *extra: str) -> list[str]:
    return ["bpftrace", "-q", "-B", "none", *extra, "-e", prog]


class Attached:
    """A system-wide tracer running in the background until close()."""

    def __init__(self, cmd: list[str], marker_ok: str = "ready") -> None:
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=_env(), start_new_session=True)  # fmt: skip
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        seen = b""
        while marker_ok.encode() not in seen:  # poke getppid until the marker clause fires
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                self.close()
                sys.exit(f"{cmd[0]} did not attach: {err[-400:]}")
            os.getppid()
            r, _, _ = select.select([self.proc.stdout], [], [], 0.02)
            if r:
                seen += os.read(self.proc.stdout.fileno(), 65536)
        time.sleep(0.5)  # let every other probe attach too
        # keep draining its output so that it never blocks on a full pipe
        self.sink = subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=subprocess.DEVNULL)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "sink", None) is not None:
            self.sink.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


def system_wide(cmd: list[str], dd: list[str], runs: int) -> float:
    t = Attached(cmd)
    try:
        return median_time(dd, runs)
    finally:
        t.close()


def wall_and_rss(cmd: list[str], runs: int) -> tuple[float, float]:
    """Median wall seconds and median peak RSS (MiB) of cmd, run to its end."""
    times, rss = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
        assert p.stderr is not None
        err = p.stderr.read()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        p.stderr.close()
        times.append(time.perf_counter() - t0)
        rss.append(usage.ru_maxrss / 1024)
        if p.returncode != 0:
            sys.exit(f"{cmd[0]} failed ({p.returncode}): {err.decode(errors='replace')[-300:]}")
    return statistics.median(times), statistics.median(rss)


def records(cmd: list[str], want: str) -> tuple[float, int]:
    """Wall seconds of one run, and how many output lines equal `want`."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, env=_env(), check=False)
    t = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({p.returncode}): {p.stderr.decode(errors='replace')[-300:]}")
    return t, sum(1 for line in p.stdout.decode().splitlines() if line.strip() == want)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reads", type=int, default=100_000)
    ap.add_argument("--sys-enter-star", action="store_true",
                    help="also bpftrace sys_enter_* keyed by probe name (slow to attach)")  # fmt: skip
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: both tools load BPF programs")
    bpft = shutil.which("bpftrace") is not None
    if not bpft:
        print("bpftrace not found (apt-get install bpftrace): pydtrace rows only\n")
    dd_bin = shutil.which("dd") or "/bin/dd"
    dd = [dd_bin, "if=/dev/zero", "of=/dev/null", "bs=1", f"count={a.count}", "status=none"]
    me = os.getpid()
    marker_d = f'syscall::getppid:entry /pid == {me}/ {{ printf("ready\\n"); }}'
    marker_b = f'tracepoint:syscalls:sys_enter_getppid /pid == {me}/ {{ printf("ready\\n"); }}'

    base = median_time(dd, a.runs)
    print(f"dd bs=1 count={a.count}: untraced {base:.3f} s (median of {a.runs})\n")

    # 1. system-wide
    print("1. system-wide, tracer attached before dd starts")
    print(f"{'':<34}{'dd s':>8}{'added s':>9}")
    table: dict[str, float] = {}

    def row(name: str, cmd: list[str]) -> None:
        t = system_wide(cmd, dd, a.runs)
        table[name] = t - base
        print(f"{name:<34}{t:8.3f}{t - base:9.3f}", flush=True)

    row(
        "pydtrace count by probefunc",
        [*PYDTRACE, "-n", f"syscall:::entry {{ @[probefunc] = count(); }} {marker_d}"],
    )
    if bpft:
        row(
            "bpftrace raw_syscalls by id",
            _bpftrace(f"tracepoint:raw_syscalls:sys_enter {{ @[args->id] = count(); }} {marker_b}"),
        )
        if a.sys_enter_star:
            row(
                "bpftrace sys_enter_* by probe",
                _bpftrace(f"tracepoint:syscalls:sys_enter_* {{ @[probe] = count(); }} {marker_b}"),
            )
    row(
        "pydtrace openat paths",
        [
            *PYDTRACE,
            "-n",
            f'syscall::openat:entry {{ printf("%s\\n", copyinstr(arg1)); }} {marker_d}',
        ],
    )
    if bpft:
        row(
            "bpftrace openat paths",
            _bpftrace(
                f'tracepoint:syscalls:sys_enter_openat {{ printf("%s\\n", str(args->filename)); }} {marker_b}'
            ),
        )

    # 2. -c
    print("\n2. the command as target (-c), wall time of the whole run")
    print(f"{'':<34}{'wall s':>8}{'added s':>9}{'records':>9}")
    c_count: dict[str, float] = {}
    t, _ = wall_and_rss(
        [
            *PYDTRACE,
            "-c",
            " ".join(dd),
            "-n",
            "syscall:::entry /pid == $target/ { @[probefunc] = count(); }",
        ],
        a.runs,
    )
    c_count["pydtrace"] = t
    print(f"{'pydtrace count $target':<34}{t:8.3f}{t - base:9.3f}", flush=True)
    if bpft:
        t, _ = wall_and_rss(
            _bpftrace(
                "tracepoint:raw_syscalls:sys_enter /pid == cpid/ { @[args->id] = count(); }",
                "-c",
                " ".join(dd),
            ),
            a.runs,
        )
        c_count["bpftrace"] = t
        print(f"{'bpftrace count cpid':<34}{t:8.3f}{t - base:9.3f}", flush=True)
    ddr = [dd_bin, "if=/dev/zero", "of=/dev/null", "bs=1", f"count={a.reads}", "status=none"]
    reads: dict[str, float] = {}
    t, n = records(
        [
            *PYDTRACE,
            "-c",
            " ".join(ddr),
            "-n",
            'syscall::read:entry /pid == $target && arg2 == 1/ { printf("r %d\\n", arg0); }',
        ],
        "r 0",
    )
    reads["pydtrace"] = t
    print(f"{'pydtrace printf per read':<34}{t:8.3f}{'':>9}{n:>9}", flush=True)
    if bpft:
        t, n = records(
            _bpftrace(
                'tracepoint:syscalls:sys_enter_read /pid == cpid && args->count == 1/ { printf("r %d\\n", args->fd); }',
                "-c",
                " ".join(ddr),
            ),
            "r 0",
        )
        reads["bpftrace"] = t
        print(f"{'bpftrace printf per read':<34}{t:8.3f}{'':>9}{n:>9}", flush=True)
    print(f"(records: lines of fd 0 reads of 1 byte received; dd made {a.reads})")

    # 3. start-up
    print("\n3. start-up")
    print(f"{'':<34}{'wall s':>8}{'peak MiB':>9}")
    start: dict[str, tuple[float, float]] = {}

    def srow(name: str, cmd: list[str]) -> None:
        start[name] = wall_and_rss(cmd, max(a.runs, 5))
        print(f"{name:<34}{start[name][0]:8.3f}{start[name][1]:9.1f}", flush=True)

    srow("pydtrace BEGIN exit", [*PYDTRACE, "-n", "syscall::getppid:entry { } BEGIN { exit(0); }"])
    if bpft:
        srow(
            "bpftrace BEGIN exit",
            _bpftrace("tracepoint:syscalls:sys_enter_getppid { } BEGIN { exit(); }"),
        )
    srow(
        "pydtrace -c /bin/true", [*PYDTRACE, "-c", "/bin/true", "-n", "syscall::getppid:entry { }"]
    )
    if bpft:
        srow(
            "bpftrace -c /bin/true",
            _bpftrace("tracepoint:syscalls:sys_enter_getppid { }", "-c", "/bin/true"),
        )

    if bpft:
        print("\nratios pydtrace / bpftrace")
        print(
            f"  count, added time system-wide   {table['pydtrace count by probefunc'] / table['bpftrace raw_syscalls by id']:.2f}  (target <= 0.5)"
        )
        print(
            f"  openat paths, added time        {table['pydtrace openat paths'] / table['bpftrace openat paths']:.2f}"
        )
        print(
            f"  count $target, added wall       {(c_count['pydtrace'] - base) / (c_count['bpftrace'] - base):.2f}"
        )
        print(
            f"  printf per read, wall           {reads['pydtrace'] / reads['bpftrace']:.2f}  (target < 1, no record lost)"
        )
        for kind in ("BEGIN exit", "-c /bin/true"):
            p, b = start[f"pydtrace {kind}"], start[f"bpftrace {kind}"]
            print(
                f"  start-up {kind:<14} time {p[0] / b[0]:.2f} (target <= 0.6), peak memory {p[1] / b[1]:.2f} (target <= 0.5)"
            )


if __name__ == "__main__":
    main()
