"""The same D programs on the ptrace engine and the eBPF engine, with -c on
a deterministic workload, give the same output byte for byte.

The workload (a Python script) makes a known number of system calls Python's
own start-up never makes (getppid, umask, chdir, kill, lseek), with known
arguments; every program filters on `pid == $target` since eBPF sees the
whole system. Each case also pins the expected output, so a bug shared by
both engines fails too.
"""

from __future__ import annotations

import sys

import pytest

from conftest import need, ptrace_works, pydtrace, same_on_both_engines

WORKLOAD = """\
import os
for _ in range(7):
    os.getppid()
for m in (0o22, 0o77, 0o7, 0o700, 0o1, 0o644, 0o22):
    os.umask(m)
for d in ("/nonexistent-pydtrace/a", "/", "/nonexistent-pydtrace/b", "/", "/nonexistent-pydtrace/a"):
    try:
        os.chdir(d)
    except OSError:
        pass
for sig in (0, 0, 0):
    os.kill(os.getpid(), sig)
for off in (1, 10, 100, 1000, 5000):
    try:
        os.lseek(99, off, 0)
    except OSError:
        pass
"""


def _bpf_ok() -> bool:
    try:
        from pydtrace.engines.ebpf.features import can_use_bpf

        return can_use_bpf()[0]
    except Exception:
        return False


@pytest.fixture(scope="module")
def cmd(tmp_path_factory: pytest.TempPathFactory) -> str:
    need(sys.platform == "linux" and ptrace_works(), "ptrace with PTRACE_SEIZE unavailable")
    need(_bpf_ok(), "eBPF tracing is not allowed here")
    p = tmp_path_factory.mktemp("workload") / "work.py"
    p.write_text(WORKLOAD)
    return f"{sys.executable} -S {p}"


def both(cmd: str, src: str, *opts: str) -> tuple[str, str]:
    """Run src on each engine; assert status/stdout/stderr are identical; return (out, err)."""
    runs = {}
    for engine in ("ptrace", "ebpf"):
        r = pydtrace("-q", "-x", f"engine={engine}", *opts, "-c", cmd, "-n", src)
        runs[engine] = (r.status, r.out, r.err)
    assert runs["ebpf"] == runs["ptrace"], f"eBPF {runs['ebpf']!r} != ptrace {runs['ptrace']!r}"
    status, out, err = runs["ptrace"]
    assert status == 0, err
    return out, err


T = "/pid == $target/"

