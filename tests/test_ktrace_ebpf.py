"""The eBPF ktrace recorder (ktrace/record_ebpf.py) on the real kernel:
record() on small programs of our own, then the exact lines kdump prints
(addresses masked: they move)."""

from __future__ import annotations

import difflib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import bpf_maps_ok, need
from ktrace_programs import BOTH, IO

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = dict(os.environ, PYTHONPATH=SRC)
USAGE = (
    "usage: ktrace [-aBdi] [-f trfile] [-t trstr] [--engine ebpf|ptrace] command [args ...]\n"
    "       ktrace [-aCcdi] [-f trfile] [-g pgid | -p pid] [-t trstr] [--engine ebpf|ptrace]\n"
)


def ktrace(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "pydtrace.cli.ktrace", *args], capture_output=True,
                       text=True, env=ENV, timeout=60, stdin=subprocess.DEVNULL, **kw)  # fmt: skip
    assert "Traceback" not in p.stderr
    return p


@pytest.fixture(autouse=True)
def _kernel() -> None:
    need(sys.platform == "linux" and bpf_maps_ok(), "BPF unavailable (needs root and bpf(2))")
    from pydtrace.engines.ebpf.features import has_ringbuf

    need(has_ringbuf(), "no BPF ring buffers in this kernel")


@pytest.fixture()
def tmp() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="ktrace-ebpf-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def cc(tmp: Path, name: str, source: str) -> str:
    need(shutil.which("cc") is not None, "no C compiler")
    src = tmp / f"{name}.c"
    src.write_text(textwrap.dedent(source))
    exe = tmp / name
    subprocess.run(["cc", "-O1", "-no-pie", "-o", str(exe), str(src)], check=True)
    return str(exe)


def record(out: Path, points: str, command: list[str] | None = None, **kw) -> int:
    from pydtrace.ktrace import format as F
    from pydtrace.ktrace import record_ebpf
    from pydtrace.ktrace.recording import RecordOptions

    stop = kw.pop("stop", None) or threading.Event()
    opts = RecordOptions(points=points, command=command, engine="ebpf", **kw)
    with F.Writer(str(out)) as w:
        return record_ebpf.record(opts, w, stop)


