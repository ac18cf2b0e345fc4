"""The proc provider, curpsinfo, destructive actions, job control and
privileges on the ptrace engine, with trigger programs built at test time."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from conftest import compile_c as cc
from conftest import need, ptrace_works

SRC = str(Path(__file__).resolve().parents[1] / "src")
NOBODY = {"user": 65534, "group": 65534, "extra_groups": []}


@pytest.fixture(autouse=True)
def _kernel() -> None:
    need(sys.platform == "linux" and ptrace_works(), "ptrace with PTRACE_SEIZE unavailable")


def pydtrace(*args: str, **kw) -> list[str]:
    return [sys.executable, "-m", "pydtrace", "-x", "engine=ptrace", *args]


def run(*args: str, timeout: float = 30, **kw) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run(pydtrace(*args), capture_output=True, text=True, env=env,
                          timeout=timeout, **kw)  # fmt: skip


def script(tmp: Path, body: str) -> str:
    p = tmp / "trigger.py"
    p.write_text(textwrap.dedent(body))
    return f"{sys.executable} {p}"


def wait_for(pred, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def stopped(pid: int) -> bool:
    """In a group stop: 'T', or 't' while a tracer keeps it there (PTRACE_LISTEN)."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rfind(")") + 2] in "Tt"


def traced(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        return any(
            line.split() != ["TracerPid:", "0"] for line in f if line.startswith("TracerPid:")
        )


PROC_TREE = """
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void on_usr1(int s) { (void)s; }
static void *nothing(void *a) { return a; }
int main(void) {
    signal(SIGUSR1, on_usr1);
    pthread_t t;
    pthread_create(&t, 0, nothing, 0);
    pthread_join(t, 0);
    pid_t c = fork();
    if (c == 0) {
        execl("/nonexistent-pydtrace", "x", (char *)0);
        execl("/bin/true", "true", (char *)0);
        _exit(1);
    }
    waitpid(c, 0, 0);
    kill(getpid(), SIGUSR1);
    return 0;
}
"""

PROC_D = """
proc::: { printf("%d %s %s", pid == $target, execname, probename); }
proc:::exec { printf(" %s", args[0]); }
proc:::exec-failure { printf(" %d", args[0]); }
proc:::create { printf(" %d", args[0]->pr_ppid == pid); }
proc:::lwp-create { printf(" %d %d", args[0]->pr_lwpid != tid, args[1]->pr_pid == pid); }
proc:::signal-send { printf(" %d %d %d", args[2], args[1]->pr_pid == pid, args[0]->pr_lwpid == pid); }
proc:::signal-handle { printf(" %d", args[0]); }
proc:::exit { printf(" %d", args[0]); }
proc::: { printf("\\n"); }
"""


def test_proc_probes_of_a_process_tree(tmp_path: Path) -> None:
    exe = cc(tmp_path, "tree", PROC_TREE, "-pthread")
    r = run("-q", "-c", exe, "-n", PROC_D)
    assert r.returncode == 0, r.stderr
    base = os.path.basename(exe)
    assert r.stdout == (
        f"1 {base} lwp-create 1 1\n"
        f"1 {base} lwp-start\n"
        f"1 {base} lwp-exit\n"
        f"1 {base} create 1\n"
        f"0 {base} start\n"
        f"0 {base} lwp-start\n"  # a process's first thread: start, then lwp-start
        f"0 {base} exec /nonexistent-pydtrace\n"
        f"0 {base} exec-failure 2\n"
        f"0 {base} exec /bin/true\n"
        "0 true exec-success\n"
        "0 true lwp-exit\n"  # its last thread: lwp-exit, then exit
        "0 true exit 1\n"
        f"1 {base} signal-send 10 1 1\n"
        f"1 {base} signal-handle 10\n"
        f"1 {base} lwp-exit\n"
        f"1 {base} exit 1\n\n"
    )


def test_proc_exit_reason_of_a_killed_process(tmp_path: Path) -> None:
    cmd = script(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    r = run("-q", "-c", cmd, "-n", 'proc:::exit { printf("%d\\n", args[0]); }')
    assert (r.returncode, r.stdout) == (0, "2\n\n")  # CLD_KILLED


def test_proc_probes_listed_with_argument_types() -> None:
    r = run("-lv", "-n", "proc:::signal-send", "-c", "/bin/true")
    assert r.returncode == 0, r.stderr
    assert "\t\targs[0]: lwpsinfo_t *\n\t\targs[1]: psinfo_t *\n\t\targs[2]: int\n" in r.stdout


def test_curpsinfo_of_the_traced_process() -> None:
    r = run(
        "-q",
        "-c",
        "/bin/echo hello world",
        "-n",
        'syscall::write:entry { printf("[%s|%s|%d|%d]\\n", curpsinfo->pr_psargs, '
        "curpsinfo->pr_fname, curpsinfo->pr_argc, curlwpsinfo->pr_lwpid == tid); }",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[/bin/echo hello world|echo|3|1]\nhello world\n\n"


def test_raise_signals_the_traced_thread(tmp_path: Path) -> None:
    cmd = script(
        tmp_path,
        """
        import os, signal, time
        got = []
        signal.signal(signal.SIGUSR2, lambda s, f: got.append(s))
        os.getppid()
        time.sleep(0.2)
        print("got", got, flush=True)
        """,
    )
    d = 'syscall::getppid:entry /pid == $target/ { raise(SIGUSR2); printf("raised\\n"); }'
    r = run("-wq", "-c", cmd, "-n", d)
    assert (r.returncode, r.stdout) == (0, "raised\ngot [12]\n\n")
    r = run("-q", "-c", cmd, "-n", d)
    assert r.returncode == 1
    assert r.stderr == "pydtrace: could not enable tracing: Destructive actions not allowed\n"


def test_chill_delays_the_traced_thread(tmp_path: Path) -> None:
    cmd = script(
        tmp_path,
        """
        import os, time
        t = time.monotonic()
        os.getppid()
        print(time.monotonic() - t >= 0.2, flush=True)
        """,
    )
    d = "syscall::getppid:entry /pid == $target/ { chill(200000000); }"
    r = run("-wq", "-c", cmd, "-n", d)
    assert (r.returncode, r.stdout) == (0, "True\n\n")


def _started(tmp_path: Path, body: str, d: str, *opts: str) -> tuple[subprocess.Popen, int]:
    """pydtrace -c a Python trigger that writes its pid to a file first."""
    pidfile = tmp_path / "pid"
    cmd = script(
        tmp_path, f"import os\nopen({str(pidfile)!r}, 'w').write(str(os.getpid()))\n" + body
    )
    env = dict(os.environ, PYTHONPATH=SRC)
    # A process group of their own, whose parent (this test) is in another
    # group of the same session: not orphaned, so the kernel does not
    # discard SIGTSTP as it does for orphaned groups, however pytest was run.
    proc = subprocess.Popen(pydtrace("-q", *opts, "-c", cmd, "-n", d), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=os.setpgrp)  # fmt: skip
    wait_for(lambda: pidfile.exists() and pidfile.read_text() != "")
    return proc, int(pidfile.read_text())


def test_stop_action_stops_the_process_until_sigcont(tmp_path: Path) -> None:
    body = "os.getppid()\nprint('resumed', flush=True)\n"
    d = 'syscall::getppid:entry /pid == $target/ { stop(); printf("stopped\\n"); }'
    proc, pid = _started(tmp_path, body, d, "-w")
    try:
        wait_for(lambda: stopped(pid))
        time.sleep(0.3)
        assert stopped(pid)  # pydtrace keeps it in its group stop
        os.kill(pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert (proc.returncode, out) == (0, "stopped\nresumed\n\n"), err


@pytest.mark.parametrize("sig", [signal.SIGSTOP, signal.SIGTSTP])
def test_group_stop_and_continue(tmp_path: Path, sig: int) -> None:
    go = tmp_path / "go"
    body = f"""
import time
while not os.path.exists({str(go)!r}):
    time.sleep(0.01)
os.getppid()
print("done", flush=True)
"""
    d = 'syscall::getppid:entry /pid == $target/ { printf("getppid\\n"); }'
    proc, pid = _started(tmp_path, body, d)
    try:
        os.kill(pid, sig)
        wait_for(lambda: stopped(pid))
        time.sleep(0.3)
        assert stopped(pid)  # stays stopped while traced
        os.kill(pid, signal.SIGCONT)
        wait_for(lambda: not stopped(pid))
        go.write_text("")
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert (proc.returncode, out) == (0, "getppid\ndone\n\n"), err


def test_exec_from_a_thread_that_is_not_the_leader(tmp_path: Path) -> None:
    exe = cc(
        tmp_path,
        "threxec",
        """
        #include <pthread.h>
        #include <unistd.h>
        static void *run(void *a) {
            execl("/bin/echo", "echo", "from-thread", (char *)0);
            return a;
        }
        int main(void) {
            pthread_t t;
            pthread_create(&t, 0, run, 0);
            pthread_join(t, 0);
            return 3;
        }
        """,
        "-pthread",
    )
    d = (
        'proc:::exec-success { printf("exec %s %d\\n", execname, pid == $target); } '
        'syscall::write:entry /pid == $target/ { printf("write %d\\n", tid == pid); }'
    )
    r = run("-q", "-c", exe, "-n", d)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "exec echo 1\nwrite 1\nfrom-thread\n\n"


def _nobody_can_run_python() -> str:
    python = "/usr/bin/python3"
    need(os.path.exists(python), "no /usr/bin/python3 for an unprivileged run")
    return python


def test_unprivileged_user_traces_own_command() -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to become an ordinary user")  # the suite runs as root in CI
    python = _nobody_can_run_python()
    env = dict(os.environ, PYTHONPATH=SRC)
    r = subprocess.run(
        [python, "-m", "pydtrace", "-x", "engine=ptrace", "-q", "-c", "/bin/echo hi", "-n",
         'syscall::write:entry { printf("%d %d\\n", uid, arg2); }'],
        capture_output=True, text=True, env=env, timeout=30, cwd="/", **NOBODY,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout == "65534 3\nhi\n\n"


def test_setuid_binary_runs_without_privilege_under_an_ordinary_tracer() -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to make a setuid binary")
    python = _nobody_can_run_python()
    tmp = Path(tempfile.mkdtemp(prefix="pydtrace-suid-"))
    try:
        os.chmod(tmp, 0o755)
        exe = cc(
            tmp,
            "euid",
            """
            #include <stdio.h>
            #include <unistd.h>
            int main(void) { printf("euid %d\\n", (int)geteuid()); return 0; }
            """,
        )
        os.chmod(exe, 0o4755)
        env = dict(os.environ, PYTHONPATH=SRC)
        r = subprocess.run(
            [python, "-m", "pydtrace", "-x", "engine=ptrace", "-q", "-c", exe, "-n",
             'syscall::geteuid:return { printf("geteuid %d\\n", arg0); }'],
            capture_output=True, text=True, env=env, timeout=30, cwd="/", **NOBODY,
        )  # fmt: skip
        # The kernel refuses set-user-ID to a traced program (and to one under
        # no_new_privs): it runs as the user, and tracing goes on.
        assert r.returncode == 0, r.stderr
        assert r.stdout == "geteuid 65534\neuid 65534\n\n"
        untraced = subprocess.run([exe], capture_output=True, text=True, **NOBODY)
        assert untraced.stdout == "euid 0\n"  # the binary really is set-user-ID root
    finally:
        shutil.rmtree(tmp)


def test_several_commands_and_target_is_the_first() -> None:
    r = run(
        "-q",
        "-c",
        "/bin/echo a",
        "-c",
        "/bin/echo b",
        "-n",
        'proc:::exit { printf("%d %d\\n", pid == $target, args[0]); }',
    )
    # the two commands run at the same time: their lines may interleave
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split("\n")) == ["", "", "0 1", "1 1", "a", "b"]


def test_several_processes_grabbed_until_all_exit() -> None:
    a = subprocess.Popen(["sleep", "30"])
    b = subprocess.Popen(["sleep", "30"])
    env = dict(os.environ, PYTHONPATH=SRC)
    d = 'proc:::exit { printf("%d\\n", pid); }'
    proc = subprocess.Popen(
        pydtrace("-q", "-p", str(a.pid), "-p", str(b.pid), "-n", d),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        wait_for(lambda: traced(a.pid) and traced(b.pid))
        a.terminate()
        a.wait()
        time.sleep(0.3)
        assert proc.poll() is None  # b is still traced
        b.terminate()
        b.wait()
        out, err = proc.communicate(timeout=20)
    finally:
        for p in (a, b, proc):
            p.kill()
    assert (proc.returncode, out) == (0, f"{a.pid}\n{b.pid}\n\n"), err


def test_the_last_thread_fires_exit_though_another_is_not_reaped_yet() -> None:
    """A thread that has had its exit stop but whose death a busy tracer has
    not reaped yet is no longer one of its process's threads: the last one's
    exit stop fires lwp-exit, then exit (before, exit was lost)."""
    from types import SimpleNamespace

    from pydtrace.engines.user.ptrace.tracer import Process, Thread, Tracer

    fired: list[tuple[str, int, list[int]]] = []
    sink = SimpleNamespace(proc=lambda name, t, args: fired.append((name, t.tid, args)))
    proc = Process(10**7)  # tids no process has: their exit status reads as 0
    main, other = Thread(10**7, proc), Thread(10**7 + 1, proc)
    tracer = SimpleNamespace(threads={main.tid: main, other.tid: other}, sink=sink)
    Tracer._exiting(tracer, other)  # its exit stop; reaped later
    Tracer._exiting(tracer, main)
    assert fired == [
        ("lwp-exit", other.tid, []),
        ("lwp-exit", main.tid, []),
        ("exit", main.tid, [1]),
    ]
