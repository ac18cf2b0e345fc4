"""Code generation from checked D: exact disassembly of small clauses,
record/aggregation layouts, and refusals of what is not lowered yet."""

from __future__ import annotations

import struct

import pytest

from pydtrace.consume.aggregation import AggSpec
from pydtrace.engines.ebpf import layout as L
from pydtrace.engines.ebpf.codegen import compile_program, disassemble_program
from pydtrace.engines.ebpf.errors import EbpfError, LoweringError
from pydtrace.lang import types as T
from pydtrace.session import Program, Session


def compiled(src: str, **opts: object):
    s = Session([Program("n", src)], settings=list(opts.items()))
    s.compile()
    return compile_program(s.checked, s.options)


BEGIN_TRACE = """
Disassembly of dt_1 (dtrace:::BEGIN):
   0: r6 = r1
   1: *(u32 *)(r10 - 4) = 0
   2: r2 = r10
   3: r2 += -4
   4: r1 = map[frame] ll
   6: call map_lookup_elem#1
   7: if r0 == 0x0 goto pc+44
   8: r9 = r0
   9: *(u64 *)(r9 + 0) = 0
  10: *(u64 *)(r9 + 8) = 0
  11: *(u64 *)(r9 + 16) = 0
  12: *(u64 *)(r9 + 24) = 0
  13: *(u64 *)(r9 + 32) = 0
  14: *(u64 *)(r9 + 40) = 0
  15: *(u64 *)(r9 + 48) = 0
  16: *(u64 *)(r9 + 56) = 0
  17: *(u64 *)(r9 + 64) = 0
  18: *(u64 *)(r9 + 72) = 0
  19: *(u64 *)(r9 + 80) = 0
  20: r1 = map_value[globals] + 0 ll
  22: r1 = *(u64 *)(r1 + 0)
  23: if r1 != 0x0 goto pc+28
  24: *(u32 *)(r9 + 104) = 1
  25: *(u32 *)(r9 + 108) = 1
  26: *(u32 *)(r9 + 112) = 0
  27: call get_smp_processor_id#8
  28: *(u32 *)(r9 + 116) = r0
  29: *(u32 *)(r9 + 120) = 1
  30: *(u32 *)(r9 + 124) = 0
  31: r6 = *(u64 *)(r9 + 0)
  32: r7 = 1
  33: r6 += r7
  34: *(u64 *)(r9 + 128) = r6
  35: r1 = map[records] ll
  37: r2 = r9
  38: r2 += 104
  39: r3 = 32
  40: r4 = 0
  41: call ringbuf_output#130
  42: if r0 s>= 0x0 goto pc+9
  43: *(u32 *)(r10 - 4) = 0
  44: r2 = r10
  45: r2 += -4
  46: r1 = map[drops] ll
  48: call map_lookup_elem#1
  49: if r0 == 0x0 goto pc+2
  50: r1 = 1
  51: lock *(u64 *)(r0 + 0) += r1
  52: r0 = 0
  53: exit
"""


def test_begin_trace_disassembly_exactly() -> None:
    c = compiled("BEGIN { trace(arg0 + 1); }")
    assert disassemble_program(c) == BEGIN_TRACE
    assert [(m.name, m.type, m.value_size) for m in c.maps] == [
        ("frame", 6, 408),
        ("globals", 2, 8),
        ("drops", 6, 48),
        ("records", 27, 0),
    ]
    assert c.maps[3].max_entries == 1 << 16  # BEGIN writes one record: the least ring


def ring(src: str, **opts: object) -> int:
    return next(m.max_entries for m in compiled(src, **opts).maps if m.name == "records")


def test_ring_holds_bufsize_per_cpu_for_records_at_a_probes_rate() -> None:
    from pydtrace.engines.ebpf.maps import possible_cpus

    ncpu = len(possible_cpus())  # bufsize (4m) per CPU, as dtrace's per-CPU buffers
    default = 1 << ((4 << 20) * ncpu - 1).bit_length()
    assert ring("syscall::read:entry { trace(arg0); }") == default
    assert ring("syscall::read:entry { trace(arg0); exit(0); }") == default
    assert ring("syscall::read:entry { if (arg0 == 0) { exit(0); } }") == default  # a record each
    assert ring("syscall::read:entry { exit(*(int *)arg1); }") == default  # fault records
    assert ring("BEGIN { s = speculation(); } syscall::read:entry { commit(s); }") == default


