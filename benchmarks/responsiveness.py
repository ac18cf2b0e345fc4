"""How fast pydtrace answers a person, beside bpftrace, in one run.

Run as root:  python3 benchmarks/responsiveness.py [--runs N]

- first output: from starting a system-wide one-liner on a syscall to the
  first line it prints (a worker makes that call every millisecond);
- Ctrl-C to exit: SIGINT once the one-liner prints, until the process has
  exited: with an aggregation to print, and with a flood of printf records
  pending (every syscall of the machine, the worker making 20k a second);
- Ctrl-C during uprobe attach: SIGINT 0.3 s after starting a program with an
  entry probe on every function of libc, until the process has exited (the
  engine's promise: under 1 s).

Medians of --runs runs, wall-clock, each tool started afresh; * the
worst of interrupts across pydtrace's attach, and one run of bpftrace's.
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

from timing import pydtrace_command  # benchmarks/timing.py, beside this script

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
WORKER = "import os, time\nwhile True:\n    os.getppid(); time.sleep(%s)\n"


def _pydtrace(*args: str) -> list[str]:
    return [*pydtrace_command(), *args]


def _first_line(argv: list[str], timeout: float = 30.0) -> tuple[float, subprocess.Popen[bytes]]:
    """Seconds from start to the first line on stdout; the process still runs."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert p.stdout is not None
    while True:  # bpftrace says "Attaching N probes..." first: not the program's output
        ready, _, _ = select.select([p.stdout], [], [], timeout)
        line = p.stdout.readline() if ready else b""
        if not line:
            p.kill()
            p.wait()
            raise RuntimeError(f"no output from {argv[:3]}")
        if not line.startswith(b"Attaching "):
            return time.monotonic() - t0, p


def _interrupt(p: subprocess.Popen[bytes], timeout: float = 30.0) -> float:
    """Seconds from SIGINT to the process's exit, its output drained."""
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    assert p.stdout is not None
    while p.stdout.read(65536):
        if time.monotonic() - t0 > timeout:
            p.kill()
            break
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:  # a hung tracer: a figure, not a hung benchmark
        p.kill()
        p.wait()
        raise RuntimeError(f"{p.args[0]} still ran {timeout:.0f} s after SIGINT") from None
    return time.monotonic() - t0


UPROBE_EVENTS = "/sys/kernel/tracing/uprobe_events"


def _remove_bcc_events(pid: int) -> None:
    """bpftrace (through libbcc) defines a tracefs uprobe event per probe,
    named ..._bcc_<its pid>, and an interrupted attach leaves the last one
    defined: remove what the run we interrupted left, as it should have."""
    try:
        with open(UPROBE_EVENTS) as f:
            names = [line.split()[0][2:] for line in f if line.split()[0].endswith(f"_bcc_{pid}")]
        for name in names:  # os.open: Python's "a" mode seeks, which tracefs refuses
            fd = os.open(UPROBE_EVENTS, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, f"-:{name}\n".encode())
            finally:
                os.close(fd)
    except OSError:
        pass