CASES = [
    # counts
    (f"syscall::getppid:entry {T} {{ @ = count(); }}", "\n                7\n"),
    (
        f"syscall::getppid:entry, syscall::umask:entry, syscall::kill:entry {T} {{ @[probefunc] = count(); }}",
        "\n  kill                                                              3\n"
        "  getppid                                                           7\n"
        "  umask                                                             7\n",
    ),
    # arguments, signed and unsigned
    (
        f'syscall::umask:entry {T} {{ printf("%o %d %x\\n", arg0, arg0, arg0); }}',
        "22 18 12\n77 63 3f\n7 7 7\n700 448 1c0\n1 1 1\n644 420 1a4\n22 18 12\n\n",
    ),
    (
        f'syscall::kill:entry {T} {{ printf("%d %d\\n", arg0 == $target, arg1); }}',
        "1 0\n1 0\n1 0\n\n",
    ),
    (
        'syscall::lseek:entry /pid == $target && arg0 == 99/ { printf("%d %d %d\\n", arg0, arg1, arg2); }',
        "99 1 0\n99 10 0\n99 100 0\n99 1000 0\n99 5000 0\n\n",
    ),
    # strings from the process
    (
        f'syscall::chdir:entry {T} {{ printf("[%s]\\n", copyinstr(arg0)); }}',
        "[/nonexistent-pydtrace/a]\n[/]\n[/nonexistent-pydtrace/b]\n[/]\n[/nonexistent-pydtrace/a]\n\n",
    ),
    # errno and the return value
    (
        f'syscall::chdir:return {T} {{ printf("%d %d\\n", arg0, errno); }}',
        "-2 2\n0 0\n-2 2\n0 0\n-2 2\n\n",
    ),
    (
        'syscall::lseek:return /pid == $target && errno == 9/ { printf("%s %d %d\\n", probename, arg1, errno); }',
        "return -9 9\n" * 5 + "\n",
    ),
    # aggregations
    (
        f"syscall::umask:entry {T} {{ @c = count(); @s = sum(arg0); @a = avg(arg0); @mi = min(arg0); @ma = max(arg0); }}"
        ' END { printa("%@d %@d %@d %@d %@d\\n", @c, @s, @a, @mi, @ma); }',
        "7 975 139 1 448\n\n",
    ),
    (
        f"syscall::umask:entry {T} {{ @q = quantize(arg0); }}",
        "\n\n"
        "           value  ------------- Distribution ------------- count    \n"
        "               0 |                                         0        \n"
        "               1 |@@@@@@                                   1        \n"
        "               2 |                                         0        \n"
        "               4 |@@@@@@                                   1        \n"
        "               8 |                                         0        \n"
        "              16 |@@@@@@@@@@@                              2        \n"
        "              32 |@@@@@@                                   1        \n"
        "              64 |                                         0        \n"
        "             128 |                                         0        \n"
        "             256 |@@@@@@@@@@@                              2        \n"
        "             512 |                                         0        \n"
        "\n",
    ),
    (
        f"syscall::umask:entry {T} {{ @l = lquantize(arg0, 0, 512, 64); }}",
        "\n\n"
        "           value  ------------- Distribution ------------- count    \n"
        "             < 0 |                                         0        \n"
        "               0 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@            5        \n"
        "              64 |                                         0        \n"
        "             128 |                                         0        \n"
        "             192 |                                         0        \n"
        "             256 |                                         0        \n"
        "             320 |                                         0        \n"
        "             384 |@@@@@@                                   1        \n"
        "             448 |@@@@@@                                   1        \n"
        "          >= 512 |                                         0        \n"
        "\n",
    ),
    # printa with string keys, and keys from arguments
    (
        f"syscall::chdir:entry {T} {{ @[copyinstr(arg0)] = count(); }}"
        ' END { printa("%s %@d\\n", @); }',
        "/nonexistent-pydtrace/b 1\n/ 2\n/nonexistent-pydtrace/a 2\n\n",
    ),
    (
        f"syscall::chdir:return {T} {{ @[errno, arg0] = count(); }}",
        "\n        0                0                2\n        2               -2                3\n",
    ),
    # globals, this->, self-> and predicates on them
    (
        f"syscall::umask:entry {T} {{ n++; this->x = arg0 * 2; total += this->x; }}"
        ' syscall::umask:entry /pid == $target && n == 7/ { printf("%d %d\\n", n, total); }',
        "7 1950\n\n",
    ),
    (
        f"syscall::chdir:entry {T} {{ self->in = 1; }}"
        f' syscall::chdir:return /self->in/ {{ printf("%d\\n", errno); self->in = 0; }}',
        "2\n0\n2\n0\n2\n\n",
    ),
    # the firing's process, thread and CPU
    (
        f"syscall::getppid:entry {T} {{ @[curcpu->cpu_id == cpu, curcpu->cpu_chip, curcpu->cpu_lgrp,"
        " curpsinfo->pr_pid == pid, curlwpsinfo->pr_lwpid == tid] = count(); }",
        "\n        1        0        0        1        1                7\n",
    ),
]


@pytest.mark.parametrize("src,want", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_same_output(cmd: str, src: str, want: str) -> None:
    out, err = both(cmd, src)
    assert err == ""
    assert out == want


def test_exit_from_a_syscall_probe(cmd: str) -> None:
    out, _ = both(
        cmd, 'syscall::umask:entry /pid == $target && ++n == 3/ { printf("%o\\n", arg0); exit(0); }'
    )
    assert out == "7\n\n"


def test_target_macro_and_pid(cmd: str) -> None:
    out, _ = both(
        cmd,
        'syscall::getppid:entry /pid == $target && ++n == 1/ { printf("%d\\n", pid - $target); }',
    )
    assert out == "0\n\n"


def test_default_output_with_probe_names(cmd: str) -> None:
    src = f"syscall::kill:entry {T} {{ trace(arg1); }}"
    runs = {}
    for engine in ("ptrace", "ebpf"):
        r = pydtrace("-x", f"engine={engine}", "-c", cmd, "-n", src)  # _DTRACE_TESTING: no CPU/ID
        runs[engine] = (r.status, r.out, r.err)
    assert runs["ebpf"] == runs["ptrace"]
    assert runs["ptrace"] == (
        0,
        "                   FUNCTION:NAME\n"
        + "                      kill:entry                    0\n" * 3
        + "\n",
        "pydtrace: description 'syscall::kill:entry ' matched 1 probe\n",
    )


INLINE_ARRAYS = """\
inline int add[int x, int y] = x + y;
inline int twice[int x] = add[x, x];
inline uint64_t later[int d] = timestamp + d;
BEGIN { a = later[0]; b = later[0]; printf("%d %d %d %d\\n", add[2, 3], twice[4], a == b, add[1, 2] * 2); }
BEGIN { exit(0); }
"""


def test_inlines_with_parameters_on_both_engines(cmd: str) -> None:  # cmd: the kernel checks
    e = same_on_both_engines("-q", "-n", INLINE_ARRAYS)
    assert e.out == "5 8 1 6\n\n"
