"""With -x seccompnotify, entry-only syscall probes of a -c command on the
ptrace engine are fired from seccomp notifications
(engines/user/ptrace/notify.py), without a ptrace stop: the same output as
with stops, far fewer stops, and everything that needs a stopped thread
(return probes, ustack(), raise()) still has one. Without the option (the
default) every traced call stops, and a signal never fails a call that
cannot block."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import need, ptrace_works
from pydtrace.engines.user.ptrace import notify, seccomp
from pydtrace.session import Program, Session

SRC = str(Path(__file__).resolve().parents[1] / "src")
DD = ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=500", "status=none"]


@pytest.fixture(autouse=True)
def _kernel() -> None:
    need(sys.platform == "linux" and ptrace_works(), "ptrace with PTRACE_SEIZE unavailable")


def session(prog: str, command: list[str], notify: bool = True) -> tuple[Session, str, int]:
    out, err = io.StringIO(), io.StringIO()
    settings = [("engine", "ptrace"), ("quiet", None)]
    if notify:
        settings.append(("seccompnotify", None))
    s = Session([Program("n", prog)], settings=settings, out=out, err=err, commands=[command])
    rc = s.run()
    assert err.getvalue() == ""
    return s, out.getvalue(), rc


COUNT = "syscall::read:entry, syscall::write:entry /pid == $target/ { @[probefunc] = count(); }"


def test_entry_probes_fire_without_stops() -> None:
    s, out, rc = session(COUNT, DD)
    assert rc == 0
    lines = dict(line.split() for line in out.strip().splitlines())
    assert lines["write"] == "500"
    assert int(lines["read"]) >= 500  # dd's 500, and the loader's reads of libraries
    # 1000 calls fired, answered by notification: the stops left are the
    # exec, the exit and the like, never one per call
    assert s.tracer.notified >= 1000
    assert s.tracer.stops < 50


def test_same_output_with_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the listener refused (EBUSY: the command's filters have one
    already), the child installs the plain filter: the same counts, by stops."""
    _, by_notification, _ = session(COUNT, DD)

    def refused(code: bytes) -> int:
        raise OSError(16, "Device or resource busy")

    monkeypatch.setattr(seccomp, "install_listener", refused)
    s, by_stops, rc = session(COUNT, DD)
    assert rc == 0
    assert by_stops == by_notification
    assert s.tracer.notified == 0
    assert s.tracer.stops >= 1000


def test_stops_unless_asked() -> None:
    s, out, rc = session(COUNT, DD, notify=False)
    assert rc == 0 and "write" in out
    assert s.tracer.notified == 0 and s.tracer.stops >= 1000


def test_kernel_without_pidfd_getfd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "usable", lambda: False)
    s, out, rc = session(COUNT, DD)
    assert rc == 0 and "write" in out
    assert s.tracer.notified == 0 and s.tracer.stops >= 1000


@pytest.mark.parametrize(
    "prog",
    [
        # a clause that reads registers or signals the thread needs it stopped
        "syscall::write:entry /pid == $target/ { @[ustack(1)] = count(); }",
        "syscall::write:entry /pid == $target/ { @[uregs[R_PC] != 0] = count(); }",
        # a return probe of the same call
        "syscall::write:entry, syscall::write:return /pid == $target/ { @[probename] = count(); }",
    ],
)
def test_what_needs_a_stop_keeps_it(prog: str) -> None:
    s, out, rc = session(prog, DD)
    assert rc == 0
    assert s.tracer.stops >= 500, out
    assert "500" in out.split()


def test_strings_are_read_from_a_waiting_caller(tmp_path: Path) -> None:
    f = tmp_path / "file-to-open"
    f.write_text("x")
    prog = 'syscall::openat:entry /pid == $target/ { printf("%s\\n", copyinstr(arg1)); }'
    s, out, rc = session(prog, ["cat", str(f)])
    assert rc == 0
    assert str(f) in out.splitlines()
    assert s.tracer.notified >= 1


def test_children_and_threads_are_answered_too() -> None:
    """A forked child inherits the filter and its listener: its calls come
    through the same descriptor, from its own pid."""
    prog = 'syscall::write:entry { @[pid == $target ? "parent" : "child"] = count(); }'
    cmd = ["sh", "-c", "echo a; (echo b; echo c); /bin/echo d"]
    s, out, rc = session(prog, cmd)
    assert rc == 0
    assert dict(line.split() for line in out.strip().splitlines()) == {"parent": "1", "child": "3"}
    assert s.tracer.notified >= 4


