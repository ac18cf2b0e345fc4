"""The sched provider on the eBPF engine (scheduler tracepoints and a tick
timer; engines/ebpf/providers/sched.py): exact counts for a program that sleeps a
known number of times, wakeup's woken thread, and the refused probes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import bpf_maps_ok, need, pydtrace, unreported
from conftest import compile_c as cc


@pytest.fixture(autouse=True)
def _kernel() -> None:
    need(bpf_maps_ok(), "needs root and bpf(2)")
    need(os.path.exists("/sys/kernel/btf/vmlinux"), "no kernel BTF")


SLEEPER = """
#include <sched.h>
#include <time.h>
int main(void) {
    struct timespec ts = {0, 20000000}, a, b;
    for (int i = 0; i < 5; i++)
        nanosleep(&ts, 0);
    for (int i = 0; i < 3; i++)
        sched_yield();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    do clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000000L + b.tv_nsec - a.tv_nsec < 300000000L);
    return 0;
}
"""

SCHED_D = """
syscall::clock_nanosleep:entry /pid == $target/ { self->in = 1; }
syscall::clock_nanosleep:return /pid == $target/ { self->in = 0; }
sched:::sleep /self->in/ { @["sleep"] = count(); }
sched:::dequeue /self->in/ {
    @dq[args[0]->pr_lwpid == tid, args[1]->pr_pid == pid, args[2]->cpu_id == cpu, args[3]] = count();
}
sched:::off-cpu /self->in/ { @["off-cpu"] = count(); }
sched:::preempt /self->in/ { @["preempt in sleep"] = count(); }
sched:::wakeup /args[1]->pr_pid == $target && stringof(args[1]->pr_fname) == "sleeper"/ {
    @wk[args[0]->pr_lwpid == $target, args[1]->pr_ppid == $pid] = count();
}
sched:::enqueue /args[1]->pr_pid == $target && stringof(args[1]->pr_fname) == "sleeper"/ {
    @eq[args[2]->cpu_id >= 0] = count();
}
sched:::surrender /pid == $target/ {
    @sur[args[0]->pr_lwpid == tid, curlwpsinfo->pr_lwpid == tid, curpsinfo->pr_pid == pid] = count();
}
sched:::tick /pid == $target/ {
    @tick[args[1]->pr_pid == pid, curlwpsinfo->pr_sname, stringof(curpsinfo->pr_fname) == "sleeper"] = count();
}
sched:::tick /pid == $target/ { @ticks = count(); }
END { printa("%s %@d\\n", @); printa("dequeue %d %d %d %d %@d\\n", @dq); printa("wakeup %d %d %@d\\n", @wk);
      printa("enqueue %d %@d\\n", @eq); printa("surrender %d %d %d %@d\\n", @sur);
      printa("tick %d %c %d\\n", @tick); printa("%@d\\n", @ticks); }
