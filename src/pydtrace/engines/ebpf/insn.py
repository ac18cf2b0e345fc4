"""BPF instructions: encoding, an assembler with labels, and a disassembler.

An instruction is 8 bytes: opcode, dst/src register nibbles, a signed 16-bit
offset and a signed 32-bit immediate. LD_IMM64 takes two slots. Jumps name
labels while code is generated; `Assembler.resolve()` turns them into
instruction-relative offsets. Map references stay symbolic (a map name) until
load time, when `encode()` is given the map file descriptors.

The disassembly follows the kernel's bpftool/verifier syntax, one instruction
per line: `  12: r1 = *(u64 *)(r10 - 8)`.
"""

from __future__ import annotations

import struct

from pydtrace.lang.dataclass import dataclass

# classes
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
# sizes
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
SIZE_BYTES = {W: 4, H: 2, B: 1, DW: 8}
BYTES_SIZE = {v: k for k, v in SIZE_BYTES.items()}
# modes
IMM, MEM, ATOMIC = 0x00, 0x60, 0xC0
# sources
K, X = 0x00, 0x08
# ALU operations
ALU_OPS = {
    "+": 0x00, "-": 0x10, "*": 0x20, "/": 0x30, "|": 0x40, "&": 0x50, "<<": 0x60,
    ">>": 0x70, "neg": 0x80, "%": 0x90, "^": 0xA0, "=": 0xB0, "s>>": 0xC0, "end": 0xD0,
}  # fmt: skip
ALU_NAMES = {v: k for k, v in ALU_OPS.items()}
# jump operations (s< etc. are signed)
JMP_OPS = {
    "ja": 0x00, "==": 0x10, ">": 0x20, ">=": 0x30, "&": 0x40, "!=": 0x50, "s>": 0x60,
    "s>=": 0x70, "call": 0x80, "exit": 0x90, "<": 0xA0, "<=": 0xB0, "s<": 0xC0, "s<=": 0xD0,
}  # fmt: skip
JMP_NAMES = {v: k for k, v in JMP_OPS.items()}
NEGATE = {"==": "!=", "!=": "==", ">": "<=", "<=": ">", ">=": "<", "<": ">=",
          "s>": "s<=", "s<=": "s>", "s>=": "s<", "s<": "s>="}  # fmt: skip

PSEUDO_MAP_FD = 1
PSEUDO_MAP_VALUE = 2

# helper ids used by the code generator, with the names the disassembler prints
HELPERS = {
    1: "map_lookup_elem", 2: "map_update_elem", 3: "map_delete_elem", 5: "ktime_get_ns",
    7: "get_prandom_u32", 67: "get_stack", 8: "get_smp_processor_id", 14: "get_current_pid_tgid", 15: "get_current_uid_gid",
    16: "get_current_comm", 35: "get_current_task", 112: "probe_read_user",
    113: "probe_read_kernel", 114: "probe_read_user_str", 115: "probe_read_kernel_str",
    130: "ringbuf_output", 131: "ringbuf_reserve", 132: "ringbuf_submit",
    133: "ringbuf_discard", 125: "ktime_get_boot_ns", 182: "strncmp",
    158: "get_current_task_btf", 175: "task_pt_regs", 109: "send_signal",
    117: "send_signal_thread", 174: "get_attach_cookie",
}  # fmt: skip
HELPER_IDS = {v: k for k, v in HELPERS.items()}

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)


@dataclass
class Insn:
    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    target: str | None = None  # a label this jump goes to (resolved into off)
    map: str | None = None  # LD_IMM64 of a map: the map's name (its fd comes at load time)
    hi: int = 0  # LD_IMM64: the upper 32 bits (second slot's imm)
    origin: object = None  # what the code generator was compiling (for error messages)
    # (area, offset in it): a frame offset whose area's base is known only at
    # the end of code generation (CompilerBase._mark, ProgramMixin._patch_areas)
    area: tuple[str, int] | None = None
    wall: bool = False  # LD_IMM64 of the wall clock less the boot clock (a kept program's is new)

    @property
    def slots(self) -> int:
        return 2 if self.code == LD | DW | IMM else 1


class AsmError(Exception):
    pass


