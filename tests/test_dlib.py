"""Tests for the D library's predefined inline constants."""

from __future__ import annotations

import pytest

from conftest import pydtrace
from pydtrace.lang.dlib import library_inlines


def test_library_values():
    lib = library_inlines()
    assert lib["NULL"] == ("long", 0)
    assert lib["EPERM"] == ("int", 1)
    assert lib["EWOULDBLOCK"] == ("int", 11)
    assert lib["SIGKILL"] == ("int", 9)
    assert lib["DTRACEFLT_DIVZERO"] == ("int", 4)
    assert lib["ARPHRD_ETHER"] == ("int", 1)
    assert lib["PCAP_IP"] == ("int", 12)
    assert lib["O_CREAT"] == ("int", 0o100)
    assert lib["R_PC"] == lib["R_RIP"]
    # proc:::exit's reason (siginfo's si_code for SIGCHLD)
    assert [
        lib[f"CLD_{n}"] for n in ("EXITED", "KILLED", "DUMPED", "TRAPPED", "STOPPED", "CONTINUED")
    ] == [("int", i) for i in range(1, 7)]


def test_constants_in_programs():
    r = pydtrace(
        "-qn",
        'BEGIN { printf("%d %d %d %d %d\\n", NULL, ENOENT, SIGTERM, DTRACEFLT_BADADDR, sizeof(NULL)); exit(0); }',
    )
    assert (r.status, r.out) == (0, "0 2 15 1 4\n\n")


def test_constant_folds_in_array_dimension():
    r = pydtrace("-qn", 'int a[EIO]; BEGIN { printf("%d\\n", sizeof(a)); exit(0); }')
    assert (r.status, r.out) == (0, "20\n\n")


@pytest.mark.parametrize(
    "src, previous",
    [
        ("inline int EPERM = 3;", "scalar inline"),
        ("inline int rand = 7;", "function "),
        ("inline int pid = 7;", "scalar "),
    ],
)
def test_redefinition_is_refused(src, previous):
    r = pydtrace("-xerrtags", "-qn", src + " BEGIN { exit(0); }")
    assert r.status == 1
    assert r.err.endswith(
        f"[D_DECL_IDRED] identifier redefined: {src.split()[2]}\n\t current: inline definition\n\tprevious: {previous}\n"
    ), r.err
