"""Subroutines of the user-space engine that work on its memory."""

from __future__ import annotations

from conftest import pydtrace


def run_quiet(src: str) -> tuple[int, str, str]:
    r = pydtrace("-q", "-n", src)
    return r.status, r.out, r.err


def test_bcopy_string_into_scratch():
    _, out, _ = run_quiet(
        'BEGIN { s = (char *)alloca(8); bcopy("abc", s, 4); printf("%s\\n", stringof(s)); exit(0); }'
    )
    assert out == "abc\n\n"


def test_bcopy_past_scratch_top_is_invalid_size():
    status, _, err = run_quiet(
        'BEGIN { s = (char *)alloca(8); bcopy("0123456789", s, 9); } ERROR { exit(0); }'
    )
    assert status == 0
    assert ": invalid size (0x9) at BPF pc " in err


def test_bcopy_to_non_scratch_is_invalid_address():
    status, _, err = run_quiet("int *p; BEGIN { bcopy(alloca(4), p, 4); } ERROR { exit(0); }")
    assert status == 0
    assert ": invalid address (0x0) at BPF pc " in err


def test_inet_ntoa_reads_memory():
    _, out, _ = run_quiet(
        'BEGIN { a = (uint8_t *)alloca(4); a[0] = 127; a[3] = 1; printf("%s\\n", inet_ntoa((void *)a)); exit(0); }'
    )
    assert out == "127.0.0.1\n\n"


def test_link_ntop_ethernet():
    _, out, _ = run_quiet(
        "BEGIN { p = (uint64_t *)alloca(8); *p = htonll(0x000102030405 << 16); "
        'printf("%s\\n", link_ntop(ARPHRD_ETHER, p)); exit(0); }'
    )
    assert out == "00:01:02:03:04:05\n\n"


def test_strlen_of_null_faults():
    status, _, err = run_quiet("BEGIN { strlen(NULL); } ERROR { exit(0); }")
    assert status == 0
    assert ": invalid address (0x0) at BPF pc " in err