def test_ring_is_sized_for_what_the_program_can_write() -> None:
    # BEGIN and END fire once; exit() stops every other clause once recorded;
    # aggregations live in maps: none of these can fill more than the least ring
    assert ring("BEGIN { exit(0); } END { trace(1); }") == 1 << 16
    assert ring("syscall::read:entry /pid == 1/ { exit(0); } END { trace(1); }") == 1 << 16
    assert ring("syscall::read:entry { exit(0); } syscall::write:entry { exit(1); }") == 1 << 16
    assert ring("tick-1ms { @[cpu] = count(); } tick-1s { exit(0); }") == 1 << 16
    # twice the most one BEGIN firing writes: 40 records of two 2049-byte strings
    clauses = " ".join(f'BEGIN {{ trace("{i}a"); trace("{i}b"); }}' for i in range(40))
    assert ring(f"#pragma D option strsize=2k\n{clauses}") == 1 << 19


def test_an_explicit_bufsize_sizes_the_ring() -> None:
    from pydtrace.engines.ebpf.maps import possible_cpus

    ncpu = len(possible_cpus())
    assert ring("BEGIN { exit(0); }", bufsize="1m") == 1 << ((1 << 20) * ncpu - 1).bit_length()
    assert ring("BEGIN { exit(0); }", bufsize="16m") == 1 << ((16 << 20) * ncpu - 1).bit_length()


def test_syscall_return_prologue_and_predicate() -> None:
    text = disassemble_program(
        compiled("syscall::read:return /errno == 4/ { @[probefunc] = count(); }")
    )
    lines = text.splitlines()
    start = lines.index("  10: r1 = *(u64 *)(r6 + 16)")
    assert lines[start : start + 16] == [
        "  10: r1 = *(u64 *)(r6 + 16)",
        "  11: *(u64 *)(r9 + 0) = r1",
        "  12: *(u64 *)(r9 + 8) = r1",
        "  13: if r1 s>= 0x0 goto pc+3",
        "  14: if r1 s< -4095 goto pc+2",
        "  15: r1 = -r1",
        "  16: *(u64 *)(r9 + 80) = r1",
        "  17: r1 = map_value[globals] + 0 ll",
        "  19: r1 = *(u64 *)(r1 + 0)",
        "  20: if r1 != 0x0 goto pc+45",
        "  21: r6 = *(u64 *)(r9 + 80)",
        "  22: r7 = 4",
        "  23: r1 = r6",
        "  24: r6 = 1",
        "  25: if r1 == r7 goto pc+1",
        "  26: r6 = 0",
    ]
    # probefunc as a key is constant per probe: the key holds the probe id, read back as "read"
    assert lines[start + 17 : start + 19] == ["  28: r1 = 18", "  29: *(u64 *)(r9 + 88) = r1"]
    c = compiled("syscall::read:return /errno == 4/ { @[probefunc] = count(); }")
    (slot,) = c.aggs["@"].keys
    assert (slot.off, slot.size, slot.read(struct.pack("<Q", 18))) == (0, 8, "read")
    assert c.aggs["@"].key_size == 8


def test_program_attachments() -> None:
    c = compiled("BEGIN {} END {} tick-1s {} profile-99 {} syscall::getpid:entry {}")
    got = sorted((p.probe.fqn, p.prog_type, p.attach) for p in c.progs)
    assert got == [
        ("dtrace:::BEGIN", 17, ("run", "BEGIN")),
        ("dtrace:::END", 17, ("run", "END")),
        ("profile:::profile-99", 7, ("timer", 10101010, True)),
        ("profile:::tick-1s", 7, ("timer", 1000000000, False)),
        ("syscall:vmlinux:getpid:entry", 5, ("tracepoint", "syscalls", "sys_enter_getpid")),
    ]
    assert all(p.name == f"dt_{p.probe.id}" for p in c.progs)


