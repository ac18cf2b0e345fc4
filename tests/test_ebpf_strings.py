"""String subroutines lowered to BPF (cg_strings.py): each program must print
exactly what the user engine prints, and a few results are pinned outright."""

from __future__ import annotations

import sys

import pytest

from conftest import need, no_fault_pc, pydtrace, same_on_both_engines
from pydtrace.engines.ebpf.codegen import compile_program
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.features import can_use_bpf
from pydtrace.session import Program, Session

OK, WHY = can_use_bpf()


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
    # strstr/index/rindex (rolling hash scan): found, absent, empty, start positions
    'BEGIN { printf("[%s][%s][%s][%s][%s]\\n", strstr("bazbarbop", "barb"), strstr("", ""),'
    ' strstr("abc", "x"), strstr("aaa", "aa"), strstr("ab", "abc")); exit(0); }',
    'BEGIN { printf("%d %d %d %d %d %d\\n", index("foobarfoo", "foo"), index("foobarfoo", "foo", 1),'
    ' index("abc", "", 5), index("abc", "", -3), index("abc", "c", 3), index("", "")); exit(0); }',
    'BEGIN { printf("%d %d %d %d %d %d\\n", rindex("foobarfoo", "foo"), rindex("foobarfoo", "foo", 5),'
    ' rindex("abc", "", -1), rindex("abc", ""), rindex("abcabc", "c", 2), rindex("x", "xy")); exit(0); }',
    # a string compared with an integer (NULL): the integer reads as ""
    'BEGIN { x = ""; y = "a"; printf("%d %d %d %d\\n", x == NULL, y == NULL, NULL != y,'
    ' strtok("abc", "c") != NULL); exit(0); }',
    # an integer assigned to a string reads the string at that address: NULL faults
    'BEGIN { this->s = "hello"; this->s = NULL; trace(this->s); exit(1); } ERROR { exit(0); }',
    # many string comparisons in one clause (verifier's pending-branch queue)
    'BEGIN { a = "abc"; b = "abd"; printf("%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d\\n", a < b, a <= b,'
    " a > b, a >= b, a == b, a != b, b < a, b <= a, b > a, b >= a, b == a, b != a, a < a, a <= a,"
    " a > a, a >= a, a == a, a != a); exit(0); }",
    # ?: nested deeper than r6-r8 (arms go through a stack slot)
    "BEGIN { i = 2; j = 3; k = 4; trace(i + (j > 2 ? (k > 3 ? (i > 1 ? i * j * k : 1) + k : 2)"
    ' : 3) + j); printf("[%s]\\n", i > 1 ? (j > 5 ? "x" : (k > 3 ? "y" : "z")) : "w"); exit(0); }',
    # a char * where a string is expected: the string at that address
    "BEGIN { x = (char *)alloca(8); y = (char *)alloca(4); x[0] = 'a'; x[1] = '/'; x[2] = 'b';"
    " x[3] = 0; y[0] = '/'; y[1] = 0; printf(\"[%s][%d][%d][%s][%s]\\n\", basename(x), index(x, y),"
    ' strlen(x), strstr(x, y), strtok(x, y)); printf("[%s]\\n", strtok(NULL, y)); exit(0); }',
    'BEGIN { x = (char *)0; trace(strtok(x, ",")); exit(1); } ERROR { exit(0); }',
    # strtok of a NULL string (strstr without a match) faults
    'BEGIN { strtok(strstr("abc", "x"), "b"); exit(1); } ERROR { exit(0); }',
    # inet_ntoa / link_ntop (ether, infiniband, bad type, bad address)
    "BEGIN { p = (uint8_t *)alloca(20); p[0] = 192; p[1] = 168; p[2] = 0; p[3] = 7;"
    ' printf("%s\\n", inet_ntoa((ipaddr_t *)p)); p[0] = 0; p[1] = 10; p[2] = 99; p[3] = 255;'
    ' printf("%s\\n", inet_ntoa((ipaddr_t *)p)); p[19] = 0xab; p[5] = 0x0c;'
    ' printf("%s\\n%s\\n", link_ntop(1, p), link_ntop(32, p)); exit(0); }',
    "BEGIN { p = (uint8_t *)alloca(8); trace(link_ntop(7, p)); exit(1); } ERROR { exit(0); }",
    "BEGIN { trace(link_ntop(1, (uint8_t *)8)); exit(1); } ERROR { exit(0); }",
    # cleanpath: "", ".", "..", slashes, ".." popping, past the root, relative ".." kept
    'BEGIN { printf("[%s][%s][%s][%s][%s][%s][%s][%s][%s]\\n", cleanpath(""), cleanpath("."),'
    ' cleanpath(".."), cleanpath("/"), cleanpath("//"), cleanpath("///a//b/"), cleanpath("a/./b/../c"),'
    ' cleanpath("../a/.."), cleanpath("/../x/./...")); printf("[%s][%s][%s][%s]\\n",'
    ' cleanpath("a/b/../../.."), cleanpath("./"), cleanpath("/a/b/c/../../d"),'
    ' cleanpath("abc/def/../ghi/./jkl/")); exit(0); }',
    '#pragma D option strsize=8\nBEGIN { printf("[%s][%s]\\n", cleanpath("/abcdefg/../x"),'
    ' cleanpath("a/b/c/d/e/f")); exit(0); }',
    # inet_ntoa6: "::" for the first longest zero run, no leading zeros; NULL faults
    'BEGIN { p = (uint8_t *)alloca(16); printf("[%s]", inet_ntoa6((void *)p)); p[15] = 1;'
    ' printf("[%s]", inet_ntoa6((void *)p)); p[0] = 0xfe; p[1] = 0x80; printf("[%s]",'
    ' inet_ntoa6((void *)p)); p[5] = 3; p[15] = 0; printf("[%s]", inet_ntoa6((void *)p));'
    ' p[10] = 0xff; p[11] = 0xff; p[12] = 1; p[13] = 2; printf("[%s]", inet_ntoa6((void *)p));'
    ' p[9] = 0x10; p[3] = 0xab; printf("[%s]\\n", inet_ntoa6((void *)p)); exit(0); }',
    "BEGIN { trace(inet_ntoa6(NULL)); exit(1); } ERROR { exit(0); }",
    # byte order and device numbers
    'BEGIN { printf("%x %x %x %x %d %d\\n", htons(0x1234), htonl(0x12345678), htonll(0x0102030405060708),'
    " ntohs(0xabcdef), getmajor(0x12345678), getminor(0x12345678)); exit(0); }",
]


