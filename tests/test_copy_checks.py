"""copyin, copyinto and bcopy check their arguments in dtrace's order: a
constant size beyond scratch space and a destination that cannot be scratch
space are compile errors; at run time the size comes before the addresses."""

from __future__ import annotations

import pytest

from conftest import need, no_fault_pc, pydtrace
from pydtrace.engines.ebpf.features import can_use_bpf

OK, WHY = can_use_bpf()


@pytest.mark.parametrize(
    ("src", "err"),
    [
        ("BEGIN { copyin(0, 65); }", "alloca(65) size larger than scratchsize 64"),
        (
            'BEGIN { copyinto(1, 2, ""); }',
            "copyinto( ) argument #3 is incompatible with prototype:\n"
            "\tprototype: alloca pointer\n\t argument: non-alloca pointer",
        ),
        (
            "BEGIN { bcopy(alloca(1), (void *)NULL, 1); }",
            "bcopy( ) argument #2 is incompatible with prototype:\n"
            "\tprototype: alloca pointer\n\t argument: non-alloca pointer",
        ),
    ],
)
def test_compile_errors(src: str, err: str) -> None:
    r = pydtrace("-x", "scratchsize=64", "-n", src)
    assert (r.status, r.out) == (1, "")
    assert r.err == f"pydtrace: invalid probe specifier {src}: {err}\n"


@pytest.mark.parametrize("engine", ("ebpf", "ptrace"))
def test_copyinto_size_before_addresses(engine: str) -> None:
    if engine == "ebpf":
        need(OK, WHY)
    # the destination holds 8 bytes: 9 is an invalid size, before the unreadable source
    src = "BEGIN { p = (char *)alloca(8); copyinto(1, 9, p); exit(1); } ERROR { exit(0); }"
    r = pydtrace("-x", f"engine={engine}", "-qn", src)
    assert (r.status, no_fault_pc(r.err)) == (
        0,
        "pydtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): invalid size (0x9)",
    )
