"""What scripts and one-liners from the DTrace literature lean on, beyond dtrace-utils'
unit tests: each case runs on both engines and must print the same, exact output."""

from __future__ import annotations

import pytest

from conftest import no_fault_pc, pydtrace, same_on_both_engines


def test_increment_creates_array_elements():
    """x[k]++ and --x[k] on an array never assigned create it, keyed by the subscripts'
    types, with int64_t values (as x++ creates a scalar); a value that returns to 0 is
    deleted, so it reads 0 again."""
    r = same_on_both_engines(
        "-qn",
        'BEGIN { h[1, "a"]++; h[1, "a"]++; ++self->t[2]; self->t[2]--; --x[3];'
        ' printf("%d %d %d %d %d\\n", h[1, "a"], self->t[2], x[3], sizeof(h[1, "a"]),'
        ' h[2, "b"]); exit(0); }',
        "-c",
        "/bin/true",
    )
    assert (r.status, r.out) == (0, "2 0 -1 8 0\n\n")


def test_increment_keys_are_checked_after_creation():
    r = same_on_both_engines("-qn", 'BEGIN { h[1]++; h["a"]++; exit(0); }', "-c", "/bin/true")
    assert r.status == 1
    assert r.err.endswith(
        ": h[ ] key #1 is incompatible with prototype:\n\tprototype: int\n\t      key: string\n"
    ), r.err


NO_KPROBES = (
    "this kernel has no kprobes (no kprobe PMU, no kprobe_events in tracefs), which kernel"
    " function probes need; its tracepoints are sdt probes (pydtrace -l -P sdt)"
)


@pytest.mark.parametrize(
    "spec, hint",
    [
        ("fbt::do_sys_open:entry", None),
        ("tracepoint:syscalls:sys_enter_openat", "is sdt:syscalls::sys_enter_openat in D"),
        ("kprobe:do_sys_open", "is fbt::do_sys_open:entry in D"),
        ("kretprobe:vfs_read", "is fbt::vfs_read:return in D"),
        ("interval:s:1", "is tick-1s in D"),
        ("profile:hz:99", "is profile-99 in D"),
        ("i:ms:100", "is tick-100ms in D"),
    ],
)
def test_unmatched_probe_hints(spec, hint):
    """dtrace's exact error, then one line of advice: why fbt cannot exist on this
    kernel, and how D spells bpftrace's probe names."""
    from pydtrace.probes.hints import has_kprobes

    r = pydtrace("-n", spec + " { exit(0); }")
    lines = r.err.splitlines()
    assert r.status == 1 and len(lines) == 2, r.err
    assert lines[0].endswith(" does not match any probes"), r.err
    if hint is None:
        expect = NO_KPROBES if not has_kprobes() else "pydtrace has no fbt provider yet"
    else:
        expect = f"bpftrace's {spec} {hint}"
        if spec.startswith("k") and not has_kprobes():
            expect += "; " + NO_KPROBES
    assert lines[1].startswith(f"pydtrace: hint: {expect}"), r.err


def test_no_hint_for_a_plain_misspelling():
    r = pydtrace("-n", "syscall::nosuch:entry { exit(0); }")
    assert (r.status, r.err) == (
        1,
        "pydtrace: invalid probe specifier syscall::nosuch:entry { exit(0); }: probe"
        " description syscall::nosuch:entry does not match any probes\n",
    )


def test_dynamic_variable_drop_does_not_end_the_clause():
    """A store with no room left is dropped; the rest of the clause runs (its exit()
    too), reads of the dropped element give 0, and the clause counts one drop (as
    dtrace-utils reports)."""
    r = same_on_both_engines(
        "-x",
        "dynvarsize=48",
        "-qn",
        "BEGIN { a[1] = 1; a[2] = 2; a[3] = 3; a[4] = 4;"
        ' printf("%d %d %d %d\\n", a[1], a[2], a[3], a[4]); }'
        " BEGIN { a[5] = 5; a[6] = 6; exit(0); }",
    )
    assert (r.status, r.out, r.err) == (0, "1 2 0 0\n\n", "pydtrace: 2 dynamic variable drops\n")


