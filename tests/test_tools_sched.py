"""runqlat against the kernel's own count of context switches: a program
that blocks, is woken, blocks and is woken by us N times and blocks again;
every time it went off the CPU and came back on is one run-queue wait, so
runqlat -p counts exactly the switches /proc/PID/status shows between the
two blocks, but those the kernel did not report (and runqlat said so)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import bpf_maps_ok, compile_c, current_task, need, pydtrace, unreported
from toolrun import command, env, tool

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


THREADS = r"""
#include <pthread.h>
#include <time.h>
static void *run(void *a) { struct timespec ts = {0, 100000}; nanosleep(&ts, 0); return 0; }
int main(void) {
    for (int i = 0; i < 300; i++) { pthread_t t; pthread_create(&t, 0, run, 0); pthread_join(t, 0); }
    return 0;
}
"""


def test_runqlat_leaves_nothing_behind_for_threads_that_exit(tmp_path: Path) -> None:
    """With -p or a command runqlat keeps a self-> variable per thread off the
    CPU; a thread's last switch-out, after it exited, must not leave one. 300
    threads come and go under a dynamic variable space of 2 KiB (about 60
    variables): any left behind would be reported as drops."""
    need(bpf_maps_ok(), "runqlat needs the eBPF engine")
    exe = compile_c(tmp_path, "threads", THREADS, "-pthread")
    r = tool("runqlat", "--print-script", "--", exe)
    assert r.status == 0, r.err
    script = tmp_path / "runqlat.d"
    script.write_text(r.out)
    r = pydtrace("-q", "-x", "dynvarsize=2k", "-s", str(script), "-c", exe)
    err, _, _ = unreported(r.err)
    assert (r.status, err) == (0, ""), r.err
    assert " Distribution " in r.out, r.out


@pytest.mark.parametrize("name", ["offcputime", "runqlat"])
def test_switch_ins_not_seen_are_counted_and_an_exit_leaves_nothing(name: str) -> None:
    """The tool's programs (-p: this process), run in the kernel by
    PROG_TEST_RUN as the kernel runs them, with this thread as the one
    switched: off, on, off, then off again (the switch-in between was not
    reported), then its lwp-exit and last switch-out (also after an unseen
    switch-in). Two switch-ins counted, and no self-> variable left."""
    import struct
    from types import SimpleNamespace

    from pydtrace.engines.ebpf.bpf import prog_test_run
    from pydtrace.engines.ebpf.engine import EbpfEngine
    from pydtrace.session import Program, Session

    need(bpf_maps_ok(), f"{name} needs the eBPF engine")
    r = tool(name, "--print-script", "-p", str(os.getpid()))
    assert r.status == 0, r.err
    s = Session([Program("s", f"{name}.d", source=r.out)])
    s.compile()
    task = current_task()
    engine = EbpfEngine(s.checked, SimpleNamespace(), s.options)
    try:
        engine._open()
        fd = {p.probe.name: engine.prog_fds[p.name] for p in engine.compiled.progs}
        switch = struct.pack("<4Q", 0, task, task, 1)  # sched_switch(preempt, prev, next, state)
        for probe in ("off-cpu", "on-cpu", "off-cpu", "off-cpu", "lwp-exit", "off-cpu"):
            ctx = struct.pack("<2Q", task, 0) if probe == "lwp-exit" else switch
            prog_test_run(fd[probe], ctx=ctx)  # on this CPU, as this thread (pid, self->)
        engine.snapshot()
        unseen = engine.aggs["@unseen"]
        assert [unseen.value(k) for k in unseen.data] == [2]
        assert engine.maps["dvars"].keys() == []
    finally:
        engine.close()
