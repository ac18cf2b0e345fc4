"""D's memory model on the eBPF engine (engines/ebpf/cg_memory.py): alloca()
scratch space, pointer loads/stores, members through pointers, pointer
arithmetic, bcopy, and their faults, byte for byte like the user engine."""

from __future__ import annotations

import sys

import pytest

from conftest import need, no_fault_pc, pydtrace, same_on_both_engines
from test_ebpf_engine import KERNEL


@pytest.fixture(autouse=True)
def _need_bpf() -> None:
    need(KERNEL, "BPF maps cannot be created here (root and bpf(2) needed)")


STRUCT = "struct foo { int a; char b; int c; long d; };"

SAME = [
    # alloca pointers start at 8 and are 8-byte aligned, as dtrace numbers them
    "BEGIN { a = alloca(1); b = alloca(1); c = alloca(17); d = alloca(0);"
    ' printf("%d %d %d %d\\n", (uint64_t)a, (uint64_t)b, (uint64_t)c, (uint64_t)d); exit(0); }',
    # stores and loads of every width, sign extension on load
    "BEGIN { p = (char *)alloca(16); p[0] = 200; p[15] = -3; s = (short *)p; s[1] = 0x8001;"
    " i = (int *)p; i[1] = -5; l = (long *)p; l[1] = 0x123456789;"
    ' printf("%d %d %d %d %d %d\\n", p[0], p[15], s[1], i[1], l[1], *(unsigned char *)p);'
    " exit(0); }",
    # alloca memory is zeroed; a later clause gets fresh zeroed scratch at the same address
    'BEGIN { p = (int *)alloca(8); printf("%d %d\\n", p[0], p[1]); p[0] = 7; q = p; }'
    ' BEGIN { r = (int *)alloca(8); printf("%d %d %d\\n", r == q, r[0], *r); exit(0); }',
    # a pointer from an earlier clause points past the (reset) top: invalid address
    "BEGIN { p = (char *)alloca(4); *p = 'a'; } BEGIN { trace(*p); } BEGIN { exit(0); }",
    # loads beyond the allocation's end and before scratch space fault with the address
    "BEGIN { s = (char *)alloca(15); trace(s[16]); } BEGIN { exit(0); }",
    "BEGIN { s = (char *)alloca(15); trace(s[-1]); } BEGIN { exit(0); }",
    "BEGIN { s = (int *)alloca(6); trace(s[1]); } BEGIN { exit(0); }",
    "BEGIN { s = (char *)alloca(8); s[8] = 1; } BEGIN { exit(0); }",
    "BEGIN { s = (char *)0; *s = 1; } BEGIN { exit(0); }",
    # out of scratch space (256 bytes by default, scratchsize counts 8 more)
    "BEGIN { a = alloca(200); b = alloca(100); trace(1); } BEGIN { exit(0); }",
    "BEGIN { a = alloca(256); trace((uint64_t)a); exit(0); }",
    # members through pointers, union views, pointer arithmetic and comparisons
    STRUCT + "BEGIN { p = (struct foo *)alloca(sizeof (struct foo)); p->a = 1; p->b = 'x';"
    " p->c = -2; p->d = 1 << 40; (*p).a += 10;"
    ' printf("%d %c %d %d %d\\n", p->a, p->b, p->c, p->d, (*p).a); exit(0); }',
    STRUCT + "BEGIN { p = (struct foo *)alloca(2 * sizeof (struct foo)); q = p + 1;"
    ' q->c = 9; printf("%d %d %d %d %d\\n", (uint64_t)q - (uint64_t)p, q - p,'
    " (p + 1)->c, &p[1] == q, &q->c > &p->c); exit(0); }",
    "union u { int i; char c[4]; }; BEGIN { u = (union u *)alloca(sizeof (union u));"
    ' u->i = 0x04030201; printf("%d %d\\n", u->c[0], u->c[3]); exit(0); }',
    "BEGIN { p = (int *)alloca(16); q = p; q++; *q = 5; ++q; *q = 6; q -= 2; p[3] = q[2] + q[1];"
    ' printf("%d %d %d %d\\n", p[1], p[2], p[3], (q + 3) - p); exit(0); }',
    "BEGIN { p = (void *)alloca(4); c = (char *)p; *(int *)p = 0x41424344;"
    ' printf("%c%c\\n", c[0], c[3]); exit(0); }',
    # bcopy: from a string, from scratch, and its faults
    'BEGIN { s = (char *)alloca(8); bcopy("abc", s, 3); t = (char *)alloca(8);'
    ' bcopy(s, t + 1, 4); printf("%c%c%c %d %d\\n", t[1], t[2], t[3], t[0], t[4]); exit(0); }',
    'BEGIN { a = "01"; s = (char *)alloca(16); bcopy(a, &s[16], 1); } BEGIN { exit(0); }',
    'BEGIN { a = "01"; s = (char *)alloca(16); bcopy(a, &s[15], 2); } BEGIN { exit(0); }',
    'BEGIN { a = "01"; s = (char *)alloca(16); bcopy(a, s - 1, 2); } BEGIN { exit(0); }',
    "BEGIN { s = (char *)alloca(16); t = (char *)alloca(8); bcopy(s, t, 9); } BEGIN { exit(0); }",
    "BEGIN { s = (char *)alloca(16); bcopy(s + 16, s, 1); } BEGIN { exit(0); }",
    "BEGIN { s = (char *)alloca(16); x = 1000; bcopy(&x, s, 4); } BEGIN { exit(0); }",
    # global scalar arrays: declared bounds are checked (index out of bounds, the index)
    'int a[5]; BEGIN { a[0] = 1; a[4] = a[0] + 4; printf("%d %d %d\\n", a[0], a[4], a[2]); exit(0); }',
    "int a[5]; BEGIN { i = 5; a[i] = 1; } BEGIN { i = -1; trace(a[i]); } BEGIN { exit(0); }",
    "char c[3]; BEGIN { c[2] = 'z'; p = &c[0]; printf(\"%c %x\\n\", p[2], (uint64_t)&c[1]); exit(0); }",
    "int a[5]; BEGIN { trace(((int *)a)[10]); } BEGIN { exit(0); }",
    # struct and union globals, this-> structs, struct copies and their addresses
    STRUCT + "struct foo g; BEGIN { g.a = 7; g.d = -1; g.b = 'A'; this->t = g; this->t.a++;"
    ' p = &g.d; printf("%d %d %c %d %d %x\\n", g.a, g.d, g.b, this->t.a, this->t.d, (uint64_t)p);'
    " exit(0); }",
    STRUCT
    + "struct foo g; struct foo h; BEGIN { g.c = 3; h = g; h.c++; q = (struct foo *)alloca(24);"
    ' *q = h; printf("%d %d %d\\n", g.c, h.c, q->c); exit(0); }',
    "union v { long l; short s[4]; } u; BEGIN { u.l = 0x0004000300020001;"
    ' printf("%d %d %d\\n", u.s[0], u.s[3], sizeof (u)); exit(0); }',
    # characters of strings, strings read from memory
    'BEGIN { s = "ABCDEFG"; this->t = "xy"; printf("%d %d %d %d %c %d\\n", s[1], s[7], s[300],'
    " s[-1], execname[0], this->t[1]); exit(0); }",
    "char c[4]; BEGIN { s = alloca(10); bcopy(probename, s, 5); c[0] = 104; c[1] = 105;"
    ' printf("%s|%s|%s|\\n", (string)s, stringof(s), (string)c); exit(0); }',
    "BEGIN { trace((string)(char *)0); } BEGIN { exit(0); }",
    # bit-fields: masked stores into the container, sign-extended loads
    "struct b { int lo : 3; unsigned int mid : 5; int hi : 4; } x; BEGIN { x.lo = 3; x.mid = 31;"
    ' x.hi = -2; x.lo++; p = (struct b *)alloca(4); *p = x; printf("%d %d %d %x\\n", x.lo, x.mid, x.hi, *(unsigned int *)p);'
    " exit(0); }",
]