class Assembler:
    """Collects instructions; labels may be used before they are placed."""

    def __init__(self) -> None:
        self.insns: list[Insn] = []
        self.labels: dict[str, int] = {}  # label -> slot index
        self._slot = 0
        self._n = 0
        self.origin: object = None  # attached to every instruction emitted from now on

    # --- labels ----------------------------------------------------------------------
    def new_label(self, hint: str = "L") -> str:
        self._n += 1
        return f"{hint}{self._n}"

    def place(self, label: str) -> None:
        if label in self.labels:
            raise AsmError(f"label {label} placed twice")
        self.labels[label] = self._slot

    @property
    def pc(self) -> int:
        """The slot index of the next instruction."""
        return self._slot

    def emit(self, insn: Insn) -> Insn:
        if insn.origin is None:
            insn.origin = self.origin
        self.insns.append(insn)
        self._slot += insn.slots
        return insn

    # --- ALU -------------------------------------------------------------------------
    def alu(
        self, op: str, dst: int, src: int | None = None, imm: int = 0, wide: bool = True
    ) -> None:
        """dst op= src (a register) or imm; wide=False is the 32-bit form (zero-extends)."""
        cls = ALU64 if wide else ALU
        if src is None:
            self.emit(Insn(cls | ALU_OPS[op] | K, dst, 0, 0, s32(imm)))
        else:
            self.emit(Insn(cls | ALU_OPS[op] | X, dst, src))

    def mov(self, dst: int, src: int) -> None:
        self.alu("=", dst, src)

    def movi(self, dst: int, value: int) -> None:
        """dst = value, using the two-slot load only when the value needs it."""
        v = s64(value)
        if -(1 << 31) <= v < (1 << 31):
            self.alu("=", dst, imm=v)
        else:
            self.ld_imm64(dst, v)

    def neg(self, dst: int) -> None:
        self.emit(Insn(ALU64 | ALU_OPS["neg"] | K, dst))

    def ld_imm64(self, dst: int, value: int) -> None:
        v = value & 0xFFFFFFFFFFFFFFFF
        self.emit(Insn(LD | DW | IMM, dst, 0, 0, s32(v & 0xFFFFFFFF), hi=s32(v >> 32)))

    def ld_wall_offset(self, dst: int, value: int) -> None:
        """dst = value: CLOCK_REALTIME less CLOCK_MONOTONIC (walltimestamp =
        timestamp + it), made anew when a kept program is loaded."""
        self.ld_imm64(dst, value)
        self.insns[-1].wall = True

    def ld_map(self, dst: int, name: str, value_off: int | None = None) -> None:
        """dst = the map (for helper calls), or with value_off a pointer into an array map's
        first value (direct value access)."""
        if value_off is None:
            self.emit(Insn(LD | DW | IMM, dst, PSEUDO_MAP_FD, 0, 0, map=name))
        else:
            self.emit(Insn(LD | DW | IMM, dst, PSEUDO_MAP_VALUE, 0, 0, map=name, hi=value_off))

    # --- memory ----------------------------------------------------------------------
    def ldx(self, size: int, dst: int, src: int, off: int) -> None:
        """dst = *(size *)(src + off), size in bytes."""
        self.emit(Insn(LDX | BYTES_SIZE[size] | MEM, dst, src, off))

    def stx(self, size: int, dst: int, off: int, src: int) -> None:
        """*(size *)(dst + off) = src."""
        self.emit(Insn(STX | BYTES_SIZE[size] | MEM, dst, src, off))

    def st(self, size: int, dst: int, off: int, imm: int) -> None:
        """*(size *)(dst + off) = imm."""
        self.emit(Insn(ST | BYTES_SIZE[size] | MEM, dst, 0, off, s32(imm)))

    def atomic_add(self, size: int, dst: int, off: int, src: int) -> None:
        """lock *(size *)(dst + off) += src."""
        self.emit(Insn(STX | BYTES_SIZE[size] | ATOMIC, dst, src, off, 0))

    # --- control ---------------------------------------------------------------------
    def jmp(self, op: str, dst: int, label: str, src: int | None = None, imm: int = 0) -> None:
        """if dst op src/imm goto label."""
        if src is None:
            self.emit(Insn(JMP | JMP_OPS[op] | K, dst, 0, 0, s32(imm), target=label))
        else:
            self.emit(Insn(JMP | JMP_OPS[op] | X, dst, src, target=label))

    def ja(self, label: str) -> None:
        self.emit(Insn(JMP | JMP_OPS["ja"], target=label))

    def call(self, helper: int | str) -> None:
        hid = HELPER_IDS[helper] if isinstance(helper, str) else helper
        self.emit(Insn(JMP | JMP_OPS["call"], imm=hid))

    def exit(self) -> None:
        self.emit(Insn(JMP | JMP_OPS["exit"]))

    # --- output ----------------------------------------------------------------------
    def resolve(self) -> list[Insn]:
        """Fill every jump's offset from its label; returns the instructions."""
        slot = 0
        for insn in self.insns:
            slot += insn.slots
            if insn.target is not None:
                if insn.target not in self.labels:
                    raise AsmError(f"undefined label {insn.target}")
                off = self.labels[insn.target] - slot
                if not -(1 << 15) <= off < (1 << 15):
                    raise AsmError("jump too far")
                insn.off = off
        return self.insns

    def origin_at(self, slot: int) -> object:
        """What was being compiled at instruction slot `slot` (for verifier messages)."""
        at = 0
        for insn in self.insns:
            if at <= slot < at + insn.slots:
                return insn.origin
            at += insn.slots
        return None


