"""The user-space engine's memory model: pointers, structs, unions, arrays,
bit-fields and faults, run end to end with exact output."""

from __future__ import annotations

from conftest import pydtrace


def run_quiet(src: str) -> tuple[int, str, str]:
    r = pydtrace("-q", "-n", src)
    return r.status, r.out, r.err


def test_alloca_pointer_store_and_load():
    status, out, _ = run_quiet(
        "BEGIN { p = (int *)alloca(2 * sizeof(int)); p[0] = 7; p[1] = -3; "
        'printf("%d %d %d\\n", *p, p[1], *(p + 1)); exit(0); }'
    )
    assert (status, out) == (0, "7 -3 -3\n\n")


def test_first_alloca_is_small_offset_like_dtrace():
    _, out, _ = run_quiet('BEGIN { printf("%d\\n", (long)alloca(4)); exit(0); }')
    assert out == "8\n\n"


def test_global_struct_members_and_struct_copy():
    status, out, _ = run_quiet(
        "struct pt { int x; int y; }; struct pt a, b; "
        'BEGIN { a.x = 1; a.y = 2; b = a; a.x = 5; printf("%d %d %d\\n", b.x, b.y, a.x); exit(0); }'
    )
    assert (status, out) == (0, "1 2 5\n\n")


def test_clause_local_and_thread_local_structs():
    status, out, _ = run_quiet(
        "struct pt { int x; int y; }; this struct pt p; self struct pt q; "
        "BEGIN { this->p.x = 3; self->q = this->p; self->q.y = 4; "
        'printf("%d %d\\n", self->q.x, self->q.y); exit(0); }'
    )
    assert (status, out) == (0, "3 4\n\n")


def test_union_members_share_bytes():
    _, out, _ = run_quiet(
        "union u { unsigned int w; unsigned char b[4]; }; union u v; "
        'BEGIN { v.w = 0x04030201; printf("%d %d\\n", v.b[0], v.b[3]); exit(0); }'
    )
    assert out == "1 4\n\n"


def test_signed_bit_fields():
    _, out, _ = run_quiet(
        "struct bf { int a : 3; unsigned int b : 5; }; struct bf s; "
        'BEGIN { s.a = 7; s.b = 31; printf("%d %d\\n", s.a, s.b); exit(0); }'
    )
    assert out == "-1 31\n\n"


def test_pointer_to_global_array():
    _, out, _ = run_quiet(
        'int arr[3]; BEGIN { arr[2] = 9; p = &arr[0]; printf("%d\\n", p[2]); exit(0); }'
    )
    assert out == "9\n\n"


def test_null_dereference_faults_with_address():
    status, _, err = run_quiet("BEGIN { *(char *)NULL; } ERROR { exit(0); }")
    assert status == 0
    assert err.startswith(
        "pydtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): invalid address (0x0) at BPF pc "
    )


def test_alloca_memory_does_not_survive_the_clause():
    status, _, err = run_quiet(
        "BEGIN { p = (int *)alloca(4); } BEGIN { *p = 1; } ERROR { exit(0); }"
    )
    assert status == 0
    assert "error in dt_clause_1 for probe ID 1 (dtrace:::BEGIN): invalid address (0x8)" in err


def test_char_array_read_as_string():
    _, out, _ = run_quiet(
        "BEGIN { s = (char *)alloca(4); s[0] = 104; s[1] = 105; s[2] = 0; "
        'printf("%s %d\\n", stringof(s), strlen(s)); exit(0); }'
    )
    assert out == "hi 2\n\n"


def test_commit_of_an_invalid_speculation_is_an_illegal_operation():
    status, out, err = run_quiet("BEGIN { commit(-1); } BEGIN { exit(0); }")
    assert (status, out) == (0, "\n")
    assert ": illegal operation at BPF pc " in err
