"""dtruss against strace: the same calls with the same decoded arguments and
results, on both engines; -f follows children; -c counts; -e/-d times; the
string-argument lists of dtruss.d follow the system call prototypes."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from conftest import compile_c
from pydtrace.tools.dtruss import string_args
from pydtrace.tools.tool import source
from toolrun import engines, env, need_engine, needs_strace, tool

CALLS_C = r"""
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    int fd = open("/etc/hostname", O_RDONLY);
    close(fd);
    open("/nonexistent-dtruss", O_RDONLY);
    int w = open("/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    write(w, "hello\n", 6);
    lseek(w, 0, SEEK_END);
    close(w);
    access("/nonexistent-dtruss", F_OK);
    mkdir("/", 0755);
    unlink("/nonexistent-dtruss");
    _exit(7);
}
"""


def _norm(line: str) -> str:
    return re.sub(r"\s+= ", " = ", line.strip())


def _main_calls(lines: list[str]) -> list[str]:
    """The program's own calls: from its first open of /etc/hostname to its end."""
    start = next(i for i, x in enumerate(lines) if '"/etc/hostname"' in x)
    end = next(i for i, x in enumerate(lines) if x.startswith("exit_group("))
    return [_norm(x) for x in lines[start : end + 1]]


@needs_strace
@pytest.mark.parametrize("engine", engines())
def test_calls_equal_strace(tmp_path: Path, engine: str) -> None:
    need_engine(engine)
    import subprocess

    exe = compile_c(tmp_path, "calls", CALLS_C)
    log = tmp_path / "strace.log"
    subprocess.run(["strace", "-qq", "-o", str(log), exe], env=env(), timeout=120, check=False)
    expect = _main_calls(log.read_text().splitlines())
    assert expect[0] == 'openat(AT_FDCWD, "/etc/hostname", O_RDONLY) = 3'
    assert 'write(3, "hello\\n", 6) = 6' in expect and expect[-1] == "exit_group(7) = ?"
    r = tool("dtruss", "--engine", engine, exe)
    assert r.status == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "SYSCALL(args) = return"
    assert _main_calls(lines[1:]) == expect


@pytest.mark.parametrize("engine", engines())
def test_follow_children_and_counts(engine: str) -> None:
    need_engine(engine)
    argv = ["/bin/sh", "-c", "/bin/true; exit 3"]
    r = tool("dtruss", "--engine", engine, "-j", *argv)
    assert r.status == 0, r.err
    alone = r.json()
    assert len({e["pid"] for e in alone}) == 1  # the shell only
    r = tool("dtruss", "--engine", engine, "-f", "-c", "-j", *argv)
    assert r.status == 0, r.err
    objs = r.json()
    calls = [o for o in objs if "args" in o]
    counts = {o["syscall"]: o["count"] for o in objs if "count" in o}
    assert len({e["pid"] for e in calls}) == 2  # and its child
    execs = [e for e in calls if e["syscall"] == "execve"]
    assert [(e["args"][0], e["ret"]) for e in execs] == [('"/bin/true"', 0)]
    assert counts == dict(Counter(e["syscall"] for e in calls))
    assert counts["exit_group"] == 2


@pytest.mark.parametrize("engine", engines())
def test_columns(engine: str) -> None:
    """-a: PID/TID, RELATIVE and ELAPSD (microseconds), then the call."""
    need_engine(engine)
    r = tool("dtruss", "--engine", engine, "-a", "-t", "statx", "/usr/bin/stat", "-c", "%n", "/")
    assert r.status == 0, r.err
    # ("/" is what stat printed: the command writes to the same output, whenever it runs)
    lines = [x for x in r.out.splitlines() if x != "/"]
    assert lines[0] == "PID/TID        RELATIVE  ELAPSD SYSCALL(args) = return"
    row = re.compile(r"^(\d+)/(\d+) +(\d+) +(\d+) (\w+)\((.*)\) += (.*)$")
    parsed = [row.match(x) for x in lines[1:]]
    assert parsed and all(parsed), lines
    assert {m.group(5) for m in parsed} == {"statx"}  # type: ignore[union-attr]
    assert any(m.group(6).startswith('AT_FDCWD, "/", ') for m in parsed)  # type: ignore[union-attr]
    pids = {(m.group(1), m.group(2)) for m in parsed}  # type: ignore[union-attr]
    assert len(pids) == 1 and len(set(next(iter(pids)))) == 1
    relative = [int(m.group(3)) for m in parsed]  # type: ignore[union-attr]
    assert relative[0] == 0 and relative == sorted(relative)


def test_string_argument_lists_follow_the_prototypes() -> None:
    """Each `const char *` argument of a call is read in exactly one clause of
    dtruss.d (the lists were written from the prototypes; a new table must
    bring them along)."""
    from pydtrace.probes.syscalls import table

    text = source("dtruss.d")
    read: dict[str, tuple[int, ...]] = {}
    for m in re.finditer(r"((?:syscall::\w+:return,?\s*)+)/self->start/\n\{\n\tprintf\([^;]*?((?:self->a\d \? copyinstr\(self->a\d\) : \"\"(?:, )?)+)\);", text):  # fmt: skip
        positions = tuple(int(x) for x in re.findall(r"self->a(\d) \?", m.group(2)))
        for name in re.findall(r"syscall::(\w+):return", m.group(1)):
            assert name not in read, name
            read[name] = positions
    expect = {
        c.name: string_args(c)
        for c in table().calls
        if string_args(c) and c.name not in ("execve", "execveat")
    }
    assert read == expect