@pytest.mark.parametrize("src", SAME)
def test_same_as_the_user_engine(src: str) -> None:
    e = same_on_both_engines("-q", "-n", src)
    assert "cannot compile" not in e.err


def test_alloca_values_and_fault_texts() -> None:
    r = pydtrace("-q", "-x", "engine=ebpf", "-n", SAME[0])
    assert (r.status, r.out, r.err) == (0, "8 16 24 48\n\n", "")
    r = pydtrace("-q", "-x", "engine=ebpf", "-n", SAME[4])
    assert r.out == "\n"
    assert no_fault_pc(r.err) == (
        "pydtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): invalid address (0x18)"
    )
    r = pydtrace("-q", "-x", "engine=ebpf", "-n", SAME[9])
    assert no_fault_pc(r.err) == (
        "pydtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): out of scratch space"
    )


def test_scratchsize_option_bounds_alloca() -> None:
    # scratchsize=16 leaves 16 bytes for alloca() (the option adds dtrace's 8)
    src = (
        "BEGIN { a = alloca(16); b = alloca(1); }"
        " BEGIN { a = alloca(16); trace((uint64_t)a); exit(0); }"
    )
    r = pydtrace("-q", "-x", "engine=ebpf", "-x", "scratchsize=16", "-n", src)
    assert (r.status, r.out) == (0, "8\n")
    assert no_fault_pc(r.err) == (
        "pydtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): out of scratch space"
    )


