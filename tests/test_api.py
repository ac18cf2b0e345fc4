"""The Python API (docs/api.md): pydtrace.trace() and pydtrace.stream() with
commands, pids, options and timeouts; typed records and aggregation
snapshots; Session.stop() from another thread; the errors it raises."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import pydtrace
from conftest import ROOT, bpf_maps_ok, need, ptrace_works
from pydtrace import Average, Bucket, CompileError, OptionError, Probe, StdDev
from pydtrace.consume.aggregation import (
    INT64_MAX,
    INT64_MIN,
    llquantize_bucket,
    lquantize_bucket,
    quantize_bucket,
)
from pydtrace.events import bucket_bounds
from pydtrace.session import Program, Session

ENGINES = (pytest.param("ebpf", id="ebpf"), pytest.param("ptrace", id="ptrace"))
WRITE = Probe("syscall", "vmlinux", "write", "entry")


def need_engine(engine: str) -> None:
    if engine == "ebpf":
        need(bpf_maps_ok(), "the eBPF engine needs root and bpf(2)")
    else:
        need(ptrace_works(), "ptrace is not allowed here")


def alive(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line holds marker."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and state not in "ZX":
            found.append(int(name))
    return found


def runqueue_ns(tid: int) -> int:
    """How long thread tid of ours has waited for a CPU, in ns (0 if unknown)."""
    try:
        with open(f"/proc/self/task/{tid}/schedstat") as f:
            return int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def open_fds() -> set[int]:
    return {int(x) for x in os.listdir("/proc/self/fd")}


# --- trace(): commands, pids, exit statuses, records ---------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_trace_a_command(engine: str) -> None:
    """command= runs and traces a command as -c does: its exact exit status,
    the records of its write(2), each value named as the D source names it."""
    need_engine(engine)
    r = pydtrace.trace(
        'syscall::write:entry /pid == $target/ { printf("%d %s\\n", arg2, execname); trace(arg0); }',
        command=["sh", "-c", "printf abcd >/dev/null; exit 7"],
        options={"engine": engine, "quiet": True},
    )
    assert (r.status, r.returncode, r.output, r.errors) == (0, 7, "4 sh\n1\n", "")
    (rec,) = r.records
    assert (rec.probe, rec.values, rec.names, rec.text) == (
        WRITE, (4, "sh", 1), ("arg2", "execname", "arg0"), "4 sh\n",
    )  # fmt: skip
    assert (rec["arg2"], rec["execname"], rec[2], len(rec)) == (4, "sh", 1, 3)
    assert rec.fields == {"arg2": 4, "execname": "sh", "arg0": 1}
    assert str(rec.probe) == "syscall:vmlinux:write:entry"
    with pytest.raises(KeyError) as e:
        rec["pid"]
    assert (
        e.value.args[0] == "no value named 'pid' in this record (named: 'arg2', 'execname', 'arg0')"
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_a_command_as_a_string_is_split_into_words(engine: str) -> None:
    need_engine(engine)
    r = pydtrace.trace(
        "syscall::exit_group:entry /pid == $target/ { trace(arg0); }",
        command="sh -c exit\t5",  # words at whitespace, as -c: sh -c 'exit' 5
        options={"engine": engine, "quiet": True},
    )
    assert (r.status, r.returncode, [x.values for x in r.records]) == (0, 0, [(0,)])
    r = pydtrace.trace("BEGIN { }", command="false", options={"engine": engine, "quiet": True})
    # an empty clause records its firing (dtrace's default action): a record without values
    assert (r.status, r.returncode, [(x.probe.name, x.values) for x in r.records]) == (
        0, 1, [("BEGIN", ())],
    )  # fmt: skip


@pytest.mark.parametrize("engine", ENGINES)
def test_trace_pids(engine: str) -> None:
    """pids= traces running processes as -p does; the trace ends when they
    exit (their exit status is their parent's to read: returncode is None)."""
    need_engine(engine)
    victim = subprocess.Popen(["sh", "-c", "read x; exit 5"], stdin=subprocess.PIPE)
    try:
        st = pydtrace.stream(
            "syscall::exit_group:entry /pid == $target/ { trace(arg0); trace(pid); }",
            pids=[victim.pid],
            options={"engine": engine},
        )
        victim.stdin.write(b"go\n")  # type: ignore[union-attr]
        victim.stdin.flush()  # type: ignore[union-attr]
        records = list(st)
        assert [(x.probe.function, x.values, x.names) for x in records] == [
            ("exit_group", (5, victim.pid), ("arg0", "pid"))
        ]
        assert (st.status, st.returncode) == (0, None)
    finally:
        victim.kill()
        victim.wait()
    assert victim.returncode == 5


# --- errors -------------------------------------------------------------------------------


def test_unknown_option() -> None:
    with pytest.raises(OptionError) as e:
        pydtrace.trace("BEGIN { exit(0); }", command=["true"], options={"bufsze": "4m"})
    assert str(e.value) == (
        "failed to set option 'bufsze': Invalid option name"
        " (did you mean 'bufsize' or 'bufresize' or 'bpflogsize'?)"
    )
    assert (e.value.option, e.value.value, e.value.reason) == (
        "bufsze",
        None,
        "Invalid option name",
    )
    assert isinstance(e.value, CompileError) and isinstance(e.value, ValueError)
    with pytest.raises(OptionError) as e:
        pydtrace.trace("BEGIN { exit(0); }", options={"c": "ls"})  # -c is command=
    assert str(e.value).startswith(
        "failed to set option 'c': Invalid option name (the options are aggpercpu, aggrate, "
    )


@pytest.mark.parametrize(
    "options, message",
    [
        ({"bufsize": "abc"}, "failed to set option 'bufsize' to 'abc': Invalid value for specified option"
         " (a size in bytes: an int, or a str with a k, m, g or t suffix such as '4m')"),
        ({"bufsize": -1}, "failed to set option 'bufsize' to -1: Invalid value for specified option"
         " (a size in bytes: an int, or a str with a k, m, g or t suffix such as '4m')"),
        ({"bufsize": True}, "failed to set option 'bufsize' to True: Invalid value for specified option"
         " (a size in bytes: an int, or a str with a k, m, g or t suffix such as '4m')"),
        ({"engine": "kernel"}, "failed to set option 'engine' to 'kernel': Invalid value for"
         " specified option (one of ebpf, ptrace, tracefs)"),
        ({"quiet": "maybe"}, "failed to set option 'quiet' to 'maybe': Invalid value for specified"
         " option (True or False, or 'on', 'off', 'yes', 'no', 'enable', 'disable', 'set', 'unset')"),
        ({"switchrate": "10parsecs"}, "failed to set option 'switchrate' to '10parsecs': Invalid"
         " value for specified option (a time: an int of nanoseconds, or a str with a unit (ns, us,"
         " ms, s, m, h, d) such as '10ms', or a frequency such as '100hz')"),
        ({"cpp": "yes"}, "failed to set option 'cpp' to 'yes': Invalid value for specified option"
         " (a flag: True to set it)"),
        ({"version": "3.0"}, "failed to set option 'version' to '3.0': Requested version is not"
         " supported by compiler (a D version: one of 1.0, 1.1, 1.2, 1.2.1, 1.2.2, 1.3, 1.4, 1.4.1,"
         " 1.5, 1.6, 1.6.1, 1.6.2, 1.6.3, 1.6.4, 2.0, 2.0.1)"),
    ],
)  # fmt: skip
def test_bad_option_values(options: dict, message: str) -> None:
    with pytest.raises(OptionError) as e:
        pydtrace.trace("BEGIN { exit(0); }", options=options)
    assert str(e.value) == e.value.message == message
    with pytest.raises(OptionError):  # stream() checks them as trace() does
        pydtrace.stream("BEGIN { exit(0); }", options=options)


def test_option_values_in_python() -> None:
    """Each option as -x takes it: sizes as ints or with a suffix, True for a
    flag, False to turn an on/off option off, None to leave one alone."""
    r = pydtrace.trace(
        'BEGIN { printf("%s", "abcdefgh"); exit(0); }',
        options={"strsize": 5, "quiet": True, "bufsize": "1m", "flowindent": False, "cpu": None},
    )
    assert (r.status, r.output) == (0, "abcde\n")
    r = pydtrace.trace("BEGIN { exit(0); }", options={"quiet": False})
    assert r.errors == "pydtrace: script '<program>' matched 1 probe\n"


def test_compile_errors_raise_compile_error() -> None:
    with pytest.raises(CompileError) as e:
        pydtrace.trace("BEGIN {\n  x = 1;\n  y = ;\n}")
    assert (e.value.message, e.value.tag, e.value.line) == (
        'failed to compile script <program>: line 3: syntax error near ";"', "D_SYNTAX", 3,
    )  # fmt: skip
    with pytest.raises(CompileError) as e:
        pydtrace.stream("\nnosuch:::probe { }")
    assert (e.value.message, e.value.tag, e.value.line) == (
        "failed to compile script <program>: line 2: probe description nosuch:::probe does not"
        " match any probes", "D_PDESC_ZERO", 2,
    )  # fmt: skip
    # refused when enabling: a CompileError too, the CLI's message
    with pytest.raises(CompileError) as e:
        pydtrace.trace("BEGIN { chill(1); exit(0); }")
    assert e.value.message == "could not enable tracing: Destructive actions not allowed"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"program": 42}, TypeError, "program must be a str of D source, not int"),
        ({"command": 5}, TypeError, "command must be a str or a list of str (an argv), not int"),
        ({"command": ["ls", 1]}, TypeError, "command must be a str or a list of str (an argv)"),
        ({"command": []}, ValueError, "command is empty"),
        ({"command": "  "}, ValueError, "command is empty"),
        ({"pids": 1234}, TypeError, "pids must be an iterable of ints (pids=[1234]), not int"),
        ({"pids": "1234"}, TypeError, "pids must be an iterable of ints (pids=[1234]), not str"),
        ({"pids": [True]}, TypeError, "pids must be ints, not bool (True)"),
        ({"pids": [0]}, ValueError, "invalid pid: 0"),
        ({"options": [("quiet", True)]}, TypeError,
         "options must be a dict of option names to values, not list"),
        ({"options": {1: 2}}, TypeError, "option names are str, not int (1)"),
        ({"options": {"switchrate": 1.5}}, TypeError,
         "option 'switchrate': expected a str, an int or a bool, not float"),
        ({"timeout": "1"}, TypeError, "timeout must be a number of seconds, not str"),
        ({"timeout": 0}, ValueError, "timeout must be more than 0 seconds, not 0"),
        ({"args": "x"}, TypeError, "args must be a list of str ($1, $2, ...), not str"),
        ({"args": [1.5]}, TypeError, "args must be str or int, not float (1.5)"),
    ],
)  # fmt: skip
def test_bad_arguments(kwargs: dict, error: type, message: str) -> None:
    program = kwargs.pop("program", "BEGIN { exit(0); }")
    for call in (pydtrace.trace, pydtrace.stream):
        with pytest.raises(error) as e:
            call(program, **kwargs)
        assert type(e.value) is error and str(e.value) == message
    with pytest.raises(TypeError) as e:
        pydtrace.stream("BEGIN { exit(0); }", interval="often")  # type: ignore[arg-type]
    assert str(e.value) == "interval must be a number of seconds, not str"


