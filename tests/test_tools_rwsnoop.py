"""rwsnoop and rwtop against a program whose reads and writes are known, and
against strace: the same calls, the same byte counts, on both engines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from toolrun import command, engines, env, need_engine, needs_strace, script, strace_calls, tool

CALLS = ("read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev",
         "preadv2", "pwritev2")  # fmt: skip

# Each call's bytes are fixed; glibc's pwritev/preadv are pwritev2/preadv2 here.
PROGRAM = """\
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, b"a" * 100)
os.write(fd, b"b" * 2000)
os.pwrite(fd, b"c" * 7, 5000)
os.writev(fd, [b"ab", b"cde"])
os.pwritev(fd, [b"xy"], 0)
os.lseek(fd, 0, 0)
os.read(fd, 50)
os.pread(fd, 10, 0)
os.readv(fd, [bytearray(4), bytearray(6)])
os.preadv(fd, [bytearray(3)], 1)
try:
    os.read(999, 1)
except OSError:
    pass
if len(sys.argv) > 2:  # rwtop's intervals: more once the test has seen a table
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.01)
    os.write(fd, b"d" * 3000)
os.close(fd)
"""

KNOWN = [("W", "write", 100), ("W", "write", 2000), ("W", "pwrite64", 7), ("W", "writev", 5),
         ("W", "pwritev2", 2), ("R", "read", 50), ("R", "pread64", 10), ("R", "readv", 10),
         ("R", "preadv2", 3)]  # fmt: skip


def program(tmp: Path) -> tuple[list[str], str]:
    data = str(tmp / "data")
    return [sys.executable, script(tmp, "rw.py", PROGRAM), data], data


@pytest.mark.parametrize("engine", engines())
def test_rwsnoop_known_calls(tmp_path: Path, engine: str) -> None:
    """Every read and write of the file, in order, with its bytes and the path
    fds[] names; the failed read: -1, EBADF, no file."""
    need_engine(engine)
    argv, data = program(tmp_path)
    r = tool("rwsnoop", "--engine", engine, "-j", "--", *argv)
    assert (r.status, r.err) == (0, "")
    rows = r.json()
    pid = {e["pid"] for e in rows}
    assert len(pid) == 1
    fd = next(e["fd"] for e in rows if e["path"] == data)
    assert [(e["dir"], e["call"], e["bytes"]) for e in rows if e["path"] == data] == KNOWN
    assert all(e["fd"] == fd and e["err"] == 0 for e in rows if e["path"] == data)
    (bad,) = [e for e in rows if e["fd"] == 999]
    assert (bad["call"], bad["bytes"], bad["err"], bad["errno"], bad["path"]) == (
        "read", -1, 9, "EBADF", "<none>")  # fmt: skip


@needs_strace
@pytest.mark.parametrize("engine", engines())
def test_rwsnoop_equals_strace(tmp_path: Path, engine: str) -> None:
    """Python's start-up as well: every read/write-family call strace sees, with
    its descriptor and result, and no other."""
    need_engine(engine)
    argv, _ = program(tmp_path)
    expect = Counter(
        (name, int(args.split(",")[0]), int(ret))
        for _pid, name, args, ret, _e in strace_calls(argv, tmp_path, "-e", "trace=" + ",".join(CALLS))
    )  # fmt: skip
    assert expect[("write", 3, 100)] == 1 and expect[("read", 999, -1)] == 1
    r = tool("rwsnoop", "--engine", engine, "-j", "--", *argv)
    assert (r.status, r.err) == (0, "")
    assert Counter((e["call"], e["fd"], e["bytes"]) for e in r.json()) == expect


@pytest.mark.parametrize("engine", engines())
def test_rwsnoop_columns_and_failed_only(tmp_path: Path, engine: str) -> None:
    need_engine(engine)
    argv, _ = program(tmp_path)
    r = tool("rwsnoop", "--engine", engine, "-x", "--", *argv)
    assert (r.status, r.err) == (0, "")
    head, *rows = r.out.splitlines()
    assert head == "PID     COMM             D CALL       FD    BYTES ERR PATH"
    (row,) = rows
    pid = int(row.split()[0])
    assert row == "%-7d %-16s R %-8s %4d %8d %3d %s" % (
        pid,
        os.path.basename(argv[0])[:15],  # the name it was exec'd by (a venv's `python`)
        "read",
        999,
        -1,
        9,
        "<none>",
    )


@pytest.mark.parametrize("engine", engines())
def test_rwtop_per_file_totals(tmp_path: Path, engine: str) -> None:
    """-f: the program's file gets its calls and bytes summed exactly (one
    interval longer than the run: one table, at the end)."""
    need_engine(engine)
    argv, data = program(tmp_path)
    r = tool("rwtop", "--engine", engine, "-f", "-j", "-r", "1000", "3600", "--", *argv)
    assert (r.status, r.err) == (0, "")
    (row,) = [e for e in r.json() if e["file"] == data]
    w = [b for d, _c, b in KNOWN if d == "W"]
    rd = [b for d, _c, b in KNOWN if d == "R"]
    assert (row["reads"], row["writes"], row["rbytes"], row["wbytes"]) == (
        len(rd), len(w), sum(rd), sum(w))  # fmt: skip


@pytest.mark.parametrize("engine", engines())
def test_rwtop_intervals_and_screen(tmp_path: Path, engine: str) -> None:
    """Every interval prints a table (cleared first unless -C); summed over the
    tables, the process's bytes written are the program's (its start-up
    writes nothing). The program writes again only once an interval's table
    has shown its first writes, so a slow tick on a busy machine cannot fold
    both into the end's table."""
    need_engine(engine)
    argv, _ = program(tmp_path)
    go = tmp_path / "go"
    t = subprocess.Popen(command("rwtop", "--engine", engine, "0.5", "--", *argv, str(go)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         env=env(), cwd="/")  # fmt: skip
    assert t.stdout is not None
    seen = b""
    try:
        end = time.monotonic() + 60
        # a table whose row shows KB written (the python's start-up only reads)
        while not re.search(rb"\033\[H\033\[2J[^\033]*W_KB\n[^\033]* [1-9]\d*\n\n", seen):
            assert time.monotonic() < end and t.poll() is None, seen
            seen += os.read(t.stdout.fileno(), 65536)
        go.touch()
        out_b, err_b = t.communicate(timeout=60)
    finally:
        go.touch()
        if t.poll() is None:
            t.kill()
            t.wait()
    out, err = (seen + out_b).decode(), err_b.decode()
    assert (t.returncode, err) == (0, "")
    tables = out.split("\033[H\033[2J")
    assert tables[0] == "" and len(tables) >= 3, out  # an interval's, then at least the end's
    written = []
    for table in tables[1:]:
        lines = table.split("\n")
        assert re.fullmatch(r"\d\d:\d\d:\d\d loadavg: .+", lines[0]), lines[0]
        assert lines[1:3] == ["", "PID     COMM              READS WRITES     R_KB     W_KB"]
        assert lines[-2:] == ["", ""]
        for line in lines[3:-2]:
            pid, comm, reads, writes, rkb, wkb = line.split()
            assert line == "%-7s %-16s %6s %6s %8s %8s" % (pid, comm, reads, writes, rkb, wkb)
            written.append(int(wkb))
    # the first writes (2114 bytes) in one table, the last (3000) in a later one
    assert [kb for kb in written if kb] == [2114 // 1024, 3000 // 1024], out
    r = tool("rwtop", "--engine", engine, "-C", "3600", "--", *argv)
    assert r.status == 0 and "\033" not in r.out and r.out.count("loadavg:") == 1


def test_rwtop_bad_input() -> None:
    cases = [
        (["-s", "size"], "rwtop: invalid value for -s: 'size': not a column (one of all, reads, writes, rbytes, wbytes)\n"),
        (["-r", "0"], "rwtop: invalid value for -r: '0': must be greater than 0\n"),
        (["1", "2", "3"], "rwtop: unexpected argument '3' (a command goes after --)\n"),
    ]  # fmt: skip
    for args, err in cases:
        r = tool("rwtop", *args)
        assert (r.status, r.out, r.err) == (2, "", err), args