"""


def test_sleeps_wakeups_yields_and_ticks(tmp_path: Path) -> None:
    exe = cc(tmp_path, "sleeper", SLEEPER)
    r = pydtrace("-q", "-c", exe, "-n", SCHED_D.replace("$pid", str(os.getpid())))
    assert r.status == 0, r.err
    lines = r.out.strip("\n").split("\n")
    # sched:::tick is a 100 Hz timer on every CPU (docs/internals/proc-sched.md; not the
    # kernel's HZ), counted here while the sleeper is the thread running: 300 ms
    # of CPU time (spun on CPU time, so a loaded machine does not shorten it)
    # make about 30. On a busy machine 16 to 43 were seen: fewer when ticks
    # fall between the sleeper's time slices, more when a virtual CPU loses
    # time to the host (left out of the thread's CPU time, while a tick still
    # finds it running). A tick at the kernel's HZ (250: 75) or none fails.
    ticks = int(lines.pop())
    assert 8 <= ticks <= 60, r.out
    # woken by the timer, not by us: a timer interrupt that came while a task
    # hidden from tracing ran woke it unseen (conftest.unreported)
    _, hidden, _ = unreported(r.err)
    wakeups = [x for x in lines if x.startswith(("wakeup 1 0 ", "enqueue 1 "))]
    assert all(5 - hidden <= int(x.split()[-1]) <= 5 for x in wakeups), (r.out, r.err)
    assert [x.rsplit(" ", 1)[0] if x in wakeups else x for x in lines] == [
        "off-cpu 5",
        "sleep 5",
        "dequeue 1 1 1 0 5",
        "wakeup 1 0",
        "enqueue 1",
        "surrender 1 1 1 3",
        "tick 1 R 1",
    ]


SWITCHER = """
#include <time.h>
#include <unistd.h>
int main(void) {
    struct timespec ts = {0, 10000000};
    for (int i = 0; i < 4; i++)
        nanosleep(&ts, 0);
    if (setgid(65533) || setuid(65534))
        return 1;
    for (int i = 0; i < 3; i++)
        nanosleep(&ts, 0);
    return 0;
}
"""

# on-cpu and off-cpu of one thread must alternate (from the first event on: the
# -c process is traced from its exec on, which it reaches running); on-cpu sees
# the incoming thread's ids, names and psinfo
ON_CPU_D = """
self int on, seen;
sched:::on-cpu /pid == $target/ {
    @bad["on while on"] = sum(self->seen && self->on == 1); self->on = 1; self->seen = 1;
    @on[uid, gid, tid == pid, curlwpsinfo->pr_lwpid == tid, curpsinfo->pr_pid == pid,
        curlwpsinfo->pr_sname, curthread == curlwpsinfo->pr_addr] = count();
    @cpu[cpu == curcpu->cpu_id] = count();
}
sched:::off-cpu /pid == $target/ {
    @bad["off while off"] = sum(self->seen && self->on == 0); self->on = 0; self->seen = 1;
}
sched:::on-cpu /pid == $target && execname == "switcher"/ { @named = count(); }
END { printa("%s %@d\\n", @bad); printa("%d %d %d %d %d %c %d %@d\\n", @on);
      printa("cpu %d %@d\\n", @cpu); printa("named %@d\\n", @named); }
