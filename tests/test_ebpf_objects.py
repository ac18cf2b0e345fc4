"""Object-valued data lowered to BPF (cg_vars/cg_memory/cg_actions): floats
held as their bits, struct/union values in self-> variables and associative
arrays, struct keys, trace()/print() of objects, xlate, strings stored in
memory. Each program must print exactly what the user engine prints; a few
results are pinned outright."""

from __future__ import annotations

import pytest

from conftest import need, pydtrace, same_on_both_engines
from pydtrace.engines.ebpf.codegen import compile_program
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.features import can_use_bpf
from pydtrace.session import Program, Session

OK, WHY = can_use_bpf()

PAIR = "struct pair { int x; char y; long z; };"

SAME = [
    # floats: zero-initialised globals, this-> and self-> copies, every conversion
    'float f; double d; BEGIN { printf("%f %e %G|%f %g %E\\n", f, f, f, d, d, d); exit(0); }',
    "double d; float f; BEGIN { x = d; trace(d); trace(x); trace(f); exit(0); }",
    "double d; double e; self double s; BEGIN { this->t = d; e = this->t; self->s = e;"
    ' printf("%f %f %f\\n", e, this->t, self->s); exit(0); }',
    # a struct in a self-> variable: copy in, member reads, zero deletes, unset reads zeroes
    PAIR + " this struct pair p; self struct pair a; self struct pair b;"
    " BEGIN { this->p.x = 7; this->p.y = 'q'; this->p.z = -5; self->a = this->p;"
    " this->p.x = 9; self->b = this->p; self->a = 0;"
    ' printf("%d %c %d / %d %c %d\\n", self->a.x, self->a.y, self->a.z, self->b.x, self->b.y,'
    " self->b.z); exit(0); }",
    # a member store into a dynamic struct creates / updates it
    PAIR + " self struct pair a; BEGIN { self->a.x = 3; self->a.z = 40; self->a.x++;"
    ' printf("%d %d %d\\n", self->a.x, self->a.y, self->a.z); exit(0); }',
    # member/element stores into self-> associative arrays of structs and self-> arrays
    "struct s { int x; int y; }; self struct s t[int]; BEGIN { self->t[1].x = 1; self->t[1].y = 5;"
    ' self->t[2].y++; printf("%d %d %d %d\\n", self->t[1].x, self->t[1].y, self->t[2].x,'
    " self->t[2].y); exit(0); }",
    "self int a[4]; BEGIN { self->a[1] = 2; self->a[3] = self->a[1] + 1;"
    ' printf("%d %d %d\\n", self->a[0], self->a[1], self->a[3]); trace(self->a); exit(0); }',
    # associative arrays of structs and unions, and keyed by a struct
    PAIR + " struct pair g; struct pair h; BEGIN { g.x = 1; g.z = 2; h.x = 1; h.z = 2;"
    ' k[h] = 10; k[g] = 20; printf("%d %d\\n", k[h], k[g]); h.x = 5; printf("%d\\n", k[h]);'
    " exit(0); }",
    # global associative arrays of structs and unions (0 deletes)
    PAIR + " struct pair g; struct pair m[int];"
    " BEGIN { g.x = 1; g.z = 2; m[1] = g; g.x = 5; m[2] = g; m[1] = 0;"
    ' printf("%d %d %d\\n", m[1].x, m[2].x, m[2].z); exit(0); }',
    "union u { int i; char c; }; union u v; union u w[string];"
    ' BEGIN { v.i = 0x4142; w["a"] = v; printf("%c %x\\n", w["a"].c, w["a"].i); exit(0); }',
    # self-> associative arrays of structs
    PAIR + " struct pair g; self struct pair m[int];"
    " BEGIN { g.x = 1; g.z = 2; self->m[1] = g; g.x = 5; self->m[2] = g; self->m[1] = 0;"
    ' printf("%d %d %d\\n", self->m[1].x, self->m[2].x, self->m[2].z); exit(0); }',
    # trace() of structs, unions and arrays; print() of pointers
    PAIR + " struct pair g; BEGIN { g.x = 0x1234; g.y = 'a'; g.z = -1; trace(g); exit(0); }",
    "union u { int i; char c[3]; }; union u v; BEGIN { v.i = 0x616263; trace(v); exit(0); }",
    "int a[3]; BEGIN { a[0] = 1; a[2] = 3; trace(a); exit(0); }",
    PAIR + " BEGIN { p = (struct pair *)alloca(sizeof(struct pair)); p->y = 'z'; print(p);"
    " exit(0); }",
    PAIR + " self struct pair a; BEGIN { self->a.x = 2; trace(self->a); exit(0); }",
    # translators: by value and to a pointer, nested, reading the operand's members
    PAIR + " struct out { int sum; char c; };"
    " translator struct out < struct pair P > { sum = P.x + P.z; c = P.y; };"
    " struct pair g; BEGIN { g.x = 3; g.y = 'k'; g.z = 4;"
    ' printf("%d %c %d\\n", xlate<struct out>(g).sum, xlate<struct out *>(g)->c,'
    " xlate<struct out>(g).sum * 2); exit(0); }",
    "struct a { int v; }; struct b { int w; };"
    " translator struct b < struct a A > { w = A.v + 1; };"
    " translator struct a < struct b B > { v = B.w * 10; };"
    ' struct a x; BEGIN { x.v = 4; printf("%d\\n", xlate<struct a>(xlate<struct b>(x)).v); exit(0); }',
    # a translator with a string member (cut to strsize), read through the pointer
    "#pragma D option strsize=4\nstruct in { int a; int b; }; struct out { int sum; string tag; int after; };"
    ' translator struct out < struct in *p > { sum = p->a + p->b; tag = "toolong"; after = 7; };'
    " BEGIN { v = (struct in *)alloca(sizeof (struct in)); v->a = 2; v->b = 40;"
    ' x = xlate<struct out *>(v); printf("%d [%s] %d\n", x->sum, x->tag, x->after); exit(0); }',
    # an inline naming a struct variable; a string stored in scratch memory
    "struct r { int i; }; struct r g; inline struct r alias = g;"
    ' BEGIN { g.i = 12; printf("%d\\n", alias.i); exit(0); }',
    '#pragma D option scratchsize=600\nBEGIN { x = (string *)alloca(sizeof(string)); *x = "hello";'
    " trace(*x); exit(0); }",
]


