"""Prologues of the sdt and io providers: TRACEPOINT programs whose context
(r6) is the tracepoint's raw record, fields at their `format` offsets.

Both build their arguments in one frame area registered as a memory region
(cg_memory), so D reads them as ordinary memory: `args` / args[N] are D
addresses inside it, and member loads, strings and stringof() work unchanged.

- sdt: the record's fixed part is copied (8-byte loads from the context at
  8-aligned offsets, which the verifier accepts for any offset below the
  trace size limit), each `__data_loc` string is read after it with
  probe_read_kernel_str; args[N] = a scalar field's value or the address of
  an array / string.
- io: bufinfo_t, devinfo_t and fileinfo_t are written from the block
  tracepoint's record (probes/io.py names the events); device names are
  compiled in from the devices present when the program is compiled.

The area is filled only by programs whose clauses read the arguments.
"""

from __future__ import annotations

from typing import Any

from pydtrace.engines.ebpf.cg_context import MAX_ARGS, PROG_TRACEPOINT
from pydtrace.engines.ebpf.cg_memory import Region
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.insn import R1, R2, R3, R4, R6, R9
from pydtrace.probes import tracefs
from pydtrace.probes.providers.sdt import DATA_LOC_SIZE

REGION = ("tracepoint", "args")
MAX_RECORD = 2048  # PERF_MAX_TRACE_SIZE: the context bytes a program may read

B_READ, B_WRITE, B_ASYNC, B_PHYS = 0x40, 0x100, 0x400, 0x20
UNKNOWN = "<unknown>"


def attach(probe: Any) -> tuple[int, tuple[str, str, str]]:
    """(program type, attachment) of an sdt or io probe."""
    group, event = _event(probe)
    try:
        tracefs.event_id(group, event)
    except tracefs.TracefsError as e:
        raise LoweringError(f"cannot attach {probe.fqn}: {e}") from None
    return PROG_TRACEPOINT, ("tracepoint", group, event)


def _event(probe: Any) -> tuple[str, str]:
    if probe.provider == "sdt":
        return probe.data.group, probe.data.event
    return probe.data  # io: ("block", event)


# --- the argument area -----------------------------------------------------------
def _area_size(probe: Any) -> int:
    if probe.provider == "sdt":
        return probe.data.args.size
    if probe.provider == "io":
        return _io_layout()[3]
    return 0


def region(cg: Any) -> Region:
    """The frame area of this program's arguments (one, sized for every sdt
    and io probe of the program; each firing fills it anew)."""
    regs = cg.mem_regions()
    r = regs.get(REGION)
    if r is None:
        size = max(
            [_area_size(p) for c in cg.prog.clauses for p in c.probes] + [8]
        )  # fmt: skip
        size = (size + 7) // 8 * 8
        r = regs[REGION] = Region(cg.next_vaddr(), size, "frame", cg.frame.take(size))
    return r


def args_pointer(cg: Any, t: Any) -> Any:
    """The value of `args` (sdt): the address of the argument struct."""
    if cg.probe.provider != "sdt":
        raise cg.unsupported("args outside an sdt probe", None)
    return cg.const(region(cg).vaddr, t)


def prologue(cg: Any, probe: Any) -> None:
    """Fill the argument area and argN (cg_program.prologue_args has zeroed them)."""
    if not cg.wants_args:
        return
    if probe.provider == "sdt":
        _sdt(cg, probe.data.args)
    else:
        _io(cg, probe)


def _sdt(cg: Any, info: Any) -> None:
    a = cg.a
    r = region(cg)
    base = r.off
    # the first 8 bytes (common_*) are not the program's to read, and reading
    # past the record's end makes attaching fail (EACCES): aligned loads up to it
    end = min(info.record_size, MAX_RECORD)
    off = 8
    while off < end:
        step = next(k for k in (8, 4, 2, 1) if k <= end - off and off % k == 0)
        a.ldx(step, R1, R6, off)
        a.stx(step, R9, base + off, R1)
        off += step
    for f in info.fields:
        if f.kind != "string":
            continue
        dst = base + f.mem_off
        a.st(1, R9, dst, 0)
        empty = a.new_label("noloc")
        a.ldx(4, R3, R9, base + f.rec_off)  # offset | length << 16
        a.mov(R4, R3)
        a.alu(">>", R4, imm=16)
        a.jmp("==", R4, empty, imm=0)
        a.alu("&", R3, imm=0xFFFF)
        if f.rel_loc:  # relative to the end of the field
            a.alu("+", R3, imm=f.rec_off + f.size)
        a.alu("+", R3, R6)
        a.mov(R1, R9)
        a.alu("+", R1, imm=dst)
        a.movi(R2, DATA_LOC_SIZE)
        a.call("probe_read_kernel_str")
        a.place(empty)
    fa = cg.f_args
    for i, f in enumerate(info.fields[:MAX_ARGS]):
        if f.kind == "int" and f.size in (1, 2, 4, 8):
            a.ldx(f.size, R1, R9, base + f.rec_off)
            if f.signed:
                cg.wrap(R1, f.ctype)
        elif f.kind == "array":
            a.ld_imm64(R1, r.vaddr + f.rec_off)
        elif f.kind == "string":
            a.ld_imm64(R1, r.vaddr + f.mem_off)
        else:
            continue
        a.stx(8, R9, fa + 8 * i, R1)


# --- io ---------------------------------------------------------------------------
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
    r = region(cg)
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
