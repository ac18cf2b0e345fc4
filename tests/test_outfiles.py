"""The files the tools write, as root, and what a failed write does
(pydtrace/outfiles.py and every writer that uses it).

The attack: another user (nobody) owns a world-writable directory that is
NOT sticky (Linux's fs.protected_symlinks and protected_regular guard only
sticky ones) and plants symbolic links there, owned by nobody, to root's
files. No writer may create, truncate or append to what they point at:
dtrace's -o and freopen() (which append) refuse them; ktrace (which starts
its file afresh) removes the name and creates its own file, mode 0600.

A failed write (a full disk: /dev/full; a reader gone: a pipe whose read
end is closed) ends the run as Ctrl-C does, END included, with one line
(none for a reader gone, as the C tools die of SIGPIPE) and status 1.
"""

from __future__ import annotations

import errno
import io
import os
import shlex
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT, Run, bpf_maps_ok, need, ptrace_works, pydtrace
from pydtrace.outfiles import RefusedPath, open_output

NOBODY = 65534
ENGINES = ["ebpf", "ptrace"]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
ENV.pop("_DTRACE_TESTING", None)
VICTIM = b"root's own file\n"
FULL = "failed to write to /dev/full: No space left on device"


def need_root() -> None:
    need(os.geteuid() == 0, "the attack needs root (chown to another user)")


def need_engine(engine: str) -> None:
    if engine == "ebpf":
        need(bpf_maps_ok(), "BPF unavailable (needs root and bpf(2))")
    else:
        need(ptrace_works(), "ptrace with PTRACE_SEIZE unavailable")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    need_engine(request.param)
    return request.param


@dataclass
class Attack:
    root: Path  # root's directory
    victim: Path  # root's file (0644), which nobody's links point at
    absent: Path  # a name in root's directory that must never be created
    shared: Path  # nobody's directory, mode 0777, not sticky
    out: Path  # nobody's link shared/out -> victim
    new: Path  # nobody's link shared/new -> absent
    dir: Path  # nobody's link shared/dir -> root's directory

    def untouched(self) -> None:
        """The victim as it was, and nothing created where nobody pointed."""
        st = self.victim.stat()
        assert (self.victim.read_bytes(), st.st_uid, stat.S_IMODE(st.st_mode)) == (
            VICTIM,
            0,
            0o644,
        )
        assert (st.st_mtime_ns, st.st_ino) == self.victim_id
        assert not os.path.lexists(self.absent)

    victim_id: tuple[int, int] = (0, 0)


@pytest.fixture
def attack(tmp_path: Path) -> Iterator[Attack]:
    need_root()
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    victim = root / "victim"
    victim.write_bytes(VICTIM)
    victim.chmod(0o644)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, NOBODY, NOBODY)
    shared.chmod(0o777)  # world-writable, not sticky
    links = {"out": victim, "new": root / "absent", "dir": root}
    for name, target in links.items():
        os.symlink(target, shared / name)
        os.lchown(shared / name, NOBODY, NOBODY)
    a = Attack(
        root, victim, root / "absent", shared, shared / "out", shared / "new", shared / "dir"
    )
    st = victim.stat()
    a.victim_id = (st.st_mtime_ns, st.st_ino)
    tmp_path.chmod(0o755)  # nobody's directory is reachable, as in real life
    yield a


def private_file(path: Path) -> None:
    """A regular file of root's, mode 0600, at path itself (no link)."""
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode) and st.st_uid == 0
    assert stat.S_IMODE(st.st_mode) == 0o600


# --- open_output, the one way the tools open what they write ------------------------------
def test_append_refuses_another_users_symlink(attack: Attack) -> None:
    for link in (attack.out, attack.new):
        with pytest.raises(RefusedPath) as e:
            open_output(str(link), replace=False)
        assert str(e.value) == f"refuse to append to {link}: not owned by you"
        assert (e.value.errno, e.value.strerror) == (errno.EPERM, "not owned by you")
    attack.untouched()
    assert os.path.islink(attack.out)


