"""opensnoop against strace: the same command, the same opens, on both engines."""

from __future__ import annotations

import errno
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from toolrun import command, engines, env, need_engine, needs_strace, script, strace_calls, tool

OPENS = ("open", "openat", "openat2", "creat")


def strace_opens(argv: list[str], tmp: Path) -> Counter:
    seen: Counter = Counter()
    for _pid, _name, args, _ret, ename in strace_calls(argv, tmp, "-e", "trace=" + ",".join(OPENS)):
        path = re.search(r'"((?:[^"\\]|\\.)*)"', args)
        assert path is not None, args
        seen[(path.group(1), getattr(errno, ename) if ename else 0)] += 1
    return seen


def opensnoop_opens(engine: str, argv: list[str], *opts: str) -> Counter:
    r = tool("opensnoop", "--engine", engine, "-j", *opts, "--", *argv)
    assert r.status == 0, r.err
    assert not [x for x in r.err.splitlines() if x.startswith("opensnoop:")], r.err
    return Counter((e["path"], e["err"]) for e in r.json())


def shell_program(tmp: Path) -> list[str]:
    """A shell, a pipeline (two children), files found and missing, a creat()."""
    out = tmp / "made"
    return [script(tmp, "opens.sh", (
        "#!/bin/sh\n"
        "cat /etc/hostname /nonexistent-opensnoop 2>/dev/null | sort >/dev/null\n"
        f"echo x >{out}\n"
        "/bin/ls /etc/hostname >/dev/null\n"
        "exit 3\n"
    ))]  # fmt: skip


@needs_strace
@pytest.mark.parametrize("engine", engines())
def test_opens_equal_strace(tmp_path: Path, engine: str) -> None:
    need_engine(engine)
    argv = shell_program(tmp_path)
    expect = strace_opens(argv, tmp_path)
    assert ("/etc/hostname", 0) in expect and ("/nonexistent-opensnoop", errno.ENOENT) in expect
    assert opensnoop_opens(engine, argv) == expect


@needs_strace
@pytest.mark.parametrize("engine", engines())
def test_failed_only_equals_strace_failures(tmp_path: Path, engine: str) -> None:
    need_engine(engine)
    argv = ["/bin/cat", "/etc/hostname", "/nonexistent-opensnoop"]
    expect = Counter({k: n for k, n in strace_opens(argv, tmp_path).items() if k[1]})
    assert expect
    assert opensnoop_opens(engine, argv, "-x") == expect


@pytest.mark.parametrize("engine", engines())
def test_columns(tmp_path: Path, engine: str) -> None:
    """BCC's columns: PID COMM FD ERR PATH; -f adds FLAGS; a failure is fd -1."""
    need_engine(engine)
    r = tool("opensnoop", "--engine", engine, "-f", "-n", "cat", "--",
             "/bin/cat", "/etc/hostname", "/nonexistent-opensnoop")  # fmt: skip
    assert r.status == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "PID     COMM               FD ERR FLAGS                    PATH"
    rows = {x.split()[-1]: x for x in lines[1:]}
    pid = int(rows["/etc/hostname"].split()[0])
    assert rows["/etc/hostname"] == "%-7d %-16s %4d %3d %-24s %s" % (
        pid, "cat", 3, 0, "O_RDONLY", "/etc/hostname")  # fmt: skip
    assert rows["/nonexistent-opensnoop"] == "%-7d %-16s %4d %3d %-24s %s" % (
        pid, "cat", -1, 2, "O_RDONLY", "/nonexistent-opensnoop")  # fmt: skip


@pytest.mark.parametrize("engine", engines())
def test_name_filter_and_timestamps(engine: str) -> None:
    """-n keeps one command's opens (not its shell's); -t counts from the first event."""
    need_engine(engine)
    r = tool("opensnoop", "--engine", engine, "-t", "-n", "cat", "--",
             "/bin/sh", "-c", "/bin/cat /etc/hostname >/dev/null; :")  # fmt: skip
    assert r.status == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["TIME(s)", "PID", "COMM", "FD", "ERR", "PATH"]
    assert lines[1].split()[0] == "0.000000"
    assert {x.split()[2] for x in lines[1:]} == {"cat"}
    times = [float(x.split()[0]) for x in lines[1:]]
    assert times == sorted(times)
    assert any(x.endswith(" /etc/hostname") for x in lines)


