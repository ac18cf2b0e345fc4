"""io:::start, done, wait-start, wait-done on the eBPF engine: a TRACEPOINT
program on the block tracepoint (probes/providers/io.py names them) whose
prologue writes bufinfo_t, devinfo_t and fileinfo_t into the argument area
(tracepoint_area.py) from its record; device names are compiled in from the
devices present when the program is compiled.
"""

from __future__ import annotations

from pydtrace.engines.ebpf.insn import R1, R2, R3, R4, R6, R9
from pydtrace.engines.ebpf.providers import tracepoint_area
from pydtrace.engines.ebpf.providers.base import EbpfProvider
from pydtrace.probes import tracefs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

B_READ, B_WRITE, B_ASYNC, B_PHYS = 0x40, 0x100, 0x400, 0x20
UNKNOWN = "<unknown>"


class IoProvider(EbpfProvider):
    name = "io"

    def attach(self, probe: Any) -> tuple[int, tuple[Any, ...]]:
        group, event = probe.data
        return tracepoint_area.attach(probe, group, event)

    def args_area(self, probe: Any) -> int:
        return _io_layout()[3]

    def prologue(self, cg: Any, probe: Any, clauses: list[Any]) -> None:
        if cg.wants_args:
            _io(cg, probe)


def _io_layout() -> tuple[dict, dict, dict, int, tuple[int, int, int]]:
    """Member offsets of bufinfo_t, devinfo_t, fileinfo_t, the area size, and
    where each structure starts in it."""
    from pydtrace.probes.providers.io import library_types

    lib = library_types()
    offs = []
    at = 0
    members = []
    for name in ("bufinfo_t", "devinfo_t", "fileinfo_t"):
        t = lib[name].r
        offs.append(at)
        members.append({m.name: (m.offset, m.type) for m in t.members})
        at += (t.size + 7) // 8 * 8
    return members[0], members[1], members[2], at, (offs[0], offs[1], offs[2])


def _put_string(cg: Any, off: int, text: str, room: int) -> None:
    """Write text and its NUL at frame offset off (4 bytes at a time)."""
    data = text.encode()[: room - 1] + b"\0"
    data += b"\0" * (-len(data) % 4)
    for k in range(0, len(data), 4):
        cg.a.st(4, R9, off + k, int.from_bytes(data[k : k + 4], "little", signed=True))


def _put(cg: Any, off: int, t: Any, reg: int) -> None:
    size = t.r.size if t.r.kind == "int" else 8
    cg.a.stx(size, R9, off, reg)


def _io(cg: Any, probe: Any) -> None:
    from pydtrace.probes.providers.io import INFO_STRSIZE, block_devices

    a = cg.a
    group, event = probe.data
    fmt = tracefs.event_format(group, event)
    r = tracepoint_area.region(cg)
    buf, dev, fil, size, (ob, od, of) = _io_layout()
    base = r.off
    for off in range(0, size, 8):
        a.st(8, R9, base + off, 0)
    b, d, f = base + ob, base + od, base + of

    def field(name: str) -> Any:
        try:
            return fmt.field(name)
        except KeyError:
            return None

    # dev_t (the kernel's major << 20 | minor)
    fdev = field("dev")
    if fdev is not None:
        a.ldx(4, R1, R6, fdev.offset)
        _put(cg, b + buf["b_edev"][0], buf["b_edev"][1], R1)
        a.mov(R2, R1)
        a.alu(">>", R2, imm=20)
        _put(cg, d + dev["dev_major"][0], dev["dev_major"][1], R2)
        a.mov(R2, R1)
        a.alu("&", R2, imm=0xFFFFF)
        _put(cg, d + dev["dev_minor"][0], dev["dev_minor"][1], R2)
    fsec = field("sector")
    if fsec is not None:
        a.ldx(8, R2, R6, fsec.offset)
        _put(cg, b + buf["b_blkno"][0], buf["b_blkno"][1], R2)
        _put(cg, b + buf["b_lblkno"][0], buf["b_lblkno"][1], R2)
    fbytes, fnr = field("bytes"), field("nr_sector")
    if fbytes is not None:
        a.ldx(4, R2, R6, fbytes.offset)
    elif fnr is not None:
        a.ldx(4, R2, R6, fnr.offset)
        a.alu("<<", R2, imm=9)
    else:
        a.movi(R2, 0)
    _put(cg, b + buf["b_bcount"][0], buf["b_bcount"][1], R2)
    _put(cg, b + buf["b_bufsize"][0], buf["b_bufsize"][1], R2)
    ferr = field("error")
    if ferr is not None:
        a.ldx(4, R2, R6, ferr.offset)
        _put(cg, b + buf["b_error"][0], buf["b_error"][1], R2)
    # b_flags from rwbs ("W", "R", "FWS", "RA", ...): write/discard, sync
    frw = field("rwbs")
    a.movi(R3, 0)  # 1: write, 2: sync
    if frw is not None:
        end = a.new_label("rwbs")
        for k in range(min(frw.size, 8)):
            a.ldx(1, R2, R6, frw.offset + k)
            a.jmp("==", R2, end, imm=0)
            w, nxt = a.new_label("rw"), a.new_label("rn")
            a.jmp("==", R2, w, imm=ord("W"))
            a.jmp("==", R2, w, imm=ord("D"))
            a.jmp("!=", R2, nxt, imm=ord("S"))
            a.alu("|", R3, imm=2)
            a.ja(nxt)
            a.place(w)
            a.alu("|", R3, imm=1)
            a.place(nxt)
        a.place(end)
    a.movi(R4, B_READ | B_PHYS)
    isread = a.new_label("rd")
    a.mov(R2, R3)
    a.alu("&", R2, imm=1)
    a.jmp("==", R2, isread, imm=0)
    a.movi(R4, B_WRITE | B_PHYS)
    a.place(isread)
    sync = a.new_label("sync")
    a.mov(R2, R3)
    a.alu("&", R2, imm=2)
    a.jmp("!=", R2, sync, imm=0)
    a.alu("|", R4, imm=B_ASYNC)
    a.place(sync)
    _put(cg, b + buf["b_flags"][0], buf["b_flags"][1], R4)
    # devinfo_t names: the devices present at compile time, by dev_t
    room = INFO_STRSIZE
    names = a.new_label("devnames")
    if fdev is not None:
        a.ldx(4, R1, R6, fdev.offset)
        for dv in block_devices():
            nxt = a.new_label("dev")
            a.jmp("!=", R1, nxt, imm=dv.dev)
            _put_string(cg, d + dev["dev_name"][0], dv.name, room)
            _put_string(cg, d + dev["dev_statname"][0], dv.statname, room)
            _put_string(cg, d + dev["dev_pathname"][0], "/dev/" + dv.statname, room)
            a.ja(names)
            a.place(nxt)
    for m in ("dev_name", "dev_statname", "dev_pathname"):
        _put_string(cg, d + dev[m][0], UNKNOWN, room)
    a.place(names)
    # fileinfo_t: Linux's block tracepoints know no file
    for m in ("fi_name", "fi_dirname", "fi_pathname", "fi_fs", "fi_mount"):
        _put_string(cg, f + fil[m][0], UNKNOWN, room)
    fa = cg.f_args
    for i, off in enumerate((ob, od, of)):
        a.ld_imm64(R1, r.vaddr + off)
        a.stx(8, R9, fa + 8 * i, R1)