def test_exit_from_a_notified_probe_ends_the_run_at_once(tmp_path: Path) -> None:
    """exit() in a clause the notifier ran wakes the ptrace loop: the run
    ends without waiting for the command, which is killed."""
    cmd = tmp_path / "writes-then-sleeps"
    cmd.write_text("#!/bin/sh\necho hi >/dev/null\nexec sleep 60\n")
    cmd.chmod(0o755)
    env = dict(os.environ, PYTHONPATH=SRC)
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "pydtrace", "-x", "engine=ptrace", "-x", "seccompnotify", "-q",
         "-c", str(cmd),
         "-n", 'syscall::write:entry /pid == $target/ { printf("%d %d\\n", arg2, pid); exit(3); }'],
        capture_output=True, text=True, env=env, timeout=50,
    )  # fmt: skip
    written, pid = r.stdout.split()
    assert written == "3" and r.stdout.endswith("\n\n")
    assert r.returncode == 3, r.stderr
    assert time.monotonic() - t0 < 45  # the sleep (60 s) did not run out
    assert not os.path.exists(f"/proc/{pid}")  # killed (and reaped) as dtrace does


def test_filter_notifies_only_entry_only_calls() -> None:
    x86 = seccomp.AUDIT_ARCH_X86_64
    prog = seccomp.build({0, 1, 59}, x86, notify={0, 1})
    assert seccomp.run(prog, 0, x86) == seccomp.RET_USER_NOTIF
    assert seccomp.run(prog, 1, x86) == seccomp.RET_USER_NOTIF
    assert seccomp.run(prog, 59, x86) == seccomp.RET_TRACE  # execve: always a stop
    assert seccomp.run(prog, 2, x86) == seccomp.RET_ALLOW
    assert seccomp.run(prog, 5, 0x40000003) == seccomp.RET_TRACE  # i386 ABI
    every = seccomp.build(None, x86, notify={0})
    assert seccomp.run(every, 0, x86) == seccomp.RET_USER_NOTIF
    assert seccomp.run(every, 3, x86) == seccomp.RET_TRACE


SIGNALLED = r"""
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
static volatile long caught;
static void on_alarm(int sig) { caught++; }
int main(int argc, char **argv) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART: a blocking call would fail with EINTR */
    sigaction(SIGALRM, &sa, 0);
    struct itimerval every = {{0, 200}, {0, 200}};
    setitimer(ITIMER_REAL, &every, 0);
    int fd = open("/dev/null", O_WRONLY);
    long failed = 0;
    for (int i = 0; i < 20000; i++)
        if (write(fd, "x", 1) < 0 && errno == EINTR)
            failed++;
    FILE *out = fopen(argv[1], "w");
    fprintf(out, "signals %s, write failed %ld times\n", caught > 100 ? "many" : "few", failed);
    return fclose(out) != 0;
}
"""


def test_a_signal_never_fails_a_call_that_cannot_block(tmp_path: Path) -> None:
    """A write to /dev/null never fails with EINTR, traced or not: by default
    the traced call stops, and a signal waits for the stop to end. (Under
    -x seccompnotify a signal that comes before pydtrace has read the
    notification ends the wait, and with a handler installed without
    SA_RESTART the call fails: that is why the option is not the default.)"""
    need(shutil.which("gcc") is not None, "gcc is needed to build the test program")
    src = tmp_path / "signalled.c"
    src.write_text(SIGNALLED)
    exe = tmp_path / "signalled"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)
    result = tmp_path / "result"
    subprocess.run([str(exe), str(result)], check=True)
    assert result.read_text().endswith("write failed 0 times\n")
    s, out, rc = session("syscall::write:entry /pid == $target/ { @ = count(); }",
                         [str(exe), str(result)], notify=False)  # fmt: skip
    assert rc == 0
    assert s.tracer.stops >= 20000
    # the run lasts long enough for many signals, and none failed a write
    assert result.read_text() == "signals many, write failed 0 times\n"


def test_a_failing_clause_ends_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error raised while the notifier runs clauses is not lost: the run
    ends, the command is killed, the error reaches the caller."""
    from pydtrace.engines.user.ptrace.source import Sink

    def boom(self: Sink, t: object, nr: int, args: tuple) -> None:
        raise RuntimeError("a clause failed")

    monkeypatch.setattr(Sink, "entry", boom)
    out, err = io.StringIO(), io.StringIO()
    settings = [("engine", "ptrace"), ("quiet", None), ("seccompnotify", None)]
    s = Session([Program("n", COUNT)], settings=settings, out=out, err=err,
                commands=[["sleep", "60"]])  # fmt: skip
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="a clause failed"):
        s.run()
    assert time.monotonic() - t0 < 45
    pid = s.tracer.targets[0].pid
    assert not os.path.exists(f"/proc/{pid}")
