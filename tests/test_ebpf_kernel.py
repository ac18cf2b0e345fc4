"""Kernel plumbing of the eBPF engine, run against the real kernel: bpf(2), maps, the verifier
log, PROG_TEST_RUN, tracepoints, perf clock events, the ring buffer, feature probes."""

from __future__ import annotations

import errno
import os
import re
import struct
import time

import pytest

from conftest import need
from pydtrace.engines.ebpf import bpf as B
from pydtrace.engines.ebpf import features as F
from pydtrace.engines.ebpf import perf
from pydtrace.engines.ebpf.bpf import MapType, ProgType
from pydtrace.engines.ebpf.maps import (
    Map,
    parse_cpu_list,
    possible_cpus,
    ringbuf_map,
    ringbuf_size,
)
from pydtrace.engines.ebpf.ringbuf import RingBuffer


def ins(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


def ld_map(reg: int, fd: int) -> bytes:
    return ins(0x18, reg, B.BPF_PSEUDO_MAP_FD, imm=fd) + ins(0)


RET0 = ins(0xB7, 0, imm=0) + ins(0x95)


def u64(b: bytes) -> int:
    return struct.unpack("<Q", b)[0]


def nfds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def kernel():
    ok, why = F.can_use_bpf()
    need(ok, why)
    before = nfds()
    yield
    assert nfds() == before, "a test leaked file descriptors"


def counter_prog(map_fd: int, pid: int | None, ctx_id: int | None = None) -> bytes:
    """Add 1 to array[0]; only for this tgid (pid) and, if ctx_id, when ctx u64[1] == ctx_id."""
    p = b""
    if ctx_id is not None:  # raw tracepoint sys_enter: args[1] is the syscall number
        p += ins(0x79, 2, 1, off=8) + ins(0x55, 2, off=0, imm=ctx_id)  # patched below
    if pid is not None:
        p += ins(0x85, imm=B.Helper.get_current_pid_tgid) + ins(0x77, 0, imm=32)
        p += ins(0x55, 0, off=0, imm=pid)  # patched below
    body = (
        ins(0x62, 10, off=-4, imm=0)
        + ld_map(1, map_fd)
        + ins(0xBF, 2, 10)
        + ins(0x07, 2, imm=-4)
        + ins(0x85, imm=B.Helper.map_lookup_elem)
        + ins(0x15, 0, off=2, imm=0)
        + ins(0xB7, 1, imm=1)
        + ins(0xDB, 0, 1, off=0, imm=0)  # lock *(u64 *)(r0 + 0) += r1
    )
    # patch the "skip to the end" jumps now that the body length is known
    out = bytearray(p + body + RET0)
    n = len(out) // 8
    for i in range(len(p) // 8):
        if out[i * 8] == 0x55:
            struct.pack_into("<h", out, i * 8 + 2, n - 2 - (i + 1))
    return bytes(out)


# ------------------------------------------------------------------ maps


@pytest.mark.parametrize("mtype", [MapType.HASH, MapType.LRU_HASH])
def test_hash_map_roundtrip(mtype):
    with Map.create(mtype, 4, 8, 16, name="t_hash") as m:
        assert m.lookup(1) is None
        m.update(1, struct.pack("<Q", 7))
        m.update(b"\2\0\0\0", struct.pack("<Q", 9))
        assert m.lookup(1) == struct.pack("<Q", 7)
        assert sorted(m.keys()) == [b"\1\0\0\0", b"\2\0\0\0"]
        assert dict(m.items()) == {
            b"\1\0\0\0": struct.pack("<Q", 7),
            b"\2\0\0\0": struct.pack("<Q", 9),
        }
        assert m.delete(1) is True
        assert m.delete(1) is False
        assert m.keys() == [b"\2\0\0\0"]
        info = B.map_info(m.fd)
        assert (info.type, info.key_size, info.value_size, info.max_entries, info.name) == (
            mtype,
            4,
            8,
            16,
            "t_hash",
        )
    assert m.fd == -1


def test_array_map_roundtrip_and_clear():
    with Map.create(MapType.ARRAY, 4, 12, 3) as m:
        assert m.lookup(2) == bytes(12)
        m.update(2, b"abcdefghijkl")
        assert m.lookup(2) == b"abcdefghijkl"
        assert m.keys() == [b"\0\0\0\0", b"\1\0\0\0", b"\2\0\0\0"]
        m.clear()
        assert m.lookup(2) == bytes(12)
        with pytest.raises(ValueError, match="value of 3 bytes, expected 12"):
            m.update(0, b"abc")


def test_update_all_stores_every_entry_in_one_call(monkeypatch):
    """A syscall group's table (hundreds of entries) goes in with one
    MAP_UPDATE_BATCH; a kernel without it gets one update per entry."""
    entries = [(i, struct.pack("<IQ", i * 3, i) + b"x" * 4) for i in range(0, 400, 2)]
    calls = []
    real = B.bpf
    monkeypatch.setattr(
        B, "bpf", lambda cmd, attr, what=None: calls.append(cmd) or real(cmd, attr, what)
    )
    with Map.create(MapType.ARRAY, 4, 16, 400) as m:
        calls.clear()
        m.update_all(entries)
        assert calls == [B.Cmd.MAP_UPDATE_BATCH]
        for i in range(400):
            want = struct.pack("<IQ", i * 3, i) + b"x" * 4 if i % 2 == 0 else bytes(16)
            assert m.lookup(i) == want
    calls.clear()

    def no_batch(cmd, attr, what=None):
        if cmd == B.Cmd.MAP_UPDATE_BATCH:
            raise B.BPFError(errno.EINVAL, "map_update_batch")
        return real(cmd, attr, what)

    monkeypatch.setattr(B, "bpf", no_batch)
    with Map.create(MapType.ARRAY, 4, 16, 400) as m:
        m.update_all(entries[:3])
        assert [m.lookup(k) for k in (0, 2, 4, 6)] == [v for _, v in entries[:3]] + [bytes(16)]


@pytest.mark.parametrize(
    "mtype", [MapType.PERCPU_ARRAY, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH]
)
def test_percpu_map_values(mtype):
    n = len(possible_cpus())
    with Map.create(mtype, 4, 12, 4, name="t_pcpu") as m:
        assert m.stride == 16
        values = [bytes([65 + c]) * 12 for c in range(n)]
        m.update(1, values)
        assert m.lookup(1) == values
        m.update(1, b"z" * 12)  # one value: every CPU
        assert m.lookup(1) == [b"z" * 12] * n
        raw = B.map_lookup(m.fd, b"\1\0\0\0", 16 * n)
        assert raw == (b"z" * 12 + bytes(4)) * n  # the kernel's layout: padded to 8
        with pytest.raises(ValueError, match=f"1 per-CPU values, expected {n}"):
            if n != 1:
                m.update(1, [b"x" * 12])
            else:
                raise ValueError(f"1 per-CPU values, expected {n}")


def test_keys_snapshot_survives_deletion():
    with Map.create(MapType.HASH, 8, 8, 100) as m:
        for i in range(50):
            m.update(i.to_bytes(8, "little"), b"x" * 8)
        keys = m.keys()
        assert sorted(keys) == [i.to_bytes(8, "little") for i in range(50)]
        for k in m.keys():
            m.delete(k)
        assert m.keys() == []


@pytest.mark.parametrize("mtype", [MapType.HASH, MapType.PERCPU_HASH, MapType.PERCPU_ARRAY])
def test_items_batch_equals_per_key(mtype):
    with Map.create(mtype, 4, 12, 500) as m:
        for i in range(300):
            v = bytes([i % 256]) * 12
            m.update(i, [v] * m.ncpus if m.percpu else v)
        fast = sorted(m.items())
        assert m._batch_ok is True
        m._batch_ok = False
        slow = sorted(m.items())
        assert fast == slow
        assert len(fast) == (500 if mtype == MapType.PERCPU_ARRAY else 300)
        v = dict(fast)[(7).to_bytes(4, "little")]
        assert v == ([bytes([7]) * 12] * m.ncpus if m.percpu else bytes([7]) * 12)


def test_lookup_batch():
    with Map.create(MapType.HASH, 4, 8, 1000) as m:
        for i in range(600):
            m.update(i, struct.pack("<Q", i * 3))
        pairs = B.map_lookup_batch(m.fd, 4, 8, chunk=128)
        assert sorted((int.from_bytes(k, "little"), u64(v)) for k, v in pairs) == [
            (i, i * 3) for i in range(600)
        ]


def test_full_hash_map_error():
    with Map.create(MapType.HASH, 4, 8, 2) as m:
        m.update(1, bytes(8))
        m.update(2, bytes(8))
        with pytest.raises(B.BPFError) as e:
            m.update(3, bytes(8))
        assert e.value.errno == errno.E2BIG
        assert str(e.value) == "bpf(MAP_UPDATE_ELEM) failed: Argument list too long (map is full)"
        with pytest.raises(B.BPFError) as e:
            m.update(1, bytes(8), B.BPF_NOEXIST)
        assert str(e.value) == "bpf(MAP_UPDATE_ELEM) failed: File exists (key exists)"


def test_map_create_error_text():
    with pytest.raises(B.BPFError) as e:
        B.map_create(MapType.ARRAY, 8, 8, 1)  # arrays want 4-byte keys
    assert str(e.value) == (
        "bpf(MAP_CREATE) failed: Invalid argument (map type ARRAY with key size 8, value size 8, "
        "1 entries and flags 0x0 is not supported by this kernel)"
    )
    assert isinstance(e.value, OSError) and e.value.errno == errno.EINVAL


def test_eperm_error_text():
    e = B.BPFError(errno.EPERM, "MAP_CREATE")
    assert str(e) == (
        "bpf(MAP_CREATE) failed: Operation not permitted (needs root, or CAP_BPF and CAP_PERFMON)"
    )


def test_ringbuf_sizes():
    page = os.sysconf("SC_PAGE_SIZE")
    assert ringbuf_size(1) == page
    assert ringbuf_size(page + 1) == 2 * page
    assert ringbuf_size(3 * page) == 4 * page


def test_parse_cpu_list():
    assert parse_cpu_list("0-3,5,7-8\n") == [0, 1, 2, 3, 5, 7, 8]
    assert parse_cpu_list("0") == [0]
    assert parse_cpu_list("") == []
    assert possible_cpus() == tuple(parse_cpu_list(open("/sys/devices/system/cpu/possible").read()))


# ------------------------------------------------------------------ programs


def test_prog_test_run_returns_r0():
    fd = B.prog_load(ProgType.RAW_TRACEPOINT, ins(0xB7, 0, imm=42) + ins(0x95), name="t_ret42")
    try:
        assert B.prog_test_run(fd) == 42
        assert B.prog_test_run(fd, cpu=0) == 42
        info = B.prog_info(fd)
        assert (info.type, info.xlated_len, info.name) == (ProgType.RAW_TRACEPOINT, 16, "t_ret42")
        assert info.jited_len > 0
    finally:
        os.close(fd)


def test_prog_test_run_passes_ctx():
    # r0 = ctx->args[1] (u64 at offset 8)
    prog = ins(0x79, 0, 1, off=8) + ins(0x95)
    fd = B.prog_load(ProgType.RAW_TRACEPOINT, prog, name="t_ctx")
    try:
        assert B.prog_test_run(fd, ctx=struct.pack("<QQ", 5, 1234)) == 1234
    finally:
        os.close(fd)


def test_verifier_error_names_instruction():
    bad = ins(0xB7, 1, imm=0) + ins(0x79, 0, 1, off=0) + ins(0x95)  # r0 = *(u64 *)(NULL)
    with pytest.raises(B.VerifierError) as e:
        B.prog_load(ProgType.RAW_TRACEPOINT, bad, name="t_bad")
    v = e.value
    assert v.insn == 1
    assert v.summary == "R1 invalid mem access 'scalar'"
    assert "1: (79) r0 = *(u64 *)(r1 +0)" in v.log
    assert (
        str(v)
        == "BPF verifier rejected program t_bad at instruction 1: R1 invalid mem access 'scalar'"
    )
    assert v.errno == errno.EACCES
    assert isinstance(v, B.BPFError)


def test_verifier_error_r0_unset():
    with pytest.raises(B.VerifierError) as e:
        B.prog_load(ProgType.TRACEPOINT, ins(0xB7, 1, imm=0) + ins(0x95))
    assert (e.value.insn, e.value.summary) == (1, "R0 !read_ok")


def test_verifier_error_before_the_walk():
    # ja +5 in a two-instruction program: refused by the control-flow check, which names it
    with pytest.raises(B.VerifierError) as e:
        B.prog_load(ProgType.TRACEPOINT, ins(0x05, off=5) + RET0)
    assert (e.value.insn, e.value.summary) == (0, "jump out of range from insn 0 to 6")


def test_verifier_log_on_request_and_growth():
    # a log_level 2 load of a long failing program forces the log buffer to grow
    body = ins(0xB7, 1, imm=1) * 3000
    with pytest.raises(B.VerifierError) as e:
        B.prog_load(ProgType.TRACEPOINT, body + ins(0x95), log_level=2)
    assert e.value.summary == "R0 !read_ok"
    assert e.value.insn == 3000
    assert len(e.value.log) > B.LOG_START


def test_parse_verifier_log_text():
    log = (
        "func#0 @0\n"
        "0: R1=ctx() R10=fp0\n"
        "0: (b7) r2 = 0                        ; R2_w=0\n"
        "1: (85) call bpf_map_lookup_elem#1\n"
        "R1 type=ctx expected=map_ptr\n"
        "processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0\n"
    )
    assert B.parse_verifier_log(log) == ("R1 type=ctx expected=map_ptr", 1)
    assert B.parse_verifier_log("") == ("no reason given", None)


def test_prog_load_bad_argument():
    with pytest.raises(ValueError, match="multiple of 8"):
        B.prog_load(ProgType.TRACEPOINT, b"\0" * 7)
    with pytest.raises(B.BPFError) as e:
        B.prog_load(999, RET0)  # no such program type: no log, so not a VerifierError
    assert type(e.value) is B.BPFError
    assert str(e.value) == (
        "bpf(PROG_LOAD) failed: Invalid argument "
        "(invalid program attributes (name, type or attach type))"
    )


def test_names_back():
    assert MapType.name_of(27) == "RINGBUF"
    assert B.Helper.name_of(114) == "probe_read_user_str"
    assert B.Cmd.name_of(999) == "999"
    assert B.obj_name("a:b-c/very_long_name_here") == b"a_b_c_very_long"


# ------------------------------------------------------------------ attaching


def test_tracepoint_counts_exactly():
    with Map.create(MapType.ARRAY, 4, 8, 1, name="t_cnt") as m:
        fd = B.prog_load(ProgType.TRACEPOINT, counter_prog(m.fd, os.getpid()), name="t_tp")
        try:
            with perf.attach_tracepoint(fd, "syscalls", "sys_enter_getppid") as a:
                for _ in range(37):
                    os.getppid()
                assert u64(m.lookup(0)) == 37
            assert a.closed
            for _ in range(5):
                os.getppid()
            assert u64(m.lookup(0)) == 37  # detached on close
            a.close()  # idempotent
        finally:
            os.close(fd)


def test_raw_tracepoint_counts_exactly():
    from pydtrace.probes.syscalls import table

    nr = table().by_name["getppid"].nr
    with Map.create(MapType.ARRAY, 4, 8, 1, name="t_raw") as m:
        prog = counter_prog(m.fd, os.getpid(), ctx_id=nr)
        fd = B.prog_load(ProgType.RAW_TRACEPOINT, prog, name="t_rawtp")
        try:
            with perf.attach_raw_tracepoint(fd, "sys_enter") as link:
                assert link.what == "raw tracepoint sys_enter"
                for _ in range(23):
                    os.getppid()
                os.getpid()
            assert u64(m.lookup(0)) == 23
        finally:
            os.close(fd)


def test_attach_errors():
    fd = B.prog_load(ProgType.PERF_EVENT, RET0, name="t_perf")
    try:
        with pytest.raises(LookupError) as e:
            perf.attach_tracepoint(fd, "syscalls", "sys_enter_no_such_call")
        assert str(e.value) == "no tracepoint syscalls:sys_enter_no_such_call in this kernel"
        with pytest.raises(perf.PerfError) as e:
            perf.attach_tracepoint(fd, "syscalls", "sys_enter_getppid")
        assert str(e.value) == (
            "cannot attach BPF program to tracepoint syscalls:sys_enter_getppid: "
            "Invalid argument (program type does not fit this event)"
        )
        with pytest.raises(B.BPFError) as e:
            B.raw_tracepoint_open("sys_enter", fd)
        assert str(e.value) == (
            "bpf(RAW_TRACEPOINT_OPEN) failed: Invalid argument "
            "(the program is not a raw tracepoint program)"
        )
    finally:
        os.close(fd)
    fd = B.prog_load(ProgType.RAW_TRACEPOINT, RET0, name="t_raw0")
    try:
        with pytest.raises(B.BPFError) as e:
            B.raw_tracepoint_open("no_such_tracepoint", fd)
        assert str(e.value) == (
            "bpf(RAW_TRACEPOINT_OPEN) failed: No such file or directory "
            "(no raw tracepoint named no_such_tracepoint)"
        )
    finally:
        os.close(fd)


def test_cpu_clock_fires_on_every_cpu():
    need(F.has_perf_event_programs(), "no perf-event BPF programs")
    from pydtrace.engines.ebpf.maps import online_cpus

    with Map.create(MapType.PERCPU_ARRAY, 4, 8, 1, name="t_clk") as m:
        fd = B.prog_load(ProgType.PERF_EVENT, counter_prog(m.fd, None), name="t_clock")
        try:
            with perf.Attachments() as group:
                group.add(perf.open_clocks(fd, 1_000_000))
                assert len(group) == len(online_cpus())
                end = time.monotonic() + 0.15
                while time.monotonic() < end:
                    pass
            assert len(group) == 0
            counts = [u64(v) for v in m.lookup(0)]
            assert sum(counts) > 0
            time.sleep(0.02)
            assert [u64(v) for v in m.lookup(0)] == counts  # closed: no more firings
        finally:
            os.close(fd)


def test_attachments_close_everything_on_error():
    fd = B.prog_load(ProgType.PERF_EVENT, RET0, name="t_perf2")
    try:
        with pytest.raises(RuntimeError):
            with perf.Attachments() as group:
                group.add(perf.open_clock(fd, 10_000_000, 0))
                raise RuntimeError("boom")
        assert len(group) == 0
        with pytest.raises(perf.PerfError) as e:
            perf.open_clocks(fd, 10_000_000, [0, 100000])  # the second CPU does not exist
        assert str(e.value).startswith("cannot open cpu-clock event on CPU 100000: ")
    finally:
        os.close(fd)


def test_close_in_parallel_closes_everything_when_threads_cannot_start(monkeypatch):
    """The uprobe agent closes its links with close_in_parallel before it
    exits: when the fourth thread cannot start (a limit on tasks), the first
    three close their parts and the rest close in the caller, none left open."""
    import threading

    pipes = [os.pipe() for _ in range(20)]
    items = [perf.Attachment(r, f"pipe {r}") for r, _ in pipes]
    real_start, started = threading.Thread.start, []

    def start(self):
        if len(started) == 3:
            raise RuntimeError("can't start new thread")
        started.append(self)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    try:
        perf.close_in_parallel(items, 8)
        assert len(started) == 3 and not any(w.is_alive() for w in started)
        assert all(a.closed for a in items)
        for r, w in pipes:
            with pytest.raises(OSError) as e:
                os.fstat(r)
            assert e.value.errno == errno.EBADF
            os.close(w)
    finally:
        for a in items:
            a.close()


# ------------------------------------------------------------------ ring buffer


def ringbuf_prog(map_fd: int) -> bytes:
    """Reserve 16 bytes, store (arg0, arg0 + 1000); submit when arg0 is even, else discard."""
    return (
        ins(0x79, 7, 1, off=0)  # r7 = ctx->args[0]
        + ld_map(1, map_fd)
        + ins(0xB7, 2, imm=16)
        + ins(0xB7, 3, imm=0)
        + ins(0x85, imm=B.Helper.ringbuf_reserve)
        + ins(0x15, 0, off=10, imm=0)  # NULL: ring full
        + ins(0x7B, 0, 7, off=0)  # *(u64 *)(r0 + 0) = r7
        + ins(0xBF, 8, 7)
        + ins(0x07, 8, imm=1000)
        + ins(0x7B, 0, 8, off=8)
        + ins(0xBF, 1, 0)
        + ins(0xB7, 2, imm=0)
        + ins(0x45, 7, off=2, imm=1)  # odd: discard
        + ins(0x85, imm=B.Helper.ringbuf_submit)
        + ins(0x05, off=1)
        + ins(0x85, imm=B.Helper.ringbuf_discard)
        + RET0
    )


def test_ringbuf_records_exact_with_wrap_and_discard():
    need(F.has_ringbuf(), "no BPF ring buffer")
    with ringbuf_map(4096, "t_ring") as rb_map:
        fd = B.prog_load(ProgType.RAW_TRACEPOINT, ringbuf_prog(rb_map.fd), name="t_ring")
        try:
            with RingBuffer(rb_map.fd) as ring:
                assert ring.size == 4096 and ring.fileno() == rb_map.fd
                assert ring.poll(0) is False
                got: list[tuple[int, int]] = []
                sent = 0
                # 24 bytes per record: 10 rounds of 100 runs wrap the 4096-byte ring twice
                for _ in range(10):
                    for _ in range(100):
                        B.prog_test_run(fd, ctx=struct.pack("<Q", sent))
                        sent += 1
                    assert ring.poll(0.5) is True
                    n = ring.drain(lambda mv: got.append(struct.unpack("<QQ", mv)))
                    assert n == 50
                assert got == [(i, i + 1000) for i in range(0, 1000, 2)]
                assert ring.pending() == 0 and ring.poll(0) is False
        finally:
            os.close(fd)


def test_ringbuf_full_then_limit():
    need(F.has_ringbuf(), "no BPF ring buffer")
    with ringbuf_map(4096, "t_ring2") as rb_map:
        fd = B.prog_load(ProgType.RAW_TRACEPOINT, ringbuf_prog(rb_map.fd), name="t_ring2")
        try:
            with RingBuffer(rb_map.fd) as ring:
                for i in range(400):
                    B.prog_test_run(fd, ctx=struct.pack("<Q", 2 * i))
                # 4096 // 24 = 170 records fit; the rest were refused by ringbuf_reserve
                got: list[int] = []
                assert ring.drain(lambda mv: got.append(u64(mv[:8])), limit=100) == 100
                assert ring.drain(lambda mv: got.append(u64(mv[:8]))) == 70
                assert got == [2 * i for i in range(170)]
        finally:
            os.close(fd)


# ------------------------------------------------------------------ features


# Spins over the ring's consumer page (the map fd it inherits), as the kernel
# reads it when a program reserves, until it has seen the position change
# argv[2] times or argv[3] seconds have passed: prints how often it went
# down, and how often it changed.
CONS_READER = r"""
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
int main(int argc, char **argv) {
    volatile uint64_t *cons = mmap(0, 4096, PROT_READ, MAP_SHARED, atoi(argv[1]), 0);
    if (cons == MAP_FAILED) return 2;
    puts("ready");
    fflush(stdout);
    uint64_t last = *cons, down = 0, changes = 0, enough = strtoull(argv[2], 0, 10);
    time_t end = time(0) + atoi(argv[3]);
    while (changes < enough && time(0) < end)
        for (int i = 0; i < 100000; i++) {
            uint64_t v = *cons;
            down += v < last;
            changes += v != last;
            last = v;
        }
    printf("%lu %lu\n", (unsigned long)down, (unsigned long)changes);
    return 0;
}
"""

CONS_CHANGES = 200_000  # the old writer sent it back 4-32 times in as many


def test_ringbuf_consumer_position_never_goes_back(tmp_path):
    """Another CPU reading the consumer position (the kernel, at each reserve)
    sees it only move forward. It was written with struct.pack_into, which
    zero-fills its target before it packs: a reserve that read the 0 found a
    ring past its first lap full and dropped the record (opensnoop lost one
    event in a few thousand, with the ring almost empty)."""
    import subprocess

    from conftest import compile_c

    need(F.has_ringbuf(), "no BPF ring buffer")
    need(len(os.sched_getaffinity(0)) >= 2, "one CPU: nothing reads while we write")
    reader = compile_c(tmp_path, "cons_reader", CONS_READER)
    with ringbuf_map(1 << 16, "t_ring3") as rb_map:
        fd = B.prog_load(ProgType.RAW_TRACEPOINT, ringbuf_prog(rb_map.fd), name="t_ring3")
        # until the reader has watched the position move CONS_CHANGES times
        # (seconds on an idle machine, longer beside busy loops), or 120 s
        p = subprocess.Popen([reader, str(rb_map.fd), str(CONS_CHANGES), "120"],
                             pass_fds=[rb_map.fd], stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
            with RingBuffer(rb_map.fd) as ring:
                while p.poll() is None:
                    for k in range(200):
                        B.prog_test_run(fd, ctx=struct.pack("<Q", 2 * k))
                    ring.drain(lambda mv: None)
            down, changes = map(int, p.communicate(timeout=10)[0].split())
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            os.close(fd)
    assert changes >= CONS_CHANGES  # it watched while the position moved
    assert down == 0


def test_feature_probes_on_this_kernel():
    f = F.features()
    assert set(f) == {
        "ringbuf",
        "probe_read_user_str",
        "probe_read_kernel",
        "bounded_loops",
        "raw_tp_test_run",
        "signed_division",
        "bpf_loop",
        "perf_event_programs",
        "uprobe_multi",
    }
    assert F.has_bpf_loop() is False  # needs BTF func_info, which pydtrace does not emit
    release = tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2])
    if release >= (6, 6):  # every other feature is as old as 6.6 (uprobe_multi) or older
        assert all(v for k, v in f.items() if k != "bpf_loop"), f
    assert F.can_use_bpf() == (True, "")
    # a probe that must fail: an unknown helper
    assert F._loads(ProgType.TRACEPOINT, F._calls(9999)) is False


def test_can_use_bpf_unprivileged():
    """In a child switched to nobody (no capabilities left), the engine says why it cannot run."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only write the answer and leave
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            F.can_use_bpf.cache_clear()
            os.write(w, repr(F.can_use_bpf()).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        answer = f.read()
    os.waitpid(pid, 0)
    assert answer.startswith(
        "(False, 'eBPF tracing needs root, or the CAP_BPF and CAP_PERFMON capabilities"
    )
