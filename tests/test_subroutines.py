"""Subroutines of the user-space engine that work on its memory."""

from __future__ import annotations

from conftest import pydtrace


def run_quiet(src: str) -> tuple[int, str, str]:
    # the user engine's subroutines (the eBPF engine's are compared with them
    # in test_ebpf_strings.py and test_ebpf_memory.py)
    r = pydtrace("-q", "-x", "engine=ptrace", "-n", src)
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


def test_strtok_leaves_the_ending_delimiter_for_the_next_call():
    # the 'A' that ended the first token is not a delimiter of the second call
    _, out, _ = run_quiet(
        'BEGIN { printf("%s|", strtok("abcdefABCDEF", "abcABC")); '
        'printf("%s|", strtok(NULL, "E")); printf("%s\\n", strtok(NULL, "E")); exit(0); }'
    )
    assert out == "def|ABCD|F\n\n"


def test_strtok_without_a_saved_string_faults():
    status, _, err = run_quiet('BEGIN { trace(strtok(NULL, "!")); } ERROR { exit(0); }')
    assert status == 0
    assert ": invalid address (0x0) at BPF pc " in err


def test_tracing_strtok_past_the_last_token_faults():
    status, out, err = run_quiet(
        'BEGIN { trace(strtok("abc", "x")); } BEGIN { trace(strtok(NULL, "x")); } '
        "ERROR { exit(0); }"
    )
    assert (status, out) == (0, "abc\n")
    assert "error in dt_clause_1 " in err and ": invalid address (0x0) at BPF pc " in err


def test_strtok_of_a_null_strstr_faults():
    status, _, err = run_quiet('BEGIN { strtok(strstr("abc", "z"), "b"); } ERROR { exit(0); }')
    assert status == 0
    assert ": invalid address (0x0) at BPF pc " in err


def test_substr_starting_too_far_before_the_string():
    _, out, _ = run_quiet(
        'BEGIN { printf("[%s][%s][%s]\\n", substr("abcde", -9, 3), substr("abcde", -7, 3), '
        'substr("abcde", -6, 3)); exit(0); }'
    )
    assert out == "[][a][ab]\n\n"


def test_lltostr_takes_a_signed_64_bit_value():
    _, out, _ = run_quiet('BEGIN { printf("%s\\n", lltostr(0x8000000000000001)); exit(0); }')
    assert out == "-9223372036854775807\n\n"


def test_strings_hold_strsize_characters():
    r = pydtrace(
        "-q",
        "-x",
        "strsize=7",
        "-n",
        'BEGIN { self->s = "abcdefghij"; printf("%s %s\\n", self->s, lltostr(-12345678)); '
        "exit(0); }",
    )
    assert r.out == "abcdefg -123456\n\n"


def test_timer_probes_give_a_user_pc_and_no_kernel_pc():
    _, out, _ = run_quiet('tick-10ms { printf("%d %d\\n", arg0 == 0, arg1 != 0); exit(0); }')
    assert out == "1 1\n\n"


def test_default_scratch_space_is_256_bytes():
    status, _, err = run_quiet("BEGIN { alloca(200); alloca(100); } ERROR { exit(0); }")
    assert status == 0
    assert ": out of scratch space at BPF pc " in err
    _, out, _ = run_quiet('BEGIN { alloca(200); alloca(56); printf("ok\\n"); exit(0); }')
    assert out == "ok\n\n"
