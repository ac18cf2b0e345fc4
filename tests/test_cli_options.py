"""Command-line parsing and -x option validation (dtrace's getopt rules)."""

from __future__ import annotations

import pytest

from pydtrace.cli.options import USAGE, OptionError, ProgramSource, UsageError, parse_args
from pydtrace.options import XoptError, env_xopts, parse_rate, parse_size, validate_xopt

ENV: dict[str, str] = {}


def parse(*argv: str):
    return parse_args(list(argv), ENV)


def test_usage_text() -> None:
    assert USAGE.startswith(
        "Usage: pydtrace [-32|-64] [-CeFGhHlqSvVwZ] [-b bufsz] [-c cmd] [-D name[=def]]\n"
        "\t[-I path] [-L path] [-o output] [-p pid] [-s script] [-U name]\n"
    )
    assert "\t[-i probe-id [[ predicate ] action ]] [ args ... ]\n\n" in USAGE
    assert USAGE.endswith("\t-Z  permit probe descriptions that match zero probes\n")


def test_no_arguments_is_usage() -> None:
    with pytest.raises(UsageError) as ei:
        parse()
    assert ei.value.show_usage and ei.value.message == ""


def test_programs_in_order_and_permutation() -> None:
    o = parse("-n", "BEGIN", "-q", "-s", "t.d", "42", "-P", "profile", "x", "-f", "read")
    assert o.programs == [
        ProgramSource("n", "BEGIN"),
        ProgramSource("s", "t.d"),
        ProgramSource("P", "profile"),
        ProgramSource("f", "read"),
    ]
    assert o.operands == ["42", "x"]
    assert o.quiet and ("quiet", None) in o.xopts


def test_clusters_and_attached_arguments() -> None:
    o = parse("-qwFZn", "tick-1s", "-b59", "-xbufsize=-0", "-lv")
    assert o.quiet and o.destructive and o.flowindent and o.zdefs and o.list_probes
    assert o.verbose == 1 and o.mode == "list"
    assert o.xopts == [
        ("quiet", None),
        ("destructive", None),
        ("flowindent", None),
        ("zdefs", None),
        ("bufsize", "59"),
        ("bufsize", "-0"),
    ]
    assert o.xopt_sources[4] == "-b 59"


def test_double_dash_and_interpreter_scripts() -> None:
    assert parse("-s", "t.d", "--", "-e", "-e").operands == ["-e", "-e"]
    # `#!/usr/bin/env -S pydtrace -s` runs: pydtrace -s /path/x.d op1 op2
    o = parse("-s", "/path/x.d", "op1", "op2")
    assert o.programs == [ProgramSource("s", "/path/x.d")] and o.operands == ["op1", "op2"]
    assert parse("-n", "BEGIN", "-").operands == ["-"]


def test_posixly_correct_stops_at_first_operand() -> None:
    o = parse_args(["-n", "BEGIN", "x", "-q"], {"POSIXLY_CORRECT": "1"})
    assert o.operands == ["x", "-q"] and not o.quiet


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["-k"], "invalid option -- 'k'"),
        (["-n"], "option requires an argument -- 'n'"),
        (["-q", "--bogus"], "unrecognized option '--bogus'"),
        (["-q", "-q-"], "invalid option -- '-'"),
        (["-3x"], "illegal option -- 3x"),
        (["-64", "-65"], "illegal option -- 65"),
    ],
)
def test_getopt_errors(argv: list[str], msg: str) -> None:
    with pytest.raises(UsageError) as ei:
        parse_args(argv, ENV)
    assert ei.value.message == msg and ei.value.show_usage


def test_data_model() -> None:
    assert parse("-32", "-n", "BEGIN").data_model == 32
    assert parse("-64", "-n", "BEGIN").data_model == 64


def test_exclusive_modes() -> None:
    for argv in (["-l", "-V"], ["-G", "-h", "-s", "x.d"], ["-l", "-l"]):
        with pytest.raises(UsageError) as ei:
            parse_args(argv, ENV)
        assert ei.value.message == "only one of the [-GhlV] options can be specified at a time"
        assert not ei.value.show_usage


def test_version_skips_option_checks() -> None:
    o = parse("-V", "-x", "nosuchopt")
    assert o.version and o.mode == "version" and o.settings == []


def test_B_conflicts() -> None:
    with pytest.raises(UsageError, match=r"-B not valid in combination with \[-Gl\] options"):
        parse("-B", "-l")
    with pytest.raises(UsageError, match="-B not valid in combination with -o option"):
        parse("-B", "-o", "f", "-n", "BEGIN")
    assert parse("-B", "-n", "BEGIN").discard


def test_implied_zdefs_and_compile_only() -> None:
    assert parse("-l").zdefs and not parse("-l").compile_only
    o = parse("-G", "-s", "p.d")
    assert o.zdefs and o.compile_only and o.link
    assert o.xopts[:2] == [("linkmode", "dynamic"), ("unodefs", None)]
    assert parse("-e", "-n", "BEGIN").compile_only


