"""runqlat against the kernel's own count of context switches: a program
that blocks, is woken, blocks and is woken by us N times and blocks again;
every time it went off the CPU and came back on is one run-queue wait, so
runqlat -p counts exactly the switches /proc/PID/status shows between the
two blocks, but those the kernel did not report (and runqlat said so)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import bpf_maps_ok, need, unreported
from toolrun import command, env

# Woken by our writes, not by timers: a wakeup done by an interrupt that came
# while a task hidden from tracing ran fires no event (conftest.unreported)
SLEEPER = """
import os
os.read(0, 1)                  # blocked until the test says go
for _ in range({n}):
    os.write(1, b"r")          # then blocked until the test wakes it
    os.read(0, 1)
os.write(1, b"done\\n")
os.read(0, 1)                  # blocked again until the end
"""


def switches(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return sum(int(x) for x in re.findall(r"^(?:non)?voluntary_ctxt_switches:\s+(\d+)$", status, re.M))  # fmt: skip


def wait_blocked(pid: int) -> None:
    """Until the process sleeps in a read of its pipe."""
    end = time.monotonic() + 60
    while time.monotonic() < end:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "S" and Path(f"/proc/{pid}/wchan").read_text().endswith("pipe_read"):
            return
        time.sleep(0.01)
    raise AssertionError("the program did not block")


def start_tool(*args: str) -> subprocess.Popen[str]:
    t = subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env(), cwd="/")  # fmt: skip
    return t


def test_runqlat_counts_every_switch_in() -> None:
    need(bpf_maps_ok(), "runqlat needs the eBPF engine")
    n = 25
    prog = subprocess.Popen([sys.executable, "-c", SLEEPER.format(n=n)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert prog.stdin is not None and prog.stdout is not None
    t = start_tool("runqlat", "-p", str(prog.pid))
    try:
        assert t.stdout is not None
        assert t.stdout.readline() == "Tracing run queue latency... Hit Ctrl-C to end.\n"
        wait_blocked(prog.pid)
        before = switches(prog.pid)
        prog.stdin.write("g")
        prog.stdin.flush()
        for _ in range(n):
            assert prog.stdout.read(1) == "r"
            wait_blocked(prog.pid)
            prog.stdin.write("w")
            prog.stdin.flush()
        assert prog.stdout.readline() == "done\n"
        wait_blocked(prog.pid)
        after = switches(prog.pid)
        t.send_signal(signal.SIGINT)
        out, err = t.communicate(timeout=60)
    finally:
        prog.kill()
        prog.wait()
        if t.poll() is None:
            t.kill()
            t.wait()
    err, _, unseen = unreported(err)
    assert (t.returncode, err) == (0, "")
    lines = out.splitlines()
    assert lines[:2] == ["", "     usecs               : count     distribution"], out
    counts = [int(re.fullmatch(r" +\d+ -> \d+ +: (\d+) +\|\** *\|", x)[1]) for x in lines[2:]]  # type: ignore[index]
    # the go wakeup and n wakeups at least; preemptions under load add to both sides
    assert after - before >= n + 1
    assert sum(counts) + unseen == after - before