@pytest.mark.parametrize(
    "src, message",
    [
        (
            'BEGIN { trace(strtoll("12")); }',
            "the eBPF engine cannot compile strtoll() yet (line 1)",
        ),
        (
            "double d; BEGIN { d = 1; }",
            "the eBPF engine cannot compile converting int to double (no floating point in eBPF)"
            " yet (line 1)",
        ),
        ("BEGIN\n{\n\tchill(9);\n}", "the eBPF engine cannot compile chill() yet (line 3)"),
    ],
)
def test_constructs_not_lowered_are_refused_by_name(src: str, message: str) -> None:
    with pytest.raises(LoweringError) as ei:
        compiled(src)
    assert str(ei.value) == message
    assert isinstance(ei.value, EbpfError)


def test_record_layout_decodes_only_the_actions_that_ran() -> None:
    c = compiled('BEGIN { trace(1); if (arg0) { trace("x"); } printf("%d\\n", -1); }', strsize=16)
    lay = c.records[0]
    assert lay.size == L.HEADER + 8 + 24 + 8
    buf = bytearray(lay.size)
    struct.pack_into("<IIIII", buf, 0, L.REC_DATA, 1, 0, 0, 0b101)
    struct.pack_into("<q", buf, 24, 1)
    buf[32:34] = b"x\0"
    struct.pack_into("<q", buf, 56, -1)
    items = lay.decode(bytes(buf))
    assert [i.action.kind for i in items] == ["trace", "printf"]
    assert items[0].values == (1,) and items[1].values == (-1,)
    assert items[1].action.types == (T.INT,)
    struct.pack_into("<I", buf, 16, 0b111)
    middle = lay.decode(bytes(buf))[1]
    assert middle.action.kind == "trace" and middle.values == ("x",)
    assert middle.action.data[0].ctype == T.STRING


def test_aggregation_values_merge_cpus_that_updated() -> None:
    spec = AggSpec(0, "@", "min", (), [T.STRING, T.INT], None)
    lay = L.agg_layout(spec, "agg0", 8)
    assert (lay.key_size, lay.value_size) == (24, 16)
    key = b"ab".ljust(16, b"\0") + struct.pack("<q", -3)
    assert lay.decode_key(key) == ("ab", -3)
    cpus = [struct.pack("<Qq", 0, 0), struct.pack("<Qq", 2, 5), struct.pack("<Qq", 1, -4)]
    states = [s for n, s in map(lay.decode_value, cpus) if n]
    assert lay.merge(states) == -4
    q = L.agg_layout(AggSpec(1, "@q", "lquantize", (0, 10, 2), [], None), "agg1", 8)
    assert q.words == 7 and q.merge([[1] * 7, [2] * 7]) == [3] * 7


def test_verifier_rejection_names_the_clause_and_line() -> None:
    from types import SimpleNamespace

    from pydtrace.engines.ebpf.engine import EbpfEngine

    c = compiled("BEGIN\n{\n\ttrace(1);\n}\nBEGIN\n/arg0/\n{\n\ttrace(2);\n}")
    p = c.progs[0]
    # the predicate of the second clause (line 6) is the first use of arg0
    slot = next(
        i
        for i, line in enumerate(disassemble_program(c).splitlines())
        if "r6 = *(u64 *)(r9 + 0)" in line
    )
    slot = int(disassemble_program(c).splitlines()[slot].split(":")[0])
    eng = SimpleNamespace(options={})
    err = SimpleNamespace(insn=slot, summary="R6 invalid mem access 'scalar'", log="full log")
    assert EbpfEngine._verifier_message(eng, p, err) == (  # type: ignore[arg-type]
        "the BPF verifier rejected the program for dtrace:::BEGIN in clause dt_clause_1 at line 6: "
        "R6 invalid mem access 'scalar'"
    )
    eng.options["bpflog"] = True
    assert EbpfEngine._verifier_message(eng, p, err).endswith(
        ": R6 invalid mem access 'scalar'\nfull log"
    )  # type: ignore[arg-type]