def test_bad_input() -> None:
    for args, err in [
        ([], "dtruss: give a command, -p PID or -n NAME (see dtruss -h)\n"),
        (["-t", "nosuchcall", "true"], "dtruss: unknown system call 'nosuchcall'\n"),
        (["-d", "true"], None),  # -d is dtruss's relative times (a flag), not a duration
    ]:
        r = tool("dtruss", *args)
        if err is None:
            assert r.status == 0, r.err
        else:
            assert (r.status, r.out, r.err) == (2, "", err)


STACK_C = """
#include <unistd.h>
__attribute__((noinline)) void inner_write(void) { write(1, "hi\\n", 3); }
__attribute__((noinline)) void outer_call(void) { inner_write(); __asm__ volatile(""); }
int main(void) { outer_call(); return 0; }
"""


@pytest.mark.parametrize("engine", engines())
def test_stacks(tmp_path: Path, engine: str) -> None:
    """-s: each call's user stack after its line, as macOS's dtruss; the same
    frames on both engines. Frame pointers are walked: libc's write() makes no
    frame, so the function that called it (inner_write) is not seen, as with
    any frame-pointer unwinder (bpftrace's ustack too)."""
    need_engine(engine)
    exe = compile_c(tmp_path, "stack", STACK_C, "-O0", "-fno-omit-frame-pointer")
    frames = ["libc.so.6`write+0x10", "stack`outer_call+0x9", "stack`main+0x9"]
    r = tool("dtruss", "-s", "--engine", engine, "-t", "write", exe)
    assert (r.status, r.err) == (0, "")
    lines = r.out.splitlines()
    i = lines.index('write(1, "hi\\n", 3)                     = 3')
    shown = [x.strip() for x in lines[i + 1 : i + 1 + len(frames)]]
    assert shown == frames, lines
    assert all(x == " " * 14 + x.strip() for x in lines[i + 1 : i + 1 + len(frames)])
    r = tool("dtruss", "-s", "-j", "--engine", engine, "-t", "write", exe)
    assert (r.status, r.err) == (0, "")
    (call,) = r.json()
    assert call["syscall"] == "write" and call["ustack"][:3] == frames


# rbp holds no frame pointer: an address nothing maps, then getppid(2)
NO_FRAME_C = """
void _start(void) {
    __asm__ volatile("movq $0x10000, %rbp; movl $110, %eax; syscall;"
                     "movl $60, %eax; xorl %edi, %edi; syscall");
}
"""


@pytest.mark.parametrize("engine", engines())
def test_stacks_where_rbp_is_no_frame_pointer(tmp_path: Path, engine: str) -> None:
    """-s on code whose rbp points at nothing mapped: the stack is the pc
    alone (the walk ends where memory cannot be read), never a traceback."""
    need_engine(engine)
    exe = compile_c(tmp_path, "noframe", NO_FRAME_C, "-nostdlib", "-static", "-O0")
    r = tool("dtruss", "-s", "-j", "--engine", engine, "-t", "getppid", exe)
    assert (r.status, r.err) == (0, "")
    (call,) = r.json()
    assert call["syscall"] == "getppid" and len(call["ustack"]) == 1
    assert call["ustack"][0].startswith("noframe`")


@pytest.mark.parametrize("engine", engines())
def test_exec_of_a_32bit_program(tmp_path: Path, engine: str) -> None:
    """A 64-bit shell's child execs a 32-bit program: the kernel's syscall
    events skip the return of that exec (the thread is 32-bit by then), so
    exec-success prints its line; the same line on both engines, with -s its
    stack."""
    need_engine(engine)
    exe = compile_c(tmp_path, "prog32", """
        void _start(void) { __asm__ volatile("movl $1, %eax; xorl %ebx, %ebx; int $0x80"); }
    """, "-m32", "-nostdlib", "-static")  # fmt: skip
    script = f"{exe} alpha; /bin/true x; exit 0"
    r = tool("dtruss", "-f", "-j", "--engine", engine, "--", "/bin/sh", "-c", script)
    assert (r.status, r.err) == (0, "")
    execs = [e for e in r.json() if e["syscall"] == "execve"]
    assert [(e["args"][0], e["ret"]) for e in execs] == [(f'"{exe}"', 0), ('"/bin/true"', 0)]
    assert execs[0]["pid"] != execs[1]["pid"]
    r = tool("dtruss", "-f", "-s", "-j", "--engine", engine, "--", "/bin/sh", "-c", script)
    assert (r.status, r.err) == (0, "")
    (e,) = [e for e in r.json() if e["syscall"] == "execve" and e["args"][0] == f'"{exe}"']
    assert e["ustack"][0].startswith("prog32`")