def test_replace_removes_another_users_symlink_and_creates_a_private_file(attack: Attack) -> None:
    for link in (attack.out, attack.new):
        fd = open_output(str(link), replace=True, mode=0o600)
        os.write(fd, b"ours\n")
        os.close(fd)
        private_file(link)
        assert link.read_bytes() == b"ours\n"
    attack.untouched()


def test_another_users_symlink_on_the_way_is_never_followed(attack: Attack) -> None:
    path = attack.dir / "victim"
    for replace, verb in ((False, "append to"), (True, "write to")):
        with pytest.raises(RefusedPath) as e:
            open_output(str(path), replace=replace)
        assert str(e.value) == f"refuse to {verb} {path}: symbolic link 'dir' is not owned by you"
    with pytest.raises(RefusedPath):
        open_output(str(attack.dir / "absent"), replace=True)
    attack.untouched()


def test_another_users_files_are_refused_to_append_and_replaced_afresh(attack: Attack) -> None:
    theirs, fifo = attack.shared / "theirs", attack.shared / "fifo"
    theirs.write_bytes(b"nobody's\n")
    os.mkfifo(fifo)
    for p in (theirs, fifo):
        os.chown(p, NOBODY, NOBODY)
        with pytest.raises(RefusedPath) as e:
            open_output(str(p), replace=False)
        assert str(e.value) == f"refuse to append to {p}: not owned by you"
    assert theirs.read_bytes() == b"nobody's\n"
    for p in (theirs, fifo):  # as OpenBSD's ktrace: the name is removed, ours is new
        os.close(open_output(str(p), replace=True, mode=0o600))
        private_file(p)
        assert p.read_bytes() == b""


def test_a_hard_link_in_a_shared_directory_is_refused(attack: Attack) -> None:
    link = attack.shared / "hard"
    os.link(attack.victim, link)  # what protected_hardlinks=0 would let nobody do
    with pytest.raises(RefusedPath) as e:
        open_output(str(link), replace=False)
    assert str(e.value) == f"refuse to append to {link}: it has other hard links"
    os.close(open_output(str(link), replace=True, mode=0o600))  # replaced: a new file
    private_file(link)
    attack.untouched()


