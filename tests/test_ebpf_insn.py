"""The BPF assembler: exact encodings, labels, LD_IMM64 and the disassembly text."""

from __future__ import annotations

import struct

import pytest

from pydtrace.engines.ebpf.insn import (
    R0,
    R1,
    R2,
    R3,
    R9,
    R10,
    AsmError,
    Assembler,
    decode,
    disassemble,
    encode,
)


def words(data: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack_from("<BBhi", data, i) for i in range(0, len(data), 8)]


def test_alu_mov_and_exit_encodings() -> None:
    a = Assembler()
    a.movi(R0, 7)  # ALU64|MOV|K
    a.alu("+", R1, R2)  # ALU64|ADD|X, src in the high nibble
    a.alu("=", R1, R1, wide=False)  # 32-bit mov
    a.alu("s>>", R1, imm=3)
    a.neg(R1)
    a.exit()
    assert words(encode(a.resolve())) == [
        (0xB7, 0x00, 0, 7),
        (0x0F, 0x21, 0, 0),
        (0xBC, 0x11, 0, 0),
        (0xC7, 0x01, 0, 3),
        (0x87, 0x01, 0, 0),
        (0x95, 0x00, 0, 0),
    ]


def test_memory_encodings() -> None:
    a = Assembler()
    a.ldx(8, R1, R10, -8)
    a.stx(4, R9, 16, R1)
    a.st(1, R10, -1, 255)
    a.atomic_add(8, R0, 8, R1)
    assert words(encode(a.resolve())) == [
        (0x79, 0xA1, -8, 0),
        (0x63, 0x19, 16, 0),
        (0x72, 0x0A, -1, 255),
        (0xDB, 0x10, 8, 0),
    ]


def test_forward_and_backward_labels_count_from_the_next_slot() -> None:
    a = Assembler()
    top = a.new_label("top")
    end = a.new_label("end")
    a.place(top)
    a.jmp("==", R1, end, imm=0)  # slot 0 -> 4: off +3
    a.ld_imm64(R2, 1 << 40)  # slots 1-2
    a.jmp("s<", R1, top, src=R2)  # slot 3 -> 0: off -4
    a.place(end)
    a.exit()
    ws = words(encode(a.resolve()))
    assert ws[0] == (0x15, 0x01, 3, 0)
    assert ws[1] == (0x18, 0x02, 0, 0) and ws[2] == (0, 0, 0, 256)
    assert ws[3] == (0xCD, 0x21, -4, 0)


def test_undefined_label_and_double_placement_are_errors() -> None:
    a = Assembler()
    a.ja("nowhere")
    with pytest.raises(AsmError, match="undefined label nowhere"):
        a.resolve()
    a.place("x")
    with pytest.raises(AsmError, match="label x placed twice"):
        a.place("x")


def test_map_loads_get_their_fd_at_encode_time() -> None:
    a = Assembler()
    a.ld_map(R1, "records")
    a.ld_map(R2, "globals", 16)
    a.call("map_lookup_elem")
    insns = a.resolve()
    ws = words(encode(insns, {"records": 5, "globals": 6}))
    assert ws == [
        (0x18, 0x11, 0, 5),
        (0, 0, 0, 0),
        (0x18, 0x22, 0, 6),
        (0, 0, 0, 16),
        (0x85, 0, 0, 1),
    ]
    with pytest.raises(AsmError, match="no file descriptor for map records"):
        encode(insns, {})


def test_movi_uses_two_slots_only_for_wide_values() -> None:
    a = Assembler()
    a.movi(R1, -1)
    a.movi(R1, 0x80000000)
    assert [i.slots for i in a.resolve()] == [1, 2]


def test_disassembly_text() -> None:
    a = Assembler()
    skip = a.new_label()
    a.ldx(8, R1, R10, -8)
    a.stx(4, R9, 16, R1)
    a.st(8, R10, -16, 0)
    a.alu("+", R1, imm=-4)
    a.alu("<<", R1, R2)
    a.alu("=", R1, R1, wide=False)
    a.ld_map(R1, "records")
    a.ld_map(R2, "globals", 8)
    a.ld_imm64(R3, 0x100000000)
    a.jmp("s>=", R0, skip, imm=0)
    a.jmp("!=", R1, skip, src=R2)
    a.ja(skip)
    a.atomic_add(8, R0, 0, R1)
    a.neg(R2)
    a.call("ringbuf_output")
    a.place(skip)
    a.exit()
    assert disassemble(a.resolve()) == (
        "   0: r1 = *(u64 *)(r10 - 8)\n"
        "   1: *(u32 *)(r9 + 16) = r1\n"
        "   2: *(u64 *)(r10 - 16) = 0\n"
        "   3: r1 += -4\n"
        "   4: r1 <<= r2\n"
        "   5: w1 = w1\n"
        "   6: r1 = map[records] ll\n"
        "   8: r2 = map_value[globals] + 8 ll\n"
        "  10: r3 = 0x100000000 ll\n"
        "  12: if r0 s>= 0x0 goto pc+5\n"
        "  13: if r1 != r2 goto pc+4\n"
        "  14: goto pc+3\n"
        "  15: lock *(u64 *)(r0 + 0) += r1\n"
        "  16: r2 = -r2\n"
        "  17: call ringbuf_output#130\n"
        "  18: exit\n"
    )


def test_decode_round_trips_encode() -> None:
    a = Assembler()
    a.ld_imm64(R1, -2)
    a.alu("*", R1, imm=3)
    a.exit()
    data = encode(a.resolve())
    assert encode(decode(data)) == data
    assert disassemble(decode(data)).splitlines()[0] == "   0: r1 = 0xfffffffffffffffe ll"


def test_origin_maps_slots_back_to_what_was_compiled() -> None:
    a = Assembler()
    a.origin = ("clause", 0, 3)
    a.ld_imm64(R1, 1)
    a.origin = ("clause", 1, 7)
    a.exit()
    a.resolve()
    assert [a.origin_at(s) for s in (0, 1, 2, 3)] == [("clause", 0, 3)] * 2 + [
        ("clause", 1, 7),
        None,
    ]
