"""Probe catalogue, description parsing, globbing, profile probes, -l output."""

from __future__ import annotations

import pytest

from pydtrace.lang.errors import DError
from pydtrace.lang.types import INT
from pydtrace.probes.catalogue import (
    Catalogue,
    ProbeDesc,
    Provider,
    parse_probe_desc,
)
from pydtrace.probes.glob import gmatch, is_glob
from pydtrace.probes.listing import HEADER, format_listing
from pydtrace.probes.providers import default_catalogue
from pydtrace.probes.providers.profile import parse_period, profile_period_ns
from pydtrace.probes.syscalls import table


# --- gmatch ------------------------------------------------------------------
@pytest.mark.parametrize(
    "pat,s,ok",
    [
        ("", "anything", True),
        ("read", "read", True),
        ("read", "reads", False),
        ("*read*", "pread64", True),
        ("r?ad", "road", True),
        ("r?ad", "rad", False),
        ("[a-c]x", "bx", True),
        ("[a-c]x", "dx", False),
        ("[!a-c]x", "dx", True),
        ("[^a-c]x", "ax", False),
        ("[]]", "]", True),
        ("[!]]", "a", True),
        ("a\\*", "a*", True),
        ("a\\*", "ab", False),
        ("a\\", "a\\", False),  # a trailing backslash never matches
        ("[ab", "[ab", True),  # unterminated bracket is literal
        ("*/x", "a/b/x", True),  # '/' is not special
        ("*", ".hidden", True),
        ("[[:digit:]]*", "9lives", True),
        ("[[:digit:]]*", "lives", False),
        ("tick-*", "tick-1", True),
        ("sys_[er]*", "sys_enter", True),
    ],
)
def test_gmatch(pat: str, s: str, ok: bool) -> None:
    assert gmatch(pat, s) is ok


def test_is_glob() -> None:
    assert is_glob("a*") and is_glob("a\\b") and is_glob("[x]") and is_glob("?")
    assert not is_glob("sys_read")


# --- parse_probe_desc ---------------------------------------------------------
@pytest.mark.parametrize(
    "text,kind,fields",
    [
        ("BEGIN", "n", ("", "", "", "BEGIN")),
        ("BEGIN", "s", ("", "", "", "BEGIN")),
        ("x", "f", ("", "", "x", "")),
        ("x", "m", ("", "x", "", "")),
        ("x", "P", ("x", "", "", "")),
        ("i23", "i", ("", "", "", "i23")),
        ("read:", "f", ("", "read", "", "")),
        ("::read:", "f", ("", "read", "", "")),  # a leading ':' adds no field
        (":genunix::", "f", ("genunix", "", "", "")),
        ("syscall::read:entry", "n", ("syscall", "", "read", "entry")),
        ("profile:::tick-1", "n", ("profile", "", "", "tick-1")),
        ("", "n", ("", "", "", "")),
        ("a:b", "m", ("a", "b", "", "")),
    ],
)
def test_parse_desc(text: str, kind: str, fields: tuple[str, ...]) -> None:
    assert parse_probe_desc(text, kind).fields() == fields


@pytest.mark.parametrize(
    "text,kind",
    [
        (":genunix::", "m"),
        ("genunix::", "m"),
        ("profile:::", "P"),
        ("profile:::profile-97", "f"),
        ("a:b:c:d:e", "n"),
    ],
)
def test_parse_desc_overspecified(text: str, kind: str) -> None:
    with pytest.raises(DError) as ei:
        parse_probe_desc(text, kind)
    assert ei.value.tag == "D_PDESC_INVAL"
    assert ei.value.message == (
        f'invalid probe description "{text}": Overspecified probe description'
    )


def test_parse_desc_macros() -> None:
    refs: set[int] = set()
    argv = ["prog", "read", "42"]
    d = parse_probe_desc("syscall::$1:entry", argv=argv, refs=refs)
    assert d.function == "read" and refs == {1}
    assert parse_probe_desc("pid$2:::entry", argv=argv).provider == "pid42"
    assert parse_probe_desc("pid$$2x:::", argv=argv).provider == "pid42x"
    assert parse_probe_desc("pid$target::f:", macros={"target": 77}).provider == "pid77"
    for bad in ("pid$3:::", "pid$nosuch:::", "a$:::"):
        with pytest.raises(DError, match="Undefined macro variable in probe description"):
            parse_probe_desc(bad, argv=argv, macros={"target": 1})


# --- catalogue -----------------------------------------------------------------
def test_ids_and_dtrace_probes() -> None:
    c = default_catalogue()
    assert [(p.id, p.fqn) for p in c.all()[:3]] == [
        (1, "dtrace:::BEGIN"),
        (2, "dtrace:::END"),
        (3, "dtrace:::ERROR"),
    ]
    assert c.by_id(2).name == "END"
    assert c.by_id(10**7) is None


