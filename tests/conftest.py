"""Shared helpers: run the pydtrace command as a user would."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class FakeProbe:
    """A probe for checking D without a provider's list (dtrace:::BEGIN unless told)."""

    provider: str = "dtrace"
    module: str = ""
    function: str = ""
    name: str = "BEGIN"
    argtypes: tuple = ()
    id: int = 1


@dataclass
class Run:
    status: int
    out: str
    err: str


def pydtrace(
    *args: str,
    testing: bool = True,
    timeout: float = 30,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> Run:
    """Run `python -m pydtrace ARGS`; testing=True sets _DTRACE_TESTING (no CPU/ID columns)."""
    e = dict(os.environ)
    e.pop("_DTRACE_TESTING", None)
    e["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + e.get("PYTHONPATH", "")
    if testing:
        e["_DTRACE_TESTING"] = "t"
    if env:
        e.update(env)
    p = subprocess.run(
        [sys.executable, "-m", "pydtrace", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=e,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )
    return Run(p.returncode, p.stdout, p.stderr)


def both_engines(*args: str) -> tuple[Run, Run]:
    """pydtrace ARGS on the eBPF engine, then on the user engine (ptrace):
    the differential tests compare the two runs."""
    return pydtrace("-x", "engine=ebpf", *args), pydtrace("-x", "engine=ptrace", *args)


def no_fault_pc(text: str) -> str:
    """Error text without the fault's program counter (a BPF instruction
    number on eBPF, a clause position on the user engine)."""
    return "\n".join(x.split(" at BPF pc")[0] for x in text.splitlines())


def same_on_both_engines(*args: str) -> Run:
    """Assert that pydtrace ARGS prints the same on both engines, and something."""
    e, u = both_engines(*args)
    assert (e.status, e.out, no_fault_pc(e.err)) == (u.status, u.out, no_fault_pc(u.err))
    assert e.out.strip() or e.err.strip()
    return e


def ptrace_works() -> bool:
    """Can this process start and trace a child with PTRACE_SEIZE?"""
    try:
        from pydtrace.engines.user.ptrace.tracer import Tracer

        t = Tracer()
        t.spawn(["/bin/true"])
        t.release(t.targets[0], b"")
        t.finish()
        return True
    except Exception:
        return False


def need(ok: bool, why: str) -> None:
    """Skip when the kernel lacks a feature; under PYDTRACE_REQUIRE_KERNEL=1 fail instead."""
    if ok:
        return
    if os.environ.get("PYDTRACE_REQUIRE_KERNEL") == "1":
        pytest.fail(f"kernel feature missing: {why}")
    pytest.skip(why)


def bpf_maps_ok() -> bool:
    """Whether this process can create BPF maps (root and bpf(2)): the eBPF
    engine's tests need it."""
    if os.geteuid() != 0:
        return False
    from pydtrace.engines.ebpf.bpf import BPFError
    from pydtrace.engines.ebpf.maps import Map

    try:
        Map.create(2, 4, 8, 1, name="probe").close()
        return True
    except (OSError, BPFError):
        return False


def current_task() -> int:
    """This thread's task_struct address, as a BPF program sees it (for
    programs run by PROG_TEST_RUN as if this thread were switched)."""
    from pydtrace.engines.ebpf.bpf import MapType, ProgType, prog_load, prog_test_run
    from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R10, Assembler, encode
    from pydtrace.engines.ebpf.maps import Map

    out = Map.create(MapType.ARRAY, 4, 8, 1, name="test_task")
    try:
        a = Assembler()
        a.call("get_current_task")
        a.stx(8, R10, -8, R0)
        a.st(4, R10, -12, 0)
        a.ld_map(R1, "task")
        a.mov(R2, R10)
        a.alu("+", R2, imm=-12)
        a.mov(R3, R10)
        a.alu("+", R3, imm=-8)
        a.movi(R4, 0)
        a.call("map_update_elem")
        a.movi(R0, 0)
        a.exit()
        fd = prog_load(ProgType.RAW_TRACEPOINT, encode(a.resolve(), {"task": out.fd}))
        try:
            prog_test_run(fd, ctx=bytes(8))
        finally:
            os.close(fd)
        task = int.from_bytes(out.lookup(0) or b"", "little")
    finally:
        out.close()
    assert task
    return task


_UNREPORTED = re.compile(
    r"^\S+: (\d+) (context switch|switch-in)(?:es|s)? the kernel did not report[^\n]*\n", re.M
)


def unreported(err: str) -> tuple[str, int, int]:
    """err without the lines that count scheduler events the kernel made
    without firing its tracepoint, and those counts: (the rest, context
    switches (the engine's, every CPU's), switch-ins of the threads a tool
    traced). A kernel may hide a task from tracing (this VM's hides its init
    agent): nothing fires while it runs, its switches away and the wakeups
    done by interrupts it was running under included. So a test counting a
    thread's switch-ins allows as many fewer as the tool says it missed, and
    one counting timer wakeups one fewer per hidden switch."""
    counts = {"context switch": 0, "switch-in": 0}
    for m in _UNREPORTED.finditer(err):
        counts[m[2]] += int(m[1])
    return _UNREPORTED.sub("", err), counts["context switch"], counts["switch-in"]


@pytest.fixture
def run():
    return pydtrace


def _descendants(root: int) -> dict[int, str]:
    """The live processes below root (zombies are not), as pid -> "state cmdline"."""
    parent: dict[int, int] = {}
    state: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        parent[int(name)], state[int(name)] = int(fields[1]), fields[0]
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        p = todo.pop()
        for c in (c for c, pp in parent.items() if pp == p):
            todo.append(c)
            if state[c] not in "ZX":
                try:
                    with open(f"/proc/{c}/cmdline", "rb") as f:
                        cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                except OSError:
                    cmd = "?"
                found[c] = f"{state[c]} {cmd}"
    return found


def _kill(pids: list[int]) -> None:
    """SIGKILL each; reap our own children, resuming a tracee of ours from the
    PTRACE_EVENT_EXIT stop a killed tracee still makes."""
    from pydtrace.engines.user.ptrace import syscalls as sc

    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    end = time.monotonic() + 10
    for pid in pids:
        while time.monotonic() < end:
            try:
                got, status = os.waitpid(pid, sc.WALL | os.WNOHANG)
            except ChildProcessError:
                break  # not our child: its parent (or init) reaps it
            if got and not os.WIFSTOPPED(status):
                break
            if got:
                try:
                    sc.ptrace(sc.PTRACE_CONT, pid, 0, 0)
                except OSError:
                    pass
            else:
                time.sleep(0.01)


# The commands the tests run keep their compiled programs (the eBPF engine's
# program_cache) in a directory of this run's, removed at its end, not in the
# machine's /run/pydtrace. Set here, when conftest is imported: test modules
# copy os.environ into environments of their own when they are imported.
_OWN_CACHE = None
if "PYDTRACE_CACHE" not in os.environ:  # (a run that sets it keeps its own)
    import tempfile

    _OWN_CACHE = tempfile.mkdtemp(prefix="pydtrace-cache-")
    os.environ["PYDTRACE_CACHE"] = _OWN_CACHE


@pytest.fixture(scope="session", autouse=True)
def _own_program_cache() -> Iterator[None]:
    """Remove this run's program cache at its end."""
    yield
    if _OWN_CACHE is not None:
        import shutil

        os.environ.pop("PYDTRACE_CACHE", None)
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind() -> Iterator[None]:
    """The run leaves no process of its own running or stopped: at the end,
    any descendant of this pytest process still there (after a few seconds
    for those that are exiting) fails the run, and is killed."""
    yield
    left = _descendants(os.getpid())
    end = time.monotonic() + 5
    while left and time.monotonic() < end:
        time.sleep(0.1)
        left = _descendants(os.getpid())
    if left:
        _kill(list(left))
        pytest.fail(
            "processes left behind by the tests (killed now):\n"
            + "\n".join(f"  {pid} {what}" for pid, what in sorted(left.items()))
        )


def compile_c(tmp: Path, name: str, source: str, *flags: str) -> str:
    """A C program of a test's own, built with cc -O1 (plus flags) in tmp."""
    import shutil
    import textwrap

    need(shutil.which("cc") is not None, "no C compiler")
    src = tmp / f"{name}.c"
    src.write_text(textwrap.dedent(source))
    exe = tmp / name
    subprocess.run(["cc", "-O1", "-o", str(exe), str(src), *flags], check=True)
    return str(exe)


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[str]:
    """A loop device over an 8 MiB file in tmp_path, detached whatever happens
    (the io provider's and the block tools' tests)."""
    import shutil

    from pydtrace.probes import tracefs

    need(bpf_maps_ok(), "needs root and bpf(2)")
    need(tracefs.has_event("block", "block_rq_issue"), "no block tracepoints")
    need(shutil.which("losetup") is not None, "no losetup")
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    p = subprocess.run(["losetup", "-f", "--show", str(img)], capture_output=True, text=True)
    need(p.returncode == 0, f"cannot create a loop device: {p.stderr.strip()}")
    dev = p.stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)