def test_wide_syscall_glob_is_one_raw_syscalls_program() -> None:
    import platform

    from pydtrace.engines.ebpf import codegen

    need_x86 = platform.machine() == "x86_64"
    if not need_x86:
        pytest.skip("syscall numbers below are x86_64's")
    c = compiled("syscall:::entry { @[probefunc] = count(); } syscall::getppid:entry { trace(1); }")
    assert [(p.name, p.prog_type, p.attach) for p in c.progs] == [
        ("dt_sys_entry", codegen.PROG_RAW_TRACEPOINT, ("raw_tp", "sys_enter"))
    ]
    fill = dict(c.fills["sys_entry"])
    getppid = next(p for p in c.progs[0].probes if p.function == "getppid")
    read = next(p for p in c.progs[0].probes if p.function == "read")
    assert fill[110] == struct.pack("<IIQ", getppid.id, 0, 0b11) + b"getppid"
    assert fill[0] == struct.pack("<IIQ", read.id, 3, 0b01) + b"read"
    assert len(c.progs[0].probes) == len(fill) > 300
    # fewer matches than RAW_SYSCALL_MIN: one program on each call's own tracepoint
    few = compiled("syscall::*read*:entry { @[probefunc] = count(); }")
    (prog,) = few.progs
    events = prog.attach[2]
    assert prog.prog_type == codegen.PROG_TRACEPOINT
    assert prog.attach[:2] == ("tracepoint", "syscalls")
    assert events == tuple(f"sys_enter_{p.function}" for p in prog.probes)
    assert 1 < len(events) < codegen.RAW_SYSCALL_MIN and "sys_enter_pread64" in events
    fill = dict(few.fills["sys_tentry"])
    assert fill[0] == struct.pack("<IIQ", prog.probes[0].id, 3, 0b1) + b"read"
    assert sorted(fill) == sorted(p.data.nr for p in prog.probes)
    # one probe of a kind keeps its own program
    one = compiled("syscall::read:entry, syscall::read:return { trace(1); }")
    assert sorted(p.attach for p in one.progs) == [
        ("tracepoint", "syscalls", "sys_enter_read"),
        ("tracepoint", "syscalls", "sys_exit_read"),
    ]
    assert one.fills == {}


def test_record_layout_decodes_every_slot_with_one_struct() -> None:
    lay = L.RecordLayout(0)
    s_int = lay.slot(T.INT, 8)
    s_uch = lay.slot(T.UCHAR, 8)
    s_str = lay.slot(T.STRING, 5)
    s_ptr = lay.slot(T.pointer(T.CHAR), 8)
    s_bool = lay.slot(T.BOOL, 8)
    lay.add(0, "printf", lambda v: ("printf", None, [v[s_int.idx], v[s_uch.idx], v[s_str.idx]]))
    lay.add(1, "trace", lambda v: ("trace", v[s_ptr.idx], v[s_bool.idx]))
    assert (lay.touches_aggs, lay.exits) == (False, False)
    lay.add(2, "exit", lambda v: ("exit", 0))
    lay.add(3, "printa", lambda v: ("printa", None, []))
    assert (lay.touches_aggs, lay.exits) == (True, True)
    buf = bytearray(lay.size)
    struct.pack_into("<IIIIQ", buf, 0, 1, 1, 0, 0, 0b0011)
    struct.pack_into("<q", buf, s_int.off, 0x1_FFFF_FFFF)  # cut to int: -1
    struct.pack_into("<Q", buf, s_uch.off, 0x1FF)  # cut to unsigned char: 255
    buf[s_str.off : s_str.off + 5] = b"ab\0z\0"
    struct.pack_into("<q", buf, s_ptr.off, -1)
    struct.pack_into("<Q", buf, s_bool.off, 1)
    assert lay.decode(bytes(buf)) == [
        ("printf", None, [-1, 255, "ab"]),
        ("trace", 0xFFFF_FFFF_FFFF_FFFF, 1),
    ]
    struct.pack_into("<Q", buf, 16, 0b1111)
    assert [it[0] for it in lay.decode(memoryview(buf))] == ["printf", "trace", "exit", "printa"]
    assert lay.full == 0b1111
    assert lay.decode_all(memoryview(buf)) == lay.decode(bytes(buf))
    one = L.RecordLayout(1)  # a single all-int action: the specialised one-unpack path
    s1, s2 = one.slot(T.INT, 8), one.slot(T.USHORT, 8)
    one.add(0, "printf", lambda v: ("printf", None, [v[s1.idx], v[s2.idx]]))
    raw = struct.pack("<IIIIQqQ", 1, 1, 1, 0, 1, -5, 0x12345)
    assert one.decode(raw) == [("printf", None, [-5, 0x2345])]
    assert one.decode_all(raw) == [("printf", None, [-5, 0x2345])]