# --- stream(): records in order, snapshots ----------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_stream_yields_records_in_order(engine: str) -> None:
    need_engine(engine)
    program = """
        int i;
        tick-1ms /i < 5/ { i++; printf("i=%d\\n", i); trace(i * 10); }
        tick-1ms /i >= 5/ { exit(3); }
        END { trace(i); }
    """
    st = pydtrace.stream(program, options={"engine": engine})
    events = list(st)
    got = [(e.probe.name, e.values, e.names, e.text) for e in events]
    assert got == [
        *[("tick-1ms", (i, i * 10), ("i", None), f"i={i}\n") for i in range(1, 6)],
        ("tick-1ms", (), (), None),  # exit(3)'s firing: no values
        ("END", (5,), ("i",), None),
    ]
    assert all(isinstance(e, pydtrace.Record) for e in events)
    assert st.status == 3
    stamps = [e.timestamp for e in events]
    assert stamps == sorted(stamps)


KNOWN = """
BEGIN {
    @q = quantize(5); @q = quantize(1000); @q = quantize(1000); @q = quantize(0); @q = quantize(-3);
    @l = lquantize(7, 0, 10, 2); @l = lquantize(-1, 0, 10, 2); @l = lquantize(99, 0, 10, 2);
    @ll = llquantize(150, 10, 0, 3, 10);
    @a = avg(4); @a = avg(7);
    @s = stddev(2); @s = stddev(4); @s = stddev(6);
    @c["x", 3] = count(); @c["x", 3] = count(); @c["y", 4] = count();
    @sum = sum(-12); @min = min(5); @min = min(-5); @max = max(8);
    exit(0);
}
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_aggregation_snapshot_values(engine: str) -> None:
    need_engine(engine)
    events = list(pydtrace.stream(KNOWN, options={"engine": engine}))
    assert [type(e).__name__ for e in events] == ["Record", "Snapshot"]  # exit(0)'s, the final
    snap = events[1]
    assert snap.final
    aggs = snap.aggregations
    assert list(aggs) == ["@q", "@l", "@ll", "@a", "@s", "@c", "@sum", "@min", "@max"]
    assert snap.functions["@ll"] == "llquantize"
    q = aggs["@q"][()]
    assert (q.function, q.params, len(q.buckets), q.total) == ("quantize", (), 127, 5)
    assert q.nonzero() == [
        Bucket(-3, -2, 1),
        Bucket(0, 0, 1),
        Bucket(4, 7, 1),
        Bucket(512, 1023, 2),
    ]
    assert (q.bounds[0], q.bounds[-1]) == ((INT64_MIN, -(1 << 62)), (1 << 62, INT64_MAX))
    assert q.bucket_of(1000) == Bucket(512, 1023, 2)
    lq = aggs["@l"][()]
    assert lq.buckets == (
        Bucket(INT64_MIN, -1, 1), Bucket(0, 1, 0), Bucket(2, 3, 0), Bucket(4, 5, 0),
        Bucket(6, 7, 1), Bucket(8, 9, 0), Bucket(10, INT64_MAX, 1),
    )  # fmt: skip
    assert aggs["@ll"][()].nonzero() == [Bucket(100, 199, 1)]
    assert aggs["@a"] == {(): Average(2, 11)} and aggs["@a"][()].value == 5
    assert aggs["@s"] == {(): StdDev(3, 12, 56)} and aggs["@s"][()].value == 1
    assert aggs["@c"] == {("x", 3): 2, ("y", 4): 1}
    assert (aggs["@sum"], aggs["@min"], aggs["@max"]) == ({(): -12}, {(): -5}, {(): 8})
    r = pydtrace.trace(KNOWN, options={"engine": engine, "quiet": True})
    assert r.aggregations == aggs


def test_bucket_bounds_agree_with_the_bucketing() -> None:
    """Every bucket's bounds are the values the engines put in it: the lowest
    and the highest fall in it, their neighbours outside."""
    cases = [
        ("quantize", (), quantize_bucket),
        ("lquantize", (-10, 50, 7), lambda v: lquantize_bucket(v, -10, 50, 7)),
        ("llquantize", (10, 0, 3, 20), lambda v: llquantize_bucket(v, 10, 0, 3, 20)),
        ("llquantize", (2, 1, 5, 4), lambda v: llquantize_bucket(v, 2, 1, 5, 4)),
    ]
    for func, params, bucket in cases:
        bounds = bucket_bounds(func, params)
        for i, (lo, hi) in enumerate(bounds):
            if lo > hi:  # a bin no integer falls in
                assert func == "llquantize"
                continue
            assert bucket(lo) == bucket(hi) == i, (func, i, lo, hi)
            if lo > INT64_MIN:
                assert bucket(lo - 1) < i
            if hi < INT64_MAX:
                assert bucket(hi + 1) > i
    # llquantize(10, 0, 3, 20): the small integers have bins of their own, with empty ones between
    bounds = [b for b in bucket_bounds("llquantize", (10, 0, 3, 20)) if b[0] <= b[1]]
    assert bounds[bounds.index((0, 0)) + 1 :][:4] == [(1, 1), (2, 2), (3, 3), (4, 4)]


@pytest.mark.parametrize("engine", ENGINES)
def test_periodic_and_printa_snapshots(engine: str) -> None:
    """Snapshots every interval while the program runs, one for each
    printa() of what it prints, and the final one; counts only grow."""
    need_engine(engine)
    program = """
        tick-10ms { @n = count(); }
        tick-10ms /++i == 60/ { printa(@n); exit(0); }
    """
    events = list(pydtrace.stream(program, options={"engine": engine}, interval=0.1))
    snaps = [e for e in events if isinstance(e, pydtrace.Snapshot)]
    (printa,) = [e for e in events if isinstance(e, pydtrace.Record)]
    assert printa.values == () and printa.text is None
    assert [s.final for s in snaps] == [False] * (len(snaps) - 1) + [True]
    assert len(snaps) >= 4  # periodic ones (0.6 s at 0.1 s), printa's, the last
    counts = [s["@n"].get((), 0) for s in snaps]
    assert counts == sorted(counts) and counts[-1] == 60
    after = events.index(printa) + 1  # printa's snapshot follows its record
    assert isinstance(events[after], pydtrace.Snapshot) and events[after]["@n"] == {(): 60}


@pytest.mark.parametrize("engine", ENGINES)
def test_periodic_snapshots_while_a_traced_command_sleeps(engine: str) -> None:
    """Snapshots come every interval even while nothing happens: on ptrace
    the tracing thread, asleep in waitid, is woken for them. Once the
    command has called clock_nanosleep, nothing it does stops it until it
    exits; every snapshot with its count of 1 but the final one is a tick."""
    need_engine(engine)
    program = (
        "syscall::nanosleep:entry, syscall::clock_nanosleep:entry /pid == $target/ { @ = count(); }"
    )
    st = pydtrace.stream(program, command=["sleep", "3"], options={"engine": engine}, interval=0.2)
    snaps = list(st)
    assert all(isinstance(x, pydtrace.Snapshot) for x in snaps)
    assert [x["@"].get((), 0) for x in snaps] == sorted(x["@"].get((), 0) for x in snaps)
    asleep = [x for x in snaps if x["@"] == {(): 1} and not x.final]
    assert len(asleep) >= 2, [x.aggregations for x in snaps]  # about 15, unloaded
    assert snaps[-1].final and snaps[-1]["@"] == {(): 1} and st.returncode == 0


# --- stopping: stop(), timeout=, break ------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_session_stop_from_another_thread(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """stop() ends a running Session within a second, END included, the
    command killed, whatever the engine waits for (a ptrace run waits for
    its tracee in waitid). Not counted: time the thread waited for a CPU,
    and the kernel's teardown of tracepoint attachments (seconds on a
    loaded machine, for Ctrl-C of the command line too)."""
    need_engine(engine)
    from pydtrace.engines.ebpf import perf

    teardown = [0.0]
    close = perf.close_without_waiting

    def timed_close(*a: object) -> None:
        t = time.monotonic()
        close(*a)
        teardown[0] += time.monotonic() - t

    monkeypatch.setattr(perf, "close_without_waiting", timed_close)
    marker = f"{time.time() % 1000 + 100:.6f}"
    out = io.StringIO()
    s = Session(
        [Program("n", 'syscall::read:entry /pid == $target/ { } END { printf("end\\n"); }')],
        settings=[("engine", engine), ("quiet", None)],
        commands=[["sleep", marker]],
        out=out,
    )
    box: dict = {}
    th = threading.Thread(target=lambda: box.setdefault("status", s.run()))
    th.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not alive(f"sleep {marker}"):
        time.sleep(0.05)
    engine_obj = s.engine
    if engine_obj is not None and hasattr(engine_obj, "attached"):
        engine_obj.attached.wait(60)
    time.sleep(0.2)
    assert th.is_alive()
    tid = th.native_id
    first = last = runqueue_ns(tid)
    t0 = time.monotonic()
    s.stop()
    while th.is_alive() and time.monotonic() < t0 + 30:
        last = runqueue_ns(tid) or last  # until the thread is gone
        time.sleep(0.01)
    took = time.monotonic() - t0
    assert not th.is_alive()
    # on a busy machine the thread waits for a CPU: the time it waited is not the stop's
    waited = (last - first) / 1e9 if first and last else 0.0
    assert took - waited - teardown[0] < 1.0, (took, waited, teardown[0])
    assert (box["status"], out.getvalue(), s.returncode()) == (0, "end\n\n", -9)
    assert alive(f"sleep {marker}") == []


@pytest.mark.parametrize("engine", ENGINES)
def test_stream_stop_and_timeout(engine: str) -> None:
    need_engine(engine)
    program = 'tick-10ms { @n = count(); } END { printf("end\\n"); }'
    st = pydtrace.stream(program, options={"engine": engine}, interval=None)
    threading.Timer(0.3, st.stop).start()
    events = list(st)
    assert [e.text for e in events if isinstance(e, pydtrace.Record)] == ["end\n"]
    assert events[-1].final and events[-1]["@n"][()] > 0 and st.status == 0
    t0 = time.monotonic()
    marker = f"{time.time() % 1000 + 200:.6f}"
    r = pydtrace.trace(program, command=["sleep", marker], timeout=0.5,
                       options={"engine": engine, "quiet": True})  # fmt: skip
    assert time.monotonic() - t0 >= 0.5
    assert (r.status, r.output[:5], r.returncode) == (0, "end\n\n", -9)
    assert [x.text for x in r.records] == ["end\n"]
    assert alive(f"sleep {marker}") == []


@pytest.mark.parametrize("engine", ENGINES)
def test_break_leaves_nothing_behind(engine: str) -> None:
    """Leaving a stream early stops the program: the command killed and
    reaped, every descriptor (BPF maps, programs, pipes) closed."""
    need_engine(engine)
    fds = open_fds()
    marker = f"{time.time() % 1000 + 300:.6f}"
    for event in pydtrace.stream('tick-1ms { printf("x"); }', command=["sleep", marker],
                                 options={"engine": engine}):  # fmt: skip
        assert event.text == "x"
        break
    assert alive(f"sleep {marker}") == []
    assert open_fds() == fds
    with pydtrace.stream("tick-1ms { trace(1); }", command=["sleep", marker],
                         options={"engine": engine}) as st:  # fmt: skip
        next(iter(st))
    assert alive(f"sleep {marker}") == []
    assert open_fds() == fds
    assert [t for t in threading.enumerate() if t.name == "pydtrace-session"] == []


# --- as an ordinary user, documentation -------------------------------------------------------


def test_unprivileged_user_traces_a_command_on_ptrace() -> None:
    """Without root the API chooses the ptrace engine, as the CLI does."""
    import shutil

    python = "/usr/bin/python3"
    if os.geteuid() != 0 or shutil.which("setpriv") is None or not os.path.exists(python):
        pytest.skip("needs root (to become nobody), setpriv and /usr/bin/python3")
    script = textwrap.dedent("""
        import json, pydtrace
        r = pydtrace.trace(
            'syscall::write:entry /pid == $target/ { printf("%d", arg2); }',
            command=["sh", "-c", "printf abc >/dev/null; exit 4"], options={"quiet": True})
        print(json.dumps([r.status, r.returncode, [x.values for x in r.records], r.output]))
    """)
    p = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", python, "-c", script],
        capture_output=True, text=True, timeout=120, cwd="/",
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    assert (p.returncode, p.stderr) == (0, "")
    assert json.loads(p.stdout) == [0, 4, [[3]], "3\n"]


def test_every_public_name_has_a_docstring() -> None:
    for name in pydtrace.__all__:
        if name == "__version__":
            continue
        obj = getattr(pydtrace, name)
        assert (obj.__doc__ or "").strip(), name
    for method in (pydtrace.Session.stop, pydtrace.Session.run, pydtrace.Stream.stop,
                   pydtrace.Stream.close, pydtrace.Histogram.nonzero):  # fmt: skip
        assert (method.__doc__ or "").strip(), method
    assert sorted(dir(pydtrace)) == sorted(pydtrace.__all__)


def test_the_api_page_example_runs() -> None:
    """docs/api.md's ```python blocks run as they are (as root or not)."""
    need(ptrace_works() or bpf_maps_ok(), "no engine can trace a command here")
    text = (ROOT / "docs" / "api.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert blocks
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("_DTRACE_TESTING", None)
    p = subprocess.run([sys.executable, "-c", "\n".join(blocks)], capture_output=True,
                       text=True, timeout=180, env=env, cwd="/")  # fmt: skip
    assert (p.returncode, p.stderr) == (0, "")
    lines = p.stdout.splitlines()  # ls's listing, then the table
    top = lines.index("%-12s %6s %12s %12s" % ("syscall", "calls", "total_ns", "max_ns"))
    assert [x.split()[0] for x in lines[top + 1 :]][:2] == ["close", "getdents64"]
