"""Network addresses as text: inet_ntoa6 (IPv4 in IPv6, the strict flag, which
must be a constant) and inet_ntop, the same on both engines."""

from __future__ import annotations

import ipaddress

import pytest

from conftest import need, pydtrace, same_on_both_engines
from pydtrace.engines.ebpf.features import can_use_bpf
from pydtrace.engines.user.subroutines import format_in6

OK, WHY = can_use_bpf()

# a program that fills 16 bytes at p with an address, then prints it three
# ways: inet_ntoa6 plain, inet_ntoa6 strict, inet_ntop(AF_INET6)
SHOW = (
    'printf("%s|%s|%s\\n", inet_ntoa6((void *)p), inet_ntoa6((void *)p, 7),'
    " inet_ntop(10, (void *)p));"
)


def program(address: str) -> str:
    stores = " ".join(
        f"p[{i}] = {b};" for i, b in enumerate(ipaddress.IPv6Address(address).packed) if b
    )
    return f"BEGIN {{ p = (uint8_t *)alloca(16); {stores} {SHOW} exit(0); }}"


CASES = [
    # IPv4-compatible (six zero words, then the IPv4 address)
    ("::c0a8:117", "192.168.1.23|::192.168.1.23|::192.168.1.23"),
    # seven zero words and a last one above 1 are IPv4-compatible too ...
    ("::2", "0.0.0.2|::0.0.0.2|::0.0.0.2"),
    # ... but not the unspecified and the loopback address
    ("::", "::|::|::"),
    ("::1", "::1|::1|::1"),
    # IPv4-mapped
    ("::ffff:7f00:1", "127.0.0.1|::ffff:127.0.0.1|::ffff:127.0.0.1"),
    # a sixth word neither 0 nor 0xffff, or a non-zero word before it: plain IPv6
    ("::fffe:7f00:1", "::fffe:7f00:1|::fffe:7f00:1|::fffe:7f00:1"),
    ("0:0:0:0:1:ffff:7f00:1", "::1:ffff:7f00:1|::1:ffff:7f00:1|::1:ffff:7f00:1"),
    ("fe80::214:4fff:fe0b:76c8", "fe80::214:4fff:fe0b:76c8|" * 2 + "fe80::214:4fff:fe0b:76c8"),
]


@pytest.mark.parametrize(("address", "want"), CASES)
def test_ipv4_in_ipv6(address: str, want: str) -> None:
    need(OK, WHY)
    r = same_on_both_engines("-q", "-n", program(address))
    assert (r.status, r.out, r.err) == (0, want + "\n\n", "")


@pytest.mark.parametrize(("address", "want"), CASES)
def test_user_engine_formatter(address: str, want: str) -> None:
    plain, strict, _ = want.split("|")
    packed = ipaddress.IPv6Address(address).packed
    assert (format_in6(packed, False), format_in6(packed, True)) == (plain, strict)


def test_inet_ntop_other_families_are_ipv4() -> None:
    # dtrace compiles inet_ntop(af, a) as af == AF_INET6 ? inet_ntoa6(a, 1) : inet_ntoa(a)
    need(OK, WHY)
    src = (
        "BEGIN { p = (uint8_t *)alloca(4); p[0] = 10; p[3] = 200;"
        ' printf("%s %s\\n", inet_ntop(2, (void *)p), inet_ntop(-1, (void *)p)); exit(0); }'
    )
    r = same_on_both_engines("-q", "-n", src)
    assert (r.status, r.out) == (0, "10.0.0.200 10.0.0.200\n\n")


def test_inet_ntop_on_the_ebpf_engine_runtime_family() -> None:
    need(OK, WHY)
    src = (
        "BEGIN { p = (uint8_t *)alloca(16); p[15] = 9; af = 10;"
        ' printf("%s ", inet_ntop(af, (void *)p)); af = 2; printf("%s\\n", inet_ntop(af, (void *)p));'
        " exit(0); }"
    )
    r = pydtrace("-q", "-x", "engine=ebpf", "-n", src)
    assert (r.status, r.out, r.err) == (0, "::0.0.0.9 0.0.0.0\n\n", "")


def test_strict_flag_must_be_a_constant() -> None:
    r = pydtrace(
        "-n", "BEGIN { n = 1; p = (uint8_t *)alloca(16); trace(inet_ntoa6((void *)p, n)); }"
    )
    assert (r.status, r.out) == (1, "")
    assert r.err == (
        "pydtrace: invalid probe specifier BEGIN { n = 1; p = (uint8_t *)alloca(16);"
        " trace(inet_ntoa6((void *)p, n)); }: inet_ntoa6( ) argument #2 must be an integer"
        " constant\n"
    )
