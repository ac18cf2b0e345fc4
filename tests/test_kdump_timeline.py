"""kdump --timeline: a real ktrace recording (both recorders) and made-up
files turned into Trace Event Format JSON, checked against the format's
rules and against kdump's own listing of the same file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import bpf_maps_ok, need, ptrace_works
from pydtrace.ktrace import format as F
from test_kdump import call, kdump, rec, ret, start, write_trace

SRC = str(Path(__file__).resolve().parents[1] / "src")

# a signal caught, a thread that opens a file, a child that execs
PROGRAM = """\
import os, signal, threading
signal.signal(signal.SIGUSR1, lambda *a: None)
os.kill(os.getpid(), signal.SIGUSR1)
def t():
    with open("/etc/hostname") as f:
        f.read()
th = threading.Thread(target=t)
th.start()
th.join()
if os.fork() == 0:
    os.execv("/bin/true", ["true", "arg one"])
os.wait()
"""


def check_format(events: list[dict]) -> dict[tuple[int, int], list[dict]]:
    """The Trace Event Format's rules as this file uses them: every event
    complete ("X" with a duration), instant ("i") or metadata ("M"); per
    track (pid, tid), times in order and slices not overlapping. The tracks."""
    tracks: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for e in events:
        assert e["ph"] in ("X", "i", "M"), e
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int), e
        if e["ph"] == "M":
            assert e["name"] in ("process_name", "thread_name") and e["args"]["name"], e
            continue
        assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0, e
        if e["ph"] == "X":
            assert e["dur"] >= 0 and e["cat"] == "syscall", e
        else:
            assert e["s"] == "t", e
        tracks[(e["pid"], e["tid"])].append(e)
    for evs in tracks.values():
        times = [e["ts"] for e in evs]
        assert times == sorted(times)
        end = 0.0
        for e in evs:
            if e["ph"] == "X":
                assert e["ts"] >= end - 0.001, e  # (rounded to the nanosecond)
                end = e["ts"] + e["dur"]
    return tracks


def timeline(*args: str) -> tuple[int, str, dict | None, Path]:
    path = Path(args[args.index("--timeline") + 1])
    status, out, err = kdump(*args)
    assert out == ""
    data = json.loads(path.read_text()) if path.exists() else None
    return status, err, data, path


@pytest.mark.parametrize("engine", ["ebpf", "ptrace"])
def test_a_recording(tmp_path: Path, engine: str) -> None:
    if engine == "ebpf":
        need(bpf_maps_ok(), "the eBPF recorder needs root and bpf(2)")
    else:
        need(ptrace_works(), "ptrace is not allowed here")
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    trace = tmp_path / "k.out"
    p = subprocess.run([sys.executable, "-m", "pydtrace.cli.ktrace", "--engine", engine, "-i",
                        "-f", str(trace), sys.executable, str(prog)],
                       env=dict(os.environ, PYTHONPATH=SRC), capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert (p.returncode, p.stderr) == (0, "")
    out = tmp_path / "timeline.json"
    status, err, data, _ = timeline("-f", str(trace), "--timeline", str(out))
    assert (status, err) == (0, "")
    assert data is not None
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # what the processes did: the owner's
    assert data["displayTimeUnit"] == "ns" and isinstance(data["otherData"]["start_ns"], int)
    tracks = check_format(data["traceEvents"])

    # the calls, per thread, are kdump's CALL/RET records, in order, with its texts
    status, listing, err = kdump("-f", str(trace), "--json")
    assert (status, err) == (0, "")
    expect: dict[tuple[int, int], list[tuple[str, str, str]]] = defaultdict(list)
    pending: dict[tuple[int, int], dict] = {}
    for r in map(json.loads, listing.splitlines()):
        key = (r.get("pid"), r.get("tid"))
        if r["type"] == "CALL":
            pending[key] = r
        elif r["type"] == "RET":
            c = pending.pop(key, None)  # none: a new thread's or child's clone returning
            assert c is None or c["syscall"] == r["syscall"]
            expect[key].append((r["syscall"], c and c["text"], r["text"]))
    unfinished = {k: c["syscall"] for k, c in pending.items()}
    got: dict[tuple[int, int], list[tuple[str, str, str]]] = defaultdict(list)
    ended: dict[tuple[int, int], str] = {}
    for key, evs in tracks.items():
        for e in evs:
            if e["ph"] != "X":
                continue
            if e["args"].get("returned") is False:
                ended[key] = e["name"]
            else:
                assert ("call" in e["args"]) != (e["args"].get("call_seen") is False)
                got[key].append((e["name"], e["args"].get("call"), e["args"]["ret"]))
    assert got == expect
    assert ended == unfinished and set(unfinished.values()) <= {"exit_group", "exit"}

    main = min(tracks)  # the recorded program's first thread
    names = {e["name"] for e in tracks[main] if e["ph"] == "i"}
    assert {"SIGUSR1", "thread", "fork", "exec", "exit"} <= names
    threads = [k for k in tracks if k[0] == main[0] and k[1] != main[1]]
    assert len(threads) == 1
    opened = [e for e in tracks[threads[0]] if e["ph"] == "X" and e["name"] == "openat"]
    assert any(e["args"].get("paths") == ["/etc/hostname"] for e in opened)
    (child,) = [k for k in tracks if k[0] != main[0]]
    (ex,) = [e for e in tracks[child] if e["name"] == "exec"]
    assert ex["args"]["argv"] == ["true", "arg one"]
    names = {
        e["args"]["name"] for e in data["traceEvents"] if e["ph"] == "M" and e["tid"] == child[1]
    }
    assert "true" in names


def test_unfinished_and_unstarted_calls_are_closed(tmp_path: Path) -> None:
    """A call that never returns ends at its thread's last record; a RET whose
    CALL came before the trace is a slice of no length; lost events and a
    signal during a call are instants after the call's slice."""
    trace = write_trace(tmp_path / "t.out", [
        start(),
        ret("read", 5, us=10, pid=1, comm="a"),
        call("kill", 1, 10, us=20, pid=1, comm="a"),
        rec(F.PSIG, F.psig_payload(10, 0, 0, 0), us=25, pid=1, comm="a"),
        ret("kill", 0, us=30, pid=1, comm="a"),
        call("getpid", us=40, pid=1, comm="a", lost=3),
        call("exit_group", 0, us=50, pid=1, comm="a"),
        rec(F.EXIT, F.exit_payload(0), us=60, pid=1, comm="a"),
        call("read", 3, 0, 10, us=70, pid=2, tid=3, comm="b"),
    ])  # fmt: skip
    out = tmp_path / "t.json"
    status, err, data, _ = timeline("-f", str(trace), "--timeline", str(out))
    assert (status, err) == (0, "")
    tracks = check_format(data["traceEvents"])
    short = [(e["ph"], e["name"], e["ts"], e.get("dur")) for e in tracks[(1, 1)]]
    assert short == [
        ("X", "read", 0.0, 0.0), ("X", "kill", 10.0, 10.0), ("i", "SIGUSR1", 15.0, None),
        ("i", "events lost", 30.0, None), ("X", "getpid", 30.0, 10.0),
        ("X", "exit_group", 40.0, 10.0), ("i", "exit", 50.0, None),
    ], short  # fmt: skip
    x = {e["name"]: e["args"] for e in tracks[(1, 1)] if e["ph"] == "X"}
    assert x["read"]["call_seen"] is False and x["read"]["retval"] == 5
    assert x["getpid"]["returned"] is False and x["exit_group"]["returned"] is False
    (read,) = tracks[(2, 3)]
    assert (read["name"], read["dur"], read["args"]["returned"]) == ("read", 0.0, False)