@pytest.mark.parametrize("src", SAME)
def test_same_output_as_the_user_engine(src: str) -> None:
    need(OK, WHY)
    same_on_both_engines("-q", "-n", src)


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
    assert no_fault_pc(r.err) == (
        "pydtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): invalid address (0x0)"
    )


def test_strtok_of_a_char_array_is_refused_by_name() -> None:
    s = Session([Program("n", 'char a[4]; BEGIN { trace(strtok(a, ",")); }')])
    s.compile()
    with pytest.raises(LoweringError) as ei:
        compile_program(s.checked, s.options)
    assert str(ei.value) == "the eBPF engine cannot compile strtok() of a char [4] yet (line 1)"


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


def test_search_and_swap_exact_results() -> None:
    need(OK, WHY)
    r = pydtrace(
        "-q",
        "-x",
        "engine=ebpf",
        "-n",
        'BEGIN { printf("[%s] %d %d %x %x %d\\n", strstr("abcabc", "ca"), index("abcabc", "bc", 2),'
        ' rindex("abcabc", "bc"), htons(0x1234), htonl(1), "" == NULL); exit(0); }',
    )
    assert (r.status, r.out, r.err) == (0, "[cabc] 4 4 3412 1000000 1\n\n", "")
    r = pydtrace(
        "-q",
        "-x",
        "engine=ebpf",
        "-n",
        "BEGIN { p = (uint8_t *)alloca(8); p[0] = 10; p[3] = 200; p[5] = 0xfe;"
        ' printf("%s %s\\n", inet_ntoa((ipaddr_t *)p), link_ntop(1, p)); exit(0); }',
    )
    assert (r.status, r.out, r.err) == (0, "10.0.0.200 0a:00:00:c8:00:fe\n\n", "")


def test_a_string_read_again_holds_nothing_of_the_last(tmp_path) -> None:
    """copyinstr's buffer is zeroed (by one failing probe_read_kernel: a failed
    read zero-fills its destination) before each read: a short path read where
    longer ones were read before is the same associative-array key each time
    (a key is the whole buffer, bytes after the NUL too), not one per tail."""
    need(can_use_bpf(), "needs root and bpf(2)")
    script = tmp_path / "opens.py"
    script.write_text(
        "import os\n"
        "for p in ('/e-long-xxxxxxxxxxxxxxxxxxxxxx', '/e', '/e-long-yyyyyyyyyy', '/e'):\n"
        "    try:\n        os.close(os.open(p, os.O_RDONLY))\n"
        "    except OSError:\n        pass\n"
    )
    src = (
        'syscall::openat:entry /pid == $target && (copyinstr(arg1) == "/e" ||'
        ' strstr(copyinstr(arg1), "/e-long-") != NULL)/'
        ' { n[copyinstr(arg1)]++; printf("%s %d\\n", copyinstr(arg1), n[copyinstr(arg1)]); }'
    )
    r = pydtrace("-q", "-x", "engine=ebpf", "-c", f"{sys.executable} {script}", "-n", src)
    assert (r.status, r.out) == (
        0, "/e-long-xxxxxxxxxxxxxxxxxxxxxx 1\n/e 1\n/e-long-yyyyyyyyyy 1\n/e 2\n\n",
    ), r.err  # fmt: skip
