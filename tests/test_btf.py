"""BTF parser: a hand-built blob with exact answers, then the running kernel's vmlinux BTF
(struct offsets checked by reading the current task from a BPF program)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest

from conftest import ROOT, need
from pydtrace.symbols import btf as btfmod
from pydtrace.symbols.btf import BTF, BTFError


class Blob:
    """Build a BTF blob type by type (ids from 1)."""

    def __init__(self) -> None:
        self.types = b""
        self.strings = b"\0"
        self.n = 0
        self.offsets: dict[str, int] = {}

    def s(self, name: str) -> int:
        if not name:
            return 0
        if name not in self.offsets:  # BTF keeps each string once
            self.offsets[name] = len(self.strings)
            self.strings += name.encode() + b"\0"
        return self.offsets[name]

    def add(
        self, name: str, kind: int, vlen: int, size_or_type: int, extra: bytes = b"", kflag: int = 0
    ) -> int:
        info = vlen | kind << 24 | kflag << 31
        self.types += struct.pack("<III", self.s(name), info, size_or_type) + extra
        self.n += 1
        return self.n

    def data(self) -> bytes:
        hdr = struct.pack(
            "<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(self.types), len(self.types), len(self.strings)
        )
        return hdr + self.types + self.strings


@pytest.fixture(scope="module")
def small() -> BTF:
    b = Blob()
    t_int = b.add("int", btfmod.INT, 0, 4, struct.pack("<I", 1 << 24 | 32))  # 1: signed 32
    t_uint = b.add("unsigned int", btfmod.INT, 0, 4, struct.pack("<I", 32))  # 2
    t_char = b.add("char", btfmod.INT, 0, 1, struct.pack("<I", 2 << 24 | 8))  # 3
    t_arr = b.add("", btfmod.ARRAY, 0, 0, struct.pack("<III", t_char, t_int, 16))  # 4: char[16]
    t_fwd = b.add("node", btfmod.FWD, 0, 0)  # 5: struct node;
    t_ptr = b.add("", btfmod.PTR, 0, 7)  # 6: struct node *
    # 7: struct node { int a; struct { unsigned int lo:3, hi:5; }; char name[16]; struct node *next; }
    t_anon = 8
    members = struct.pack("<III", b.s("a"), t_int, 0)
    members += struct.pack("<III", 0, t_anon, 32)
    members += struct.pack("<III", b.s("name"), t_arr, 64)
    members += struct.pack("<III", b.s("next"), t_ptr, 192)
    assert b.add("node", btfmod.STRUCT, 4, 32, members) == 7
    bits = struct.pack("<III", b.s("lo"), t_uint, 3 << 24 | 0)
    bits += struct.pack("<III", b.s("hi"), t_uint, 5 << 24 | 3)
    assert b.add("", btfmod.STRUCT, 2, 4, bits, kflag=1) == t_anon
    t_td = b.add("node_t", btfmod.TYPEDEF, 0, 7)  # 9
    b.add("", btfmod.CONST, 0, t_td)  # 10: const node_t
    b.add(
        "color", btfmod.ENUM, 2, 4, struct.pack("<IiIi", b.s("RED"), -1, b.s("BLUE"), 7), kflag=1
    )  # 11
    b.add("big", btfmod.ENUM64, 1, 8, struct.pack("<III", b.s("HUGE"), 0, 1))  # 12
    b.add("f", btfmod.FUNC_PROTO, 2, t_int, struct.pack("<IIII", 0, t_int, 0, t_ptr))  # 13
    b.add("v", btfmod.VAR, 0, t_int, struct.pack("<I", 1))  # 14
    b.add(".data", btfmod.DATASEC, 1, 4, struct.pack("<III", 14, 0, 4))  # 15
    b.add("tag", btfmod.DECL_TAG, 0, 7, struct.pack("<i", -1))  # 16
    b.add("u", btfmod.UNION, 1, 8, struct.pack("<III", b.s("x"), t_ptr, 0))  # 17
    assert t_fwd == 5
    return BTF(b.data())


def test_small_blob_types(small):
    assert len(small) == 17
    assert small.find("node") == 7  # the definition wins over `struct node;`
    assert small.find("struct node") == 7
    assert small.find("node_t") == 9
    assert small.find("union u") == 17
    assert small.size_of(7) == 32
    assert small.size_of(4) == 16
    assert small.size_of(10) == 32  # through const and typedef
    assert small.size_of(6) == 8
    assert small.type_name(6) == "struct node *"
    assert small.type_name(4) == "char [16]"
    assert small.type_name(10) == "const node_t"
    assert small.type_name(5) == "struct node"
    assert small.int_info(1) == (True, 0, 32)
    assert small.int_info(2) == (False, 0, 32)
    assert small.enum_values("color") == {"RED": -1, "BLUE": 7}
    assert small.enum_values(12) == {"HUGE": 1 << 32}
    assert small.array_info(4) == (3, 16)


def test_small_blob_member_paths(small):
    acc = small.resolve_path("node", "name")
    assert [(a.offset, a.size, a.is_pointer, a.name) for a in acc] == [(8, 16, False, "name")]
    # into the anonymous struct: a bit-field
    (hi,) = small.resolve_path("node", "hi")
    assert (hi.offset, hi.size, hi.bit_shift, hi.bit_size, hi.signed) == (4, 1, 3, 5, False)
    (lo,) = small.resolve_path("node", "lo")
    assert (lo.offset, lo.bit_shift, lo.bit_size) == (4, 0, 3)
    # across a pointer: two loads
    acc = small.resolve_path("node", "next", "next", "a")
    assert [(a.offset, a.size, a.is_pointer) for a in acc] == [
        (24, 8, True),
        (24, 8, True),
        (0, 4, False),
    ]
    assert acc[-1].signed is True
    assert small.resolve_path("node", "next->a") == small.resolve_path("node", "next", "a")
    assert small.member_offset("node", "name") == 8
    with pytest.raises(BTFError) as e:
        small.member_offset("node", "next", "a")
    assert str(e.value) == "member path crosses pointer next: use resolve_path"
    with pytest.raises(BTFError) as e:
        small.resolve_path("node", "nope")
    assert str(e.value) == "struct node has no member nope"
    with pytest.raises(BTFError) as e:
        small.resolve_path("node", "a", "b")
    assert str(e.value) == "int is not a struct or union (looking up b)"
    with pytest.raises(BTFError) as e:
        small.find("struct missing")
    assert str(e.value) == "kernel BTF has no type struct missing"


def test_bad_blob():
    with pytest.raises(BTFError) as e:
        BTF(b"\0" * 32)
    assert str(e.value) == "not BTF data (magic 0x0)"


# ------------------------------------------------------------------ the running kernel


@pytest.fixture(scope="module")
def kernel() -> BTF:
    need(btfmod.available(), "no /sys/kernel/btf/vmlinux")
    return btfmod.vmlinux()


def test_vmlinux_known_layouts(kernel):
    assert kernel.member_offset("timespec64", "tv_sec") == 0
    assert kernel.member_offset("timespec64", "tv_nsec") == 8
    assert kernel.size_of(kernel.find("timespec64")) == 16
    assert kernel.member_offset("list_head", "next") == 0
    assert kernel.member_offset("list_head", "prev") == 8
    assert kernel.size_of(kernel.find("pid_t")) == 4
    task = kernel.find("task_struct")
    assert kernel.kind(task) == btfmod.STRUCT
    pid = kernel.member_offset("task_struct", "pid")
    assert kernel.member_offset("task_struct", "tgid") == pid + 4
    (comm,) = kernel.resolve_path("task_struct", "comm")
    assert (comm.size, kernel.type_name(comm.type)) == (16, "char [16]")
    rp = kernel.resolve_path("task_struct", "real_parent", "tgid")
    assert [(a.size, a.is_pointer) for a in rp] == [(8, True), (4, False)]
    assert rp[1].offset == kernel.member_offset("task_struct", "tgid")
    assert kernel.type_name(rp[0].type) == "struct task_struct *"


def test_vmlinux_bitfields_match_members(kernel):
    task = kernel.find("task_struct")
    fields = [m for m in kernel.members(task) if m.bitfield_size]
    need(bool(fields), "task_struct has no bit-fields in this kernel")
    m = fields[0]
    (a,) = kernel.resolve_path("task_struct", m.name)
    assert a.offset * 8 + a.bit_shift == m.bit_offset
    assert a.bit_size == m.bitfield_size


def test_import_does_not_load_btf():
    # the import is quick, in CPU time (the wall clock of a loaded machine is not)
    code = (
        "import time; t = time.process_time();"
        "import pydtrace.symbols.btf as b; d = time.process_time() - t;"
        "print(b._vmlinux is None, d < 0.05)"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30
    )
    assert p.stdout == "True True\n", p.stderr


def test_current_task_offsets_in_a_program(kernel):
    """Read current->tgid and current->real_parent->tgid in the kernel: they are getpid/getppid."""
    from pydtrace.engines.ebpf import bpf as B
    from pydtrace.engines.ebpf import features as F
    from pydtrace.engines.ebpf.maps import Map

    ok, why = F.can_use_bpf()
    need(ok, why)
    need(F.has_raw_tp_test_run(), "no PROG_TEST_RUN for raw tracepoints")
    fds_before = len(os.listdir("/proc/self/fd"))

    def ins(code, dst=0, src=0, off=0, imm=0):
        return struct.pack("<BBhi", code, dst | src << 4, off, imm)

    tgid = kernel.member_offset("task_struct", "tgid")
    parent = kernel.resolve_path("task_struct", "real_parent")[0].offset

    def read_kernel(dst_off: int, size: int, src_reg: int, src_off: int) -> bytes:
        """probe_read_kernel(fp + dst_off, size, src_reg + src_off)."""
        return (
            ins(0xBF, 1, 10)
            + ins(0x07, 1, imm=dst_off)
            + ins(0xB7, 2, imm=size)
            + ins(0xBF, 3, src_reg)
            + ins(0x07, 3, imm=src_off)
            + ins(0x85, imm=B.Helper.probe_read_kernel)
        )

    with Map.create(B.MapType.ARRAY, 4, 16, 1, name="t_task") as m:
        prog = (
            ins(0x7A, 10, off=-8, imm=0)
            + ins(0x7A, 10, off=-16, imm=0)
            + ins(0x7A, 10, off=-24, imm=0)
            + ins(0x85, imm=B.Helper.get_current_task)
            + ins(0xBF, 6, 0)  # r6 = current
            + read_kernel(-8, 4, 6, tgid)  # fp-8: current->tgid
            + read_kernel(-24, 8, 6, parent)  # fp-24: current->real_parent
            + ins(0x79, 7, 10, off=-24)
            + read_kernel(-16, 4, 7, tgid)  # fp-16: real_parent->tgid
            + ins(0x62, 10, off=-28, imm=0)
            + ins(0x18, 1, B.BPF_PSEUDO_MAP_FD, imm=m.fd)
            + ins(0)
            + ins(0xBF, 2, 10)
            + ins(0x07, 2, imm=-28)
            + ins(0xBF, 3, 10)
            + ins(0x07, 3, imm=-16)
            + ins(0xB7, 4, imm=0)
            + ins(0x85, imm=B.Helper.map_update_elem)  # array[0] = {parent tgid, tgid}
            + ins(0xB7, 0, imm=0)
            + ins(0x95)
        )
        fd = B.prog_load(B.ProgType.RAW_TRACEPOINT, prog, name="t_task")
        try:
            B.prog_test_run(fd)
        finally:
            os.close(fd)
        ppid, _, pid, _ = struct.unpack("<IIII", m.lookup(0))
    assert (pid, ppid) == (os.getpid(), os.getppid())
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_a_partial_pass_answers_as_the_whole_index() -> None:
    """find() on a fresh BTF indexes types only as far as the answer, and
    answers as a BTF that indexed everything first: complete definitions
    before forward declarations, the right kind, the same error for a name
    it lacks."""
    need(btfmod.available(), "no /sys/kernel/btf/vmlinux")
    data = btfmod.read_blob()
    whole = BTF(data)
    assert len(whole) > 1000
    names = ["task_struct", "file", "path", "dentry", "inode", "sk_buff", "pt_regs", "pid_t",
             "u64", "size_t", "list_head", "in6_addr", "cfs_rq", "no_such_type_pydtrace"]  # fmt: skip
    for name in names:
        for asked in (name, f"struct {name}", f"union {name}", f"enum {name}"):
            fresh = BTF(data)
            try:
                got = fresh.find(asked)
            except BTFError as e:
                got = str(e)
            try:
                want = whole.find(asked)
            except BTFError as e:
                want = str(e)
            assert got == want, asked
    fresh = BTF(data)
    tid = fresh.find("struct task_struct")
    assert fresh.name(tid) == "task_struct"
    assert len(fresh._offsets) < len(whole._offsets)  # not every type was indexed for it


def test_vmlinux_is_read_whole_and_no_descriptor_stays(tmp_path):
    """read_blob copies vmlinux's BTF out of a mapping where the kernel allows
    it (Linux 6.16: 3 ms, where reading its 5 MB through sysfs a page per
    read took 5-13 ms of every start): the same bytes as a read, and no
    descriptor left open (an mmap object keeps one while it lives); a file
    that cannot be mapped (an empty one) is read."""
    need(os.path.exists(btfmod.VMLINUX), "no kernel BTF")
    before = len(os.listdir("/proc/self/fd"))
    blob = btfmod.read_blob()
    assert len(os.listdir("/proc/self/fd")) == before
    with open(btfmod.VMLINUX, "rb") as f:
        assert blob == f.read()
    assert isinstance(blob, bytes) and btfmod.has_typedef(blob, "pid_t")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert btfmod.read_blob(str(empty)) == b""