def test_no_room_for_one_dynamic_variable_is_refused():
    """dynvarsize too small for a single variable: dtrace's refusal at enabling,
    never a run whose every store drops (which hung a script waiting on exit())."""
    r = same_on_both_engines("-x", "dynvarsize=1", "-n", "BEGIN { a[1] = 1; exit(0); }")
    assert (r.status, r.out) == (1, "")
    assert r.err.endswith(
        "pydtrace: could not enable tracing: Enabling exceeds size of buffer\n"
    ), r.err


def test_char_array_members_as_values_and_keys(tmp_path):
    """proc:::exec-success { trace(curpsinfo->pr_psargs) }, the best-known one-liner:
    a char[] member traced, printed with %s and used as an aggregation key."""
    script = tmp_path / "child.sh"
    script.write_text("#!/bin/sh\n/bin/echo hi there >/dev/null\n")
    script.chmod(0o755)
    r = same_on_both_engines(
        "-qn",
        "proc:::exec-success /ppid == $target/ { trace(curpsinfo->pr_psargs);"
        ' printf("|%s|\\n", curpsinfo->pr_psargs); @[curpsinfo->pr_psargs] = count();'
        " @f[curpsinfo->pr_fname] = count(); }",
        "-c",
        str(script),
    )
    assert (r.status, r.out) == (
        0,
        "/bin/echo hi there|/bin/echo hi there|\n\n"
        "  /bin/echo hi there                                                1\n"
        "  echo                                                              1\n",
    ), r.err


def test_copyinstr_of_a_bad_address_faults():
    """A user string that cannot be read is dtrace's "invalid address" fault on both
    engines, never an empty string passed off as the data."""
    r = same_on_both_engines(
        "-qn",
        'BEGIN { printf("[%s]\\n", copyinstr(12345)); } BEGIN { printf("[%s]\\n",'
        " copyinstr(0)); } BEGIN { exit(0); }",
    )
    assert (r.status, r.out) == (0, "\n")
    assert no_fault_pc(r.err) == (
        "pydtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): invalid address (0x3039)\n"
        "pydtrace: error in dt_clause_1 for probe ID 1 (dtrace:::BEGIN): invalid address (0x0)"
    )


NO_FRAME_POINTER_C = r"""
#include <unistd.h>
__attribute__((noinline)) int leaf(int x) { return x + 1; }
static char text[64] = "hellohellohellohellohellohellohello";
__attribute__((noinline)) int mid(int x) {
    int out;
    /* code built without frame pointers may hold anything in rbp: here, text */
    __asm__ volatile("push %%rbp\n\tmov %1, %%rbp\n\tmov %2, %%edi\n\tcall leaf\n\tpop %%rbp"
                     : "=a"(out) : "r"(text), "r"(x)
                     : "rdi", "rsi", "rdx", "rcx", "r8", "r9", "r10", "r11", "memory");
    return out;
}
int main(void) { usleep(100000); return mid(41) == 42 ? 0 : 1; }
"""


def test_ustack_stops_at_a_word_that_is_no_return_address(tmp_path):
    """A frame-pointer walk through code without frame pointers: rbp points at text,
    whose bytes would print as a frame (0x686f6c6c65686f6c); the stack ends before it,
    in records and in aggregation keys alike."""
    import subprocess

    exe = tmp_path / "nofp"
    src = tmp_path / "nofp.c"
    src.write_text(NO_FRAME_POINTER_C)
    subprocess.run(["cc", "-O1", "-fomit-frame-pointer", "-o", str(exe), str(src)], check=True)
    r = pydtrace(
        "-x",
        "engine=ebpf",
        "-qn",
        "pid$target:nofp:leaf:entry { ustack(); @[ustack()] = count(); }",
        "-c",
        str(exe),
    )
    assert r.status == 0, r.err
    assert r.out.startswith("\n              nofp`leaf\n\n"), r.out
    assert "0x686f6c6c65686f6c" not in r.out and "hello" not in r.out, r.out
    assert r.out.count("nofp`leaf") == 2, r.out


def _counts(out: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in out.splitlines() if line.strip())}


