"""execsnoop against strace: every exec of a shell script's children, with the
exact path, arguments and result, on both engines."""

from __future__ import annotations

import errno
import re
from collections import Counter
from pathlib import Path

import pytest

from conftest import compile_c
from toolrun import engines, need_engine, needs_strace, script, strace_calls, tool

_STR = re.compile(r'"((?:[^"\\]|\\.)*)"')


def unescape(s: str) -> str:
    return s.encode().decode("unicode_escape")


def strace_execs(argv: list[str], tmp: Path) -> Counter:
    """(path, args, errno) of each exec strace saw but the command's own first one."""
    seen: Counter = Counter()
    calls = strace_calls(argv, tmp, "-e", "trace=execve,execveat", "-v")
    for i, (_pid, _name, args, _ret, ename) in enumerate(calls):
        if i == 0:
            continue  # the command's own: tracing starts at it
        path = unescape(_STR.match(args).group(1))  # type: ignore[union-attr]
        argl = re.search(r"\[(.*?)\]", args)
        assert argl is not None, args
        words = tuple(unescape(x) for x in _STR.findall(argl.group(1)))
        seen[(path, words, getattr(errno, ename) if ename else 0)] += 1
    return seen


def execsnoop_execs(engine: str, argv: list[str], *opts: str) -> Counter:
    r = tool("execsnoop", "--engine", engine, "-j", *opts, "--", *argv)
    assert r.status == 0, r.err
    assert not [x for x in r.err.splitlines() if x.startswith("execsnoop:")], r.err
    got: Counter = Counter()
    for e in r.json():
        assert not e["truncated"]
        got[(e["path"], tuple(e["args"]), -e["ret"])] += 1
    return got


def program(tmp: Path) -> list[str]:
    """Children that exec with spaces, quotes and an empty argument; a command
    env looks for along PATH and does not find; one that is not executable."""
    plain = tmp / "plain"
    plain.write_text("")
    return [script(tmp, "execs.sh", (
        "#!/bin/sh\n"
        "PATH=/nonexistent-dir:/usr/bin:/bin\n"
        "/bin/echo one 'two words' \"it's\" '' >/dev/null\n"
        "true\n"
        "/usr/bin/env no-such-command-execsnoop 2>/dev/null\n"
        f"{plain} 2>/dev/null\n"
        "/bin/sh -c '/bin/true nested'\n"
        "exit 0\n"
    ))]  # fmt: skip


@needs_strace
@pytest.mark.parametrize("engine", engines())
def test_execs_equal_strace(tmp_path: Path, engine: str) -> None:
    need_engine(engine)
    argv = program(tmp_path)
    expect = strace_execs(argv, tmp_path)
    assert ("/bin/echo", ("/bin/echo", "one", "two words", "it's", ""), 0) in expect
    assert sum(n for k, n in expect.items() if k[2] == errno.ENOENT) >= 2  # the PATH search
    assert sum(n for k, n in expect.items() if k[2] == errno.EACCES) == 1
    assert execsnoop_execs(engine, argv) == expect
    failed = Counter({k: n for k, n in expect.items() if k[2]})
    assert execsnoop_execs(engine, argv, "-x") == failed


@pytest.mark.parametrize("engine", engines())
def test_columns_and_many_arguments(engine: str) -> None:
    """BCC's columns; the first 20 arguments, then "..."."""
    need_engine(engine)
    many = [str(i) for i in range(1, 25)]
    r = tool("execsnoop", "--engine", engine, "--", "/bin/sh", "-c",
             f"/bin/true {' '.join(many)}; /bin/echo 'a b' >/dev/null; exit 0")  # fmt: skip
    assert r.status == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "PCOMM            PID     PPID    RET ARGS"
    rows = [x.split(None, 4) for x in lines[1:]]
    assert [(c, ret) for c, _, _, ret, _ in rows] == [("true", "0"), ("echo", "0")]
    assert rows[0][4] == "/bin/true " + " ".join(many[:19]) + " ..."
    assert rows[1][4] == "/bin/echo 'a b'"
    # both children of the same shell: one parent, the pid each exec'd in
    assert rows[0][2] == rows[1][2]
    pid = int(rows[0][1])
    assert lines[1] == "%-16s %-7d %-7s %3d %s" % ("true", pid, rows[0][2], 0, rows[0][4])


def test_json_fields() -> None:
    r = tool("execsnoop", "-j", "--", "/bin/sh", "-c", "/bin/true x; exit 0")
    assert r.status == 0, r.err
    (e,) = r.json()
    assert set(e) == {"time", "comm", "pid", "ppid", "ret", "path", "args", "truncated"}
    assert (e["comm"], e["ret"], e["path"], e["args"]) == (
        "true",
        0,
        "/bin/true",
        ["/bin/true", "x"],
    )


@pytest.mark.parametrize("engine", engines())
def test_exec_of_a_32bit_program(tmp_path: Path, engine: str) -> None:
    """A 64-bit shell execs a 32-bit program: its arguments are on the new
    stack as 4-byte pointers, and the kernel's syscall events skip the exec's
    return (the thread is 32-bit by then), so only exec-success shows it."""
    need_engine(engine)
    exe = compile_c(tmp_path, "prog32", """
        void _start(void) { __asm__ volatile("movl $1, %eax; xorl %ebx, %ebx; int $0x80"); }
    """, "-m32", "-nostdlib", "-static")  # fmt: skip
    r = tool("execsnoop", "--engine", engine, "-j", "--", "/bin/sh", "-c",
             f"{exe} alpha 'be ta' gamma; /bin/true x; exit 0")  # fmt: skip
    assert r.status == 0, r.err
    got = [(e["comm"], e["ret"], e["path"], e["args"], e["truncated"]) for e in r.json()]
    assert got == [
        ("prog32", 0, exe, [exe, "alpha", "be ta", "gamma"], False),
        ("true", 0, "/bin/true", ["/bin/true", "x"], False),
    ]
