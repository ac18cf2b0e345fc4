"""The user-space engine end to end: the records it hands the consumer for
print(), trace() of an aggregate object and freopen(), and the drops it
counts (dynamic variables, speculations)."""

from __future__ import annotations

from conftest import pydtrace

STRUCT = "struct s { int a; char b; };"


def test_print_shows_the_pointed_to_struct():
    r = pydtrace(
        "-q",
        "-n",
        STRUCT + " BEGIN { p = (struct s *)alloca(sizeof(struct s)); "
        "p->a = 258; p->b = 'x'; print(p); exit(0); }",
    )
    assert r.status == 0
    assert r.out.splitlines()[:5] == [
        "0x8 = *",
        " " * 44 + "(struct s) {",
        " " * 45 + ".a = (int)258,",
        " " * 45 + ".b = (char)'x',",
        " " * 44 + "}",
    ]


def test_trace_of_a_struct_dumps_its_bytes():
    r = pydtrace(
        "-q",
        "-n",
        STRUCT + " BEGIN { p = (struct s *)alloca(sizeof(struct s)); "
        "p->a = 258; p->b = 'x'; trace(*p); exit(0); }",
    )
    assert r.status == 0
    assert "         0: 02 01 00 00 78 00 00 00                          ....x...\n" in r.out


def test_freopen_sends_output_to_a_file_and_back(tmp_path):
    target = tmp_path / "out.txt"
    r = pydtrace(
        "-w",
        "-q",
        "-n",
        f'BEGIN {{ freopen("{target}"); printf("to file\\n"); freopen(""); '
        'printf("to stdout\\n"); exit(0); }',
    )
    assert r.status == 0
    assert "to stdout" in r.out and "to file" not in r.out
    assert target.read_text() == "to file\n"


def test_dynamic_variable_drop_is_one_per_clause():
    # 15 bytes hold one 8-byte thread-local: the second and third stores drop,
    # counted once for the clause, which goes on to its printf
    r = pydtrace(
        "-q",
        "-x",
        "dynvarsize=15",
        "-n",
        'BEGIN { self->a = 1L; self->b = 2L; self->c = 3L; printf("%d %d %d\\n", self->a,'
        " self->b, self->c); } BEGIN { exit(0); }",
    )
    assert (r.status, r.out) == (0, "1 0 0\n\n")
    assert r.err == "pydtrace: 1 dynamic variable drop\n"


def test_speculation_without_a_free_buffer_is_reported():
    r = pydtrace(
        "-q",
        "-n",
        'BEGIN { a = speculation(); b = speculation(); printf("%d %d\\n", a, b); exit(0); }',
    )
    assert (r.status, r.out) == (0, "1 0\n\n")
    assert r.err == "pydtrace: 1 failed speculation (no speculative buffer available)\n"


def test_speculative_record_over_specsize_is_dropped():
    r = pydtrace(
        "-q",
        "-x",
        "specsize=32",
        "-n",
        'BEGIN { s = speculation(); speculate(s); printf("%s", "too long for 32 bytes"); } '
        "BEGIN { commit(s); } BEGIN { exit(0); }",
    )
    assert (r.status, r.out) == (0, "\n")
    assert r.err == "pydtrace: 1 speculative drop\n"


def test_committed_speculate_only_clause_leaves_a_default_record():
    r = pydtrace(
        "-n",
        "BEGIN { s = speculation(); } BEGIN { speculate(s); } BEGIN { commit(s); } "
        "BEGIN { exit(0); }",
    )
    assert r.status == 0
    assert r.out.splitlines()[1:3] == [" " * 26 + ":BEGIN ", " " * 26 + ":BEGIN "]


def test_aggpercpu_breaks_counts_down_by_cpu():
    r = pydtrace(
        "-q",
        "-x",
        "aggpercpu",
        "-n",
        "BEGIN { @ = count(); exit(0); }",
        env={"_DTRACE_TESTING": "t"},
    )
    assert r.status == 0
    lines = r.out.strip("\n").splitlines()
    # the total, then one line per CPU; BEGIN fired on exactly one of them
    assert lines[0] == " " * 16 + "1"
    per_cpu = [line.split() for line in lines[1:]]
    assert [c[:2] for c in per_cpu] == [["[CPU", f"{i}]"] for i in range(len(per_cpu))]
    assert sorted(int(c[2]) for c in per_cpu)[-1] == 1
    assert sum(int(c[2]) for c in per_cpu) == 1


def test_speculate_on_an_inactive_id_ends_the_clause():
    r = pydtrace(
        "-q",
        "-n",
        'BEGIN { speculate(0); printf("not here\\n"); } BEGIN { printf("here\\n"); exit(0); }',
    )
    assert (r.status, r.out) == (0, "here\n\n")