def test_errors(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.out", [start(), call("getpid", us=1), ret("getpid", 7, us=2)])
    out = tmp_path / "x.json"
    assert kdump("-f", str(trace), "--json", "--timeline", str(out)) == (
        1, "", "kdump: --timeline cannot be used with --json\n")  # fmt: skip
    assert kdump("-f", str(trace), "-l", "--timeline", str(out)) == (
        1, "", "kdump: --timeline cannot be used with -l\n")  # fmt: skip
    assert kdump("-f", str(trace), "--timeline", "/nonexistent-dir/x.json") == (
        1, "", "kdump: failed to open /nonexistent-dir/x.json: No such file or directory\n")  # fmt: skip
    # an input that is no trace: the message, and no file made
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a trace at all")
    status, _, err = kdump("-f", str(junk), "--timeline", str(out))
    assert (status, err, out.exists()) == (1, f"kdump: {junk}: not a ktrace file (no start record at offset 0)\n", False)  # fmt: skip
    # a file damaged after a good record: that record's timeline, complete, and the message
    good = trace.read_bytes()
    damaged = tmp_path / "damaged"
    damaged.write_bytes(good + b"\xff" * 64)
    status, err, data, _ = timeline("-f", str(damaged), "--timeline", str(out))
    assert status == 1 and err.startswith("kdump: ") and data is not None
    assert [e["name"] for e in data["traceEvents"] if e["ph"] == "X"] == ["getpid"]
    # - writes to standard output
    status, text, err = kdump("-f", str(trace), "--timeline", "-")
    assert (status, err) == (0, "")
    assert [e["args"]["ret"] for e in json.loads(text)["traceEvents"] if e["ph"] == "X"] == [
        "getpid 7"
    ]