def test_c_target_is_traced_from_its_exec():
    """Under -c, the forked child's own calls before its exec (our launcher's read of
    the gate, close, rt_sigaction) are not the target's: entry probes start after the
    exec, return probes see execve return, on both engines alike, and the calls
    counted are strace's (which sees the execve entry too)."""
    import shutil
    import subprocess

    entry = same_on_both_engines(
        "-qn", "syscall:::entry /pid == $target/ { @[probefunc] = count(); }", "-c", "/bin/true"
    )
    ret = same_on_both_engines(
        "-qn", "syscall:::return /pid == $target/ { @[probefunc] = count(); }", "-c", "/bin/true"
    )
    entries, returns = _counts(entry.out), _counts(ret.out)
    assert "rt_sigaction" not in entries and "execve" not in entries, entries
    assert returns.pop("execve") == 1 and "exit_group" not in returns, returns
    entries.pop("exit_group")
    assert entries == returns, (entries, returns)
    if shutil.which("strace"):
        p = subprocess.run(
            ["strace", "-f", "-c", "-U", "name,calls", "/bin/true"],
            capture_output=True,
            text=True,
            check=True,
        )
        rows = [x.split() for x in p.stderr.splitlines()]
        seen = {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[1].isdigit()}
        seen.pop("total")
        assert seen.pop("execve") == 1 and seen == returns, (seen, returns)


def test_assigning_null_to_strings():
    """`s = 0` / `s = NULL`, the usual way to free a string, never faults itself: a
    dynamic variable is deleted, another holds a NULL string. As in dtrace, a NULL
    string (and a dynamic one that does not exist) prints as "" and equals NULL,
    but tracing it reads address 0 and s[1] reads address 1."""
    r = same_on_both_engines(
        "-qn",
        'string g; string a[int]; BEGIN { self->p = "a"; self->p = 0; g = "x"; g = NULL;'
        ' a[1] = "y"; a[1] = 0; this->t = "z"; this->t = 0;'
        ' printf("[%s] [%s] [%s] [%s] %d%d%d%d\\n", g, a[1], this->t, self->p, g == NULL,'
        " a[1] == NULL, this->t == NULL, self->p == NULL); }"
        " BEGIN { trace(self->p); } BEGIN { trace(g[1]); } BEGIN { exit(0); }",
        "-c",
        "/bin/true",
    )
    assert (r.status, r.out) == (0, "[] [] [] [] 1111\n\n")
    assert no_fault_pc(r.err) == (
        "pydtrace: error in dt_clause_1 for probe ID 1 (dtrace:::BEGIN): invalid address (0x0)\n"
        "pydtrace: error in dt_clause_2 for probe ID 1 (dtrace:::BEGIN): invalid address (0x1)"
    )


def test_opensnoop_style_string_lifetime():
    """A path kept from entry to return and freed with 0 there: one line per open of
    the file (cmp opens it once when both operands name it, and prints nothing), and
    no error. (LC_ALL=C: no locale archive is opened, whose path, a string in libc
    not yet paged in at the syscall's entry, the eBPF engine reports as a fault.)"""
    prog = (
        "syscall::openat:entry /pid == $target/ { self->path = copyinstr(arg1); }"
        ' syscall::openat:return /pid == $target && self->path == "/etc/hostname"/'
        ' { printf("%s %d\\n", self->path, (int)arg0 >= 0); }'
        " syscall::openat:return /pid == $target/ { self->path = 0; }"
    )
    for engine in ("ebpf", "ptrace"):
        r = pydtrace("-x", f"engine={engine}", "-qn", prog, "-c", "cmp /etc/hostname /etc/hostname",
                     env={"LC_ALL": "C"})  # fmt: skip
        assert (r.status, r.out, r.err) == (0, "/etc/hostname 1\n\n", ""), engine


def test_c_command_starts_with_default_signal_dispositions():
    """Python ignores SIGPIPE and SIGXFSZ, and exec keeps ignored signals: a -c command
    must start with them at SIG_DFL on both engines (`yes | head` dies of SIGPIPE)."""
    r = same_on_both_engines(
        "-qn",
        "syscall::exit_group:entry /pid == $target/ { exit(0); }",
        "-c",
        "/bin/grep -E ^SigIgn /proc/self/status",
    )
    assert (r.status, r.out) == (0, "SigIgn:\t0000000000000000\n\n"), r.out