"""


def test_on_cpu_runs_as_the_incoming_thread(tmp_path: Path) -> None:
    exe = cc(tmp_path, "switcher", SWITCHER)
    r = pydtrace("-q", "-c", exe, "-n", ON_CPU_D)
    assert r.status == 0, r.err
    lines = r.out.strip("\n").split("\n")
    # off while off: a switch-in the kernel did not report (it says how many
    # switches it hid); on while on: never (the thread traced is not hidden)
    _, hidden, _ = unreported(r.err)
    bad = {x.rsplit(" ", 1)[0]: int(x.rsplit(" ", 1)[1]) for x in lines[:2]}
    assert bad.keys() == {"off while off", "on while on"}, r.out
    assert bad["on while on"] == 0 and bad["off while off"] <= hidden, (r.out, r.err)
    counts = {tuple(x.split()[:-1]): int(x.split()[-1]) for x in lines[2:]}
    # 4 sleeps before setuid, 3 after: at least that many switches in (its start,
    # before its exec, is not traced)
    assert counts[("0", "0", "1", "1", "1", "R", "1")] >= 4, r.out
    assert counts[("65534", "65533", "1", "1", "1", "R", "1")] >= 3, r.out
    total = sum(v for k, v in counts.items() if len(k) == 7)
    assert counts[("cpu", "1")] == total, r.out
    assert counts[("named",)] >= 7, r.out


def test_on_cpu_refuses_what_belongs_to_the_outgoing_thread() -> None:
    r = pydtrace("-q", "-n", "sched:::on-cpu { @[ustack()] = count(); }")
    assert (r.status, r.err.strip()) == (
        1,
        "pydtrace: could not enable tracing: ustack() cannot be used in sched:::on-cpu on "
        "the eBPF engine: the probe fires at the switch, where the stack, user memory and "
        "signals are those of the thread going off the CPU",
    )


def test_probes_linux_cannot_give_are_refused() -> None:
    r = pydtrace("-q", "-n", "sched:::remain-cpu { exit(0); }")
    assert (r.status, r.err.strip()) == (
        1,
        "pydtrace: could not enable tracing: the eBPF engine cannot attach "
        "sched:vmlinux::remain-cpu (no tracepoint for it)",
    )


def test_sched_argument_types() -> None:
    r = pydtrace("-lv", "-n", "sched:::dequeue")
    assert r.status == 0, r.err
    assert (
        "\t\targs[0]: lwpsinfo_t *\n\t\targs[1]: psinfo_t *\n\t\targs[2]: cpuinfo_t *\n"
        "\t\targs[3]: int\n"
    ) in r.out


def test_a_thread_preempted_on_its_way_to_sleep_is_preempted() -> None:
    """sched_switch(preempt, prev, next, prev_state): the kernel takes prev off
    its run queue only when the switch is no preemption and prev_state is not
    TASK_RUNNING. A thread preempted after it set a sleeping state but before
    schedule() keeps that state and stays runnable: preempt, not sleep or
    dequeue (runqlat's count of switch-ins rests on it). The programs are run
    in the kernel on each kind of switch, as the tracepoint would call them."""
    import struct
    from types import SimpleNamespace

    from pydtrace.engines.ebpf.bpf import prog_test_run
    from pydtrace.engines.ebpf.engine import EbpfEngine
    from pydtrace.session import Program, Session

    s = Session([Program("n", "sched:::preempt { @p = count(); } sched:::sleep { @s = count(); }"
                              " sched:::dequeue { @d = count(); }")])  # fmt: skip
    s.compile()
    engine = EbpfEngine(s.checked, SimpleNamespace(), s.options)
    try:
        engine._open()
        switches = {  # (preempt, prev_state): how many switches of that kind
            (0, 0): 1,  # sched_yield(), or a slice used up at a voluntary point
            (1, 0): 2,  # preempted while running
            (1, 1): 4,  # preempted with TASK_INTERRUPTIBLE set, before schedule()
            (1, 2): 8,  # ... with TASK_UNINTERRUPTIBLE set
            (0, 1): 16,  # blocked in an interruptible sleep
            (0, 2): 32,  # blocked in an uninterruptible one
        }
        for (preempt, state), n in switches.items():
            for _ in range(n):
                for p in engine.compiled.progs:
                    prog_test_run(engine.prog_fds[p.name],
                                  ctx=struct.pack("<QQQQ", preempt, 0, 0, state))  # fmt: skip
        engine.snapshot()
        counts = {name: sum(agg.data.values()) for name, agg in engine.aggs.items()}
    finally:
        engine.close()
    assert counts == {"@p": 1 + 2 + 4 + 8, "@s": 16 + 32, "@d": 16 + 32}


def test_a_switch_the_kernel_did_not_report_is_counted_once_at_the_end() -> None:
    """A CPU's switches chain (each prev is the last next). The sched_switch
    programs, run by hand on CPU 0 as the kernel would at each switch, see the
    chain break once (a switch C -> D it did not report): one switch counted,
    by one of the two programs, and said at the end only."""
    import struct
    from types import SimpleNamespace

    from pydtrace.engines.ebpf.bpf import prog_test_run
    from pydtrace.engines.ebpf.engine import EbpfEngine
    from pydtrace.engines.ebpf.features import has_raw_tp_test_run
    from pydtrace.session import Program, Session

    need(has_raw_tp_test_run(), "PROG_TEST_RUN of raw tracepoint programs (Linux 5.10)")
    s = Session([Program("n", "sched:::off-cpu { } sched:::on-cpu { }")])
    s.compile()
    said: list[tuple[str, int]] = []
    consumer = SimpleNamespace(drop=lambda kind, n, cpu=None: n > 0 and said.append((kind, n)))
    engine = EbpfEngine(s.checked, consumer, s.options)
    try:
        engine._open()
        fds = [engine.prog_fds[p.name] for p in engine.compiled.progs]
        assert len(fds) == 2
        # sched_switch(preempt, prev, next, prev_state); the tasks: made-up addresses
        a, b, c, d, e = (0xFFFF888000100000 + 0x1000 * i for i in range(5))
        for prev, nxt in ((a, b), (b, c), (d, e), (e, a)):
            for fd in fds:
                prog_test_run(fd, ctx=struct.pack("<4Q", 0, prev, nxt, 0), cpu=0)
        engine.report_drops()
        assert said == []
        engine.report_drops(final=True)
        assert said == [("PYDTRACEDROP_SWITCH", 1)]
    finally:
        engine.close()