def kdump(*args: str, mask: bool = True) -> list[str]:
    p = subprocess.run([sys.executable, "-m", "pydtrace.cli.kdump", *args], capture_output=True,
                       text=True, env=ENV, timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    return [re.sub(r"0x[0-9a-f]{5,}", "ADDR", x) for x in lines] if mask else lines


def line(pid: int, comm: str, tag: str, rest: str = "") -> str:
    return f"{pid:6d} {comm:<8} {tag:<4}  {rest}"


def block(lines: list[str], want: list[str]) -> None:
    n = len(want)
    for i in range(len(lines) - n + 1):
        if lines[i : i + n] == want:
            return
    raise AssertionError("not found:\n" + "\n".join(want) + "\n--- in:\n" + "\n".join(lines))


def pid_of(lines: list[str], comm: str) -> int:
    return next(int(x.split()[0]) for x in lines if x.split()[1:2] == [comm])


def fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_open_read_write_close_with_data_in_three_forms(tmp: Path) -> None:
    exe = cc(tmp, "io", IO)
    data = tmp / "data.txt"
    data.write_text("hello")
    out = tmp / "t.out"
    before = fds()
    assert record(out, "cni", [exe, str(data)]) == 7
    assert fds() == before  # every map, program and attachment closed
    lines = kdump("-f", str(out))
    pid = pid_of(lines, "io")
    L = lambda tag, rest="": line(pid, "io", tag, rest)  # noqa: E731
    assert lines[:2] == [
        line(pid, "ktrace", "CALL", "execve(ADDR,ADDR,ADDR)"),
        line(pid, "ktrace", "NAMI", f'"{exe}"'),
    ]
    assert lines[2] == L("RET", "execve 0")
    block(lines, [
        L("CALL", "openat(AT_FDCWD,ADDR,0<O_RDONLY>)"),
        L("NAMI", f'"{data}"'),
        L("RET", "openat 3"),
        L("CALL", "read(3,ADDR,0x40)"),
        L("GIO", "fd 3 read 5 bytes"),
        '       "hello"',
        L("RET", "read 5"),
        L("CALL", "write(1,ADDR,0x5)"),
        L("GIO", "fd 1 wrote 5 bytes"),
        '       "hello"',
        L("RET", "write 5"),
        L("CALL", "close(3)"),
        L("RET", "close 0"),
        L("CALL", "openat(AT_FDCWD,ADDR,0<O_RDONLY>)"),
        L("NAMI", '"/nonexistent/file"'),
        L("RET", "openat -1 errno 2 No such file or directory"),
        L("CALL", "writev(1,ADDR,2)"),
        L("GIO", "fd 1 wrote 2 bytes"),
        '       "ab"',
        L("GIO", "fd 1 wrote 3 bytes"),
        '       "cde"',
        L("RET", "writev 5"),
    ])  # fmt: skip
    block(lines, [L("CALL", "sendmsg(3,ADDR,0)"), L("GIO", "fd 3 wrote 3 bytes"),
                  '       "xyz"', L("RET", "sendmsg 3")])  # fmt: skip
    assert lines[-1] == L("CALL", "exit_group(7)")


def test_gio_is_cut_at_maxdata_in_page_records(tmp: Path) -> None:
    exe = cc(tmp, "big", """
        #include <string.h>
        #include <unistd.h>
        static char buf[10000];
        int main(void) {
            memset(buf, 'a', sizeof buf);
            return write(1, buf, sizeof buf) != sizeof buf;
        }
    """)  # fmt: skip
    out = tmp / "t.out"
    with open(os.devnull, "w") as null:
        saved = os.dup(1)
        os.dup2(null.fileno(), 1)
        try:
            assert record(out, "i", [exe], maxdata=9000) == 0
        finally:
            os.dup2(saved, 1)
            os.close(saved)
    from pydtrace.ktrace import format as F

    recs = [r for r in F.read_records(out.read_bytes()) if r.type == F.GENIO]
    gio = [F.parse_genio(r.payload) for r in recs if r.comm == "big"]
    assert [(fd, w, len(d)) for fd, w, d in gio][-3:] == [(1, True, 4096), (1, True, 4096),
                                                           (1, True, 808)]  # fmt: skip
    assert all(d == b"a" * len(d) for _, _, d in gio[-3:])


def test_default_points_exec_args_exit(tmp: Path) -> None:
    out = tmp / "t.out"
    assert record(out, "cnistuxf", ["/bin/sh", "-c", "exit 5"]) == 5
    lines = kdump("-f", str(out))
    pid = pid_of(lines, "ktrace")
    assert lines[:6] == [
        line(pid, "ktrace", "CALL", "execve(ADDR,ADDR,ADDR)"),
        line(pid, "ktrace", "NAMI", '"/bin/sh"'),
        line(pid, "ktrace", "ARGS"),
        '\t[0] = "/bin/sh"',
        '\t[1] = "-c"',
        '\t[2] = "exit 5"',
    ]
    assert lines[6] == line(pid, "sh", "RET", "execve 0")
    assert lines[-2:] == [line(pid, "sh", "CALL", "exit_group(5)"),
                          line(pid, "sh", "EXIT", "status 5")]  # fmt: skip


def test_exec_args_and_env(tmp: Path) -> None:
    prog = tmp / "ex.py"
    prog.write_text("import os\nos.execve('/bin/true', ['true', 'a b', 'c'], {'K': 'v'})\n")
    out = tmp / "t.out"
    assert record(out, "xX", [sys.executable, str(prog)]) == 0
    lines = kdump("-f", str(out))
    comm = Path(sys.executable).name[:15]
    pid = pid_of(lines, comm)
    block(lines, [line(pid, comm, "ARGS"), '\t[0] = "true"', '\t[1] = "a b"', '\t[2] = "c"',
                  line(pid, comm, "ENV"), '\t[0] = "K=v"'])  # fmt: skip
    assert {x.split()[2] for x in lines if not x.startswith("\t")} == {"ARGS", "ENV"}


SIG = """
    #include <signal.h>
    #include <unistd.h>
    void handler(int s) { (void)s; }
    int main(void) {
        struct sigaction sa = {0};
        sa.sa_handler = handler;
        sigaction(SIGUSR1, &sa, 0);
        kill(getpid(), SIGUSR1);
        kill(getpid(), SIGTERM);
        return 0;
    }
"""


def test_signal_caught_and_default(tmp: Path) -> None:
    exe = cc(tmp, "sig", SIG)
    nm = subprocess.run(["nm", exe], capture_output=True, text=True).stdout
    addr = int(next(x.split()[0] for x in nm.splitlines() if x.endswith(" handler")), 16)
    out = tmp / "t.out"
    assert record(out, "sf", [exe]) == 128 + signal.SIGTERM
    lines = kdump("-f", str(out), mask=False)
    pid = pid_of(lines, "sig")
    assert lines == [
        line(pid, "sig", "PSIG", f"SIGUSR1 caught handler={addr:#x} mask=0<>"),
        line(pid, "sig", "PSIG", "SIGTERM SIG_DFL"),
        line(pid, "sig", "EXIT", "killed SIGTERM"),
    ]


FORK = """
    #include <sys/wait.h>
    #include <unistd.h>
    int main(void) {
        pid_t c = fork();
        if (c == 0) _exit(3);
        int st;
        waitpid(c, &st, 0);
        return WEXITSTATUS(st) + 1;
    }
"""


def test_fork_and_exit_of_a_child(tmp: Path) -> None:
    exe = cc(tmp, "fk", FORK)
    out = tmp / "t.out"
    assert record(out, "f", [exe]) == 4
    lines = kdump("-f", str(out))
    pid = pid_of(lines, "fk")
    child = int(lines[0].split()[-1])
    assert lines == [
        line(pid, "fk", "FORK", f"child {child}"),
        line(child, "fk", "EXIT", "status 3"),
        line(pid, "fk", "EXIT", "status 4"),
    ]


def test_without_inherit_the_child_is_not_traced(tmp: Path) -> None:
    exe = cc(tmp, "fk", FORK)
    out = tmp / "t.out"
    assert record(out, "cf", [exe], inherit=False) == 4
    lines = kdump("-f", str(out))
    pid = pid_of(lines, "fk")
    assert {int(x.split()[0]) for x in lines} == {pid}
    child = int(next(x for x in lines if "FORK" in x).split()[-1])
    block(
        lines, [line(pid, "fk", "FORK", f"child {child}"), line(pid, "fk", "RET", f"clone {child}")]
    )
    assert lines[-1] == line(pid, "fk", "EXIT", "status 4")


def test_threads_are_recorded_with_their_tids(tmp: Path) -> None:
    exe = cc(tmp, "th", """
        #include <pthread.h>
        #include <unistd.h>
        void *run(void *a) { (void)a; write(1, "t", 1); return 0; }
        int main(void) {
            pthread_t t;
            pthread_create(&t, 0, run, 0);
            pthread_join(t, 0);
            return 0;
        }
    """)  # fmt: skip
    out = tmp / "t.out"
    with open(os.devnull, "w") as null:
        saved = os.dup(1)
        os.dup2(null.fileno(), 1)
        try:
            assert record(out, "cf", [exe]) == 0
        finally:
            os.dup2(saved, 1)
            os.close(saved)
    from pydtrace.ktrace import format as F

    recs = list(F.read_records(out.read_bytes()))
    fork = next(r for r in recs if r.type == F.FORK)
    cpid, ctid, flags = F.parse_fork(fork.payload)
    assert cpid == fork.pid and ctid != fork.pid and flags & 0x10000
    writes = [r for r in recs if r.type == F.SYSCALL and F.parse_syscall(r.payload)[0] == 1]
    assert [(r.pid, r.tid) for r in writes] == [(fork.pid, ctid)]
    assert recs[-1].type == F.EXIT and recs[-1].pid == fork.pid


def test_point_filters(tmp: Path) -> None:
    exe = cc(tmp, "io", IO)
    data = tmp / "data.txt"
    data.write_text("hello")
    from pydtrace.ktrace import format as F

    for points, types in (("n", {F.NAMEI}), ("c", {F.SYSCALL, F.SYSRET}), ("i", {F.GENIO}),
                          ("f", {F.EXIT}), ("x", {F.EXECARGS})):  # fmt: skip
        out = tmp / f"{points}.out"
        with open(os.devnull, "w") as null:
            saved = os.dup(1)
            os.dup2(null.fileno(), 1)
            try:
                assert record(out, points, [exe, str(data)]) == 7
            finally:
                os.dup2(saved, 1)
                os.close(saved)
        recs = list(F.read_records(out.read_bytes()))
        assert recs[0].type == F.START
        assert F.StartInfo.parse(recs[0].payload).values["engine"] == "ebpf"
        assert {r.type for r in recs[1:]} == types, points


def test_user_records(tmp: Path) -> None:
    prog = tmp / "u.py"
    prog.write_text("from pydtrace.ktrace import utrace\nutrace('mylabel', b'hello')\n")
    out = tmp / "t.out"
    os.environ["PYTHONPATH"] = SRC
    try:
        assert record(out, "u", [sys.executable, str(prog)]) == 0
    finally:
        del os.environ["PYTHONPATH"]
    lines = kdump("-f", str(out))
    comm = Path(sys.executable).name[:15]
    assert lines == [line(pid_of(lines, comm), comm, "USER", "mylabel: 5 bytes"), '       "hello"']


def test_context_switches(tmp: Path) -> None:
    out = tmp / "t.out"
    assert record(out, "w", ["/bin/sleep", "0.05"]) == 0
    lines = kdump("-f", str(out))
    pid = pid_of(lines, "sleep")
    csw = [x for x in lines if x.split()[0] == str(pid) and "CSW" in x]
    assert line(pid, "sleep", "CSW", 'stop kernel "sleep"') in csw, lines
    assert line(pid, "sleep", "CSW", 'resume kernel ""') in csw, lines


def test_a_running_process_until_stop(tmp: Path) -> None:
    proc = subprocess.Popen(["/bin/sh", "-c", "while :; do sleep 0.02; done"])
    try:
        out = tmp / "t.out"
        stop = threading.Event()
        threading.Timer(0.5, stop.set).start()
        t0 = time.monotonic()
        assert record(out, "cf", None, pids=[proc.pid], stop=stop) == 0
        assert time.monotonic() - t0 < 5
        assert proc.poll() is None  # left running
        lines = kdump("-f", str(out))
        assert line(proc.pid, "sh", "CALL", "wait4(-1,ADDR,0<>,0)") in lines
        assert any(x.startswith(f"{proc.pid:6d} sh       FORK  child ") for x in lines)
    finally:
        proc.kill()
        proc.wait()


def test_no_such_pid_and_no_such_command(tmp: Path) -> None:
    from pydtrace.ktrace.recording import RecordError

    with pytest.raises(RecordError, match="^exec of '/nonexistent/cmd' failed: No such file"):
        record(tmp / "a.out", "c", ["/nonexistent/cmd"])
    with pytest.raises(RecordError, match="^pid 999999999: No such process$"):
        record(tmp / "b.out", "c", None, pids=[999999999])


@pytest.mark.parametrize(
    ("args", "err"),
    [
        (["no-such-command-xyz"], "ktrace: exec of 'no-such-command-xyz' failed: No such file or directory\n"),
        (["-f", "/nonexistent/dir/t.out", "true"], "ktrace: /nonexistent/dir/t.out: No such file or directory\n"),
        (["-p", "999999999"], "ktrace: pid 999999999: No such process\n"),
        (["-g", "999999999"], "ktrace: pgid 999999999: No such process\n"),
        (["-t", "cq", "true"], "ktrace: unknown facility in cq\n" + USAGE),
    ],
)  # fmt: skip
def test_bad_input_on_the_cli(tmp: Path, args: list[str], err: str) -> None:
    p = ktrace("--engine", "ebpf", *args, cwd=str(tmp))  # ktrace.out goes there
    assert (p.returncode, p.stdout, p.stderr) == (1, "", err)


def test_an_ordinary_user_may_not_use_the_ebpf_engine(tmp: Path) -> None:
    tmp.chmod(0o777)
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    p = subprocess.run([python, "-m", "pydtrace.cli.ktrace", "--engine", "ebpf", "-f",
                        str(tmp / "t.out"), "true"], capture_output=True, text=True, env=ENV,
                       timeout=60, user=65534, group=65534, extra_groups=[], cwd=str(tmp))  # fmt: skip
    assert p.returncode == 1
    assert p.stderr.startswith("ktrace: the ebpf engine cannot run here: eBPF tracing needs root")
    assert "Traceback" not in p.stderr


def test_lost_records_are_counted_on_the_next_record(tmp: Path, monkeypatch) -> None:
    exe = cc(tmp, "many", """
        #include <unistd.h>
        int main(void) {
            for (int i = 0; i < 20000; i++) getppid();
            return 0;
        }
    """)  # fmt: skip
    from pydtrace.ktrace import format as F
    from pydtrace.ktrace import record_ebpf

    full = tmp / "full.out"
    assert record(full, "c", [exe]) == 0
    n = sum(1 for r in F.read_records(full.read_bytes()) if r.type != F.START)
    assert n > 40000
    assert all(r.lost == 0 for r in F.read_records(full.read_bytes()))
    monkeypatch.setattr(record_ebpf, "RING_BYTES", 4096)
    small = tmp / "small.out"
    assert record(small, "c", [exe]) == 0
    recs = [r for r in F.read_records(small.read_bytes()) if r.type != F.START]
    lost = sum(r.lost for r in recs)
    # every event is either in the file or counted: drops after a CPU's last
    # record come in LOST records at the end
    kept = [r for r in recs if r.type != F.LOST]
    assert lost > 0 and len(kept) + lost == n
    assert all(r.payload == b"" and r.pid == -1 for r in recs if r.type == F.LOST)
    raw = small.read_bytes()
    dropped = [r for r in recs if r.lost]
    assert all(int.from_bytes(raw[r.offset : r.offset + 4], "little") & F.DROP for r in dropped)


def test_drops_at_the_end_come_in_lost_records(tmp: Path, monkeypatch) -> None:
    """A ring nobody reads while the process runs: once it is full (CALL and
    RET records fill 4 KiB to less than one RET) every later record is
    dropped, and no later record carries the count, so LOST records do."""
    from pydtrace.ktrace import format as F
    from pydtrace.ktrace import record_ebpf

    def no_reading(s, targets, writer, stop) -> None:
        while record_ebpf._alive(s.maps["traced"]):
            time.sleep(0.02)

    exe = cc(tmp, "few", """
        #include <unistd.h>
        int main(void) {
            for (int i = 0; i < 2000; i++) getppid();
            return 0;
        }
    """)  # fmt: skip
    full = tmp / "full.out"
    assert record(full, "c", [exe]) == 0
    n = sum(1 for r in F.read_records(full.read_bytes()) if r.type != F.START)
    monkeypatch.setattr(record_ebpf, "RING_BYTES", 4096)
    monkeypatch.setattr(record_ebpf, "_loop", no_reading)
    out = tmp / "t.out"
    assert record(out, "c", [exe]) == 0
    recs = [r for r in F.read_records(out.read_bytes()) if r.type != F.START]
    ends = [r for r in recs if r.type == F.LOST]
    assert ends and recs[-len(ends) :] == ends
    assert sum(r.lost for r in recs) + len(recs) - len(ends) == n
    lines = kdump("-f", str(out))
    assert f"    -1 ktrace   Events dropped. ({ends[-1].lost} lost)" in lines[-2:]


def test_pid_with_descendants_and_process_group(tmp: Path) -> None:
    target = subprocess.Popen(["/bin/sh", "-c", "sleep 0.6; exit 0"], start_new_session=True)
    try:
        time.sleep(0.2)
        kids = Path(f"/proc/{target.pid}/task/{target.pid}/children").read_text().split()
        out = tmp / "t.out"
        assert record(out, "f", None, pids=[target.pid], descend=True) == 0
        target.wait()
        assert kdump("-f", str(out)) == [line(int(kids[0]), "sleep", "EXIT", "status 0"),
                                         line(target.pid, "sh", "EXIT", "status 0")]  # fmt: skip
    finally:
        target.kill()
        target.wait()
    target = subprocess.Popen(["/bin/sh", "-c", "sleep 0.4; sleep 0.1"], start_new_session=True)
    try:
        time.sleep(0.2)
        out = tmp / "g.out"
        assert record(out, "f", None, pgid=target.pid) == 0
        lines = kdump("-f", str(out))
        child = int(next(x for x in lines if "FORK" in x).split()[-1])
        assert lines[-3:] == [line(target.pid, "sh", "FORK", f"child {child}"),
                              line(child, "sleep", "EXIT", "status 0"),
                              line(target.pid, "sh", "EXIT", "status 0")]  # fmt: skip
    finally:
        target.kill()
        target.wait()


def test_structures(tmp: Path) -> None:
    exe = cc(tmp, "st", """
        #include <poll.h>
        #include <sys/stat.h>
        #include <time.h>
        int main(void) {
            struct stat st;
            stat("/", &st);
            struct timespec ts = {0, 1000};
            nanosleep(&ts, 0);
            struct pollfd p[2] = {{0, POLLIN, 0}, {1, POLLOUT, 0}};
            poll(p, 2, 0);
            return 0;
        }
    """)  # fmt: skip
    out = tmp / "t.out"
    assert record(out, "t", [exe]) == 0
    lines = kdump("-f", str(out))
    pid = pid_of(lines, "st")
    assert line(pid, "st", "STRU", "struct timespec { 0.000001000 }") in lines
    st = os.stat("/")
    stat = [x for x in lines if "struct stat {" in x and f"ino={st.st_ino}," in x]
    assert stat and f"dev={st.st_dev}," in stat[-1]
    assert lines[-1].startswith(line(pid, "st", "STRU", "struct pollfd"))


def _per_process(lines: list[str]) -> list[list[str]]:
    """Each process's records in order, pids numbered by first appearance and
    what moves between runs masked: addresses, brk/mmap results, atimes."""
    seen: dict[str, int] = {}
    for x in lines:
        if x[:6].strip().isdigit():
            seen.setdefault(x.split()[0], len(seen))
    out: list[list[str]] = [[] for _ in seen]
    cur: list[str] = []
    for x in lines:
        if not x[:6].strip().isdigit():  # a continuation line (data, strings)
            cur.append(x)
            continue
        n = seen[x.split()[0]]
        cur = out[n]
        x = f"P{n}" + x[6:]
        for p, k in seen.items():
            # a pid, not a struct field that happens to hold the same number
            x = re.sub(rf"(?<![=.\w]){p}\b|(?<=pid=){p}\b", f"P{k}", x)
        x = re.sub(r"\b(P\d+)/0x[0-9a-f]+", r"\1", x)
        x = re.sub(r"\b\d{5,}/0x[0-9a-f]+|\b\d{7,}\b", "N", x)  # brk, mmap
        x = re.sub(r"(atime=)[\d.]+", r"\1T", x)
        cur.append(re.sub(r"0x[0-9a-f]{5,}", "ADDR", x))
    return out


def test_same_program_on_both_engines(tmp: Path) -> None:
    """The eBPF and ptrace recorders give the same kdump lines per process
    (only the order between processes may differ)."""
    exe = cc(tmp, "both", BOTH)
    data = tmp / "data.txt"
    data.write_text("hello\n")
    got = {}
    for engine in ("ebpf", "ptrace"):
        out = tmp / f"{engine}.out"
        p = ktrace("--engine", engine, "-t", "+X", "-f", str(out), exe, str(data))
        assert p.returncode == 7, p.stderr
        assert p.stdout == "hello\nabcdechild\n"
        procs = _per_process(kdump("-f", str(out), mask=False))
        assert len(procs) == 2
        got[engine] = procs
    e, t = got["ebpf"], got["ptrace"]
    # the command's own execve CALL and NAMI before its ARGS, under ktrace's
    # comm (as OpenBSD's), and the child's return from fork, on both
    assert [x.split()[1:3] for x in e[0][:2]] == [["ktrace", "CALL"], ["ktrace", "NAMI"]]
    assert e[1][0] == t[1][0] == "P1 both     RET   clone 0"
    # SIGCHLD (ignored by default) reaches a parent only because it is
    # ptraced; the kernel discards it for any other: neither records it
    assert not any("PSIG  SIGCHLD" in x for x in e[0] + t[0])
    for a, b in zip(e, t):
        assert a == b, "\n".join(difflib.unified_diff(a, b, "ebpf", "ptrace", lineterm=""))
    assert "P0 both     RET   openat -1 errno 2 No such file or directory" in e[0]
    # each message of recvmmsg/sendmmsg is recorded, cut at its own length
    k = e[0].index("P0 both     RET   sendmmsg 2")
    assert e[0][k - 6 : k] == [
        "P0 both     GIO   fd 5 wrote 3 bytes", '       "one"',
        "P0 both     GIO   fd 5 wrote 2 bytes", '       "-1"',
        "P0 both     GIO   fd 5 wrote 3 bytes", '       "two"',
    ]  # fmt: skip
    k = e[0].index("P0 both     RET   recvmmsg 2")
    assert e[0][k - 4 : k] == [
        "P0 both     GIO   fd 6 read 5 bytes", '       "one-1"',
        "P0 both     GIO   fd 6 read 3 bytes", '       "two"',
    ]  # fmt: skip
    assert "P1 both     EXIT  status 3" in e[1]
    assert e[0][-1] == "P0 both     EXIT  status 7"


def _wait_for(path: Path, rtype: int, timeout: float = 10) -> None:
    from pydtrace.ktrace import format as F

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and any(
            getattr(r, "type", None) == rtype for r in F.read_records(path.read_bytes())
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"no record of type {rtype} in {path}")


def test_cli_attach_then_stop_with_C(tmp: Path) -> None:
    """ktrace -p on the eBPF engine (the default as root) returns once
    attached; ktrace -C stops it; the process runs on untouched."""
    target = subprocess.Popen(["/bin/sh", "-c", "while :; do sleep 0.02; done"])
    try:
        out = tmp / "t.out"
        p = ktrace("-t", "cf", "-f", str(out), "-p", str(target.pid))
        assert (p.returncode, p.stderr) == (0, "")
        _wait_for(out, 32)  # FORK: records reach the file while it runs
        assert ktrace("-C").returncode == 0
        time.sleep(0.3)
        size = out.stat().st_size
        time.sleep(0.3)
        assert out.stat().st_size == size  # stopped
        assert target.poll() is None
        lines = kdump("-f", str(out))
        assert b"engine=ebpf" in out.read_bytes()
        assert any(x.startswith(f"{target.pid:6d} sh       FORK  child ") for x in lines)
    finally:
        target.kill()
        target.wait()