def test_bcopy_bad_size_names_the_size() -> None:
    r = pydtrace("-q", "-x", "engine=ebpf", "-n", SAME[18])
    assert no_fault_pc(r.err) == (
        "pydtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): invalid size (0x2)"
    )


def test_this_structs_start_zeroed_at_every_firing(tmp_path) -> None:
    script = tmp_path / "getpid.py"
    script.write_text("import os\nos.getpid()\nos.getpid()\nos.getpid()\n")
    src = (
        "struct s { int x; }; this struct s t;"
        ' syscall::getpid:entry /pid == $target/ { this->t.x++; printf("%d\\n", this->t.x); }'
    )
    # our interpreter: a "python3" found on PATH may be a shell-script shim calling getpid too
    r = pydtrace("-q", "-x", "engine=ebpf", "-c", f"{sys.executable} {script}", "-n", src)
    assert (r.status, r.out) == (0, "1\n1\n1\n\n")


COPYIN = [
    "syscall::openat:entry /pid == $target/ { p = (char *)copyin(arg1, 4); q = (char *)alloca(4);"
    ' copyinto(arg1, 3, q); printf("%c%c%c%d %c%c%c%d %d\\n", p[0], p[1], p[2], p[3],'
    " q[0], q[1], q[2], q[3], (uint64_t)q); exit(0); }",
    "syscall::openat:entry /pid == $target/ { p = (char *)copyin(8, 4); }"
    " syscall::openat:entry /pid == $target/ { exit(0); }",
    # a word read the D way, *(T *)copyin(addr, sizeof (T)) (read straight to a
    # register on the eBPF engine): every width, the scratch it takes, its faults
    "syscall::openat:entry /pid == $target/ { a = alloca(1);"
    ' printf("%d %d %d %d %d %x %d\\n", *(char *)copyin(arg1, 1), *(unsigned char *)copyin(arg1 + 1, 1),'
    " *(short *)copyin(arg1, 2), *(int *)copyin(arg1, 4), *(long *)copyin(arg1, 8),"
    " *(uint64_t *)copyin(arg1 + 5, 8), (uint64_t)alloca(1) - (uint64_t)a); exit(0); }",
    "syscall::openat:entry /pid == $target/ { trace(*(int *)copyin(8, 4)); }"
    " syscall::openat:entry /pid == $target/ { exit(0); }",
    "syscall::openat:entry /pid == $target/ { a = alloca(250); trace(*(long *)copyin(arg1, 8)); }"
    " syscall::openat:entry /pid == $target/ { exit(0); }",
]


@pytest.mark.parametrize("src", COPYIN)
def test_copyin_same_as_the_user_engine(src: str) -> None:
    cmd = "head -c0 /etc/hostname"
    e = same_on_both_engines("-q", "-c", cmd, "-n", src)
    assert "cannot compile" not in e.err


def test_copyin_reads_the_path_argument() -> None:
    r = pydtrace("-q", "-x", "engine=ebpf", "-c", "head -c0 /etc/hostname", "-n", COPYIN[0])
    assert r.status == 0
    assert r.out.startswith("/et99 /et0 16\n")