@pytest.mark.parametrize("engine", engines())
def test_pid(engine: str, tmp_path: Path) -> None:
    """-p PID traces that process only (not its children), to its end: the
    tool ends with it. The header says tracing has begun."""
    need_engine(engine)
    prog = script(tmp_path, "later.sh", (
        "#!/bin/sh\nread x\nread y </etc/hostname\n/bin/cat /etc/hostname >/dev/null\n"))  # fmt: skip
    child = subprocess.Popen([prog], stdin=subprocess.PIPE, text=True)
    try:
        t = subprocess.Popen(command("opensnoop", "--engine", engine, "-p", str(child.pid)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())  # fmt: skip
        assert t.stdout is not None and child.stdin is not None
        assert t.stdout.readline() == "PID     COMM               FD ERR PATH\n"
        child.stdin.write("go\n")
        child.stdin.close()
        assert child.wait(timeout=60) == 0
        out, err = t.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    assert (t.returncode, err) == (0, "")
    rows = out.splitlines()  # the shell's own: /etc/hostname, and /dev/null (dash redirects
    #                           in the parent); none of cat's
    assert {r.split()[-1] for r in rows} == {"/etc/hostname", "/dev/null"}, rows
    for row in rows:
        fd = int(row.split()[2])
        assert fd >= 0 and row == "%-7d %-16s %4d %3d %s" % (
            child.pid,
            "later.sh",
            fd,
            0,
            row.split()[-1],
        )


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    plain = tmp_path / "not-executable"
    plain.write_text("")
    cases = [
        (["-z"], 2, "opensnoop: unknown option '-z' (see opensnoop -h)\n"),
        (["--bogus"], 2, "opensnoop: unknown option '--bogus' (see opensnoop -h)\n"),
        (["-p"], 2, "opensnoop: option '-p' needs a value (PID)\n"),
        (["-p", "abc"], 2, "opensnoop: invalid value for -p: 'abc': not a process ID\n"),
        (["-d", "0"], 2, "opensnoop: invalid value for -d: '0': must be greater than 0 seconds\n"),
        (["-d", "-1"], 2, "opensnoop: invalid value for -d: '-1': must be greater than 0 seconds\n"),
        (["-p", "1", "--", "true"], 2, "opensnoop: -p and a command cannot be used together\n"),
        (["--"], 2, "opensnoop: no command after --\n"),
        (["--engine", "dtrace"], 2,
         "opensnoop: invalid value for --engine: 'dtrace': not an engine (one of ebpf, ptrace)\n"),
        (["--engine", "ptrace"], 1,
         "opensnoop: the ptrace engine traces a process: give -p PID or a command (opensnoop -h)\n"),
        (["--", "/nonexistent-opensnoop"], 1,
         "opensnoop: failed to execute /nonexistent-opensnoop: No such file or directory\n"),
        (["--", str(plain)], 1, f"opensnoop: failed to execute {plain}: Permission denied\n"),
    ]  # fmt: skip
    for args, status, err in cases:
        r = tool("opensnoop", *args)
        assert (r.status, r.out, r.err) == (status, "", err), args


@pytest.mark.parametrize("engine", engines())
def test_no_such_pid(engine: str) -> None:
    need_engine(engine)
    pid = 4_000_000  # above pid_max's ceiling: never a process
    r = tool("opensnoop", "--engine", engine, "-p", str(pid))
    assert (r.status, r.out, r.err) == (
        1,
        "",
        f"opensnoop: failed to grab pid {pid}: No such process\n",
    )


def test_print_script_is_what_runs() -> None:
    r = tool("opensnoop", "-x", "-n", 'we"ird', "-d", "2.5", "--print-script")
    assert r.status == 0 and r.err == ""
    assert 'inline int SELECTED = pid != $pid && execname == "we\\"ird";\n' in r.out
    assert "inline int FAILED_ONLY = 1;\n" in r.out
    assert r.out.endswith("profile:::tick-2500ms\n{\n\texit(0);\n}\n")
