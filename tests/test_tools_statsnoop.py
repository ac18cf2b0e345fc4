"""statsnoop against strace: the same stat-family calls, paths and errnos, on
both engines."""

from __future__ import annotations

import errno
import re
from collections import Counter
from pathlib import Path

import pytest

from toolrun import engines, need_engine, needs_strace, script, strace_calls, tool

CALLS = "stat,lstat,newfstatat,statx,statfs"


def strace_stats(argv: list[str], tmp: Path) -> Counter:
    seen: Counter = Counter()
    for _pid, name, args, _ret, ename in strace_calls(argv, tmp, "-e", f"trace={CALLS}"):
        path = re.search(r'"((?:[^"\\]|\\.)*)"', args)
        seen[(name, path.group(1) if path else "", getattr(errno, ename) if ename else 0)] += 1
    return seen


def program(tmp: Path) -> list[str]:
    return [script(tmp, "stats.sh", (
        "#!/bin/sh\n"
        "ls -l /etc/hostname /nonexistent-statsnoop >/dev/null 2>&1\n"
        "stat -L /etc/hostname >/dev/null\n"
        "[ -e /nonexistent-statsnoop ] || df / >/dev/null\n"
        "exit 0\n"
    ))]  # fmt: skip


@needs_strace
@pytest.mark.parametrize("engine", engines())
def test_stats_equal_strace(tmp_path: Path, engine: str) -> None:
    need_engine(engine)
    argv = program(tmp_path)
    expect = strace_stats(argv, tmp_path)
    assert expect[("statx", "/nonexistent-statsnoop", errno.ENOENT)] >= 1
    r = tool("statsnoop", "--engine", engine, "-j", "--", *argv)
    assert r.status == 0, r.err
    got = Counter((e["call"], e["path"], e["err"]) for e in r.json())
    assert got == expect
    r = tool("statsnoop", "--engine", engine, "-x", "-j", "--", *argv)
    assert r.status == 0, r.err
    assert Counter((e["call"], e["path"], e["err"]) for e in r.json()) == Counter(
        {k: n for k, n in expect.items() if k[2]}
    )


@pytest.mark.parametrize("engine", engines())
def test_columns(engine: str) -> None:
    need_engine(engine)
    r = tool("statsnoop", "--engine", engine, "-n", "stat", "--", "/usr/bin/stat", "-L",
             "/nonexistent-statsnoop")  # fmt: skip
    assert r.status == 0
    lines = r.out.splitlines()
    assert lines[0] == "PID     COMM             CALL       RET ERR PATH"
    (row,) = [x for x in lines if x.endswith(" /nonexistent-statsnoop")]
    pid = int(row.split()[0])
    assert row == "%-7d %-16s %-10s %3d %3d %s" % (
        pid,
        "stat",
        "statx",
        -1,
        2,
        "/nonexistent-statsnoop",
    )
