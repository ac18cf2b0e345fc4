"""The tracefs engine (engines/tracefs): the ring buffer's page format and
the predicate compiler without a kernel; then, for real, the same programs
on tracefs and eBPF giving the same output, the filters -S shows, a drop
under a flood, the default choice when bpf(2) is refused, and no instance,
enabled event or filter left behind after any way of ending."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, bpf_maps_ok, need, pydtrace, unreported
from conftest import compile_c as cc
from pydtrace.engines.tracefs import ringbuf

INSTANCES = "/sys/kernel/tracing/instances"


# --- the page format (no kernel) ------------------------------------------------------------
def _event(type_len: int, delta: int, body: bytes) -> bytes:
    return struct.pack("<I", type_len | delta << 5) + body


def _page(events: bytes, ts: int, flags: int = 0, missed: int | None = None) -> bytes:
    tail = struct.pack("<Q", missed) if missed is not None else b""
    page = struct.pack("<QQ", ts, len(events) | flags) + events + tail
    return page + bytes(4096 - len(page))


def test_page_events_timestamps_and_padding() -> None:
    small = _event(2, 5, b"ABCDEFGH")  # type_len 2: 8 bytes of payload
    big = _event(0, 7, struct.pack("<I", 4 + 120) + bytes(range(120)))  # length word counts itself
    extend = _event(ringbuf.TIME_EXTEND, 3, struct.pack("<I", 2))  # delta 2 << 27 | 3
    pad = _event(ringbuf.PADDING, 1, struct.pack("<I", 12) + bytes(8))  # length counts its word
    absolute = _event(ringbuf.TIME_STAMP, 9, struct.pack("<I", 1))  # (1 << 27) | 9
    after = _event(1, 4, b"WXYZ")
    end = _event(ringbuf.PADDING, 0, b"")  # time_delta 0: the page ends here
    never = _event(1, 1, b"LOST")
    page = ringbuf.parse_page(
        _page(small + big + extend + pad + absolute + after + end + never, 1000)
    )
    assert page.missed == 0
    assert [d for _, d in page.events] == [b"ABCDEFGH", bytes(range(120)), b"WXYZ"]
    assert page.events[0][0] == 1005 and page.events[1][0] == 1012
    # the absolute stamp replaces the clock's low 59 bits (the extension before it is lost)
    assert page.events[2][0] == ((1 << 27) | 9) + 4


def test_page_time_extend_adds_to_the_clock() -> None:
    extend = _event(ringbuf.TIME_EXTEND, 3, struct.pack("<I", 2))
    page = ringbuf.parse_page(_page(extend + _event(1, 1, b"abcd"), 50))
    assert page.events == [(50 + ((2 << 27) | 3) + 1, b"abcd")]


def test_page_missed_events() -> None:
    ev = _event(1, 0, b"abcd")
    stored = ringbuf.parse_page(_page(ev, 0, ringbuf.MISSED_EVENTS | ringbuf.MISSED_STORED, 42))
    assert (stored.missed, stored.events) == (42, [(0, b"abcd")])
    unknown = ringbuf.parse_page(_page(ev, 0, ringbuf.MISSED_EVENTS))
    assert unknown.missed == -1


def test_header_page_layout() -> None:
    text = (
        "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n"
        "\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n"
        "\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n"
        "\tfield: char data;\toffset:16;\tsize:8176;\tsigned:0;\n"
    )
    layout = ringbuf.parse_header_page(text)
    assert (layout.commit_off, layout.data_off, layout.page_size) == (8, 16, 8192)


# --- against the kernel -------------------------------------------------------------------------
def _tracefs_ok() -> bool:
    return os.geteuid() == 0 and os.access(INSTANCES, os.W_OK)


@pytest.fixture
def kernel() -> None:
    need(_tracefs_ok(), "needs root and a writable tracefs")
    need(bpf_maps_ok(), "needs bpf(2) for the eBPF side")


def _ours() -> list[str]:
    """Instances of pydtrace runs, by pid: only those of dead processes count
    (other helpers run tracefs sessions meanwhile)."""
    out = []
    for name in os.listdir(INSTANCES):
        if name.startswith("pydtrace-"):
            pid = int(name.split("-")[1])
            if not os.path.exists(f"/proc/{pid}"):
                out.append(name)
    return out


def both(*args: str, timeout: float = 120) -> tuple:
    runs = tuple(pydtrace("-x", f"engine={e}", *args, timeout=timeout) for e in ("tracefs", "ebpf"))
    return runs


def test_syscall_counts_by_name_equal(kernel: None) -> None:
    prog = "syscall:::entry /pid == $target/ { @[probefunc] = count(); }"
    t, e = both("-q", "-n", prog, "-c", "cp /etc/hostname /dev/null")
    assert (t.status, t.out, t.err) == (e.status, e.out, e.err)
    # the command's calls from its exec on (the held child's before it are not its own)
    assert "  openat  " in t.out.replace("openat ", "openat  ") and "execve" not in t.out


def test_syscall_return_and_args_equal(kernel: None) -> None:
    prog = (
        'syscall::openat:entry /pid == $target/ { printf("%d %x\\n", arg0 == -100, arg2); }'
        " syscall::read:return /pid == $target/ { @r[errno] = count(); @n = sum(arg0 > 0); }"
    )
    t, e = both("-q", "-n", prog, "-c", "cp /etc/hostname /nonexistent/x")
    assert (t.status, t.out, t.err) == (e.status, e.out, e.err)


def _exec_script(tmp: Path) -> Path:
    script = tmp / "run.sh"
    script.write_text("exec /bin/true\n")
    return script


def test_sdt_records_equal(kernel: None, tmp_path: Path) -> None:
    prog = (
        "sdt:sched::sched_process_exec /args->pid == $target/ "
        '{ printf("%s %d %s\\n", stringof(args->filename), args->old_pid == args->pid, execname); }'
    )
    t, e = both("-q", "-n", prog, "-c", f"/bin/sh {_exec_script(tmp_path)}")
    assert (t.status, t.out, t.err) == (e.status, e.out, e.err)
    assert t.out == "/bin/true 1 true\n\n"


def test_proc_records_equal(kernel: None, tmp_path: Path) -> None:
    prog = (
        'proc:::exec /pid == $target/ { printf("exec %s\\n", args[0]); }'
        ' proc:::exec-success /pid == $target/ { printf("%s\\n", execname); }'
        ' proc:::exit /pid == $target/ { printf("exit %d\\n", args[0]); }'
    )
    t, e = both("-q", "-n", prog, "-c", f"/bin/sh {_exec_script(tmp_path)}")
    assert (t.status, t.out, t.err) == (e.status, e.out, e.err)
    assert t.out == "exec /bin/true\ntrue\nexit 1\n\n"


SLEEPER = """
#include <sched.h>
#include <time.h>
int main(void) {
    struct timespec ts = {0, 20000000};
    for (int i = 0; i < 5; i++)
        nanosleep(&ts, 0);
    return 0;
}
"""


def test_sched_counts_equal(kernel: None, tmp_path: Path) -> None:
    exe = cc(tmp_path, "sleeper", SLEEPER)
    prog = (
        "syscall::clock_nanosleep:entry /pid == $target/ { self->in = 1; }"
        " syscall::clock_nanosleep:return /pid == $target/ { self->in = 0; }"
        " sched:::sleep /self->in/ { @s = count(); }"
        " sched:::off-cpu /self->in/ { @o = count(); }"
    )
    t, e = both("-q", "-n", prog, "-c", exe)
    # how many switches each engine saw the kernel hide may differ (conftest.unreported)
    assert (t.status, t.out, unreported(t.err)[0]) == (e.status, e.out, unreported(e.err)[0])
    assert t.out.split() == ["5", "5"]


def test_filters_shown_by_S(kernel: None) -> None:
    prog = (
        'syscall::read:entry /arg0 == 0 && execname == "cat" && strlen(execname) > 1/ { @ = count(); }'
        " syscall::read:return /tid == 1 || arg0 < 0/ { @ = count(); }"
        ' sdt:sched::sched_process_exec /args->old_pid >= 3 && args->filename == "/bin/x*"/ {}'
    )
    r = pydtrace("-q", "-x", "engine=tracefs", "-S", "-n", prog, "-c", "/bin/true", timeout=120)
    assert r.status == 0, r.err
    lines = r.err.splitlines()
    assert lines[0].startswith(f"tracefs instance {INSTANCES}/pydtrace-")
    # the kernel gets what ftrace compares as D does; strlen() and a glob stay in Python
    assert '  syscalls:sys_enter_read: filter fd == 0 && comm == "cat"' in lines
    assert "  syscalls:sys_exit_read: filter (common_pid == 1 || ret < 0)" in lines
    # bookkeeping shares sched_process_exec: never filtered
    assert "  sched:sched_process_exec: no filter" in lines


def test_pid_filter_in_the_kernel(kernel: None) -> None:
    r = pydtrace("-q", "-x", "engine=tracefs", "-S", "-n",
                 "syscall::read:entry /pid == $target/ { @ = count(); }", "-c", "/bin/true",
                 timeout=120)  # fmt: skip
    assert r.status == 0, r.err
    assert any(x.startswith("  set_event_pid: ") and x.endswith(" (event-fork)")
               for x in r.err.splitlines())  # fmt: skip


def test_drops_reported_under_a_flood(kernel: None) -> None:
    r = pydtrace("-q", "-x", "engine=tracefs", "-x", "bufsize=4k", "-n",
                 "syscall:::entry { @ = count(); }",
                 "-c", "dd if=/dev/zero of=/dev/null bs=1 count=200000", timeout=300)  # fmt: skip
    assert r.status == 0, r.err
    drops = [x for x in r.err.splitlines() if " drop" in x]
    assert drops and all(
        x.startswith("pydtrace: ") and " drops on CPU " in x or " drop on CPU " in x for x in drops
    ), r.err


def test_ending_leaves_nothing(kernel: None, tmp_path: Path) -> None:
    before = set(_ours())
    # normal end
    assert pydtrace("-q", "-x", "engine=tracefs", "-n", "syscall::read:entry { exit(0); }",
                    timeout=120).status == 0  # fmt: skip
    # an error once the instance is made: the command cannot be executed
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x7fELF garbage")
    bad.chmod(0o755)
    r = pydtrace("-q", "-x", "engine=tracefs", "-n", "syscall::read:entry {}", "-c", str(bad),
                 timeout=120)  # fmt: skip
    assert (r.status, r.err) == (1, f"pydtrace: failed to execute {bad}: Exec format error\n")
    # Ctrl-C
    p = _start("syscall::read:entry { @ = count(); }")
    _wait_instance(p.pid)
    p.send_signal(signal.SIGINT)
    assert p.wait(120) == 0
    assert set(_ours()) == before
    assert not os.path.exists(f"{INSTANCES}/pydtrace-{p.pid}")


def test_kill_9_then_next_start_removes_it(kernel: None) -> None:
    p = _start("syscall::read:entry { @ = count(); }")
    try:
        path = _wait_instance(p.pid)
        with open(f"{path}/events/syscalls/sys_enter_read/enable") as f:
            assert f.read().strip() == "1"
    finally:
        p.kill()
        p.wait(60)
    assert os.path.isdir(path)  # what a killed run leaves
    r = pydtrace("-q", "-x", "engine=tracefs", "-n", "syscall::read:entry { exit(0); }",
                 timeout=120)  # fmt: skip
    assert r.status == 0, r.err
    assert not os.path.exists(path)


SECCOMP_NO_BPF = r"""
import ctypes, os, struct, sys
# a seccomp filter: bpf(2) fails with EPERM, as where policy forbids it
AUDIT_ARCH_X86_64, NR_BPF = 0xC000003E, 321
ins = lambda code, jt, jf, k: struct.pack("<HBBI", code, jt, jf, k)
prog = b"".join([
    ins(0x20, 0, 0, 4), ins(0x15, 1, 0, AUDIT_ARCH_X86_64), ins(0x06, 0, 0, 0x7FFF0000),
    ins(0x20, 0, 0, 0), ins(0x15, 0, 1, NR_BPF), ins(0x06, 0, 0, 0x00050000 | 1),
    ins(0x06, 0, 0, 0x7FFF0000)])
