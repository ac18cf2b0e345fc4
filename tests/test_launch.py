"""engines/launch.py: -c children held before exec, -p processes watched
through pidfds, exec failures reported as dtrace does, no zombie and no fd
left behind; and the session's engine choice for -c/-p."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import need, pydtrace
from pydtrace.engines.launch import LaunchError, Targets


def fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _wait_gone(t: Targets, timeout: float = 10) -> list[int]:
    """Poll the pidfds as an engine would, until every target has ended."""
    ended = []
    deadline = time.monotonic() + timeout
    while t.live:
        assert time.monotonic() < deadline
        p = select.poll()
        for fd in t.fds():
            p.register(fd, select.POLLIN)
        for fd, _ in p.poll(1000):
            if t.gone(fd):
                ended.append(fd)
    return ended


def test_child_runs_nothing_before_release(tmp_path: Path) -> None:
    before = fds()
    mark = tmp_path / "ran"
    t = Targets()
    pid = t.spawn(["touch", str(mark)])
    time.sleep(0.3)
    assert not mark.exists()
    # still our Python (the same executable file, whatever name started it), blocked before exec
    assert os.readlink(f"/proc/{pid}/exe") == os.readlink("/proc/self/exe")
    assert t.live == 1 and len(t.fds()) == 1
    t.release()
    assert _wait_gone(t) == [t.targets[0].pidfd]
    assert mark.exists()
    assert t.live == 0 and t.fds() == []
    assert t.targets[0].status == 0
    t.finish()
    assert _state(pid) == "gone"  # reaped: no zombie
    assert fds() == before


def test_exit_status_is_kept_and_gone_is_false_for_unknown_fds() -> None:
    with Targets() as t:
        t.spawn(["sh", "-c", "exit 3"])
        assert t.gone(12345) is False
        t.release()
        t.release()  # idempotent
        _wait_gone(t)
        assert os.WEXITSTATUS(t.targets[0].status) == 3


def test_finish_kills_a_released_child_still_running() -> None:
    before = fds()
    t = Targets()
    pid = t.spawn(["sleep", "100"])
    t.release()
    assert t.live == 1
    t.finish()
    assert os.WTERMSIG(t.targets[0].status) == signal.SIGKILL
    assert _state(pid) == "gone"
    t.finish()  # idempotent
    assert fds() == before


def test_finish_without_release_never_execs(tmp_path: Path) -> None:
    mark = tmp_path / "ran"
    t = Targets()
    pid = t.spawn(["touch", str(mark)])
    t.finish()
    assert _state(pid) == "gone"
    time.sleep(0.1)
    assert not mark.exists()


def test_missing_command_is_refused_before_forking() -> None:
    t = Targets()
    with pytest.raises(LaunchError) as e:
        t.spawn(["/nonexistent-pydtrace-cmd"])
    assert str(e.value) == "failed to execute /nonexistent-pydtrace-cmd: No such file or directory"
    with pytest.raises(LaunchError) as e:
        t.spawn(["no-such-command-pydtrace"])
    assert str(e.value) == "failed to execute no-such-command-pydtrace: No such file or directory"
    with pytest.raises(LaunchError) as e:
        t.spawn(["/etc/passwd"])
    assert str(e.value) == "failed to execute /etc/passwd: Permission denied"
    assert t.targets == []


def test_exec_failure_after_release_is_reported(tmp_path: Path) -> None:
    prog = tmp_path / "prog"
    prog.write_text("#!/nonexistent-interpreter\n")
    prog.chmod(0o755)
    t = Targets()
    pid = t.spawn([str(prog)])
    with pytest.raises(LaunchError) as e:
        t.release()
    assert str(e.value) == f"failed to execute {prog}: No such file or directory"
    t.finish()
    assert _state(pid) == "gone"


def test_signals_python_ignores_are_default_again_after_exec(tmp_path: Path) -> None:
    status = tmp_path / "status"
    with Targets() as t:
        t.spawn(["sh", "-c", f"grep SigIgn /proc/self/status > {status}"])
        t.release()
        _wait_gone(t)
    ignored = int(status.read_text().split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert not ignored & (1 << (signal.SIGXFSZ - 1))


def test_spawn_from_a_thread() -> None:
    out: list[int] = []

    def go() -> None:
        with Targets() as t:
            t.spawn(["true"])
            t.release()
            _wait_gone(t)
            out.append(t.targets[0].status)

    th = threading.Thread(target=go)
    th.start()
    th.join(10)
    assert out == [0]


def test_grab_watches_without_stopping_and_leaves_the_process_alone() -> None:
    before = fds()
    victim = subprocess.Popen(["sleep", "0.5"])
    try:
        t = Targets()
        t.grab(victim.pid)
        assert t.pids == [victim.pid] and t.live == 1
        assert _state(victim.pid) in ("R", "S")  # not stopped
        t.release()  # nothing to release for -p
        _wait_gone(t)
        assert t.targets[0].status is None  # not ours to reap
        t.finish()
        assert fds() == before
        assert victim.wait(5) == 0
    finally:
        victim.kill()
        victim.wait()


def test_finish_leaves_a_grabbed_process_running() -> None:
    victim = subprocess.Popen(["sleep", "100"])
    try:
        t = Targets()
        t.grab(victim.pid)
        t.finish()
        time.sleep(0.1)
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_grab_a_missing_pid() -> None:
    with pytest.raises(LaunchError) as e:
        Targets().grab(2**22 + 1)
    assert str(e.value) == f"failed to grab pid {2**22 + 1}: No such process"


# --- the session: -c/-p on the eBPF engine, and the engine choice -------------------


def _bpf_ok() -> bool:
    from pydtrace.engines.ebpf.features import can_use_bpf

    return can_use_bpf()[0]


@pytest.fixture
def bpf() -> None:
    need(_bpf_ok(), "eBPF tracing is not allowed here")


def _trigger(tmp_path: Path, body: str) -> str:
    p = tmp_path / "trigger.py"
    p.write_text(body)
    return f"{sys.executable} {p}"


def test_c_on_ebpf_sees_the_command_from_its_first_call(tmp_path: Path, bpf: None) -> None:
    cmd = _trigger(tmp_path, "import os\nfor _ in range(7):\n    os.getppid()\n")
    r = pydtrace("-q", "-x", "engine=ebpf", "-c", cmd, "-n",
                 "syscall::getppid:entry /pid == $target/ { @ = count(); }"
                 ' syscall::execve:return /pid == $target/ { printf("exec %d\\n", arg0); }')  # fmt: skip
    assert r.status == 0, r.err
    assert r.err == ""
    assert r.out == "exec 0\n\n                7\n"


def test_c_on_ebpf_ends_when_the_command_exits_and_default_engine_is_ebpf(
    tmp_path: Path, bpf: None
) -> None:
    cmd = _trigger(tmp_path, "import os, time\nos.getppid()\ntime.sleep(0.3)\n")
    t0 = time.monotonic()
    # no syscall filter on $target: only the eBPF engine sees other processes
    r = pydtrace("-q", "-c", cmd, "-n", "syscall::getppid:entry { @[pid == $target] = count(); }"
                 ' tick-1ms { @t = count(); } END { printa("%d %@d\\n", @); }')  # fmt: skip
    assert time.monotonic() - t0 < 10
    assert r.status == 0, r.err
    assert "1 1" in r.out.splitlines()


def test_exit_in_begin_kills_the_command(tmp_path: Path, bpf: None) -> None:
    mark = tmp_path / "ran"
    cmd = _trigger(tmp_path, f"import time\ntime.sleep(0.5)\nopen({str(mark)!r}, 'w')\n")
    r = pydtrace("-q", "-x", "engine=ebpf", "-c", cmd, "-n", "BEGIN { exit(0); }")
    assert r.status == 0, r.err
    time.sleep(0.8)
    assert not mark.exists()


def test_p_on_ebpf_ends_when_the_process_exits(bpf: None) -> None:
    victim = subprocess.Popen(["sleep", "0.5"])
    try:
        r = pydtrace("-q", "-x", "engine=ebpf", "-p", str(victim.pid), "-n",
                     'syscall::getppid:entry { @ = count(); } END { printf("end %d\\n", $target); }')  # fmt: skip
        assert r.status == 0, r.err
        assert r.out.startswith(f"end {victim.pid}\n")
        assert victim.wait(5) == 0
    finally:
        victim.kill()
        victim.wait()


def test_c_messages_on_ebpf(bpf: None) -> None:
    r = pydtrace(
        "-x", "engine=ebpf", "-c", "/nonexistent-pydtrace-cmd", "-n", "syscall::read:entry"
    )
    assert (r.status, r.out, r.err) == (
        1, "", "pydtrace: failed to execute /nonexistent-pydtrace-cmd: No such file or directory\n",
    )  # fmt: skip
    r = pydtrace("-x", "engine=ebpf", "-p", str(2**22 + 1), "-n", "syscall::read:entry")
    assert (r.status, r.err) == (1, f"pydtrace: failed to grab pid {2**22 + 1}: No such process\n")


def test_unlowered_program_is_refused_by_name_never_run_elsewhere(
    tmp_path: Path, bpf: None
) -> None:
    cmd = _trigger(tmp_path, "import os\nos.getppid()\nos.getppid()\n")
    # strtoll() is not lowered on the eBPF engine
    src = ('proc:::exec-success /pid == $target/ { printf("exec %d\\n", strtoll("1")); }'
           " syscall::getppid:entry /pid == $target/ { @ = count(); }")  # fmt: skip
    r = pydtrace("-q", "-c", cmd, "-n", src)
    assert (r.status, r.out) == (1, "")
    assert r.err == (
        "pydtrace: could not enable tracing: the eBPF engine cannot compile strtoll() yet"
        " (line 1); -x engine=ptrace runs it on the user-space engine\n"
    )
    r = pydtrace("-q", "-x", "engine=ptrace", "-c", cmd, "-n", src)
    assert (r.status, r.err, r.out) == (0, "", "\n                2\n")
    r = pydtrace("-q", "-x", "engine=ebpf", "-c", cmd, "-n", src)
    assert (r.status, r.err) == (
        1,
        "pydtrace: could not enable tracing: the eBPF engine cannot compile strtoll() yet (line 1)\n",
    )  # fmt: skip


def test_forced_ptrace_without_target_is_refused() -> None:
    r = pydtrace("-x", "engine=ptrace", "-n", "syscall::read:entry { @ = count(); }")
    assert r.status == 1
    assert r.err.splitlines()[-1] == (
        "pydtrace: could not enable tracing: syscall probes need a target process (-c or -p) on the "
        "ptrace engine; system-wide tracing needs the eBPF engine"
    )


def test_no_engine_can_run_it_without_privilege(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from pydtrace.engines.ebpf import features
    from pydtrace.lang.errors import CompileError
    from pydtrace.session import Program, Session

    monkeypatch.setattr(features, "can_use_bpf", lambda: (False, "eBPF tracing needs root"))
    # nor tracefs (the tracefs engine would run it: tests/test_tracefs_engine.py)
    from pydtrace.engines.tracefs import instance

    monkeypatch.setattr(instance, "writable", lambda: False)
    out, err = io.StringIO(), io.StringIO()
    s = Session([Program("n", "syscall::read:entry { @ = count(); }")], out=out, err=err)
    with pytest.raises(CompileError) as e:
        s.run()
    assert e.value.message == (
        "could not enable tracing: syscall probes without -c or -p need the eBPF engine: "
        "eBPF tracing needs root"
    )
    s = Session(
        [Program("n", "syscall::read:entry")], settings=[("engine", "ebpf")], out=out, err=err
    )
    with pytest.raises(CompileError) as e:
        s.run()
    assert e.value.message == "could not enable tracing: eBPF tracing needs root"
    # BEGIN-only programs stay on the user engine
    s = Session([Program("n", "BEGIN { trace(1 + 1); exit(0); }")], settings=[("quiet", None)],
                out=out, err=err, testing=True)  # fmt: skip
    assert s.run() == 0
    assert type(s.engine).__name__ == "UserEngine"
    assert out.getvalue() == "2\n"


def _run_until(s: object, poke) -> int:
    """Run a session in a thread, calling poke() until it returns."""
    box: dict = {}

    def go() -> None:
        try:
            box["status"] = s.run()  # type: ignore[attr-defined]
        except Exception as e:  # shown by the assertion below
            box["error"] = e

    th = threading.Thread(target=go)
    th.start()
    deadline = time.monotonic() + 20
    while th.is_alive() and time.monotonic() < deadline:
        poke()
        time.sleep(0.01)
    th.join(5)
    assert "error" not in box, box.get("error")
    return box["status"]


def test_default_engine_is_ebpf_and_refuses_what_it_cannot_lower(bpf: None) -> None:
    import io

    from pydtrace import session
    from pydtrace.session import Program, Session

    me = threading.get_native_id()
    for expr, engine, value in (
        ("2 * 3", "EbpfEngine", "6"),
        ('strtoll("12")', None, "12"),  # not lowered: refused
    ):
        # a syscall probe and no -c/-p: only the eBPF engine can run it, but for
        # one not lowered the user engine would refuse; the message is eBPF's
        out, err = io.StringIO(), io.StringIO()
        s = Session([Program("n", f"syscall::getppid:entry /tid == {me}/ {{ trace({expr}); exit(0); }}")],
                    settings=[("quiet", None)], out=out, err=err, testing=True)  # fmt: skip
        s.compile()
        if engine == "EbpfEngine":
            assert _run_until(s, os.getppid) == 0
            assert (type(s.engine).__name__, out.getvalue()) == (engine, value + "\n")
        else:
            with pytest.raises(session.CompileError) as e:
                s.run()
            assert e.value.message == (
                "could not enable tracing: the eBPF engine cannot compile strtoll() yet (line 1)"
            )
        # BEGIN-only: eBPF too; one it cannot lower is refused with a hint
        out = io.StringIO()
        s = Session([Program("n", f"BEGIN {{ trace({expr}); exit(0); }}")], settings=[("quiet", None)],
                    out=out, err=io.StringIO(), testing=True)  # fmt: skip
        if engine == "EbpfEngine":
            assert s.run() == 0
            assert (type(s.engine).__name__, out.getvalue()) == (engine, value + "\n")
        else:
            with pytest.raises(session.CompileError) as e:
                s.run()
            assert e.value.message == (
                "could not enable tracing: the eBPF engine cannot compile strtoll() yet (line 1);"
                " -x engine=ptrace runs it on the user-space engine"
            )


def test_c_with_a_begin_only_program_runs(tmp_path: Path, bpf: None) -> None:
    r = pydtrace("-q", "-c", "true", "-n", 'BEGIN { printf("%d\\n", $target > 0); }')
    assert (r.status, r.out, r.err) == (0, "1\n\n", "")


def test_disassembly_goes_to_stderr_and_the_program_runs(bpf: None) -> None:
    r = pydtrace("-S", "-q", "-n", "BEGIN { trace(5); exit(0); }")
    assert r.status == 0
    assert r.out == "5\n"
    assert r.err.startswith("\nDisassembly of dt_1 (dtrace:::BEGIN):\n   0: ")
    assert "exit" in r.err
    e = pydtrace("-S", "-e", "-q", "-n", "BEGIN { trace(5); exit(0); }")
    assert (e.status, e.out, e.err) == (0, "", r.err)


def _children() -> list[str]:
    out = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as f:
            out += f.read().split()
    return out


def test_session_on_ebpf_leaves_no_fd_and_no_child(tmp_path: Path, bpf: None) -> None:
    import io

    from pydtrace.session import Program, Session

    cmd = _trigger(tmp_path, "import os\nfor _ in range(3):\n    os.getppid()\n")
    before, kids = fds(), _children()
    for src in ("syscall::getppid:entry /pid == $target/ { @ = count(); }",  # ends with the command
                "BEGIN { exit(0); }",  # ends before the command is released: it is killed
                'syscall::getppid:entry /pid == $target/ { exit(0); }'):  # fmt: skip
        out = io.StringIO()
        s = Session([Program("n", src)], settings=[("engine", "ebpf"), ("quiet", None)],
                    out=out, err=io.StringIO(), testing=True, commands=[cmd])  # fmt: skip
        s.compile()
        status: list[int] = []
        th = threading.Thread(target=lambda s=s, status=status: status.append(s.run()))
        th.start()
        th.join(20)
        assert status == [0]
        assert fds() == before and _children() == kids, src
    assert out.getvalue() == "\n"


def test_engine_pragma_cannot_move_ptrace_targets_to_ebpf(bpf: None) -> None:
    r = pydtrace(
        "-x",
        "engine=ptrace",
        "-c",
        "/bin/true",
        "-n",
        "#pragma D option engine=ebpf\nBEGIN { exit(0); }",
    )
    assert (r.status, r.err.splitlines()[-1]) == (
        1, "pydtrace: could not enable tracing: with -c or -p, -x engine=ebpf must be set on the command line",
    )  # fmt: skip


def test_trace_api_reads_aggregations_from_the_ebpf_engine(bpf: None) -> None:
    from pydtrace import trace

    r = trace(
        'BEGIN { @n["x"] = count(); @s["y"] = sum(5); exit(0); }',
        options={"engine": "ebpf"},
        quiet=True,
    )
    assert (r.status, r.aggregations, r.errors) == (0, {"@n": {("x",): 1}, "@s": {("y",): 5}}, "")