def encode(insns: list[Insn], map_fds: dict[str, int] | None = None) -> bytes:
    out = bytearray()
    for i in insns:
        imm, hi = i.imm, i.hi
        if i.map is not None:
            if map_fds is None or i.map not in map_fds:
                raise AsmError(f"no file descriptor for map {i.map}")
            imm = map_fds[i.map]
        out += struct.pack("<BBhi", i.code, (i.dst & 15) | (i.src & 15) << 4, i.off, imm)
        if i.slots == 2:
            out += struct.pack("<BBhi", 0, 0, 0, hi)
    return bytes(out)


def decode(data: bytes) -> list[Insn]:
    """Raw instructions back into Insn objects (map loads keep their fd in imm)."""
    out = []
    i = 0
    while i + 8 <= len(data):
        code, regs, off, imm = struct.unpack_from("<BBhi", data, i)
        insn = Insn(code, regs & 15, regs >> 4, off, imm)
        i += 8
        if code == LD | DW | IMM and i + 8 <= len(data):
            insn.hi = struct.unpack_from("<BBhi", data, i)[3]
            i += 8
        out.append(insn)
    return out


# --- disassembly --------------------------------------------------------------------
_TYPES = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}


def _mem(reg: int, off: int) -> str:
    return f"(r{reg} {'-' if off < 0 else '+'} {abs(off)})"


def format_insn(i: Insn) -> str:
    """One instruction in bpftool's syntax."""
    cls = i.code & 7
    if cls in (ALU, ALU64):
        r = "r" if cls == ALU64 else "w"
        op = ALU_NAMES.get(i.code & 0xF0, "?")
        x = i.code & X
        if op == "neg":
            return f"{r}{i.dst} = -{r}{i.dst}"
        if op == "end":
            kind = "be" if x else "le"
            return f"r{i.dst} = {kind}{i.imm} r{i.dst}"
        rhs = f"{r}{i.src}" if x else str(i.imm)
        if op == "=":
            return f"{r}{i.dst} = {rhs}"
        return f"{r}{i.dst} {op}= {rhs}"
    if cls == LDX:
        t = _TYPES[SIZE_BYTES[i.code & 0x18]]
        return f"r{i.dst} = *({t} *){_mem(i.src, i.off)}"
    if cls == STX:
        t = _TYPES[SIZE_BYTES[i.code & 0x18]]
        if i.code & 0xE0 == ATOMIC:
            return f"lock *({t} *){_mem(i.dst, i.off)} += r{i.src}"
        return f"*({t} *){_mem(i.dst, i.off)} = r{i.src}"
    if cls == ST:
        t = _TYPES[SIZE_BYTES[i.code & 0x18]]
        return f"*({t} *){_mem(i.dst, i.off)} = {i.imm}"
    if cls == LD and i.code == LD | DW | IMM:
        if i.src == PSEUDO_MAP_FD:
            return f"r{i.dst} = map[{i.map if i.map else 'fd:%d' % i.imm}] ll"
        if i.src == PSEUDO_MAP_VALUE:
            return f"r{i.dst} = map_value[{i.map if i.map else 'fd:%d' % i.imm}] + {i.hi} ll"
        v = (i.imm & 0xFFFFFFFF) | (i.hi & 0xFFFFFFFF) << 32
        return f"r{i.dst} = {v:#x} ll"
    if cls in (JMP, JMP32):
        op = JMP_NAMES.get(i.code & 0xF0, "?")
        if op == "call":
            return f"call {HELPERS.get(i.imm, 'helper')}#{i.imm}"
        if op == "exit":
            return "exit"
        if op == "ja":
            return f"goto pc{i.off:+d}"
        r = "r" if cls == JMP else "w"
        rhs = f"{r}{i.src}" if i.code & X else f"{i.imm:#x}" if i.imm >= 0 else f"{i.imm}"
        return f"if {r}{i.dst} {op} {rhs} goto pc{i.off:+d}"
    return f"unknown opcode {i.code:#04x}"


def disassemble(insns: list[Insn]) -> str:
    """One line per instruction, numbered by slot like the verifier log."""
    lines = []
    slot = 0
    for i in insns:
        lines.append(f"{slot:4d}: {format_insn(i)}")
        slot += i.slots
    return "\n".join(lines) + ("\n" if lines else "")


def s32(v: int) -> int:
    """v cut to 32 bits, as a signed number (an instruction's imm)."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def s64(v: int) -> int:
    """v cut to 64 bits, as a signed number (LD_IMM64's value)."""
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >> 63 else v