def test_a_fourth_live_temporary_spills_the_oldest_to_the_stack() -> None:
    c = compiled("BEGIN { a = 1; b = 2; c = 3; d = 4; trace(a+(b+(c+d))); }")
    text = disassemble_program(c)
    start = text.index("  51: r8 = map_value[globals]")
    assert text[start:].splitlines()[:10] == [
        "  51: r8 = map_value[globals] + 0 ll",
        "  53: r8 = *(u64 *)(r8 + 24)",
        "  54: *(u64 *)(r10 - 40) = r6",
        "  55: r6 = map_value[globals] + 0 ll",
        "  57: r6 = *(u64 *)(r6 + 32)",
        "  58: r8 += r6",
        "  59: r7 += r8",
        "  60: r6 = *(u64 *)(r10 - 40)",
        "  61: r6 += r7",
        "  62: r6 <<= 32",
    ]


def test_builtin_names_follow_inlines_and_are_kept_on_the_tree() -> None:
    """cg_queries.builtin_names: the builtin variables a clause names, through
    an inline's body, not its own name or a D variable's; mentions() answers
    from it, and a second question of the same tree does not walk it again."""
    from pydtrace.engines.ebpf.cg_queries import builtin_names, mentions

    s = Session([Program("n", "inline int MINE = pid + tid; int x;"
                              " syscall::read:entry /MINE > 0/ { x = timestamp; trace(x + cpu); }")])  # fmt: skip
    s.compile()
    (c,) = s.checked.clauses
    nodes = [c.predicate, *c.body]
    assert builtin_names(nodes) == {"pid", "tid", "timestamp", "cpu"}
    assert mentions(nodes, frozenset({"tid"})) and not mentions(nodes, frozenset({"walltimestamp"}))
    assert c.predicate.__dict__["_builtin_names"] == {"pid", "tid"}
    c.predicate.__dict__["_builtin_names"] = frozenset({"kept"})  # answered from the tree now
    assert builtin_names([c.predicate]) == {"kept"}


def test_a_string_copies_with_one_helper_call() -> None:
    """A string value moves into a record, a variable or a key with one
    probe_read_kernel of its strsize+1 bytes, not two instructions per 8 of
    them: execsnoop's printf of 21 strings was 1,400 instructions, generated
    and verified at every start (its programs 23,500 in all, now 15,400)."""

    def size(k: int) -> int:
        sets = " ".join(f'self->a{i} = "x";' for i in range(k))
        args = ", ".join(f"self->a{i}" for i in range(k))
        c = compiled(
            f"syscall::execve:entry {{ {sets} }}"
            f' syscall::execve:return {{ printf("{"%s " * k}", {args}); }}'
        )
        (ret,) = [p for p in c.progs if p.probe.name == "return"]
        return len(ret.insns)

    per_string = (size(11) - size(1)) / 10
    assert per_string < 80, per_string  # a lookup, its NULL test and the copy: 56 (178 before)


def test_a_user_word_read_the_d_way_is_one_helper_call() -> None:
    """*(T *)copyin(addr, sizeof (T)) takes its scratch as copyin does, then
    reads the word straight to the stack: 31 instructions with the address
    and the assignment, where copying into scratch and loading it back through
    the scratch bounds made 76 (execsnoop.d reads 21 argv words at each exec)."""

    def size(k: int) -> int:
        reads = " ".join(f"this->p{i} = *(uint64_t *)copyin(arg1 + {8 * i}, 8);" for i in range(k))
        (prog,) = [p for p in compiled(f"syscall::execve:entry {{ {reads} }}").progs]
        return len(prog.insns)

    per_word = (size(11) - size(1)) / 10
    assert per_word < 45, per_word


