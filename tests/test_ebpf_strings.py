"""String subroutines lowered to BPF (cg_strings.py): each program must print
exactly what the user engine prints, and a few results are pinned outright."""

from __future__ import annotations

import sys

import pytest

from conftest import need, pydtrace
from pydtrace.engines.ebpf.codegen import compile_program
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.features import can_use_bpf
from pydtrace.session import Program, Session

OK, WHY = can_use_bpf()


def _strip(t: str) -> str:
    # the BPF pc of a fault differs from the user engine's pc
    return "\n".join(x.split(" at BPF pc")[0] for x in t.splitlines())


SAME = [
    # substr: positive, negative, too far back, length negative/positive, past the end
    'BEGIN { s = "hello world"; printf("[%s][%s][%s][%s][%s][%s]\\n", substr(s, 3), substr(s, -3),'
    " substr(s, 2, 4), substr(s, -20, 15), substr(s, -20, 5), substr(s, 20)); exit(0); }",
    'BEGIN { s = "0123456789"; i = -4; n = -2; printf("[%s][%s][%s][%s][%s]\\n", substr(s, i, n),'
    " substr(s, 3, -5), substr(s, 3, -7), substr(s, 0, 0), substr(s, i)); exit(0); }",
    # strjoin, nested, and truncation at strsize
    'BEGIN { printf("[%s][%s][%s]\\n", strjoin("ab", "cd"), strjoin("", ""),'
    ' strjoin(strjoin("a", "b"), strjoin("c", "d"))); exit(0); }',
    '#pragma D option strsize=6\nBEGIN { printf("[%s][%s]\\n", strjoin("abcd", "efgh"),'
    ' strjoin("abcdefgh", "x")); exit(0); }',
    # strlen, strchr/strrchr (found, not found, a char above 0xff is masked)
    'BEGIN { printf("%d %d [%s][%s][%s][%s]\\n", strlen(""), strlen("four"), strchr("a/b/c", 0x2f),'
    ' strrchr("a/b/c", 0x2f), strchr("abc", 0x7a), strrchr("abc", 0x161)); exit(0); }',
    # toupper/tolower
    'BEGIN { printf("[%s][%s]\\n", toupper("Hello, World 1z"), tolower("Hello, World AZ@[")); exit(0); }',
    # lltostr: negative, bases, the 64-bit extremes
    'BEGIN { printf("[%s][%s][%s][%s][%s]\\n", lltostr(-123), lltostr(0), lltostr(255, 16),'
    ' lltostr(8, 8), lltostr(-1, 2)); printf("[%s][%s][%s]\\n", lltostr(-9223372036854775807 - 1),'
    " lltostr(35, 36), lltostr(-1, 16)); exit(0); }",
    # strtok: delimiter runs, a changed delimiter set, exhaustion
    'BEGIN { x = strtok("  a,b;;c  ", ", ;"); y = strtok(NULL, ";");'
    ' printf("[%s][%s][%s]\\n", x, y, strtok(NULL, " ;")); exit(0); }',
    # basename/dirname: trailing and repeated slashes, "", only slashes, no directory
    'BEGIN { printf("[%s][%s][%s][%s][%s][%s]\\n", basename("/a/bc/"), basename(""), basename("///"),'
    ' basename("abc"), basename("/x"), basename("a//b//")); printf("[%s][%s][%s][%s][%s][%s][%s]\\n",'
    ' dirname("/a/bc/"), dirname(""), dirname("///"), dirname("abc"), dirname("/x"), dirname("a//b//"),'
    ' dirname("//a")); exit(0); }',
    # ?: choosing between strings (a literal and a subroutine's buffer)
    'BEGIN { x = 3; printf("[%s][%s]\\n", x > 2 ? "big" : strjoin("sm", "all"),'
    ' x < 2 ? "big" : strjoin("sm", "all")); exit(0); }',
    # many loops in one clause: the verifier's queue of pending branches stays short
    'BEGIN { s = "abcdefghij"; printf("%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s\\n", substr(s, 1, 2),'
    " substr(s, 2, 2), substr(s, 3, 2), substr(s, 4, 2), substr(s, 5, 2), substr(s, 6, 2),"
    " substr(s, 7, 2), substr(s, 8, 2), substr(s, 9, 2), substr(s, 0, 2), substr(s, -1, 2),"
    " substr(s, -2, 2), substr(s, -3, 2), substr(s, -4, 2), substr(s, -5, 2), substr(s, -6, 2),"
    " strjoin(s, s)); exit(0); }",
    # NULL where a string is needed faults; a bad base is an illegal operation
    "BEGIN { strlen(NULL); exit(1); } ERROR { exit(0); }",
    "BEGIN { trace(substr(0, 1)); exit(0); } ERROR { exit(1); }",
    'BEGIN { trace(strtok(NULL, "!")); exit(1); } ERROR { exit(0); }',
    "BEGIN { trace(lltostr(5, 1)); exit(1); } ERROR { exit(0); }",
]


@pytest.mark.parametrize("src", SAME)
def test_same_output_as_the_user_engine(src: str) -> None:
    need(OK, WHY)
    e = pydtrace("-q", "-x", "engine=ebpf", "-n", src)
    u = pydtrace("-q", "-x", "engine=ptrace", "-n", src)
    assert (e.status, e.out, _strip(e.err)) == (u.status, u.out, _strip(u.err))
    assert e.out.strip() or e.err.strip()


def test_exact_results() -> None:
    need(OK, WHY)
    r = pydtrace(
        "-q",
        "-x",
        "engine=ebpf",
        "-n",
        'BEGIN { printf("%d [%s][%s][%s][%s]\\n", strlen("hello"), substr("hello", -3, 2),'
        ' strjoin("ab", "cd"), strrchr("a/b/c", 0x2f), lltostr(-255, 16)); exit(0); }',
    )
    assert (r.status, r.out, r.err) == (0, "5 [ll][abcd][/c][0xffffffffffffff01]\n\n", "")


def test_null_string_argument_faults_with_address_zero() -> None:
    need(OK, WHY)
    r = pydtrace(
        "-q", "-x", "engine=ebpf", "-n", "BEGIN { strlen(0); exit(1); } ERROR { exit(0); }"
    )
    assert r.status == 0
    assert _strip(r.err) == (
        "pydtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): invalid address (0x0)"
    )


def test_strtok_of_a_variable_pointer_is_refused_by_name() -> None:
    s = Session([Program("n", 'BEGIN { p = (char *)1; trace(strtok(p, ",")); }')])
    s.compile()
    with pytest.raises(LoweringError) as ei:
        compile_program(s.checked, s.options)
    assert str(ei.value) == "the eBPF engine cannot compile strtok() of a char * yet (line 1)"


def test_copyinstr_with_a_length_matches_the_user_engine(tmp_path) -> None:  # noqa: ANN001
    need(OK, WHY)
    src = (
        "syscall::chdir:entry /pid == $target/ "
        '{ printf("[%s][%s][%s][%s]\\n", copyinstr(arg0, 4), copyinstr(arg0, 0), copyinstr(arg0, -1),'
        " copyinstr(arg0, 1000)); }"
    )
    work = tmp_path / "work.py"
    work.write_text("import os\nos.chdir('/tmp/')\nos.chdir('/')\n")
    cmd = f"{sys.executable} -S {work}"
    runs = [pydtrace("-q", "-x", f"engine={en}", "-c", cmd, "-n", src) for en in ("ebpf", "ptrace")]
    assert [(r.status, r.out) for r in runs] == [(0, "[/tmp][][][/tmp/]\n[/][][][/]\n\n")] * 2
