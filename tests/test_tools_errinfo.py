"""errinfo against strace: the same failing calls, with the same errnos, on
both engines; -c counts them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from toolrun import engines, need_engine, needs_strace, script, strace_calls, tool


def program(tmp: Path) -> list[str]:
    return [script(tmp, "fails.sh", (
        "#!/bin/sh\n"
        "ls -l /etc/hostname /nonexistent-errinfo >/dev/null 2>&1\n"
        "cat /nonexistent-errinfo 2>/dev/null\n"
        "cd /nonexistent-errinfo 2>/dev/null\n"
        "mkdir / 2>/dev/null\n"
        "exit 0\n"
    ))]  # fmt: skip


def strace_failures(argv: list[str], tmp: Path) -> Counter:
    return Counter(
        (name, ename)
        for _pid, name, _args, _ret, ename in strace_calls(argv, tmp)
        if ename and name != "rt_sigreturn"
    )


@needs_strace
@pytest.mark.parametrize("engine", engines())
def test_failures_equal_strace(tmp_path: Path, engine: str) -> None:
    need_engine(engine)
    argv = program(tmp_path)
    expect = strace_failures(argv, tmp_path)
    assert expect[("mkdir", "EEXIST")] == 1 and expect[("chdir", "ENOENT")] == 1
    r = tool("errinfo", "--engine", engine, "-j", "--", *argv)
    assert r.status == 0, r.err
    got = Counter((e["syscall"], e["errno"]) for e in r.json())
    assert got == expect
    r = tool("errinfo", "--engine", engine, "-c", "-j", "--", *argv)
    assert r.status == 0, r.err
    counted: Counter = Counter()
    for e in r.json():
        counted[(e["syscall"], e["errno"])] += e["count"]
    assert counted == expect


@pytest.mark.parametrize("engine", engines())
def test_columns(engine: str) -> None:
    need_engine(engine)
    r = tool("errinfo", "--engine", engine, "--", "/bin/sh", "-c", "mkdir /; exit 0")
    assert r.status == 0
    lines = r.out.splitlines()
    assert lines[0] == "PID     EXEC             SYSCALL           ERR NAME            DESC"
    (row,) = [x for x in lines[1:] if x.split()[2] == "mkdir"]
    pid = int(row.split()[0])
    assert row == "%-7d %-16s %-16s %4d %-15s %s" % (
        pid,
        "mkdir",
        "mkdir",
        17,
        "EEXIST",
        "File exists",
    )
    r = tool("errinfo", "--engine", engine, "-c", "--", "/bin/sh", "-c", "mkdir /; mkdir /; exit 0")
    assert r.status == 0
    lines = r.out.splitlines()
    assert lines[0] == "EXEC             SYSCALL           ERR NAME               COUNT DESC"
    assert (
        "%-16s %-16s %4d %-15s %8d %s" % ("mkdir", "mkdir", 17, "EEXIST", 2, "File exists") in lines
    )