def test_clearing_and_reading_string_variables_zero_by_one_call() -> None:
    """`self->s = 0` and a read of self->s zero their string buffer with one
    helper call (a failed probe_read_kernel from address 0 zero-fills it), not
    a store per 8 bytes: execsnoop.d's return programs clear 26 and print 21
    such variables (3,086 instructions each, now 1,868)."""

    def size(k: int) -> int:
        sets = " ".join(f'self->a{i} = "x";' for i in range(k))
        clears = " ".join(f"self->a{i} = 0;" for i in range(k))
        c = compiled(f"syscall::execve:entry {{ {sets} }} syscall::execve:return {{ {clears} }}")
        (ret,) = [p for p in c.progs if p.probe.name == "return"]
        return len(ret.insns)

    per_clear = (size(11) - size(1)) / 10
    assert per_clear < 40, per_clear


def test_the_functions_a_tree_calls_are_found_once_and_kept() -> None:
    """cg_queries.calls answers as a walk for the call (ast.find_call) does,
    the first time and from what it kept on each node after: whether a
    program makes scratch space or reads stacks was a walk of every clause
    per program (13 of execsnoop's 48 ms of code generation)."""
    from pydtrace.engines.ebpf.cg_queries import calls
    from pydtrace.lang import ast

    s = Session([Program("n",
        "syscall::read:entry { this->p = copyin(arg1, 4); }"
        " syscall::read:return /arg0/ { @[ustack()] = count(); }"
        " profile-97 { @s[stack()] = count(); } BEGIN { trace(strlen(\"a\")); }")])  # fmt: skip
    s.compile()
    trees = [[c.predicate, *c.body] for c in s.checked.clauses]
    for names in (("copyin", "alloca"), ("stack",), ("ustack", "uaddr"), ("strlen",), ("nope",)):
        for node in [trees, *trees]:
            for _ in range(2):  # found, then kept
                assert calls(node, names) == (ast.find_call(node, names) is not None), names
    assert [calls(t, ("stack", "ustack")) for t in trees] == [False, True, True, False]
    assert "_call_names" in trees[1][1].__dict__


def test_each_program_has_its_frame_but_perf_programs_share_one() -> None:
    """frame_keys: perf tracepoint and timer programs (which the kernel never
    runs inside each other on a CPU) share key 0; every other program has
    its own, up to FRAME_BUDGET; the frame map has an entry per key."""
    from types import SimpleNamespace

    from pydtrace.engines.ebpf import cg_program
    from pydtrace.engines.ebpf.insn import Insn
    from pydtrace.engines.ebpf.maps import possible_cpus

    def keys(kinds: list[str], size: int = 4096) -> tuple[list[int], int]:
        progs = [SimpleNamespace(attach=(k,)) for k in kinds]
        insns = [Insn(0x62, 10, 0, -4, 99) for _ in kinds]
        n = cg_program.frame_keys(progs, insns, size)  # type: ignore[arg-type]
        return [i.imm for i in insns], n

    assert keys(["run", "tracepoint", "raw_tp", "timer", "uprobe_multi"]) == ([1, 0, 2, 0, 3], 4)
    assert keys(["run", "raw_tp"]) == ([0, 1], 2)
    assert keys(["tracepoint", "tracepoint"]) == ([0, 0], 1)
    # frames past the budget: the last key is shared by the programs beyond it
    big = cg_program.FRAME_BUDGET // (3 * len(possible_cpus()))
    assert keys(["raw_tp"] * 5, big) == ([0, 1, 2, 2, 2], 3)
    c = compiled("BEGIN { trace(1); } syscall::getppid:entry { trace(2); } END { trace(3); }")
    (frame,) = [m for m in c.maps if m.name == "frame"]
    assert frame.max_entries == 3
