"""x86-64 instruction lengths: where each instruction of a function starts,
for the pid provider's per-instruction probes (`pid$target:a.out:main:`).

Only lengths are decoded, never meanings: legacy prefixes, REX, the VEX and
EVEX escapes, the one-byte, 0F, 0F38 and 0F3A opcode maps, ModRM, SIB,
displacements and immediates (Intel SDM volume 2, chapter 2 and appendix A).
"""

from __future__ import annotations

_PREFIXES = frozenset(b"\xf0\xf2\xf3\x2e\x36\x3e\x26\x64\x65\x66\x67")

# invalid in 64-bit mode (and C4/C5/62 are VEX/EVEX escapes there)
_INVALID = frozenset(
    [0x06, 0x07, 0x0E, 0x16, 0x17, 0x1E, 0x1F, 0x27, 0x2F, 0x37, 0x3F, 0x60, 0x61, 0x82, 0x9A]
    + [0xCE, 0xD4, 0xD5, 0xD6, 0xEA]
)


def _one_byte_modrm(op: int) -> bool:
    if op < 0x40:
        return op & 7 < 4  # ALU ops r/m forms: 00-03, 08-0B, ...
    return op in (0x63, 0x69, 0x6B, 0xC0, 0xC1, 0xC6, 0xC7, 0xF6, 0xF7, 0xFE, 0xFF) or (
        0x80 <= op <= 0x8F or 0xD0 <= op <= 0xD3 or 0xD8 <= op <= 0xDF
    )


def _one_byte_imm(op: int, opsize16: bool, rex_w: bool, modrm_reg: int) -> int:
    """Immediate (and relative displacement) bytes after the ModRM of op."""
    z = 2 if opsize16 else 4  # "Iz": a word or a doubleword, never 8 bytes
    if op < 0x40:
        return {4: 1, 5: z}.get(op & 7, 0)
    if op in (0x6A, 0x6B, 0x80, 0x83, 0xC0, 0xC1, 0xC6, 0xCD, 0xEB) or 0x70 <= op <= 0x7F:
        return 1
    if 0xB0 <= op <= 0xB7 or 0xE0 <= op <= 0xE7 or op == 0xA8:
        return 1
    if op in (0x68, 0x69, 0x81, 0xC7, 0xA9):
        return z
    if 0xB8 <= op <= 0xBF:
        return 8 if rex_w else z
    if op in (0xE8, 0xE9):
        return 4
    if op in (0xC2, 0xCA):
        return 2
    if op == 0xC8:
        return 3  # enter imm16, imm8
    if op in (0xF6, 0xF7) and modrm_reg in (0, 1):  # test r/m, imm
        return 1 if op == 0xF6 else z
    return 0


# 0F xx without a ModRM byte
_0F_NO_MODRM = frozenset(
    [0x05, 0x06, 0x07, 0x08, 0x09, 0x0B, 0x0E, 0x77, 0xA0, 0xA1, 0xA2, 0xA8, 0xA9, 0xAA]
    + list(range(0x30, 0x38))
    + list(range(0x80, 0x90))
    + list(range(0xC8, 0xD0))
)
# 0F xx with an imm8 after the ModRM
_0F_IMM8 = frozenset([0x0F, 0x70, 0x71, 0x72, 0x73, 0xA4, 0xAC, 0xBA, 0xC2, 0xC4, 0xC5, 0xC6])


def _modrm_length(code: bytes, i: int) -> int:
    """Bytes of the ModRM at i with its SIB and displacement (32- and 64-bit
    addressing share this layout: 67 does not change it in 64-bit mode)."""
    modrm = code[i]
    mod, rm = modrm >> 6, modrm & 7
    if mod == 3:
        return 1
    n = 1
    if rm == 4:  # a SIB follows
        n += 1
        if mod == 0 and code[i + 1] & 7 == 5:
            return n + 4  # no base: disp32
    if mod == 0:
        return n + (4 if rm == 5 else 0)  # rm 5: rip-relative disp32
    return n + (1 if mod == 1 else 4)


def length(code: bytes, start: int = 0) -> int:
    """The length of the instruction at code[start]; ValueError if it is not
    one (an opcode invalid in 64-bit mode, or cut off by the end of code)."""
    try:
        n = _length(code, start)
    except IndexError:
        n = len(code) - start + 1  # ran out while reading prefixes, opcode or ModRM
    if start + n > len(code) or n <= 0:
        raise ValueError(f"instruction at {start} runs past the code")
    return n


