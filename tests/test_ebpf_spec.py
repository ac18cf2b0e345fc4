"""Speculations on the eBPF engine (buffered in Python, ids claimed in the
kernel), its fast detach, and the fixed syscall register offsets: exact
output, the same as the user-space engine's."""

from __future__ import annotations

import os
import platform

import pytest

from conftest import bpf_maps_ok, need, pydtrace

KERNEL = bpf_maps_ok()


def ebpf(*args: str):
    need(KERNEL, "BPF maps cannot be created here (root and bpf(2) needed)")
    return pydtrace("-x", "engine=ebpf", *args)


def same(*args: str):
    """Run on both engines; the outputs must be identical. Returns the eBPF run."""
    e = ebpf(*args)
    u = pydtrace("-x", "engine=ptrace", *args)
    assert (e.status, e.out, e.err) == (u.status, u.out, u.err)
    return e


COMMIT = """#pragma D option quiet
BEGIN { self->a = speculation(); self->b = speculation(); printf("ids %d %d\\n", self->a, self->b); }
BEGIN { speculate(self->a); printf("spec a %d\\n", 1); }
BEGIN { speculate(self->a); trace(2); }
BEGIN { printf("plain\\n"); }
BEGIN { commit(self->a); }
BEGIN { printf("after commit\\n"); }
BEGIN { speculate(self->a); printf("dead\\n"); }
BEGIN { exit(0); }
"""


def test_commit_emits_the_buffered_records_in_order_and_frees_the_id() -> None:
    r = same("-n", COMMIT)
    assert r.status == 0
    assert r.out == "ids 1 0\nplain\nspec a 1\n2after commit\n\n"
    assert r.err == "pydtrace: 1 failed speculation (no speculative buffer available)\n"


def test_discard_drops_them_and_the_id_is_handed_out_again() -> None:
    src = """#pragma D option quiet
    #pragma D option nspec=2
    BEGIN { a = speculation(); b = speculation(); printf("%d %d\\n", a, b); }
    BEGIN { speculate(a); printf("never\\n"); }
    BEGIN { speculate(b); printf("kept\\n"); }
    BEGIN { discard(a); }
    BEGIN { commit(b); }
    BEGIN { c = speculation(); printf("again %d\\n", c); exit(0); }
    """
    r = same("-n", src)
    assert r.out == "1 2\nkept\nagain 1\n\n"
    assert r.err == ""


def test_a_speculating_clause_without_data_commits_its_probe_line() -> None:
    src = "BEGIN { s = speculation(); } BEGIN { speculate(s); } BEGIN { commit(s); } BEGIN { exit(0); }"
    r = same("-n", src)
    # the speculating clause's record, committed, then exit's clause
    assert r.out.splitlines() == [
        "                   FUNCTION:NAME",
        "                          :BEGIN ",
        "                          :BEGIN ",
        "",
    ]


def test_speculate_in_an_if_not_taken_leaves_no_record() -> None:
    src = (
        "BEGIN { s = speculation(); } BEGIN { if (0) { speculate(s); } } "
        "BEGIN { if (1) { speculate(s); } } BEGIN { commit(s); } BEGIN { exit(0); }"
    )
    r = same("-n", src)
    # one record committed (the if taken), then exit's clause; none for the other
    assert r.out.splitlines()[1:] == [
        "                          :BEGIN ",
        "                          :BEGIN ",
        "",
    ]


def test_commit_beyond_nspec_is_an_illegal_operation() -> None:
    e = ebpf("-q", "-n", "BEGIN { commit(5); } BEGIN { exit(0); }")
    assert e.status == 0
    assert e.err.startswith(
        "pydtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): illegal operation at BPF pc "
    )


def test_records_past_specsize_are_speculative_drops() -> None:
    src = """#pragma D option quiet
    #pragma D option specsize=40
    BEGIN { s = speculation(); }
    BEGIN { speculate(s); printf("%d\\n", 1); }
    BEGIN { speculate(s); printf("%d %d %d %d %d\\n", 1, 2, 3, 4, 5); }
    BEGIN { commit(s); }
    BEGIN { exit(0); }
    """
    r = same("-n", src)
    assert r.out == "1\n\n"
    assert r.err == "pydtrace: 1 speculative drop\n"