def test_match_globs_and_empty_fields() -> None:
    c = default_catalogue()
    assert [p.name for p in c.match(ProbeDesc(name="BEGIN"))] == ["BEGIN"]
    assert [p.name for p in c.match(parse_probe_desc("dtrace:::"))] == ["BEGIN", "END", "ERROR"]
    assert [p.name for p in c.match(parse_probe_desc("E*"))] == ["END", "ERROR"]
    assert c.match(parse_probe_desc("BEGIN", "f")) == []
    ticks = [p.name for p in c.match(parse_probe_desc("profile:::tick-*"))]
    assert ticks == ["tick-1", "tick-10", "tick-100", "tick-500", "tick-1000", "tick-5000"]
    everything = c.match(ProbeDesc())
    assert len(everything) == len(c.all())
    # sdt, io, proc and sched probes are made on demand (sdt/io only where tracefs is)
    assert len(
        [p for p in everything if p.provider not in ("sdt", "io", "proc", "sched")]
    ) == 16 + 2 * len(table().calls)


def test_a_name_without_globs_matches_as_a_scan_of_every_probe_would() -> None:
    """A description whose name has no glob (`syscall:::entry`, `BEGIN`,
    `s*:::return`) is answered from the probes of that name: the same probes,
    in id order, as testing every probe (what it did, 25 ms of dtruss's start)."""
    from pydtrace.probes.catalogue import _matches

    c = default_catalogue()
    for text in ("syscall:::entry", "syscall:::return", "BEGIN", ":::END", "s*:::return",
                 "syscall::read*:entry", "syscall:vmlinux::entry", "nosuch:::entry"):  # fmt: skip
        desc = parse_probe_desc(text)
        scanned = sorted((p for p in c.match(ProbeDesc()) if _matches(p, desc)), key=lambda p: p.id)
        assert c.match(desc) == scanned, text
    assert len(c.match(parse_probe_desc("syscall:::entry"))) == len(table().calls)


def test_profile_on_demand() -> None:
    c = default_catalogue()
    n = len(c)
    (p,) = c.match(parse_probe_desc("profile:::tick-37ms"))
    assert p.id == n + 1 and p.data == ("tick", 37_000_000)
    # a second match reuses it; a bare name or a glob provider also creates
    assert c.match(parse_probe_desc("tick-37ms")) == [p]
    (q,) = c.match(parse_probe_desc("*:::profile-3sec"))
    assert q.data == ("profile", 3_000_000_000)
    # below 200us, unknown units, module given, globbed name: no probe
    for bad in ("tick-5001", "tick-100us", "tick-3parsecs", "profile:mod::tick-1s"):
        assert c.match(parse_probe_desc(bad)) == []
    assert [p.name for p in c.match(parse_probe_desc("tick-1*"))] == ["tick-1", "tick-10"] + [
        "tick-100",
        "tick-1000",
    ]
    assert len(c) == n + 2


@pytest.mark.parametrize(
    "name,expect",
    [
        ("tick-1", ("tick", 1_000_000_000)),
        ("tick-5000", ("tick", 200_000)),
        ("profile-97", ("profile", 1_000_000_000 // 97)),
        ("profile-1234hz", ("profile", 1_000_000_000 // 1234)),
        ("tick-200us", ("tick", 200_000)),
        ("tick-200USEC", ("tick", 200_000)),
        ("tick-2m", ("tick", 120_000_000_000)),
        ("tick-1day", ("tick", 86_400_000_000_000)),
        ("tick-1hours", ("tick", 3_600_000_000_000)),  # only 4 unit chars are read
        ("tick-0", None),
        ("tick-199us", None),
        ("tick-", None),
        ("tock-1", None),
        ("profile-x", None),
    ],
)
def test_profile_period(name: str, expect: tuple[str, int] | None) -> None:
    assert profile_period_ns(name) == expect


def test_parse_period() -> None:
    assert parse_period("1000ns") == 0
    assert parse_period("1ms") == 1_000_000


class _Toy(Provider):
    name = "toy"

    def probes(self):
        yield ("mod", "fn", "entry", (INT,))
        yield ("mod", "fn", "return")


def test_custom_provider_and_verbose_listing() -> None:
    c = Catalogue([_Toy()])
    ps = c.match(parse_probe_desc("toy:mod:fn:"))
    assert [p.id for p in ps] == [1, 2]
    out = format_listing(ps[:1], verbose=True, catalogue=c)
    assert out.startswith(HEADER + "    1        toy               mod")
    assert "\n\tArgument Types\n\t\targs[0]: int\n\n" in out
    # unknown providers get Private/Private/Unknown attributes
    assert "Identifier Names: Private\n\t\tData Semantics:   Private\n" in out


def test_listing_exact_text() -> None:
    c = default_catalogue()
    out = format_listing(c.match(parse_probe_desc("BEGIN")), verbose=True, catalogue=c)
    assert out == (
        "   ID   PROVIDER            MODULE                          FUNCTION NAME\n"
        "    1     dtrace                                                     BEGIN\n"
        "\n\tProbe Description Attributes\n"
        "\t\tIdentifier Names: Stable\n"
        "\t\tData Semantics:   Stable\n"
        "\t\tDependency Class: Common\n"
        "\n\tArgument Attributes\n"
        "\t\tIdentifier Names: Stable\n"
        "\t\tData Semantics:   Stable\n"
        "\t\tDependency Class: Common\n"
        "\n\tArgument Types\n"
        "\t\tNone\n"
        "\n"
    )
    prof = format_listing(c.match(parse_probe_desc("tick-1")), verbose=True, catalogue=c)
    assert "Identifier Names: Evolving" in prof and "Dependency Class: Common" in prof