def test_collections() -> None:
    o = parse(
        "-c", "ls -l", "-c", "date", "-p", "12", "-D", "A=1", "-U", "B", "-I", "inc",
        "-L", "lib", "-o", "out", "-C", "-H", "-S", "-X", "s", "-n", "BEGIN",
    )  # fmt: skip
    assert o.commands == ["ls -l", "date"] and o.pids == ["12"]
    assert o.defines == ["A=1"] and o.undefs == ["B"] and o.incdirs == ["inc"]
    assert o.libdirs == ["lib"] and o.output == "out" and o.stdc == "s"
    assert o.cpp and o.cpphdrs and o.disasm
    assert ("define", "A=1") in o.xopts and ("cpp", None) in o.xopts
    assert ("stdc", "s") in o.settings


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["-x", "nosuchopt", "-n", "BEGIN"], "failed to set -x nosuchopt: Invalid option name"),
        (["-xbufsize=-1"], "failed to set -x bufsize: Invalid value for specified option"),
        (["-xstdc=X"], "failed to set -x stdc: Invalid value for specified option"),
        (["-xstrsize=1"], "failed to set -x strsize: Invalid value for specified option"),
        (["-xversion=99.1"], "failed to set -x version: Requested version is not supported by compiler"),
        (["-xiregs=7"], "failed to set -x iregs: Insufficient registers to generate code"),
        (["-b", "12q"], "failed to set -b 12q: Invalid value for specified option"),
        (["-X", "z"], "failed to set -X z: Invalid value for specified option"),
        (["-xquiet=maybe"], "failed to set -x quiet: Invalid value for specified option"),
        (["-n", "BEGIN", "-p", "12x"], "invalid pid: 12x"),
    ],
)  # fmt: skip
def test_option_errors(argv: list[str], msg: str) -> None:
    with pytest.raises(OptionError) as ei:
        parse_args(argv, ENV)
    assert ei.value.message == msg


@pytest.mark.parametrize(
    "text,value",
    [("4m", 4 << 20), ("1g", 1 << 30), ("2T", 2 << 40), ("64", 64), ("0x10k", 16 << 10),
     ("010", 8), ("", 0), ("k", 0)],
)  # fmt: skip
def test_sizes(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["-1", "4mb", "4 m", "12q", "99999999999999999999"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(XoptError):
        parse_size(text)


@pytest.mark.parametrize(
    "text,ns",
    [("1s", 10**9), ("500", 500), ("10hz", 10**8), ("250ms", 250 * 10**6), ("2MIN", 120 * 10**9),
     ("1day", 86400 * 10**9), ("5us", 5000), ("0hz", 0)],
)  # fmt: skip
def test_rates(text: str, ns: int) -> None:
    assert parse_rate(text) == ns


def test_bad_rate() -> None:
    with pytest.raises(XoptError):
        parse_rate("10 parsecs")
    with pytest.raises(XoptError):
        parse_rate("-5s")


def test_validate_values() -> None:
    assert validate_xopt("quiet", None) == ("quiet", True)
    assert validate_xopt("quiet", "no") == ("quiet", False)
    assert validate_xopt("quiet", "0") == ("quiet", True)  # 0 is a set value in dtrace
    assert validate_xopt("flowindent", "") == ("flowindent", False)
    assert validate_xopt("nspec", "4") == ("nspec", 4)
    assert validate_xopt("nspec", "off") == ("nspec", None)
    assert validate_xopt("switchrate", "10hz") == ("switchrate", 10**8)
    assert validate_xopt("bufpolicy", "ring") == ("bufpolicy", "ring")
    assert validate_xopt("linktype", "ELF") == ("linktype", "elf")
    assert validate_xopt("version", "2.0") == ("version", 0x02000000)
    assert validate_xopt("strsize", "2") == ("strsize", 2)
    assert validate_xopt("scratchsize", "10") == ("scratchsize", 24)
    assert validate_xopt("printsize", "0") == ("printsize", 8192)
    assert validate_xopt("lockmem", "unlimited")[1] == 2**64 - 1
    assert validate_xopt("droptags", "whatever") == ("droptags", True)
    assert validate_xopt("cpppath", "/bin/cpp") == ("cpppath", "/bin/cpp")
    for name, value in [("errtags", "1"), ("cpppath", None), ("iregs", "9"), ("tree", "0"),
                        ("evaltime", "later"), ("version", "2.x")]:  # fmt: skip
        with pytest.raises(XoptError):
            validate_xopt(name, value)


def test_context_errors() -> None:
    with pytest.raises(XoptError, match="Option cannot be used from within a D program"):
        validate_xopt("ldpath", "/x", in_program=True)
    with pytest.raises(XoptError, match="Operation illegal when tracing is active"):
        validate_xopt("bufsize", "4m", active=True)
    assert validate_xopt("quiet", None, active=True) == ("quiet", True)


def test_env_options() -> None:
    env = {"DTRACE_OPT_QUIET": "yes", "DTRACE_OPT_BUFSIZE": "bad", "DTRACE_OPT_NSPEC": "3"}
    assert sorted(env_xopts(env)) == [("nspec", 3), ("quiet", True)]