def _length(code: bytes, start: int) -> int:
    i = start
    opsize16 = addr16 = False
    while code[i] in _PREFIXES:
        opsize16 |= code[i] == 0x66
        addr16 |= code[i] == 0x67
        i += 1
        if i - start > 14:
            raise ValueError(f"too many prefixes at {start}")
    rex_w = False
    if 0x40 <= code[i] <= 0x4F:
        rex_w = bool(code[i] & 8)
        i += 1
    op = code[i]
    if op == 0x9B and not rex_w and code[i + 1] in (0xD9, 0xDB, 0xDD, 0xDF):
        # fwait before an x87 store-environment/status op (fstsw = 9B DF E0): the
        # assembler's one instruction, as objdump shows it; either start is valid
        return 1 + _length(code, i + 1) + i - start
    if op in (0xC4, 0xC5, 0x62):  # VEX (3 or 2 bytes) and EVEX (4): a map, then opcode + ModRM
        if op == 0xC5:
            opmap, i = 1, i + 2
        elif op == 0xC4:
            opmap, i = code[i + 1] & 0x1F, i + 3
        else:
            opmap, i = code[i + 1] & 7, i + 4
        op = code[i]
        i += 1
        if opmap == 1 and op == 0x77:  # vzeroupper / vzeroall
            return i - start
        i += _modrm_length(code, i)
        imm = 1 if opmap == 3 or (opmap == 1 and op in _0F_IMM8) else 0
        return i + imm - start
    if op in _INVALID:
        raise ValueError(f"opcode 0x{op:02x} is invalid in 64-bit mode (at {start})")
    i += 1
    if op == 0x0F:
        op2 = code[i]
        i += 1
        if op2 in (0x38, 0x3A):  # three-byte maps: always a ModRM; 0F3A an imm8
            i += 1
            return i + _modrm_length(code, i) + (1 if op2 == 0x3A else 0) - start
        if op2 in _0F_NO_MODRM:
            return i + (4 if 0x80 <= op2 <= 0x8F else 0) - start  # jcc rel32
        i += _modrm_length(code, i)
        return i + (1 if op2 in _0F_IMM8 else 0) - start
    if 0xA0 <= op <= 0xA3:  # mov with a full-width absolute address
        return i + (4 if addr16 else 8) - start
    reg = 0
    if _one_byte_modrm(op):
        reg = (code[i] >> 3) & 7
        i += _modrm_length(code, i)
    return i + _one_byte_imm(op, opsize16 and not rex_w, rex_w, reg) - start


# What the kernel's uprobes refuse (arch/x86/kernel/uprobes.c, uprobe_init_insn):
# the es/cs/ss/ds segment prefixes and lock, and first opcodes its good_insns_64
# table leaves out (invalid in 64-bit mode, privileged, int3/int1/int n, iret,
# hlt, in/out, cli/sti). For VEX/EVEX the opcode after the escape is the one
# looked up, so vmovdqu (C5 FE 6F) is refused as 6F (outs) is.
_UPROBE_BAD_PREFIXES = frozenset(b"\x26\x2e\x36\x3e\xf0")
_UPROBE_BAD_OPS = _INVALID | frozenset(
    [0x62, 0x6C, 0x6D, 0x6E, 0x6F, 0xCC, 0xCD, 0xCF, 0xE4, 0xE5, 0xE6, 0xE7]
    + [0xEC, 0xED, 0xEE, 0xEF, 0xF1, 0xF4, 0xFA, 0xFB]
)
# The kernel accepts these VEX/EVEX instructions but emulates them by their
# opcode byte alone as jcc, call, jmp or nop (branch_setup_xol_ops does not
# look at the escape): EVEX vpbroadcastb (62 .. 7A) would be skipped as a
# not-taken jp, leaving the register unset (memset then writes garbage).
# Refused here, since the kernel would silently change what the process does.
_UPROBE_VEX_AS_BRANCH = frozenset(list(range(0x70, 0x80)) + [0x90, 0xE8, 0xE9, 0xEB])


def probeable(code: bytes, start: int) -> bool:
    """Whether a uprobe may be set on the instruction at code[start]: not one the
    kernel refuses (ENOTSUPP, once the process maps the code), nor one it accepts
    but would step wrongly (VEX/EVEX taken for branches, syscall/sysenter)."""
    i = start
    while code[i] in _PREFIXES:
        if code[i] in _UPROBE_BAD_PREFIXES:
            return False
        i += 1
    if 0x40 <= code[i] <= 0x4F:
        i += 1
    op = code[i]
    if op in (0xC4, 0xC5, 0x62):
        op = code[i + {0xC5: 2, 0xC4: 3, 0x62: 4}[op]]
        if op in _UPROBE_VEX_AS_BRANCH:
            return False
    elif op == 0x8E and (code[i + 1] >> 3) & 7 == 2:
        return False  # mov to %ss masks the single-step trap
    elif op == 0x0F and code[i + 1] in (0x05, 0x34):
        # syscall/sysenter stepped out of line: the kernel accepts them, but the
        # process is not the same after (brk's syscall probed: malloc crashes)
        return False
    return op not in _UPROBE_BAD_OPS


def boundaries(code: bytes) -> list[int]:
    """The offsets of code's instructions, from 0 while they decode (a
    function's code may end in padding or data that does not)."""
    out: list[int] = []
    i = 0
    while i < len(code):
        try:
            n = length(code, i)
        except ValueError:
            break
        out.append(i)
        i += n
    return out