buf = ctypes.create_string_buffer(prog)
class F(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0
f = F(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
assert libc.syscall(317, 1, 0, ctypes.byref(f)) == 0
os.execv(sys.executable, [sys.executable, "-m", "pydtrace", *sys.argv[1:]])
"""


def test_default_when_bpf_is_refused(kernel: None, tmp_path: Path) -> None:
    wrapper = tmp_path / "nobpf.py"
    wrapper.write_text(SECCOMP_NO_BPF)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    p = subprocess.run(
        [sys.executable, str(wrapper), "-q", "-n",
         'sdt:sched::sched_process_exec /args->pid == 1/ {} tick-1s { printf("ok\\n"); exit(0); }'],
        capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout == "ok\n\n"
    assert p.stderr.startswith("pydtrace: bpf(2) is not permitted here")
    assert p.stderr.endswith(": running on the tracefs engine\n")
    assert p.stderr.count("\n") == 1


def _start(prog: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.Popen(
        [sys.executable, "-m", "pydtrace", "-q", "-x", "engine=tracefs", "-n", prog],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _wait_instance(pid: int) -> str:
    """The run's instance, once its events are enabled (tracing_on is set last;
    a new instance reads tracing_on 1 until the engine turns it off just after
    making it, so an event must read enabled too)."""
    path = f"{INSTANCES}/pydtrace-{pid}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with open(f"{path}/tracing_on") as f, open(f"{path}/events/enable") as e:
                if f.read().strip() == "1" and e.read().strip() != "0":
                    return path
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no instance {path}")


def test_second_ctrl_c_aborts_and_leaves_nothing(kernel: None) -> None:
    """A first Ctrl-C runs END and prints the aggregation; when that output
    cannot be written (a reader that does not read), a second Ctrl-C ends
    the run at once, status 1, with the instance removed."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    wide = "x" * 200  # a few thousand such lines fill any pipe
    # Eight lines per tick: a loaded machine may fire far fewer than 1000
    # ticks a second, and a pipe holds 64 KiB (about 300 such lines).
    adds = " ".join(f'@[i++, "{wide}"] = count();' for _ in range(8))
    p = subprocess.Popen(
        [sys.executable, "-m", "pydtrace", "-q", "-x", "engine=tracefs", "-n",
         f"syscall::read:entry /0/ {{ }} tick-1ms {{ {adds} }}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        path = _wait_instance(p.pid)
        time.sleep(2)  # up to 16,000 lines to print: far more than a pipe holds
        p.send_signal(signal.SIGINT)
        time.sleep(2)  # END prints until the pipe is full, then waits
        assert p.poll() is None, "the first Ctrl-C ended the run: no END left to abort"
        p.send_signal(signal.SIGINT)
        assert p.wait(60) == 1
        assert not os.path.exists(path)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_switch_the_kernel_did_not_report_breaks_the_chain(kernel: None) -> None:
    """sched_switch events, as the kernel writes them, handed to the sched
    provider's handler: a CPU's chain (each prev is the last next) broken once
    on CPU 0 counts one switch the kernel hid; a break after a held -c child
    (whose events are not handed over) or on another CPU's first switch does not."""
    from types import SimpleNamespace

    from pydtrace.engines.tracefs.plan import Plan
    from pydtrace.engines.tracefs.providers.sched import SchedProvider
    from pydtrace.probes import tracefs

    fired: list[tuple[str, int]] = []
    engine = SimpleNamespace(
        fire_event=lambda probe, args, ts, cpu, tid: fired.append((probe.name, tid)),
        wants_args=lambda probe: False,
        switch_last={},
        hidden_switches=0,
        held={77},
    )
    plan = Plan(engine)
    probes = [SimpleNamespace(name="on-cpu"), SimpleNamespace(name="off-cpu")]
    SchedProvider().enable(plan, probes)
    (handler,) = plan.uses[("sched", "sched_switch")].handlers
    fmt = tracefs.event_format("sched", "sched_switch")

    def switch(cpu: int, prev: int, nxt: int) -> None:
        data = bytearray(max(f.offset + f.size for f in fmt.fields))
        for name, value in (("prev_pid", prev), ("next_pid", nxt), ("prev_state", 1)):
            f = fmt.field(name)
            data[f.offset : f.offset + f.size] = value.to_bytes(f.size, "little", signed=True)
        handler(0, cpu, prev, bytes(data))

    for cpu, prev, nxt in ((0, 10, 11), (0, 11, 12), (1, 30, 31), (0, 13, 14), (0, 14, 77)):
        switch(cpu, prev, nxt)
    assert engine.hidden_switches == 1  # 12 -> 13 on CPU 0
    switch(0, 15, 16)  # 77 -> 15 went unseen: 77 is held, its switch was not handed over
    assert engine.hidden_switches == 1
    assert fired[:2] == [("off-cpu", 10), ("on-cpu", 11)] and len(fired) == 12
