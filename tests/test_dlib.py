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


def test_procfs_constants():
    """procfs.d's state letters (lwpsinfo_t pr_state, type char) and pr_flag bits, on both
    engines; a running BEGIN's thread is SRUN or SONPROC."""
    lib = library_inlines()
    states = ("SSLEEP", "SRUN", "SZOMB", "SSTOP", "SIDL", "SONPROC", "SWAIT")
    assert [lib[n] for n in states] == [("char", i) for i in range(1, 8)]
    assert lib["PR_IDLE"] == ("int", 0x10000000)
    assert lib["PR_MODEL_LP64"] == ("char", 2)
    prog = (
        'BEGIN { printf("%d %d %d %x %d\\n", SSLEEP, SZOMB, SONPROC, PR_IDLE | PR_STOPPED,'
        " curlwpsinfo->pr_state == SRUN || curlwpsinfo->pr_state == SONPROC); exit(0); }"
    )
    for engine in ("ebpf", "ptrace"):
        r = pydtrace("-x", f"engine={engine}", "-qn", prog, "-c", "/bin/true")
        assert (r.status, r.out) == (0, "1 3 6 10000001 1\n\n"), (engine, r.err)