@pytest.mark.parametrize("src", SAME)
def test_same_output_as_the_user_engine(src: str) -> None:
    need(OK, WHY)
    same_on_both_engines("-q", "-n", src)


def test_exact_results() -> None:
    need(OK, WHY)
    r = pydtrace(
        "-q",
        "-x",
        "engine=ebpf",
        "-n",
        PAIR + " struct pair g; self struct pair s; double d;"
        " BEGIN { g.x = 5; g.z = 9; self->s = g; g.x = 1; k[g] = 3;"
        ' printf("%d %d %d %f\\n", self->s.x, self->s.z, k[g], d); exit(0); }',
    )
    assert (r.status, r.out, r.err) == (0, "5 9 3 0.000000\n\n", "")


def test_struct_trace_prints_its_bytes() -> None:
    need(OK, WHY)
    r = pydtrace(
        "-q", "-x", "engine=ebpf", "-n",
        "struct s { char a; char b; }; struct s g; BEGIN { g.a = 0x41; g.b = 0x42; trace(g);"
        " exit(0); }",
    )  # fmt: skip
    assert r.status == 0
    assert "41 42" in r.out and "AB" in r.out


def test_float_arithmetic_is_refused_by_name() -> None:
    s = Session([Program("n", "double d; BEGIN { d = 1; }")])
    s.compile()
    with pytest.raises(LoweringError) as ei:
        compile_program(s.checked, s.options)
    assert "converting int to double" in str(ei.value)
