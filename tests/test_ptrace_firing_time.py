"""When a syscall probe fires on the ptrace engine: with its thread stopped,
or just after the thread is resumed (engines/user/ptrace/source.py).

Counting and timing clauses run while the thread runs on, which halves what
a stop costs; a clause that reads the thread, acts on it or prints runs
while it is stopped. Either way `timestamp` is the time of the stop."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FakeProbe, need, ptrace_works
from conftest import compile_c as cc
from pydtrace.engines.user.ptrace.source import fires_stopped
from pydtrace.lang.checker import Checker
from pydtrace.lang.parser import parse

SRC = str(Path(__file__).resolve().parents[1] / "src")


GETPPID = FakeProbe("syscall", "", "getppid", "entry", id=7)


def stopped(body: str, predicate: str = "") -> bool:
    src = f"syscall::getppid:entry {predicate} {{ {body} }}"
    prog = Checker(lambda spec, line: [GETPPID]).check(parse(src, filename="t.d"))
    return fires_stopped(prog.clauses)


@pytest.mark.parametrize(
    "body",
    [
        "@[probefunc] = count();",
        "self->t = timestamp;",
        "self->t = timestamp; @t[probefunc] = sum(timestamp - self->t); self->t = 0;",
        "@e[execname, pid] = sum(errno != 0);",
        "@q = quantize(arg0); n++;",
        "this->x = strlen(execname); @m = max(this->x);",
    ],
)
def test_counting_and_timing_clauses_fire_after_the_resume(body: str) -> None:
    assert stopped(body) is False


@pytest.mark.parametrize(
    "body",
    [
        'printf("%d\\n", pid);',
        "trace(arg0);",
        "exit(0);",
        "@[copyinstr(arg0)] = count();",
        "self->p = copyin(arg0, 8);",
        "@[ustack()] = count();",
        "@[uregs[0]] = count();",
        "@[vtimestamp] = count();",
        "@[curpsinfo->pr_psargs] = count();",
        "@[cwd] = count();",
        "stop();",
        "raise(9);",
        "chill(10);",
    ],
)
def test_clauses_that_read_act_or_print_fire_while_stopped(body: str) -> None:
    assert stopped(body) is True


def test_a_predicate_that_reads_the_thread_keeps_it_stopped() -> None:
    assert stopped("@ = count();", '/copyinstr(arg0) == "x"/') is True
    assert stopped("@ = count();", "/pid == 1/") is False


class Quiet:
    """A consumer that keeps nothing: the tests read the aggregations."""

    aggs: dict = {}

    def record(self, rec: object) -> None:
        raise AssertionError("a counting clause recorded data")

    def fault(self, fault: object) -> None:
        raise AssertionError(f"fault: {fault}")


def test_a_deferred_firing_runs_with_the_time_of_the_stop() -> None:
    """The Sink's contract with the tracer: a counting probe returns its
    firing instead of running it; run later, its clauses see the time the
    thread stopped, not the time they ran."""
    import time

    from pydtrace.engines.user.engine import UserEngine
    from pydtrace.engines.user.ptrace.source import Sink
    from pydtrace.engines.user.ptrace.tracer import Process, Thread

    probe = GETPPID
    src = "syscall::getppid:entry { @in = min(timestamp); @win = min(walltimestamp); }"
    prog = Checker(lambda spec, line: [probe]).check(parse(src, filename="t.d"))
    engine = UserEngine(prog, Quiet(), {})  # type: ignore[arg-type]
    sink = Sink([], None)
    sink.engine = engine
    me = Process(os.getpid(), os.getppid(), os.getuid(), os.getgid(), "me", loaded=True)
    before, wall_before = time.monotonic_ns(), time.time_ns()
    later = sink._fire(probe, [0] * 6, Thread(os.getpid(), me), 0)
    after, wall_after = time.monotonic_ns(), time.time_ns()
    assert later is not None and not engine.state.aggs["@in"].data
    time.sleep(0.05)
    later()
    (ts,) = engine.state.aggs["@in"].data.values()
    (wall,) = engine.state.aggs["@win"].data.values()
    assert before <= ts <= after
    assert wall_before - 20_000 <= wall <= wall_after + 20_000  # two clocks read apart


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run([sys.executable, "-m", "pydtrace", "-x", "engine=ptrace", *args],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip


# The program reads CLOCK_MONOTONIC (timestamp's clock) and CLOCK_REALTIME
# (walltimestamp's) just before and just after one getppid().
BRACKET = r"""
#include <stdio.h>
#include <time.h>
#include <unistd.h>
static long long ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
int main(void) {
    long long m0 = ns(CLOCK_MONOTONIC), r0 = ns(CLOCK_REALTIME);
    getppid();
    long long m1 = ns(CLOCK_MONOTONIC), r1 = ns(CLOCK_REALTIME);
    printf("%lld %lld %lld %lld\n", m0, m1, r0, r1);
    return 0;
}
"""


def test_a_clause_run_after_the_resume_sees_the_time_of_the_stop(tmp_path: Path) -> None:
    need(ptrace_works(), "ptrace with PTRACE_SEIZE unavailable")
    exe = cc(tmp_path, "bracket", BRACKET)
    d = (
        "syscall::getppid:entry /pid == $target/ { @in = min(timestamp); @win = min(walltimestamp); }"
        "syscall::getppid:return /pid == $target/ { @out = max(timestamp); @wout = max(walltimestamp); }"
        'END { printa("%@d %@d %@d %@d\\n", @in, @out, @win, @wout); }'
    )
    for _ in range(5):  # each run brackets one call: several, as a late clock read may be rare
        r = run("-q", "-c", exe, "-n", d)
        assert r.returncode == 0, r.stderr
        lines = [x for x in r.stdout.splitlines() if x.strip()]
        m0, m1, r0, r1 = map(int, lines[0].split())
        t_in, t_out, w_in, w_out = map(int, lines[1].split())
        assert m0 <= t_in <= t_out <= m1
        # the wall time is the stop's monotonic time moved onto the wall clock:
        # exact to the few hundred nanoseconds between two clock reads
        assert r0 - 20_000 <= w_in <= w_out <= r1 + 20_000


def test_a_fault_in_a_clause_run_after_the_resume_is_reported(tmp_path: Path) -> None:
    need(ptrace_works(), "ptrace with PTRACE_SEIZE unavailable")
    exe = cc(tmp_path, "bracket", BRACKET)
    d = "syscall::getppid:entry /pid == $target/ { @ = count(); this->x = 1 / (pid - pid); }"
    r = run("-q", "-c", exe, "-n", d)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(
        r"pydtrace: error in dt_clause_0 for probe ID \d+ \(syscall:vmlinux:getppid:entry\):"
        r" divide-by-zero at BPF pc \d+\n",
        r.stderr,
    ), r.stderr
    assert r.stdout.split()[-1] == "1"  # counted before the fault, as in dtrace
