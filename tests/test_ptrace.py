"""End-to-end tests of -c and -p over ptrace, on the real kernel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import need, ptrace_works

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(autouse=True)
def _kernel() -> None:
    need(sys.platform == "linux" and ptrace_works(), "ptrace with PTRACE_SEIZE unavailable")


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """pydtrace on the ptrace engine, whatever the default engine is."""
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run([sys.executable, "-m", "pydtrace", "-x", "engine=ptrace", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)  # fmt: skip


def script(tmp_path: Path, body: str) -> str:
    p = tmp_path / "trigger.py"
    p.write_text(textwrap.dedent(body))
    return f"{sys.executable} {p}"


def test_openat_path_and_errno(tmp_path: Path) -> None:
    cmd = script(
        tmp_path,
        """
        try:
            open("/nonexistent-pydtrace/x")
        except OSError:
            pass
    """,
    )
    r = run(
        "-q",
        "-c",
        cmd,
        "-n",
        """
        syscall::openat:entry /copyinstr(arg1) == "/nonexistent-pydtrace/x"/ { self->t = 1; }
        syscall::openat:return /self->t/ { printf("%d %d %d\\n", arg0, arg1, errno); self->t = 0; }
    """,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "-2 -2 2\n\n"


def test_count_every_syscall_and_target(tmp_path: Path) -> None:
    cmd = script(
        tmp_path,
        """
        import os
        for _ in range(3):
            os.getppid()
    """,
    )
    r = run(
        "-q",
        "-c",
        cmd,
        "-n",
        """
        syscall::getppid:entry /pid == $target/ { @n[probefunc] = count(); }
        syscall:::entry /pid != $target/ { @bad = count(); }
    """,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "\n  getppid                                                           3\n"


def test_fork_exec_chain_is_followed(tmp_path: Path) -> None:
    cmd = script(
        tmp_path,
        """
        import os
        pid = os.fork()
        if pid == 0:
            os.execv("/bin/sh", ["sh", "-c", "exit 3"])
        os.waitpid(pid, 0)
    """,
    )
    r = run(
        "-q",
        "-c",
        cmd,
        "-n",
        """
        proc:::exec-success { printf("exec %s child=%d\\n", execname, ppid == $target); }
        proc:::exit /pid != $target/ { printf("exit %d\\n", arg0); }
    """,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "exec sh child=1\nexit 1\n\n"


def test_threads_are_traced(tmp_path: Path) -> None:
    cmd = script(
        tmp_path,
        """
        import os, threading
        t = threading.Thread(target=lambda: os.getppid())
        t.start(); t.join()
    """,
    )
    r = run(
        "-q",
        "-c",
        cmd,
        "-n",
        """
        syscall::getppid:entry { printf("%d\\n", tid != pid); }
    """,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1\n\n"


def test_signal_is_delivered_unchanged(tmp_path: Path) -> None:
    cmd = script(
        tmp_path,
        """
        import os, signal
        got = []
        signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
        os.kill(os.getpid(), signal.SIGUSR1)
        os.write(1, b"handled %d\\n" % got[0])
    """,
    )
    r = run("-q", "-c", cmd, "-n", 'proc:::signal-handle { printf("sig %d\\n", arg0); }')
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["sig", "10", "handled", "10"]


def test_tracee_killed_by_sigkill(tmp_path: Path) -> None:
    cmd = script(
        tmp_path,
        """
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)
    """,
    )
    r = run("-q", "-c", cmd, "-n", 'syscall::kill:entry { printf("kill %d\\n", arg1); }')
    assert r.returncode == 0, r.stderr
    assert r.stdout == "kill 9\n\n"


def test_exec_failure_message() -> None:
    r = run("-c", "/nonexistent-pydtrace-cmd", "-n", "syscall::read:entry")
    assert r.returncode == 1
    assert r.stderr == (
        "pydtrace: failed to execute /nonexistent-pydtrace-cmd: No such file or directory\n"
    )


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def test_finish_leaves_no_killed_tracee_stopped() -> None:
    """Tracer.finish() kills a -c command and waits until it is gone. A killed
    tracee still stops at PTRACE_EVENT_EXIT, each of its threads: a stop left
    unresumed kept it in traced-stop for as long as the tracer lived (the
    conftest's ptrace_works() left one /bin/true so per test module)."""
    from pydtrace.engines.user.ptrace.tracer import Tracer

    t = Tracer()
    held = t.spawn(["/bin/true"])
    t.release(t.targets[0], b"")  # held at its exec stop
    threaded = t.spawn([sys.executable, "-c", "import threading, time\nfor _ in range(3):\n"
                        "    threading.Thread(target=time.sleep, args=(60,)).start()\n"
                        "time.sleep(60)\n"])  # fmt: skip
    t.release(t.targets[1], b"")
    t.resume_held()
    while len([x for x in t.threads.values() if x.proc.pid == threaded]) < 4:
        assert t.step(block=True)  # each thread comes with a clone stop
    t.finish()
    for pid in (held, threaded):
        assert not os.path.exists(f"/proc/{pid}")


def test_attach_and_detach_leaves_process_running(tmp_path: Path) -> None:
    p = tmp_path / "loop.py"
    p.write_text("import os, time\nwhile True:\n    os.getppid()\n    time.sleep(0.01)\n")
    victim = subprocess.Popen([sys.executable, str(p)])
    try:
        time.sleep(0.3)
        r = run(
            "-q",
            "-p",
            str(victim.pid),
            "-n",
            """
            syscall::getppid:entry /pid == $target/ { @n = count(); }
            syscall::getppid:entry /++i == 3/ { exit(0); }
        """,
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "3"
        time.sleep(0.1)
        st = _status(victim.pid)
        assert st["TracerPid"] == "0"
        assert st["State"][0] in "SR"
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_attach_refused_message() -> None:
    # an ordinary user may not trace another user's process: as root, drop to nobody
    victim = subprocess.Popen(["sleep", "30"])
    try:
        user = {"user": 65534, "group": 65534} if os.getuid() == 0 else {}
        # nobody cannot enter /root, where a version manager may keep our Python
        python = "/usr/bin/python3" if user else sys.executable
        env = dict(os.environ, PYTHONPATH=SRC)
        r = subprocess.run(
            [python, "-m", "pydtrace", "-x", "engine=ptrace", "-p", str(victim.pid), "-n", "syscall::read:entry"],
            capture_output=True, text=True, env=env, timeout=30, cwd="/", **user,
        )  # fmt: skip
        assert r.returncode == 1
        assert r.stderr.startswith(
            f"pydtrace: failed to grab pid {victim.pid}: Operation not permitted\n"
        )
        assert "Traceback" not in r.stderr
        assert victim.poll() is None  # untouched
    finally:
        victim.kill()
        victim.wait()


def test_grab_missing_pid() -> None:
    r = run("-p", "999999999", "-n", "syscall::read:entry")
    assert r.returncode == 1
    assert r.stderr == "pydtrace: failed to grab pid 999999999: No such process\n"


def test_ctrl_c_runs_end_and_kills_command(tmp_path: Path) -> None:
    started = tmp_path / "started"
    cmd = script(
        tmp_path,
        f"""
        import os, time
        os.getppid()
        open({str(started)!r}, "w").close()
        while True:
            os.getppid()
            time.sleep(0.01)
    """,
    )
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pydtrace", "-x", "engine=ptrace", "-q", "-c", cmd, "-n",
         "syscall::getppid:entry { @n = count(); } END { printf(\"end\\n\"); }"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    # Ctrl-C once the command runs (it is released only once tracing has begun)
    end = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < end and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    lines = out.split("\n")
    assert lines[0] == "end"
    assert int(lines[2]) > 0


@pytest.mark.parametrize("filtered", [True, False])
def test_no_stop_is_lost_on_a_busy_tracee(filtered: bool) -> None:
    # dd makes exactly one write(2) per block; every entry must have its return
    probes = "syscall::write:entry" if filtered else 'syscall:::entry /probefunc == "write"/'
    ret = "syscall::write:return" if filtered else 'syscall:::return /probefunc == "write"/'
    r = run(
        "-q",
        "-c",
        "dd if=/dev/zero of=/dev/null bs=1 count=5000 status=none",
        "-n",
        f'{probes} {{ @e = count(); }} {ret} {{ @r = count(); }} END {{ printa("%@d ", @e); printa("%@d\\n", @r); }}',
    )
    assert (r.returncode, r.stdout) == (0, "5000 5000\n\n")


def test_entry_probes_on_every_syscall_count_exactly() -> None:
    # no return probes: one seccomp stop per call, resumed with PTRACE_CONT
    r = run(
        "-q",
        "-c",
        "dd if=/dev/zero of=/dev/null bs=1 count=4000 status=none",
        "-n",
        'syscall:::entry { @[probefunc] = count(); } END { printa("%s %@d\\n", @); }',
    )
    counts = dict(line.split() for line in r.stdout.split("\n") if line.strip())
    assert r.returncode == 0
    assert counts["write"] == "4000"
    assert int(counts["read"]) >= 4000
    assert "execve" not in counts  # dd's own exec happens before tracing starts, as in dtrace


def _traced_tasks() -> dict[int, tuple[int, str]]:
    """Every task now: tid -> (its tracer's tid, its state letter)."""
    out = {}
    for pid in (d for d in os.listdir("/proc") if d.isdigit()):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                st = _status(int(tid)) if tid == pid else _task_status(pid, tid)
            except (OSError, KeyError):
                continue
            out[int(tid)] = (int(st["TracerPid"]), st["State"][0])
    return out


def _task_status(pid: str, tid: str) -> dict[str, str]:
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def _descendants(pid: int) -> set[int]:
    parents = {}
    for d in (d for d in os.listdir("/proc") if d.isdigit()):
        try:
            parents[int(d)] = int(_status(int(d))["PPid"])
        except (OSError, KeyError, ValueError):
            pass
    out, todo = set(), [pid]
    while todo:
        cur = todo.pop()
        kids = {p for p, pp in parents.items() if pp == cur}
        todo.extend(kids - out)
        out |= kids
    return out


def test_detach_in_the_middle_of_a_fork_leaves_nothing_traced_or_stopped() -> None:
    """Grab a shell that vforks in a tight loop (dash vforks for /bin/true)
    and detach at many moments: at random, just after a new child was
    reported, and just after a fork call's entry, with its event stop (and
    the child's first stop) left unseen. Detaching in the middle of a fork
    left the new child attached and stopped, and a vfork parent, waiting in
    the kernel for that child, could not be stopped to be detached: the
    tracer waited for it forever (it hung test_a_running_process_until_stop)."""
    import random
    import threading

    from pydtrace.engines.user.ptrace.tracer import Tracer
    from pydtrace.probes.syscalls import table

    forks = {
        table().by_name[n].nr for n in ("fork", "vfork", "clone", "clone3") if n in table().by_name
    }

    class Sink:  # notes a fork call's entry, reports nothing
        forking = False

        def entry(self, t: object, nr: int, args: object) -> None:
            self.forking = self.forking or nr in forks

        def exit(self, *args: object) -> None:
            pass

        proc = exit

        def wants(self, kind: str) -> bool:
            return False

    class Catcher(Tracer):
        created = 0

        def on_created(self, t: object, c: object) -> None:
            self.created += 1

    target = subprocess.Popen(["/bin/sh", "-c", "while :; do /bin/true; done"])
    errors: list[str] = []
    cycles, done = 200, [0]

    def cycles_of_grab_and_detach() -> None:
        me = threading.get_native_id()
        rnd = random.Random(16)
        try:
            for i in range(cycles):
                sink = Sink()
                tracer = Catcher(sink)
                tracer.grab(target.pid)
                moment = i % 3  # 0: at random, 1: after a new child, 2: after a fork's entry
                end = time.monotonic() + (rnd.uniform(0, 0.005) if moment == 0 else 0.05)
                while time.monotonic() < end:
                    if tracer.step(block=False) and (
                        (moment == 1 and tracer.created) or (moment == 2 and sink.forking)
                    ):
                        break
                if moment == 2:
                    time.sleep(0.001)  # the fork event stop comes, unseen
                tracer.finish()
                left = {tid: v for tid, v in _traced_tasks().items() if v[0] == me}
                if left:
                    errors.append(f"cycle {i}: still traced by the tracer: {left}")
                    return
                done[0] = i + 1
        except Exception as e:  # noqa: BLE001 - reported by the test thread
            errors.append(f"{type(e).__name__}: {e}")

    worker = threading.Thread(target=cycles_of_grab_and_detach, daemon=True)
    try:
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), f"the tracer hung in a detach, cycle {done[0]}"
        assert not errors, errors[0]
        tasks = _traced_tasks()
        assert target.poll() is None  # it runs on
        for pid in {target.pid} | _descendants(target.pid):
            if pid in tasks:
                assert tasks[pid] == (0, tasks[pid][1]), f"{pid} still traced"
                assert tasks[pid][1] not in "tT", f"{pid} left stopped"
    finally:
        target.kill()  # a hung tracer: this lets a vfork parent die, and the worker go on
        target.wait(timeout=10)


def test_a_held_child_holds_no_other_tracer_s_gate() -> None:
    """Two tracers of one process (two Sessions, each in its own thread),
    each holding a -c child before exec: the first child execs as soon as its
    own tracer releases it, whatever the second is doing. The second child
    holds a copy of the first one's gate (forked while it was open): a child
    that read its filter up to EOF waited for the second session, and two
    sessions releasing at once each waited for the other."""
    import threading

    need(ptrace_works(), "ptrace")
    from pydtrace.engines.user.ptrace.tracer import Tracer

    first_held, second_held, released, done = (threading.Event() for _ in range(4))
    errors: list[BaseException] = []

    def first() -> None:  # a tracer is used from the thread that made its tracees
        t = Tracer()
        try:
            t.spawn(["/bin/true"])
            first_held.set()
            second_held.wait(10)  # the second child is forked with our gate open
            t.release(t.targets[0], b"")
            released.set()
        except BaseException as e:
            errors.append(e)
        finally:
            t.finish()

    def second() -> None:
        t = Tracer()
        try:
            first_held.wait(10)
            t.spawn(["/bin/true"])
            second_held.set()
            done.wait(30)  # held until the first one is through
        except BaseException as e:
            errors.append(e)
        finally:
            t.finish()

    threads = [threading.Thread(target=f, daemon=True) for f in (first, second)]
    for x in threads:
        x.start()
    ok = released.wait(20)
    done.set()
    for x in threads:
        x.join(20)
    assert not errors, errors
    assert ok, "the first child waited for the second tracer"


def test_the_tracer_spins_less_for_a_tracee_that_computes_and_more_for_one_that_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tracer.step's busy waits: a spin that ends in a sleep halves the next
    one (down to SPIN_MIN), a stop caught while spinning doubles it (up to SPIN)."""
    from types import SimpleNamespace

    from pydtrace.engines.user.ptrace import tracer as T

    tr = T.Tracer()
    tr.spin = tr.spin_max = T.SPIN
    tr.handle = lambda *a: None  # type: ignore[method-assign]
    waits: list[int] = []
    ready_after = [None]  # non-blocking waits before a stop shows; None: it never does

    def waitid(idtype: int, ident: int, options: int) -> object:
        waits.append(options)
        nohang = [o for o in waits if o & os.WNOHANG]
        if options & os.WNOHANG and (ready_after[0] is None or len(nohang) < ready_after[0]):
            return None
        if ready_after[0] is None:
            raise ChildProcessError  # the blocking wait: no tracee left, step() returns
        return SimpleNamespace(si_pid=1 << 30, si_code=os.CLD_TRAPPED, si_status=signal.SIGSTOP)

    monkeypatch.setattr(T.os, "waitid", waitid)
    seen = []
    for _ in range(6):
        waits.clear()
        tr.step()
        seen.append((tr.spin, sum(1 for o in waits if o & os.WNOHANG)))
    assert seen == [(200, 401), (100, 201), (50, 101), (25, 51), (25, 26), (25, 26)]
    ready_after[0] = 3
    seen = []
    for _ in range(6):
        waits.clear()
        tr.step()
        seen.append(tr.spin)
    assert seen == [50, 100, 200, 400, 400, 400]
    tr.step(block=False)  # a look without waiting leaves the spin as it is
    assert tr.spin == 400


def test_tracer_threads_each_read_their_own_syscall_info() -> None:
    """get_syscall_info from two threads at once (two sessions of one
    process): each reads its own tracee's call, never the other's. Each
    thread stops a child of its own at the entry of getppid or getuid and
    reads it 20,000 times while the other does the same."""
    import threading

    from pydtrace.engines.user.ptrace import syscalls as sc
    from pydtrace.probes.syscalls import table

    calls = {"getppid": os.getppid, "getuid": os.getuid}
    numbers = {name: table().by_name[name].nr for name in calls}
    got: dict[str, set[tuple[int, int]]] = {}
    problems: list[BaseException] = []
    ready = threading.Barrier(2, timeout=30)

    def trace(name: str) -> None:
        child = -1
        try:
            # a tracee is traced by the thread that attached it
            child = os.fork()
            if child == 0:
                try:
                    sc.ptrace(0, 0)  # PTRACE_TRACEME
                    os.kill(os.getpid(), signal.SIGSTOP)
                    while True:
                        calls[name]()
                finally:
                    os._exit(0)
            os.waitpid(child, 0)
            sc.ptrace(sc.PTRACE_SETOPTIONS, child, 0, sc.O_TRACESYSGOOD | sc.O_EXITKILL)
            while True:  # on to the entry of its call
                sc.ptrace(sc.PTRACE_SYSCALL, child, 0, 0)
                os.waitpid(child, 0)
                info = sc.get_syscall_info(child)
                if info.op == sc.OP_ENTRY and info.nr == numbers[name]:
                    break
            ready.wait()
            seen = set()
            for _ in range(20_000):
                info = sc.get_syscall_info(child)
                seen.add((info.op, info.nr))
            got[name] = seen
        except BaseException as e:  # reported below
            problems.append(e)
            ready.abort()
        finally:
            if child > 0:
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)

    threads = [threading.Thread(target=trace, args=(n,)) for n in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not problems, problems
    assert got == {name: {(sc.OP_ENTRY, numbers[name])} for name in calls}