def test_own_names_devices_and_fifos_are_opened(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.write_bytes(b"1\n")
    os.symlink("mine", tmp_path / "rel")  # a relative link of the caller's own
    os.symlink(tmp_path / "rel", tmp_path / "chain")
    for p in (mine, tmp_path / "chain"):
        fd = open_output(str(p), replace=False)
        os.write(fd, b"+\n")
        os.close(fd)
    assert mine.read_bytes() == b"1\n+\n+\n"
    fd = open_output(str(tmp_path / "chain"), replace=True)  # the link stays, its file is new
    os.close(fd)
    assert os.path.islink(tmp_path / "chain") and mine.read_bytes() == b""
    for dev in ("/dev/null", "/dev/full"):
        for replace in (False, True):
            fd = open_output(dev, replace=replace)
            assert stat.S_ISCHR(os.fstat(fd).st_mode)
            os.close(fd)
    r, w = os.pipe()  # /dev/stdout -> /proc/self/fd/1: the kernel's link to an open file
    saved = os.dup(1)
    os.dup2(w, 1)
    try:
        fd = open_output("/dev/stdout", replace=True)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(w)
    os.write(fd, b"through stdout\n")
    os.close(fd)
    assert os.read(r, 100) == b"through stdout\n"
    os.close(r)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    fd = open_output(str(fifo), replace=True)
    os.write(fd, b"fifo\n")
    os.close(fd)
    assert os.read(reader, 100) == b"fifo\n"
    os.close(reader)


def test_open_errors_name_the_path_given(tmp_path: Path) -> None:
    os.symlink("loop", tmp_path / "loop")
    cases = {
        "": errno.ENOENT,
        str(tmp_path / "no" / "file"): errno.ENOENT,
        str(tmp_path): errno.EISDIR,
        str(tmp_path / "loop"): errno.ELOOP,
    }
    for path, code in cases.items():
        with pytest.raises(OSError) as e:
            open_output(path, replace=False)
        assert (e.value.errno, e.value.filename) == (code, path)


def test_files_are_created_with_the_mode_asked_under_umask_0(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        for name, replace, mode in (("a", True, 0o600), ("b", False, 0o600), ("c", False, 0o666)):
            os.close(open_output(str(tmp_path / name), replace=replace, mode=mode))
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode
    finally:
        os.umask(old)


def test_the_recorder_registry_trusts_only_a_private_directory(tmp_path: Path, monkeypatch) -> None:
    from pydtrace.ktrace import control

    monkeypatch.setattr(control, "ROOT", str(tmp_path))
    d = Path(control.registry_dir())
    d.mkdir(mode=0o700)
    d.chmod(0o777)  # others may add names: not used
    assert control.register("t.out", [], None) == ""
    d.chmod(0o700)
    entry = control.register("t.out", [], None)
    assert entry == str(d / f"{os.getpid()}.json")
    assert stat.S_IMODE(os.stat(entry).st_mode) == 0o600
    control.unregister(entry)
    assert not d.exists()  # the last entry gone, its directory goes: nothing left in /tmp


def test_the_registry_directory_stays_while_others_are_registered(tmp_path, monkeypatch) -> None:
    """A recorder leaving removes the user's registry directory only when it
    was the last; one whose directory was removed meanwhile makes it again.
    Stale entries are cleaned only in a private directory of the user its
    name says, never through a link."""
    from pydtrace.ktrace import control

    monkeypatch.setattr(control, "ROOT", str(tmp_path))
    d = Path(control.registry_dir())
    other = d / "999999.json"
    mine = control.register("t.out", [], None)
    other.write_text('{"pid": 999999, "start": 1, "file": "/x", "pids": []}')
    control.unregister(mine)
    assert d.is_dir() and other.exists()
    assert control.entries() == [] and not d.exists()  # the stale one cleaned, then its dir
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    (real / "999999.json").write_text('{"pid": 999999, "start": 1, "file": "/x", "pids": []}')
    d.symlink_to(real)
    assert control.entries() == [] and (real / "999999.json").exists()
    d.unlink()
    real_mode = os.stat(real).st_mode
    assert control.register("t.out", [], None) == str(d / f"{os.getpid()}.json")
    assert os.stat(real).st_mode == real_mode
    control.unregister(str(d / f"{os.getpid()}.json"))
    assert not d.exists()


# --- every writer, through its command ----------------------------------------------------
def ktrace(*args: str, cwd: Path | None = None, stdout: int = subprocess.PIPE, **kw) -> Run:
    p = subprocess.run([sys.executable, "-m", "pydtrace.cli.ktrace", *args], stdout=stdout,
                       stderr=subprocess.PIPE, text=True, env=ENV, timeout=120,
                       stdin=subprocess.DEVNULL, cwd=cwd, **kw)  # fmt: skip
    return Run(p.returncode, p.stdout or "", p.stderr)


def test_pydtrace_o_refuses_another_users_symlink(attack: Attack) -> None:
    for link in (attack.out, attack.new):
        r = pydtrace("-q", "-o", str(link), "-n", 'BEGIN { printf("x\\n"); exit(0); }')
        assert (r.status, r.out, r.err) == (
            1,
            "",
            f"pydtrace: refuse to append to {link}: not owned by you\n",
        )
    attack.untouched()


def test_freopen_refuses_another_users_symlink(attack: Attack, engine: str) -> None:
    for link in (attack.out, attack.new):
        prog = (
            f'BEGIN {{ freopen("{link}"); printf("a\\n"); freopen(""); printf("b\\n"); exit(0); }}'
        )
        r = pydtrace("-x", f"engine={engine}", "-q", "-w", "-n", prog)
        assert (r.status, r.out) == (0, "a\nb\n\n")
        assert r.err == (
            "pydtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): "
            f'couldn\'t freopen() "{link}": not owned by you\n'
        )
    attack.untouched()


def test_ktrace_f_replaces_another_users_symlink_with_a_private_file(
    attack: Attack, engine: str
) -> None:
    for link in (attack.out, attack.new):
        r = ktrace("--engine", engine, "-f", str(link), "/bin/true")
        assert (r.status, r.out, r.err) == (0, "", "")
        private_file(link)
        assert link.read_bytes()[:4] == b"KTR\0"
    attack.untouched()


def test_ktrace_default_file_in_a_shared_directory(attack: Attack, engine: str) -> None:
    default = attack.shared / "ktrace.out"
    os.symlink(attack.victim, default)
    os.lchown(default, NOBODY, NOBODY)
    r = ktrace("--engine", engine, "-a", "/bin/true", cwd=attack.shared)
    assert (r.status, r.out, r.err) == (
        1,
        "",
        "ktrace: refuse to append to ktrace.out: not owned by you\n",
    )
    r = ktrace("--engine", engine, "/bin/true", cwd=attack.shared)
    assert (r.status, r.out, r.err) == (0, "", "")
    private_file(default)
    attack.untouched()


def test_ktrace_a_refuses_another_users_symlink(attack: Attack, engine: str) -> None:
    for link in (attack.out, attack.new):
        r = ktrace("--engine", engine, "-a", "-f", str(link), "/bin/true")
        assert (r.status, r.out, r.err) == (
            1,
            "",
            f"ktrace: refuse to append to {link}: not owned by you\n",
        )
        assert os.path.islink(link)
    attack.untouched()


def test_recordings_are_private_under_umask_0(tmp_path: Path, engine: str) -> None:
    for args in (["-f", "fresh"], ["-a", "-f", "appended"]):
        r = ktrace(
            "--engine", engine, *args, "/bin/true", cwd=tmp_path, preexec_fn=lambda: os.umask(0)
        )
        assert (r.status, r.err) == (0, "")
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == ["appended", "fresh"]
    wider = [p.name for p in tmp_path.iterdir() if stat.S_IMODE(p.stat().st_mode) & ~0o600]
    assert wider == []


def test_two_recorders_append_to_one_file(tmp_path: Path, engine: str) -> None:
    from pydtrace.ktrace import format as F

    trace = tmp_path / "both"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pydtrace.cli.ktrace",
                "--engine",
                engine,
                "-a",
                "-f",
                str(trace),
                "/bin/echo",
                str(i),
            ],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [(p.returncode, err) for p, (_, err) in zip(procs, results)] == [(0, ""), (0, "")]
    starts = [r for r in F.read_records(trace.read_bytes()) if r.type == F.START]
    assert len(starts) == 2
    private_file(trace)


def test_pydtrace_o_to_devices_fifos_and_own_files(tmp_path: Path) -> None:
    prog = ("-q", "-n", 'BEGIN { printf("x\\n"); exit(0); }')
    for dev in ("/dev/null", "/dev/stdout"):
        r = pydtrace("-o", dev, *prog)
        assert (r.status, r.out, r.err) == (0, "" if dev == "/dev/null" else "x\n\n", "")
    own = tmp_path / "own"
    for _ in range(2):
        assert pydtrace("-o", str(own), *prog).status == 0
    assert own.read_text() == "x\n\n" * 2
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    r = pydtrace("-o", str(fifo), *prog)
    reader.join(60)
    assert (r.status, r.err, got) == (0, "", [b"x\n\n"])


# --- failed writes ------------------------------------------------------------------------
def run_to(stdout: int | None, *args: str, timeout: float = 120) -> Run:
    p = subprocess.run([sys.executable, "-m", "pydtrace", *args], stdout=stdout,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=ENV,
                       timeout=timeout, text=True)  # fmt: skip
    return Run(p.returncode, p.stdout or "", p.stderr)


def closed_pipe() -> int:
    """The write end of a pipe whose reader has gone (EPIPE)."""
    r, w = os.pipe()
    os.close(r)
    return w


def ending(mark: Path) -> str:
    """An END clause that leaves a mark: END ran although the output failed."""
    return f'END {{ system("echo end > {mark}"); }}'


def test_output_file_full_ends_the_run_after_end(tmp_path: Path, engine: str) -> None:
    mark = tmp_path / "mark"
    prog = f'BEGIN {{ printf("x\\n"); }} tick-1ms {{ printf("y\\n"); }} {ending(mark)}'
    r = pydtrace("-x", f"engine={engine}", "-q", "-w", "-o", "/dev/full", "-n", prog, timeout=120)
    assert (r.status, r.out, r.err) == (1, "", f"pydtrace: {FULL}\n")
    assert mark.read_text() == "end\n"


def test_stdout_full_names_stdout(tmp_path: Path, engine: str) -> None:
    mark = tmp_path / "mark"
    prog = f'tick-1ms {{ printf("y\\n"); }} {ending(mark)}'
    with open("/dev/full", "w") as full:
        r = run_to(full.fileno(), "-x", f"engine={engine}", "-q", "-w", "-n", prog)
    assert (r.status, r.err) == (
        1,
        "pydtrace: failed to write to <stdout>: No space left on device\n",
    )
    assert mark.read_text() == "end\n"


def test_freopen_target_full(tmp_path: Path, engine: str) -> None:
    mark = tmp_path / "mark"
    prog = f'BEGIN {{ freopen("/dev/full"); printf("x\\n"); }} {ending(mark)}'
    r = pydtrace("-x", f"engine={engine}", "-q", "-w", "-n", prog, timeout=120)
    assert (r.status, r.out, r.err) == (1, "", f"pydtrace: {FULL}\n")
    assert mark.read_text() == "end\n"


def test_a_closed_pipe_ends_the_run_with_one_line(tmp_path: Path, engine: str) -> None:
    mark = tmp_path / "mark"
    w = closed_pipe()
    try:
        prog = f'tick-1ms {{ printf("y\\n"); }} {ending(mark)}'
        r = run_to(w, "-x", f"engine={engine}", "-q", "-w", "-n", prog)
    finally:
        os.close(w)
    assert (r.status, r.err) == (1, "pydtrace: failed to write to <stdout>: Broken pipe\n")
    assert mark.read_text() == "end\n"


def test_head_1_ends_the_run(engine: str) -> None:
    cmd = (
        f"{shlex.quote(sys.executable)} -m pydtrace -x engine={engine} -q "
        "-n 'profile-997 { printf(\"x\\n\"); }' | head -1; echo status ${PIPESTATUS[0]} >&2"
    )
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=ENV,
                       timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
    assert (p.stdout, p.stderr) == (
        "x\n",
        "pydtrace: failed to write to <stdout>: Broken pipe\nstatus 1\n",
    )


def test_a_c_target_is_killed_as_on_ctrl_c(tmp_path: Path, engine: str) -> None:
    mark = tmp_path / "pid"
    prog = f'BEGIN {{ system("echo %d > {mark}", $target); printf("x\\n"); }}'
    r = pydtrace("-x", f"engine={engine}", "-q", "-w", "-o", "/dev/full", "-c", "sleep 600",
                 "-n", prog, timeout=120)  # fmt: skip
    assert (r.status, r.out, r.err) == (1, "", f"pydtrace: {FULL}\n")
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(int(mark.read_text()), 0)


def test_listing_to_a_full_stdout() -> None:
    with open("/dev/full", "w") as full:
        r = run_to(full.fileno(), "-l", "-n", "BEGIN")
    assert (r.status, r.err) == (
        1,
        "pydtrace: failed to write to <stdout>: No space left on device\n",
    )


def test_the_api_reports_a_failed_write() -> None:
    from pydtrace.session import Program, Session

    need_engine("ptrace")
    err = io.StringIO()
    with open("/dev/full", "w") as full:
        s = Session([Program("n", 'BEGIN { printf("x\\n"); exit(0); }')],
                    settings=[("engine", "ptrace"), ("quiet", None)], out=full, err=err)  # fmt: skip
        assert s.run() == 1
    assert err.getvalue() == f"pydtrace: {FULL}\n"


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pydtrace.ktrace import format as F

    path = tmp_path_factory.mktemp("kdump") / "t.out"
    with F.Writer(str(path)) as w:  # more than a pipe holds: the write fails, not the exit
        w.write(F.start_record({"engine": "ptrace", "arch": "0xc000003e"}, 1, 0))
        for i in range(20000):
            w.write(F.Record(F.SYSCALL, 42, 42, F.syscall_payload(39, [0] * 6), 1, i, "cat"))
    return path


def kdump_to(stdout: int, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pydtrace.cli.kdump", "-f", str(path)],
                          stdout=stdout, stderr=subprocess.PIPE, text=True, env=ENV, timeout=120)  # fmt: skip


def test_kdump_to_a_full_or_closed_output(trace_file: Path) -> None:
    with open("/dev/full", "w") as full:
        p = kdump_to(full.fileno(), trace_file)
    assert (p.returncode, p.stderr) == (
        1,
        "kdump: failed to write to <stdout>: No space left on device\n",
    )
    w = closed_pipe()
    try:
        p = kdump_to(w, trace_file)
    finally:
        os.close(w)
    assert (p.returncode, p.stderr) == (1, "kdump: failed to write to <stdout>: Broken pipe\n")


def test_ktrace_to_a_full_file_stops_recording(tmp_path: Path, engine: str) -> None:
    r = ktrace("--engine", engine, "-f", "/dev/full", "/bin/true")
    assert (r.status, r.out, r.err) == (
        1,
        "",
        "ktrace: failed to write to /dev/full: No space left on device\n",
    )
    # a command that goes on calling: the recording stops at the first failed
    # write, as on SIGTERM (the ptrace recorder ends its command, eBPF leaves it)
    busy = "import time\nfor _ in range(60000): time.sleep(0.01)"
    err = tmp_path / "err"
    with open(err, "w") as errf:  # not a pipe: the command left running would hold it
        p = subprocess.Popen([sys.executable, "-m", "pydtrace.cli.ktrace", "--engine", engine,
                              "-f", "/dev/full", sys.executable, "-c", busy], env=ENV,
                             stdout=subprocess.DEVNULL, stderr=errf, start_new_session=True)  # fmt: skip
    try:
        status = p.wait(timeout=120)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the command, where the recorder left it
        except ProcessLookupError:
            pass
    assert (status, err.read_text()) == (1, f"ktrace: {FULL}\n")


def test_ktrace_to_a_closed_pipe_stops_with_one_line(engine: str) -> None:
    w = closed_pipe()
    try:
        r = ktrace("--engine", engine, "-f", "/dev/stdout", "/bin/true", stdout=w)
    finally:
        os.close(w)
    assert (r.status, r.err) == (1, "ktrace: failed to write to /dev/stdout: Broken pipe\n")


def test_the_writer_keeps_its_first_error_and_drops_the_rest() -> None:
    from pydtrace.ktrace import format as F

    calls: list[int] = []
    w = F.Writer("/dev/full", append=True)
    w.on_error = lambda: calls.append(1)
    w.write(F.start_record({}, 1, 0))
    w.flush()
    assert (w.error.errno if w.error else 0, bytes(w.buf), calls) == (errno.ENOSPC, b"", [1])
    w.write(F.start_record({}, 1, 0))
    w.close()
    assert (bytes(w.buf), calls, w.fd) == (b"", [1], -1)
