"""x86-64 instruction boundaries (symbols/x86.py): hand-checked encodings, and
every function of the C library against objdump's disassembly."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from conftest import need
from pydtrace.symbols import x86
from pydtrace.symbols.elf import open_elf

# (bytes, length): one of each shape the decoder handles
ENCODINGS = [
    ("55", 1),  # push %rbp
    ("48 89 e5", 3),  # mov %rsp,%rbp
    ("f3 0f 1e fa", 4),  # endbr64
    ("48 8b 05 10 20 30 40", 7),  # mov 0x40302010(%rip),%rax
    ("48 8b 44 24 08", 5),  # mov 0x8(%rsp),%rax (SIB, disp8)
    ("8b 04 25 00 10 00 00", 7),  # mov 0x1000,%eax (SIB without base: disp32)
    ("48 b8 01 02 03 04 05 06 07 08", 10),  # movabs $imm64,%rax
    ("66 b8 34 12", 4),  # mov $0x1234,%ax (66: a word immediate)
    ("48 c7 c0 ff ff ff ff", 7),  # mov $-1,%rax (imm32 even with REX.W)
    ("66 0f 1f 44 00 00", 6),  # nopw 0x0(%rax,%rax,1)
    ("66 2e 0f 1f 84 00 00 00 00 00", 10),  # cs nopw (padding)
    ("e8 00 00 00 00", 5),  # call rel32
    ("0f 84 00 00 00 00", 6),  # je rel32
    ("74 05", 2),  # je rel8
    ("f6 c1 01", 3),  # test $1,%cl (F6 /0 takes an imm8)
    ("f6 d9", 2),  # neg %cl (F6 /3 takes none)
    ("f7 c1 01 00 00 00", 6),  # test $1,%ecx
    ("c2 08 00", 3),  # ret $8
    ("c8 10 00 00", 4),  # enter $0x10,$0
    ("f0 48 0f b1 0a", 5),  # lock cmpxchg %rcx,(%rdx)
    ("66 0f 3a 0f c1 08", 6),  # palignr $8,%xmm1,%xmm0 (0F3A: imm8)
    ("66 0f 38 00 c1", 5),  # pshufb %xmm1,%xmm0 (0F38)
    ("c5 fe 6f 07", 4),  # vmovdqu (%rdi),%ymm0 (2-byte VEX)
    ("c4 e3 7d 39 c1 01", 6),  # vextracti128 $1,%ymm0,%xmm1 (3-byte VEX, map 0F3A)
    ("c5 f8 77", 3),  # vzeroupper
    ("62 f1 fe 48 6f 07", 6),  # vmovdqu64 (%rdi),%zmm0 (EVEX)
    ("48 a1 08 07 06 05 04 03 02 01", 10),  # movabs 0x0102030405060708,%rax
    ("9b df e0", 3),  # fstsw %ax (fwait + fnstsw, as the assembler writes it)
]


@pytest.mark.parametrize("text,n", ENCODINGS)
def test_lengths(text: str, n: int) -> None:
    code = bytes.fromhex(text) + b"\x90" * 4  # what follows must not count
    assert x86.length(code) == n


def test_invalid_and_cut_off() -> None:
    with pytest.raises(ValueError, match="invalid in 64-bit mode"):
        x86.length(b"\x06")  # push %es
    with pytest.raises(ValueError, match="runs past the code"):
        x86.length(b"\x48\x8b\x05\x10")
    # a function's trailing bytes that do not decode end the list
    assert x86.boundaries(bytes.fromhex("55 48 89 e5 c3 06 00")) == [0, 1, 4]


@pytest.mark.parametrize(
    "text,ok",
    [
        ("55", True),
        ("48 89 e5", True),
        ("e8 00 00 00 00", True),
        ("f3 0f 1e fa", True),
        ("f0 48 0f b1 0a", False),  # lock
        ("66 2e 0f 1f 84 00 00 00 00 00", False),  # cs segment prefix
        ("3e ff e0", False),  # notrack jmp *%rax (a ds prefix)
        ("f4", False),  # hlt
        ("cc", False),  # int3
        ("cd 80", False),  # int $0x80
        ("c5 fe 6f 07", False),  # VEX opcode 6F: looked up as outs
        ("c5 fa 10 07", True),  # vmovss (%rdi),%xmm0: 10 is fine
        ("8e d0", False),  # mov %eax,%ss
        ("0f 05", False),  # syscall: accepted by the kernel, but it breaks the process
        ("0f 34", False),  # sysenter
        ("0f 0b", True),  # ud2
        # VEX/EVEX opcodes the kernel would emulate as jcc/call/jmp/nop
        ("62 e2 7d 48 7a c6", False),  # vpbroadcastb %esi,%zmm16 (as jp)
        ("62 e1 fe 48 7f 07", False),  # vmovdqu64 %zmm16,(%rdi) (as jg)
        ("c5 f8 90 c8", False),  # kmovw %k0,%k1 (as nop)
        ("c5 f9 e8 c1", False),  # vpsubsb %xmm1,%xmm0,%xmm0 (as call)
        ("c5 f9 7e c0", False),  # vmovd %xmm0,%eax (as jle)
        ("c5 f8 77", False),  # vzeroupper (as ja)
        ("62 f1 7c 48 10 07", True),  # vmovups (%rdi),%zmm0
    ],
)
def test_probeable(text: str, ok: bool) -> None:
    assert x86.probeable(bytes.fromhex(text) + b"\x90" * 4, 0) is ok


def _objdump_starts(path: str) -> set[int]:
    out = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", "-w", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    starts = set()
    for line in out.splitlines():
        m = re.match(r"\s+([0-9a-f]+):\t(.*)", line)
        if m and m.group(2).strip() and not m.group(2).startswith("(bad)"):
            starts.add(int(m.group(1), 16))
    return starts


def test_every_function_of_libc_as_objdump_decodes_it() -> None:
    need(shutil.which("objdump") is not None, "no objdump (binutils)")
    libc = next(
        (p for p in ("/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6")
         if shutil.os.path.exists(p)),
        None,
    )  # fmt: skip
    need(libc is not None, "no glibc")
    elf = open_elf(libc)
    starts = sorted(_objdump_starts(libc))
    import bisect

    functions = differ = 0
    for sym in elf.functions():
        if not sym.size:
            continue
        functions += 1
        mine = [sym.addr + i for i in x86.boundaries(elf.code(sym.addr, sym.size))]
        lo = bisect.bisect_left(starts, sym.addr)
        hi = bisect.bisect_left(starts, sym.addr + sym.size)
        if mine != starts[lo:hi]:
            differ += 1
    assert functions > 1000 and differ == 0