def _worker(period: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", WORKER % period])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    have_bpftrace = shutil.which("bpftrace") is not None
    rows: list[tuple[str, str, float]] = []

    def measure(what: str, tool: str, fn) -> None:
        vals = [fn() for _ in range(a.runs)]
        rows.append((what, tool, statistics.median(vals)))

    def measure_pair(what: str, ours_fn, theirs_fn) -> None:
        """Both tools' runs interleaved: a machine that speeds up or slows down
        during the benchmark shifts both medians alike."""
        mine: list[float] = []
        other: list[float] = []
        for _ in range(a.runs):
            mine.append(ours_fn())
            if theirs_fn is not None:
                other.append(theirs_fn())
        rows.append((what, "pydtrace", statistics.median(mine)))
        if other:
            rows.append((what, "bpftrace", statistics.median(other)))

    slow = _worker("0.001")
    try:
        ours = _pydtrace("-q", "-n", 'syscall::getppid:entry { printf("%d\\n", pid); }')
        theirs = [
            "bpftrace",
            "-e",
            'tracepoint:syscalls:sys_enter_getppid { printf("%d\\n", pid); }',
        ]

        def first(argv: list[str]) -> float:
            t, p = _first_line(argv)
            _interrupt(p)
            # the previous run's teardown settles first, as it has by the time a person
            # types the next command: closing a tracepoint's perf event waits ~40 ms for
            # the kernel's grace periods (pydtrace leaves that to a forked holder after
            # it exits, bpftrace does it before), and an open meanwhile waits behind it
            time.sleep(0.3)
            return t

        measure_pair("first output", lambda: first(ours),
                     (lambda: first(theirs)) if have_bpftrace else None)  # fmt: skip

        agg_ours = _pydtrace("-q", "-n", 'syscall:::entry { @[probefunc] = count(); }',
                             "-n", 'syscall::getppid:entry { printf("%d\\n", pid); }')  # fmt: skip
        agg_theirs = ["bpftrace", "-e", 'tracepoint:raw_syscalls:sys_enter { @[args->id] = count(); }'
                      ' tracepoint:syscalls:sys_enter_getppid { printf("%d\\n", pid); }']  # fmt: skip

        def stop(argv: list[str]) -> float:
            _, p = _first_line(argv)
            time.sleep(1.0)
            return _interrupt(p)

        measure("Ctrl-C to exit, aggregation", "pydtrace", lambda: stop(agg_ours))
        if have_bpftrace:
            measure("Ctrl-C to exit, aggregation", "bpftrace", lambda: stop(agg_theirs))
    finally:
        slow.kill()
        slow.wait()

    fast = _worker("0.00005")
    try:
        flood_ours = _pydtrace(
            "-q", "-n", 'syscall:::entry { printf("%s %s\\n", execname, probefunc); }'
        )
        flood_theirs = [
            "bpftrace",
            "-e",
            'tracepoint:raw_syscalls:sys_enter { printf("%s %d\\n", comm, args->id); }',
        ]
        measure("Ctrl-C to exit, printf flood", "pydtrace", lambda: stop(flood_ours))
        if have_bpftrace:
            measure("Ctrl-C to exit, printf flood", "bpftrace", lambda: stop(flood_theirs))
    finally:
        fast.kill()
        fast.wait()

    target = subprocess.Popen(["sleep", "600"])
    try:
        up_ours = _pydtrace(
            "-q", "-p", str(target.pid), "-n", "pid$target:libc.so.6::entry { @ = count(); }"
        )
        up_theirs = ["bpftrace", "-p", str(target.pid), "-e", f"uprobe:{LIBC}:* {{ @ = count(); }}"]

        def attach_stop(argv: list[str], delay: float) -> float:
            # bpftrace refuses over 512 probes unless told
            env = dict(os.environ, BPFTRACE_MAX_PROBES="20000")
            p = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
            )
            time.sleep(delay)
            if p.poll() is not None:
                raise RuntimeError(f"{argv[0]} ended before the interrupt: status {p.returncode}")
            t0 = time.monotonic()
            p.send_signal(signal.SIGINT)
            # never SIGKILL a tracer while it registers uprobes: the kernel
            # then keeps them on libc until reboot (docs/internals/pid-provider.md)
            p.wait()
            took = time.monotonic() - t0
            _remove_bcc_events(p.pid)
            return took

        # pydtrace attaches within about 1 s: interrupt it at points across that
        delays = [0.3, 0.5, 0.7, 0.9]
        worst = max(attach_stop(up_ours, delays[i % 4]) for i in range(max(a.runs, 4)))
        rows.append(("Ctrl-C during uprobe attach*", "pydtrace", worst))
        if have_bpftrace:  # once: bpftrace finishes attaching first (minutes)
            rows.append(("Ctrl-C during uprobe attach*", "bpftrace", attach_stop(up_theirs, 0.3)))
    finally:
        target.kill()
        target.wait()

    print(
        f"{'measure':<30} {'tool':<9} {'median s':>9}   ({a.runs} runs each, {os.cpu_count()} CPUs)"
    )
    for what, tool, t in rows:
        print(f"{what:<30} {tool:<9} {t:9.3f}")
    by = {(w, t): v for w, t, v in rows}
    for what in dict.fromkeys(w for w, _, _ in rows):
        if (what, "bpftrace") in by:
            print(
                f"{what}: pydtrace / bpftrace = {by[what, 'pydtrace'] / by[what, 'bpftrace']:.2f}"
            )


if __name__ == "__main__":
    main()
