"""args[N] with a constant index outside the probe's arguments is a compile
error (D_ARGS_IDX), as in dtrace: a negative index anywhere, too large an
index where the argument count is known (a syscall entry, dtrace, profile)."""

from __future__ import annotations

import pytest

from conftest import pydtrace


@pytest.mark.parametrize(
    ("src", "why"),
    [
        ("syscall::write:entry { trace(args[3]); }", "index 3 is out of range for"),
        ("syscall::read:entry { trace(args[-1]); }", "index -1 is out of range for"),
    ],
)
def test_out_of_range(src: str, why: str) -> None:
    r = pydtrace("-xerrtags", "-e", "-n", src)
    probe = src.split()[0].replace("::", ":vmlinux:")
    assert (r.status, r.out) == (1, "")
    assert r.err == f"pydtrace: invalid probe specifier {src}: [D_ARGS_IDX] {why} {probe} args[ ]\n"


def test_last_argument_compiles() -> None:
    r = pydtrace("-e", "-n", "syscall::write:entry { trace(args[2]); }")
    assert (r.status, r.out, r.err) == (0, "", "")
