"""The proc provider on the eBPF engine (system-wide, raw tracepoints;
engines/ebpf/providers/proc.py): every probe on a process tree built at test time,
exact arguments, curpsinfo/curlwpsinfo, and the same program on the ptrace
engine (differential)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import bpf_maps_ok, need, ptrace_works, pydtrace
from conftest import compile_c as cc


@pytest.fixture(autouse=True)
def _kernel() -> None:
    need(bpf_maps_ok(), "needs root and bpf(2)")
    need(os.path.exists("/sys/kernel/btf/vmlinux"), "no kernel BTF")


TREE = """
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void on_usr1(int s) { (void)s; }
static void *nothing(void *a) { return a; }
static const char missing[] = "/nonexistent-pydtrace", truebin[] = "/bin/true";
int main(void) {
    signal(SIGUSR1, on_usr1);
    pthread_t t;
    pthread_create(&t, 0, nothing, 0);
    pthread_join(t, 0);
    pid_t c = fork();
    if (c == 0) {
        /* exec's probe reads the path without faulting: make its page present */
        const char *volatile p = missing, *volatile q = truebin;
        volatile char x = p[0] + q[0];
        (void)x;
        execl(missing, "x", (char *)0);
        execl(truebin, "true", (char *)0);
        _exit(1);
    }
    waitpid(c, 0, 0);
    int fds[2], up[2];
    char b = 0;
    pipe(fds);
    pipe(up);
    pid_t d = fork();
    if (d == 0) {
        write(up[1], &b, 1);
        read(fds[0], &b, 1);
        _exit(0);
    }
    read(up[0], &b, 1);
    kill(d, SIGTERM);
    waitpid(d, 0, 0);
    kill(getpid(), SIGUSR1);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    sigprocmask(SIG_BLOCK, &s, 0);
    kill(getpid(), SIGUSR2);
    sigwaitinfo(&s, 0);
    return 3;
}
"""

PROC_D = """
proc::: /progenyof($target)/ { printf("%d %s %s", pid == $target, execname, probename); }
proc:::exec /progenyof($target)/ { printf(" %s", args[0]); }
proc:::exec-failure /progenyof($target)/ { printf(" %d", args[0]); }
proc:::create /progenyof($target)/ { printf(" %d", args[0]->pr_ppid == pid); }
proc:::lwp-create /progenyof($target)/ {
    printf(" %d %d", args[0]->pr_lwpid != tid, args[1]->pr_pid == pid);
}
proc:::signal-send /progenyof($target)/ {
    printf(" %d %d %d", args[2], args[1]->pr_pid == pid, args[0]->pr_lwpid == pid);
}
proc:::signal-handle /progenyof($target)/ { printf(" %d", args[0]); }
proc:::signal-clear /progenyof($target)/ { printf(" %d", args[0]); }
proc:::exit /progenyof($target)/ { printf(" %d", args[0]); }
proc::: /progenyof($target)/ { printf("\\n"); }
proc:::exit /pid == $target/ { exit(0); }
"""


def _tree_events(tmp_path: Path, *engine: str) -> tuple[str, str]:
    exe = cc(tmp_path, "tree", TREE, "-pthread")
    d = tmp_path / "proc.d"
    d.write_text(PROC_D)
    r = pydtrace(*engine, "-q", "-s", str(d), "-c", exe)
    assert r.status == 0, r.err
    return r.out, os.path.basename(exe)


def test_every_proc_probe_on_a_process_tree(tmp_path: Path) -> None:
    out, base = _tree_events(tmp_path, "-x", "engine=ebpf")
    assert out == (  # (the -c child is traced from its exec on: not its exec itself)
        f"1 {base} lwp-create 1 1\n"
        f"1 {base} lwp-start\n"
        f"1 {base} lwp-exit\n"
        f"1 {base} create 1\n"
        f"0 {base} start\n"
        f"0 {base} lwp-start\n"  # a process's first thread starts too (after start)
        f"0 {base} exec /nonexistent-pydtrace\n"
        f"0 {base} exec-failure 2\n"  # ENOENT
        f"0 {base} exec /bin/true\n"
        "0 true exec-success\n"
        "0 true lwp-exit\n"  # the last thread exits too (before exit)
        "0 true exit 1\n"  # CLD_EXITED
        "0 true signal-discard\n"  # its SIGCHLD: the parent leaves it SIG_DFL
        f"1 {base} create 1\n"
        f"0 {base} start\n"
        f"0 {base} lwp-start\n"
        f"1 {base} signal-send 15 0 0\n"  # to the child
        f"0 {base} signal-handle 15\n"  # fatal: the kernel delivers it as SIGKILL
        f"0 {base} lwp-exit\n"
        f"0 {base} exit 2\n"  # CLD_KILLED
        f"0 {base} signal-discard\n"
        f"1 {base} signal-send 10 1 1\n"
        f"1 {base} signal-handle 10\n"
        f"1 {base} signal-send 12 1 1\n"
        f"1 {base} signal-clear 12\n"  # taken by sigwaitinfo
        f"1 {base} lwp-exit\n"
        f"1 {base} exit 1\n\n"
    )


def test_same_proc_events_on_the_ptrace_engine(tmp_path: Path) -> None:
    """Differential: the probes both engines fire give the same lines; eBPF
    also sees signal-clear, signal-discard and the fatal signal's
    signal-handle, which the ptrace engine does not."""
    need(ptrace_works(), "ptrace unavailable")
    ebpf, base = _tree_events(tmp_path, "-x", "engine=ebpf")
    user, _ = _tree_events(tmp_path, "-x", "engine=ptrace")
    only_ebpf = (
        f"1 {base} signal-clear 12",
        f"0 {base} signal-handle 15",
        "0 true signal-discard",  # a ptraced parent gets every signal: none is discarded
        f"0 {base} signal-discard",
    )
    lines = [x for x in ebpf.splitlines() if x not in only_ebpf]
    assert lines == user.splitlines()


def test_exit_reasons_and_exec_failure_errno(tmp_path: Path) -> None:
    exe = cc(tmp_path, "why", """
        #include <signal.h>
        #include <stdlib.h>
        #include <sys/wait.h>
        #include <unistd.h>
        int main(void) {
            static const char dir[] = "/tmp";
            const char *volatile p = dir;
            volatile char x = p[0];
            (void)x;
            pid_t c = fork();
            if (c == 0) { execl(dir, "d", (char *)0); _exit(7); }
            waitpid(c, 0, 0);
            if (fork() == 0) abort();
            wait(0);
            return 0;
        }
    """)  # fmt: skip
    r = pydtrace(
        "-q", "-c", exe,
        "-n", 'proc:::exit /progenyof($target) && pid != $target/ { printf("exit %d\\n", args[0]); }',
        "-n", 'proc:::exec-failure /progenyof($target)/ { printf("fail %d\\n", args[0]); }',
        "-n", "proc:::exit /pid == $target/ { exit(0); }",
    )  # fmt: skip
    assert r.status == 0, r.err
    # EACCES for a directory; _exit(7) is CLD_EXITED; abort() CLD_KILLED or,
    # with a core pattern that dumps, CLD_DUMPED
    lines = r.out.splitlines()
    assert lines[:2] == ["fail 13", "exit 1"]
    assert lines[2] in ("exit 2", "exit 3") and lines[3:] == [""]


def test_curpsinfo_and_curlwpsinfo_fields() -> None:
    r = pydtrace(
        "-q", "-c", "/bin/echo hello world",
        "-n", "syscall::write:entry /pid == $target/ { "
        'printf("[%s|%s|%d|%d|%d|%d|%d|%d|%c|%d|%d|%d]\\n", curpsinfo->pr_psargs, '
        "curpsinfo->pr_fname, curpsinfo->pr_pid == pid, curpsinfo->pr_ppid == ppid, "
        "curpsinfo->pr_uid == uid, curpsinfo->pr_gid == gid, curpsinfo->pr_dmodel, "
        "curlwpsinfo->pr_lwpid == tid, curlwpsinfo->pr_sname, curlwpsinfo->pr_onpro == cpu, "
        "curlwpsinfo->pr_pri, curpsinfo->pr_nlwp); }",
    )  # fmt: skip
    assert r.status == 0, r.err
    assert r.out == "hello world\n[/bin/echo hello world|echo|1|1|1|1|2|1|R|1|20|1]\n\n"


def test_proc_probes_listed_with_types() -> None:
    r = pydtrace("-lv", "-n", "proc:::signal-clear")
    assert r.status == 0, r.err
    assert "\t\targs[0]: int\n" in r.out
    r = pydtrace("-l", "-P", "proc")
    assert [x.split()[-1] for x in r.out.splitlines()[1:]] == [
        "create", "exec", "exec-failure", "exec-success", "lwp-create", "lwp-exit", "exit",
        "signal-clear", "signal-discard", "signal-handle", "signal-send", "start", "lwp-start",
    ]  # fmt: skip


def test_signal_discard(tmp_path: Path) -> None:
    """A signal its target ignores (SIG_IGN, or SIG_DFL of SIGCHLD) is
    discarded as it is sent: signal-discard, with signal-send's arguments."""
    exe = cc(tmp_path, "disc", """
        #include <signal.h>
        #include <unistd.h>
        int main(void) {
            signal(SIGUSR2, SIG_IGN);
            kill(getpid(), SIGUSR2);
            kill(getpid(), SIGCHLD);
            kill(getpid(), 0);
            return 0;
        }
    """)  # fmt: skip
    r = pydtrace("-q", "-c", exe, "-n", "proc:::signal-discard /args[1]->pr_pid == $target/"
                 ' { printf("%d %d %d\\n", args[2], pid == $target, args[0]->pr_lwpid == $target); }')  # fmt: skip
    assert r.status == 0, r.err
    assert r.out == "12 1 1\n17 1 1\n\n"
