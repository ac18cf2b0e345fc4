"""The eBPF engine's fast output path: under -q, a clause whose only actions
are plain printfs is formatted straight from the ring-buffer record. Its text
must equal the consumer's, keep its place among other records, and lose none."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import bpf_maps_ok, need, pydtrace
from pydtrace.session import Program, Session

KERNEL = bpf_maps_ok()


@pytest.fixture
def getppid(tmp_path) -> str:
    """A -c command prefix: append N to call getppid() N times, then exit."""
    script = tmp_path / "getppid.py"
    script.write_text("import os, sys\nfor _ in range(int(sys.argv[1])):\n    os.getppid()\n")
    return f"{sys.executable} {script}"


@pytest.fixture(autouse=True)
def _need_bpf() -> None:
    need(KERNEL, "BPF maps cannot be created here (root and bpf(2) needed)")


def _session(src: str, quiet: bool = True) -> tuple[Session, io.StringIO]:
    out = io.StringIO()
    opts = [("engine", "ebpf"), *([("quiet", None)] if quiet else [])]
    s = Session([Program("n", src)], settings=opts, out=out, err=io.StringIO(), testing=True)
    s.compile()
    return s, out


TYPED = (
    'BEGIN { printf("%d %u %d %i %u|%s|%d\\n", (char)-1, (unsigned int)-1, (short)70000,'
    ' (long)-5, (unsigned char)300, "text", 1 == 1); }\n'
    'BEGIN { printf("[%s]", strjoin("a", "b")); printf("%d%%\\n", 50); }\n'
    "BEGIN { exit(0); }"
)


def test_printf_clauses_take_the_fast_path_with_the_consumers_text() -> None:
    s, out = _session(TYPED)
    assert s.run() == 0
    assert out.getvalue() == "-1 4294967295 4464 -5 44|text|1\n[ab]50%\n\n"  # + the final newline
    assert sorted(s.engine._fast) == [0, 1]  # the printf-only clauses; exit() is not one


def test_same_text_without_the_fast_path() -> None:
    # not quiet: every record goes through the consumer (with its probe column)
    s, out = _session(TYPED, quiet=False)
    assert s.run() == 0
    assert s.engine._fast == {}
    text = out.getvalue()
    assert "-1 4294967295 4464 -5 44|text|1\n" in text and "[ab]50%\n" in text


def test_fast_records_keep_their_order_among_consumer_records(getppid: str) -> None:
    src = (
        'syscall::getppid:entry /pid == $target/ { printf("p%d ", ++n); }\n'
        "syscall::getppid:entry /pid == $target/ { trace(n * 10); }\n"
        'syscall::getppid:entry /pid == $target && n == 2/ { printf("|"); }'
    )
    r = pydtrace("-q", "-x", "engine=ebpf", "-c", f"{getppid} 3", "-n", src)
    assert r.status == 0, r.err
    assert r.out == "p1 10p2 20|p3 30\n"


def test_no_record_lost_on_the_fast_path(getppid: str) -> None:
    n = 20000
    src = 'syscall::getppid:entry /pid == $target/ { printf("%d\\n", ++i); }'
    r = pydtrace("-q", "-x", "engine=ebpf", "-c", f"{getppid} {n}", "-n", src)
    assert r.status == 0, r.err
    assert r.out.split() == [str(i) for i in range(1, n + 1)]


def test_setopt_quiet_turns_the_fast_path_on(getppid: str) -> None:
    src = (
        'syscall::getppid:entry /pid == $target/ { printf("a%d", ++n); }\n'
        'syscall::getppid:entry /pid == $target && n == 1/ { setopt("quiet"); }'
    )
    r = pydtrace("-x", "engine=ebpf", "-c", f"{getppid} 3", "-n", src)
    assert r.status == 0, r.err
    head = "%32s\n" % "FUNCTION:NAME"
    row = "%32s " % "getppid:entry"
    assert r.out == head + row + "a1\n" + row + "\n" + "a2a3\n"


def test_ctrl_c_while_loading_runs_nothing_and_leaves_nothing(monkeypatch) -> None:
    from pydtrace.engines.ebpf import bpf

    s, out = _session('BEGIN { printf("begun\\n"); } END { printf("end\\n"); }'
                      ' syscall::getppid:entry { @ = count(); }')  # fmt: skip
    real = bpf.prog_load

    def load_then_ctrl_c(*args, **kw):  # the signal handler's effect, mid-load
        s.engine.stop()
        return real(*args, **kw)

    monkeypatch.setattr(bpf, "prog_load", load_then_ctrl_c)
    before = sorted(os.listdir("/proc/self/fd"))
    with pytest.raises(KeyboardInterrupt):
        s.run()
    assert out.getvalue() == ""  # neither BEGIN nor END ran
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_ctrl_c_before_tracing_is_a_message_and_status_1() -> None:
    # in a child interpreter: the CLI installs signal handlers and names its process
    code = (
        "import sys\nfrom pydtrace.engines.ebpf import bpf, features\nfrom pydtrace.cli import dtrace\n"
        "features.can_use_bpf()\nfeatures.has_bpf_loop()\n"  # probed (cached) before the patch
        "def interrupted(*a, **k):\n    raise KeyboardInterrupt\n"
        "bpf.prog_load = interrupted\n"
        "sys.exit(dtrace.main(['pydtrace', '-x', 'engine=ebpf', '-n', 'syscall::getppid:entry']))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert (p.returncode, p.stdout, p.stderr) == (
        1,
        "",
        "pydtrace: description 'syscall::getppid:entry' matched 1 probe\n"
        "pydtrace: interrupted before tracing began\n",
    )


# busy for 150 ms of CPU time (not of wall time: under load the loop gets
# only part of a CPU), then asleep for 150 ms
VTIME_TARGET = """\
import os, time
os.getppid()
t = time.process_time()
while time.process_time() - t < 0.15:
    pass
os.getppid()
time.sleep(0.15)
os.getppid()
"""


@pytest.mark.parametrize("engine", ["ebpf", "ptrace"])
def test_vtimestamp_counts_time_on_cpu_only(engine: str, tmp_path) -> None:
    from conftest import ptrace_works

    if engine == "ptrace":
        need(ptrace_works(), "ptrace is not allowed here")
    script = tmp_path / "busy_then_sleep.py"
    script.write_text(VTIME_TARGET)
    src = (
        "self uint64_t v, t;\n"
        "syscall::getppid:entry /pid == $target && self->t/ {"
        ' printf("%d %d\\n", (vtimestamp - self->v) / 1000000, (timestamp - self->t) / 1000000); }\n'
        "syscall::getppid:entry /pid == $target/ { self->v = vtimestamp; self->t = timestamp; }"
    )
    r = pydtrace("-q", "-x", f"engine={engine}", "-c", f"{sys.executable} {script}", "-n", src)
    assert r.status == 0, r.err
    (busy_cpu, busy_wall), (sleep_cpu, sleep_wall) = [
        map(int, x.split()) for x in r.out.split("\n") if x
    ]
    # the loop spun 150 ms of CPU time; vtimestamp may miss a little of it (time
    # a virtual CPU lost to the host, counted in an earlier value, see cg_vtime.py)
    assert 100 <= busy_cpu <= busy_wall
    assert sleep_wall >= 150 and sleep_cpu <= 20  # asleep: the wall clock moved, not the CPU time
