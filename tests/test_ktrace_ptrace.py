"""ktrace on the ptrace engine: record small programs of our own, then check
the exact lines kdump prints for them (addresses masked: they move)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import need, ptrace_works
from ktrace_programs import IO

SRC = str(Path(__file__).resolve().parents[1] / "src")
NOBODY = {"user": 65534, "group": 65534, "extra_groups": []}
ENV = dict(os.environ, PYTHONPATH=SRC)
USAGE = (
    "usage: ktrace [-aBdi] [-f trfile] [-t trstr] [--engine ebpf|ptrace] command [args ...]\n"
    "       ktrace [-aCcdi] [-f trfile] [-g pgid | -p pid] [-t trstr] [--engine ebpf|ptrace]\n"
)


@pytest.fixture(autouse=True)
def _kernel() -> None:
    need(sys.platform == "linux" and ptrace_works(), "ptrace with PTRACE_SEIZE unavailable")


@pytest.fixture(params=["ptrace", "ebpf"])
def engine(request: pytest.FixtureRequest) -> str:
    """Both recorders, where a test holds for both."""
    from conftest import bpf_maps_ok

    if request.param == "ebpf":
        need(bpf_maps_ok(), "BPF unavailable (needs root and bpf(2))")
    return request.param


@pytest.fixture()
def tmp() -> Iterator[Path]:
    """A directory nobody can use too (pytest's own are private to root)."""
    d = Path(tempfile.mkdtemp(prefix="ktrace-test-"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def ktrace(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess[str]:
    # another user may not reach our interpreter (a root-only pyenv): use the system's
    python = (
        "/usr/bin/python3"
        if "user" in kw and os.path.exists("/usr/bin/python3")
        else sys.executable
    )
    p = subprocess.run([python, "-m", "pydtrace.cli.ktrace", *args], capture_output=True,
                       text=True, env=ENV, timeout=timeout, stdin=subprocess.DEVNULL, **kw)  # fmt: skip
    assert "Traceback" not in p.stderr
    return p


def kdump(*args: str, mask: bool = True) -> list[str]:
    """kdump's lines; addresses (hex of 5 digits or more) as ADDR when mask."""
    p = subprocess.run([sys.executable, "-m", "pydtrace.cli.kdump", *args], capture_output=True,
                       text=True, env=ENV, timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    return [re.sub(r"0x[0-9a-f]{5,}", "ADDR", x) for x in lines] if mask else lines


def cc(tmp: Path, name: str, source: str) -> str:
    need(shutil.which("cc") is not None, "no C compiler")
    src = tmp / f"{name}.c"
    src.write_text(textwrap.dedent(source))
    exe = tmp / name
    subprocess.run(["cc", "-O1", "-no-pie", "-o", str(exe), str(src)], check=True)
    exe.chmod(0o755)
    return str(exe)


def line(pid: int, comm: str, tag: str, rest: str = "") -> str:
    return f"{pid:6d} {comm:<8} {tag:<4}  {rest}"


def block(lines: list[str], want: list[str]) -> None:
    """`want` appears in `lines` as one contiguous run."""
    n = len(want)
    for i in range(len(lines) - n + 1):
        if lines[i : i + n] == want:
            return
    raise AssertionError("not found:\n" + "\n".join(want) + "\n--- in:\n" + "\n".join(lines))


def pid_of(lines: list[str], comm: str) -> int:
    return next(int(x.split()[0]) for x in lines if x.split()[1:2] == [comm])


def test_open_read_write_close_with_data_in_three_forms(tmp: Path) -> None:
    exe = cc(tmp, "io", IO)
    data = tmp / "data.txt"
    data.write_text("hello")
    out = tmp / "t.out"
    p = ktrace("--engine", "ptrace", "-t", "cni", "-f", str(out), exe, str(data))
    assert (p.returncode, p.stdout, p.stderr) == (7, "helloabcde", "")
    lines = kdump("-f", str(out))
    pid = pid_of(lines, "io")
    L = lambda tag, rest="": line(pid, "io", tag, rest)  # noqa: E731
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
    sendmsg = [x for x in lines if "sendmsg" in x or "xyz" in x]
    assert sendmsg == [L("CALL", "sendmsg(3,ADDR,0)"), '       "xyz"', L("RET", "sendmsg 3")]
    assert lines[lines.index(sendmsg[0]) + 1] == L("GIO", "fd 3 wrote 3 bytes")
    assert lines[-1] == L("CALL", "exit_group(7)")


def test_default_points_record_exit_and_args_of_the_command(tmp: Path) -> None:
    exe = cc(tmp, "io", IO)
    out = tmp / "t.out"
    p = ktrace("--engine", "ptrace", "-f", str(out), exe, "/nonexistent")
    assert p.returncode == 7
    lines = kdump("-f", str(out))
    pid = pid_of(lines, "io")
    # the command's exec, as OpenBSD's ktrace records its own exec of it
    assert lines[:6] == [
        line(pid, "ktrace", "CALL", "execve(ADDR,ADDR,ADDR)"),
        line(pid, "ktrace", "NAMI", f'"{exe}"'),
        line(pid, "ktrace", "ARGS"),
        f'\t[0] = "{exe}"',
        '\t[1] = "/nonexistent"',
        line(pid, "io", "RET", "execve 0"),
    ]
    assert lines[-2:] == [
        line(pid, "io", "CALL", "exit_group(7)"),
        line(pid, "io", "EXIT", "status 7"),
    ]


def test_exec_args_and_env(tmp: Path) -> None:
    prog = tmp / "ex.py"
    prog.write_text("import os\nos.execve('/bin/true', ['true', 'a b', 'c'], {'K': 'v'})\n")
    out = tmp / "t.out"
    p = ktrace("--engine", "ptrace", "-t", "xX", "-f", str(out), sys.executable, str(prog))
    assert p.returncode == 0, p.stderr
    lines = kdump("-f", str(out))
    pid = pid_of(lines, "ktrace")
    comm = Path(sys.executable).name[:15]
    block(lines, [line(pid, comm, "ARGS"), '\t[0] = "true"', '\t[1] = "a b"', '\t[2] = "c"',
                  line(pid, comm, "ENV"), '\t[0] = "K=v"'])  # fmt: skip
    assert {x.split()[2] for x in lines if not x.startswith("\t")} == {"ARGS", "ENV"}


SIG = """
    #include <signal.h>
    #include <stdio.h>
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
    p = ktrace("--engine", "ptrace", "-t", "sf", "-f", str(out), exe)
    assert (p.returncode, p.stderr) == (128 + signal.SIGTERM, "")
    lines = kdump("-f", str(out), mask=False)
    pid = pid_of(lines, "sig")
    assert lines == [
        line(pid, "sig", "PSIG", f"SIGUSR1 caught handler={addr:#x} mask=0<>"),
        line(pid, "sig", "PSIG", "SIGTERM SIG_DFL"),
        line(pid, "sig", "EXIT", "killed SIGTERM"),
    ]


def test_fork_and_exit_of_a_child(tmp: Path) -> None:
    exe = cc(tmp, "fk", """
        #include <sys/wait.h>
        #include <unistd.h>
        int main(void) {
            pid_t c = fork();
            if (c == 0) _exit(3);
            int st;
            waitpid(c, &st, 0);
            return WEXITSTATUS(st) + 1;
        }
    """)  # fmt: skip
    out = tmp / "t.out"
    p = ktrace("--engine", "ptrace", "-t", "f", "-f", str(out), exe)
    assert p.returncode == 4
    lines = kdump("-f", str(out))
    pid = pid_of(lines, "fk")
    child = int(lines[0].split()[-1])
    assert lines == [
        line(pid, "fk", "FORK", f"child {child}"),
        line(child, "fk", "EXIT", "status 3"),
        line(pid, "fk", "EXIT", "status 4"),
    ]


def test_point_filters_and_append_two_sessions(tmp: Path) -> None:
    exe = cc(tmp, "io", IO)
    data = tmp / "data.txt"
    data.write_text("hello")
    out = tmp / "t.out"
    assert ktrace("--engine", "ptrace", "-t", "n", "-f", str(out), exe, str(data)).returncode == 7
    first = kdump("-f", str(out))
    assert {x.split()[2] for x in first} == {"NAMI"}
    assert line(pid_of(first, "io"), "io", "NAMI", f'"{data}"') in first
    assert (
        ktrace("--engine", "ptrace", "-a", "-t", "i", "-f", str(out), exe, str(data)).returncode
        == 7
    )
    both = kdump("-f", str(out))
    assert both[: len(first)] == first
    rest = both[len(first) :]
    assert rest[0] == "    -1          STRT  "
    gio = [x for x in rest if "GIO" in x][-5:]  # the program's own, after ld.so's
    pid = pid_of(rest[1:], "io")
    assert gio == [line(pid, "io", "GIO", s) for s in ("fd 3 read 5 bytes", "fd 1 wrote 5 bytes",
                   "fd 1 wrote 2 bytes", "fd 1 wrote 3 bytes", "fd 3 wrote 3 bytes")]  # fmt: skip
    from pydtrace.ktrace import format as F

    recs = list(F.read_records(out.read_bytes()))
    assert [F.StartInfo.parse(r.payload).values["points"] for r in recs if r.type == F.START] == [
        "n",
        "i",
    ]


def test_user_records(tmp: Path) -> None:
    prog = tmp / "u.py"
    prog.write_text("from pydtrace.ktrace import utrace\nutrace('mylabel', b'hello')\n")
    out = tmp / "t.out"
    p = ktrace("--engine", "ptrace", "-t", "u", "-f", str(out), sys.executable, str(prog))
    assert p.returncode == 0, p.stderr
    lines = kdump("-f", str(out))
    comm = Path(sys.executable).name[:15]
    assert lines == [line(pid_of(lines, comm), comm, "USER", "mylabel: 5 bytes"), '       "hello"']


def _registered(*files: Path) -> list[int]:
    """The running recorders writing to these files (others may be running: other tests)."""
    from pydtrace.ktrace import control

    return [e.pid for e in control.entries() if e.file in {str(f) for f in files}]


def test_attach_to_a_running_process_then_stop_with_C(tmp: Path, engine: str) -> None:
    counter = tmp / "count"
    prog = tmp / "loop.py"
    prog.write_text(textwrap.dedent(f"""
        import time
        while True:
            with open({str(counter)!r}, "a") as f:
                f.write("x")
            time.sleep(0.02)
    """))  # fmt: skip
    target = subprocess.Popen([sys.executable, str(prog)])
    try:
        out = tmp / "t.out"
        t0 = time.monotonic()
        p = ktrace("--engine", engine, "-f", str(out), "-p", str(target.pid))
        assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
        assert time.monotonic() - t0 < 10
        assert len(_registered(out)) == 1
        time.sleep(0.5)
        assert ktrace("-C").returncode == 0
        assert _registered(out) == []
        status = Path(f"/proc/{target.pid}/status").read_text()
        assert "\nTracerPid:\t0\n" in status
        n1 = counter.stat().st_size
        time.sleep(0.3)
        assert counter.stat().st_size > n1  # it runs on, untraced
        assert target.poll() is None
        lines = kdump("-f", str(out))
        comm = Path(sys.executable).name[:15]
        assert line(target.pid, comm, "NAMI", f'"{counter}"') in lines
        assert any(re.fullmatch(r" *\d+ \S+ +CALL  write\(3,ADDR,0x1\)", x) for x in lines)
    finally:
        target.kill()
        target.wait()


def test_c_stops_only_the_named_recording(tmp: Path, engine: str) -> None:
    a = subprocess.Popen(["sleep", "30"])
    b = subprocess.Popen(["sleep", "30"])
    try:
        fa, fb = tmp / "a.out", tmp / "b.out"
        assert ktrace("--engine", engine, "-f", str(fa), "-p", str(a.pid)).returncode == 0
        assert ktrace("--engine", engine, "-f", str(fb), "-p", str(b.pid)).returncode == 0
        assert (len(_registered(fa)), len(_registered(fb))) == (1, 1)
        assert ktrace("-c", "-p", str(a.pid)).returncode == 0
        assert (len(_registered(fa)), len(_registered(fb))) == (0, 1)
        assert ktrace("-c", "-f", str(fb)).returncode == 0
        assert _registered(fa, fb) == []
        for p in (a, b):
            assert "\nTracerPid:\t0\n" in Path(f"/proc/{p.pid}/status").read_text()
            assert p.poll() is None
    finally:
        for p in (a, b):
            p.kill()
            p.wait()


def test_a_recording_ends_when_its_process_exits(tmp: Path, engine: str) -> None:
    target = subprocess.Popen(["sleep", "0.5"])
    out = tmp / "t.out"
    assert ktrace("--engine", engine, "-f", str(out), "-p", str(target.pid)).returncode == 0
    target.wait()
    end = time.monotonic() + 10
    while _registered(out) and time.monotonic() < end:
        time.sleep(0.05)
    assert _registered(out) == []
    lines = kdump("-f", str(tmp / "t.out"))
    assert lines[-1] == line(target.pid, "sleep", "EXIT", "status 0")


def test_an_ordinary_user_traces_their_own_command(tmp: Path) -> None:
    out = tmp / "n.out"
    p = ktrace(
        "--engine", "ptrace", "-t", "cf", "-f", str(out), "/bin/sh", "-c", "exit 5", **NOBODY
    )
    assert (p.returncode, p.stderr) == (5, "")
    lines = kdump("-f", str(out))
    pid = pid_of(lines, "sh")
    assert lines[-2:] == [
        line(pid, "sh", "CALL", "exit_group(5)"),
        line(pid, "sh", "EXIT", "status 5"),
    ]
    assert os.stat(out).st_uid == 65534


@pytest.mark.parametrize(
    ("args", "err", "kw"),
    [
        (["no-such-command-xyz"], "ktrace: exec of 'no-such-command-xyz' failed: No such file or directory\n", {}),
        (["-f", "/nonexistent/dir/t.out", "true"], "ktrace: /nonexistent/dir/t.out: No such file or directory\n", {}),
        (["-f", "/root/t.out", "true"], "ktrace: /root/t.out: Permission denied\n", NOBODY),
        (["-p", "1"], "ktrace: pid 1: Operation not permitted\n", NOBODY),
        (["-t", "cq", "true"], "ktrace: unknown facility in cq\n" + USAGE, {}),
        (["-t", "w", "true"], "ktrace: the ptrace engine cannot record context switches (-t w); use --engine ebpf\n", {}),
        (["-p", "abc"], "ktrace: -p abc: invalid\n", {}),
        ([], USAGE, {}),
        (["-p", "1", "true"], USAGE, {}),
        (["-C", "-p", "1"], USAGE, {}),
        (["--engine", "dtrace", "true"], "ktrace: unknown engine dtrace (ebpf or ptrace)\n" + USAGE, {}),
    ],
)  # fmt: skip
def test_bad_input(tmp: Path, args: list[str], err: str, kw: dict) -> None:
    if "-t" not in args and "--engine" not in args and args and args[0] != "-C":
        args = ["--engine", "ptrace", *args]
    elif "-t" in args:
        args = ["--engine", "ptrace", *args]
    p = ktrace(*args, cwd=str(tmp), **kw)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", err)


def test_a_pid_that_does_not_exist(tmp: Path) -> None:
    pid = 4_000_000
    while os.path.exists(f"/proc/{pid}"):
        pid += 1
    p = ktrace("--engine", "ptrace", "-f", str(tmp / "t.out"), "-p", str(pid))
    assert (p.returncode, p.stderr) == (1, f"ktrace: pid {pid}: No such process\n")


def test_threads_structures_and_times(tmp: Path) -> None:
    exe = cc(tmp, "th", """
        #include <pthread.h>
        #include <sys/stat.h>
        #include <time.h>
        #include <unistd.h>
        void *run(void *a) { return a; }
        int main(void) {
            pthread_t t;
            pthread_create(&t, 0, run, 0);
            pthread_join(t, 0);
            struct stat st;
            stat("/", &st);
            struct timespec ts = {0, 1000};
            nanosleep(&ts, 0);
            return 0;
        }
    """)  # fmt: skip
    out = tmp / "t.out"
    t0 = time.time_ns()
    p = subprocess.run([sys.executable, "-m", "pydtrace.cli.ktrace", "--engine", "ptrace", "-t",
                        "tf", "-f", str(out), exe], env=ENV, capture_output=True, text=True)  # fmt: skip
    t1 = time.time_ns()
    assert (p.returncode, p.stderr) == (0, "")
    lines = kdump("-f", str(out))
    pid = pid_of(lines, "th")
    fork = [x for x in lines if "FORK" in x]
    assert len(fork) == 1 and re.fullmatch(rf"{line(pid, 'th', 'FORK', '')}thread \d+", fork[0])
    assert line(pid, "th", "STRU", "struct timespec { 0.000001000 }") in lines
    st = os.stat("/")
    stat = [x for x in lines if "struct stat {" in x and f"ino={st.st_ino}," in x]
    assert stat and f"dev={st.st_dev}," in stat[-1]
    assert lines[-1] == line(pid, "th", "EXIT", "status 0")
    from pydtrace.ktrace import format as F

    recs = [r for r in F.read_records(out.read_bytes()) if r.type != F.START]
    assert all(t0 <= r.time_ns <= t1 and r.cpu == -1 for r in recs)


@pytest.mark.parametrize("inherit", [False, True])
def test_process_group(tmp: Path, inherit: bool) -> None:
    # a group: sh and its first sleep; the second sleep is a new child, traced with -i
    target = subprocess.Popen(["/bin/sh", "-c", "sleep 0.6; sleep 0.1"], start_new_session=True)
    try:
        time.sleep(0.2)
        out = tmp / "t.out"
        i = ["-i"] if inherit else []
        p = ktrace("--engine", "ptrace", *i, "-t", "f", "-f", str(out), "-g", str(target.pid))
        assert (p.returncode, p.stderr) == (0, "")
        target.wait()
        end = time.monotonic() + 10
        while not any(
            "EXIT" in x and x.split()[0] == str(target.pid) for x in kdump("-f", str(out))
        ):
            assert time.monotonic() < end
            time.sleep(0.05)
        lines = kdump("-f", str(out))
        exits = [x for x in lines if "EXIT" in x]
        assert exits[-1] == line(target.pid, "sh", "EXIT", "status 0")
        assert len(exits) == (3 if inherit else 2)
        assert (len([x for x in lines if "FORK" in x]) == 1) == inherit
    finally:
        target.kill()
        target.wait()


def test_pid_with_descendants(tmp: Path) -> None:
    target = subprocess.Popen(["/bin/sh", "-c", "sleep 0.6; exit 0"])
    try:
        time.sleep(0.2)
        kids = [
            int(x)
            for x in Path(f"/proc/{target.pid}/task/{target.pid}/children").read_text().split()
        ]
        out = tmp / "t.out"
        p = ktrace("--engine", "ptrace", "-d", "-t", "f", "-f", str(out), "-p", str(target.pid))
        assert (p.returncode, p.stderr) == (0, "")
        target.wait()
        end = time.monotonic() + 10
        while len(kdump("-f", str(out))) < 2:
            assert time.monotonic() < end
            time.sleep(0.05)
        assert kdump("-f", str(out)) == [line(kids[0], "sleep", "EXIT", "status 0"),
                                         line(target.pid, "sh", "EXIT", "status 0")]  # fmt: skip
    finally:
        target.kill()
        target.wait()


def test_bind_now(tmp: Path) -> None:
    out = tmp / "t.out"
    p = ktrace(
        "--engine", "ptrace", "-B", "-t", "X", "-f", str(out), "/bin/sh", "-c", "echo $LD_BIND_NOW"
    )
    assert (p.returncode, p.stdout, p.stderr) == (0, "1\n", "")
    assert "\t[" in "\n".join(kdump("-f", str(out)))
    assert any(re.fullmatch(r'\t\[\d+\] = "LD_BIND_NOW=1"', x) for x in kdump("-f", str(out)))


def test_records_reach_the_file_while_the_command_sleeps(tmp: Path, engine: str) -> None:
    """An idle recording does not sit on its records: what the command did
    before it went to sleep is in the file (kdump -l can show it) within
    about 0.2 s, long before the command ends."""
    exe = cc(tmp, "nap", """
        #include <unistd.h>
        int main(void) {
            write(1, "before\\n", 7);
            sleep(3);
            write(1, "after\\n", 6);
            return 0;
        }
    """)  # fmt: skip
    out = tmp / "t.out"
    p = subprocess.Popen([sys.executable, "-m", "pydtrace.cli.ktrace", "--engine", engine, "-t", "ci",
                          "-f", str(out), exe], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=ENV)  # fmt: skip
    try:
        assert p.stdout is not None and p.stdout.readline() == b"before\n"
        time.sleep(1.0)
        assert p.poll() is None  # still asleep
        assert written(out) == [b"before\n"]
    finally:
        rest, err = p.communicate(timeout=30)
    assert (p.returncode, rest, err) == (0, b"after\n", b"")
    assert written(out) == [b"before\n", b"after\n"]


def written(path: Path) -> list[bytes]:
    """The data of the GIO records of writes to fd 1 in a trace file so far."""
    from pydtrace.ktrace import format as F

    out = []
    for r in F.read_records(path.read_bytes()):
        if getattr(r, "type", None) == F.GENIO:
            fd, write, data = F.parse_genio(r.payload)
            if fd == 1 and write:
                out.append(data)
    return out