def test_more_buffers_than_the_engine_unrolls_are_refused() -> None:
    e = ebpf("-x", "nspec=65", "-n", "BEGIN { s = speculation(); }")
    assert e.status == 1
    assert e.err.endswith(
        "could not enable tracing: the eBPF engine handles at most 64 speculations (nspec=65)\n"
    )


def test_probes_detached_before_end_count_exactly() -> None:
    # a -c run with one syscall probe: the perf event is handed to a holder
    # process; END and the aggregation still see exactly the target's reads
    r = ebpf("-q", "-c", "/bin/echo hi", "-n",
             "syscall::write:entry /pid == $target/ { @ = count(); } END { printa(\"%@d\\n\", @); }")  # fmt: skip
    assert r.status == 0
    assert r.out == "hi\n1\n\n"


def test_x86_64_syscall_registers_are_constants_without_btf() -> None:
    if platform.machine() != "x86_64":
        pytest.skip("x86_64 only")
    from pydtrace.engines.ebpf.pt_regs import syscall_regs
    from pydtrace.symbols import btf

    before = getattr(btf, "_vmlinux", None)
    regs = syscall_regs()
    assert regs == {"args": [112, 104, 96, 56, 72, 64], "nr": 120, "size": 168}
    assert getattr(btf, "_vmlinux", None) is before


def _children() -> set[int]:
    me = os.getpid()
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        out.add(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def test_tracepoint_detach_does_not_wait_for_the_kernel() -> None:
    need(KERNEL, "BPF maps cannot be created here (root and bpf(2) needed)")
    import time

    from pydtrace.engines.ebpf import bpf as B
    from pydtrace.engines.ebpf import perf

    ret0 = bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])  # r0 = 0; exit
    fd = B.prog_load(B.ProgType.TRACEPOINT, ret0, name="t_hold")
    try:
        before, kids = len(os.listdir("/proc/self/fd")), _children()
        tries = []
        for _ in range(5):  # wall-clock times: a loaded machine may slow one try
            a = perf.attach_tracepoint(fd, "syscalls", "sys_enter_getppid")
            t0 = time.monotonic()
            a.close()  # the plain close waits for the kernel's grace period
            waited = time.monotonic() - t0
            b = perf.attach_tracepoint(fd, "syscalls", "sys_enter_getppid")
            t0 = time.monotonic()
            perf.close_without_waiting([b])
            handed = time.monotonic() - t0
            assert b.closed and len(os.listdir("/proc/self/fd")) == before
            assert _children() == kids  # the holder is an orphan, not our child
            tries.append((handed, waited))
            if handed < waited:
                break
        assert any(h < w for h, w in tries), tries
    finally:
        B.close_fd(fd)


def test_the_detach_holder_keeps_none_of_our_other_fds() -> None:
    # a reader of our output must see its end when we exit, not when the
    # holder does (after the kernel's grace period): it keeps only the events
    need(KERNEL, "BPF maps cannot be created here (root and bpf(2) needed)")
    import select

    from pydtrace.engines.ebpf import bpf as B
    from pydtrace.engines.ebpf import perf

    ret0 = bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])  # r0 = 0; exit
    fd = B.prog_load(B.ProgType.TRACEPOINT, ret0, name="t_hold")
    out_r, out_w = os.pipe()  # like our stdout, inheritable or not
    os.set_inheritable(out_w, True)
    try:
        a = perf.attach_tracepoint(fd, "syscalls", "sys_enter_getppid")
        perf.close_without_waiting([a])
        assert a.closed
        os.close(out_w)
        out_w = -1
        p = select.poll()
        p.register(out_r, select.POLLIN)
        assert p.poll(0), "the holder keeps a copy of the pipe's write end"
        assert os.read(out_r, 1) == b""
    finally:
        if out_w >= 0:
            os.close(out_w)
        os.close(out_r)
        B.close_fd(fd)
