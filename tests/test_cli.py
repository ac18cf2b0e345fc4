"""End-to-end: the pydtrace command on the user-space engine, exact output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, pydtrace
from pydtrace.lang.errors import CompileError

HDR = "%32s\n" % "FUNCTION:NAME"


def line(fn: str) -> str:
    return "%32s " % fn


def test_default_output_and_matched_notice():
    r = pydtrace("-n", 'BEGIN { printf("hello %d", 42); exit(0); }')
    assert r.status == 0
    assert r.out == HDR + line(":BEGIN") + "hello 42\n\n"
    assert r.err == "pydtrace: description 'BEGIN ' matched 1 probe\n"


def test_cpu_and_id_columns_without_testing_mode():
    r = pydtrace("-n", "BEGIN { trace(1); exit(0); }", testing=False)
    lines = r.out.split("\n")
    assert lines[0] == "CPU     ID                    FUNCTION:NAME"
    cpu, pid, rest = lines[1][:3], lines[1][4:10], lines[1][11:]
    assert cpu.strip().isdigit() and pid == "     1"
    assert rest == "%32s " % ":BEGIN" + " %10d" % 1


def test_quiet_printf_and_final_newline():
    r = pydtrace("-q", "-n", 'BEGIN { printf("%s-%d\\n", "a", -3); exit(0); }')
    assert (r.status, r.out, r.err) == (0, "a--3\n\n", "")


def test_trace_widths_by_type():
    prog = 'BEGIN { trace((char)-1); trace((unsigned char)255); trace((short)-2); trace(7); trace(-1ll); trace(18446744073709551615ull); trace("s"); exit(0); }'
    r = pydtrace("-n", prog)
    expect = (
        line(":BEGIN")
        + "  -1 255    -2          7"
        + " %19d" % -1
        + " %20d" % 18446744073709551615
        + "  %-33s" % "s"
        + "\n"
    )
    assert r.out == HDR + expect + "\n"


def test_int_is_32_bits_and_wraps():
    r = pydtrace(
        "-q", "-n", 'BEGIN { i = 0x7fffffff; i++; printf("%d %d\\n", i, sizeof (i)); exit(0); }'
    )
    assert r.out == "-2147483648 4\n\n"


def test_c_division_truncates_toward_zero():
    r = pydtrace("-q", "-n", 'BEGIN { printf("%d %d %d\\n", -7 / 2, -7 % 2, 7 / -2); exit(0); }')
    assert r.out == "-3 -1 -3\n\n"


def test_aggregations_printed_at_exit_in_order():
    prog = 'BEGIN { @c["b"] = count(); @c["a"] = count(); @c["a"] = count(); @s = sum(10); @s = sum(-3); exit(0); }'
    r = pydtrace("-q", "-n", prog)
    assert r.out == "\n" + "  %-50s %16d\n" % ("b", 1) + "  %-50s %16d\n" % ("a", 2) + " %16d\n" % 7


def test_quantize_histogram():
    r = pydtrace(
        "-q", "-n", "BEGIN { @q = quantize(3); @q = quantize(5); @q = quantize(1); exit(0); }"
    )
    expect = (
        "\n\n"
        "           value  ------------- Distribution ------------- count    \n"
        "               0 |                                         0        \n"
        "               1 |@@@@@@@@@@@@@                            1        \n"
        "               2 |@@@@@@@@@@@@@                            1        \n"
        "               4 |@@@@@@@@@@@@@                            1        \n"
        "               8 |                                         0        \n"
        "\n"
    )
    assert r.out == expect


def test_printa_marks_aggregation_printed():
    r = pydtrace("-q", "-n", 'BEGIN { @a[1] = sum(5); printa("k=%d v=%@d\\n", @a); exit(0); }')
    assert r.out == "k=1 v=5\n\n"


def test_exit_status_last_exit_wins():
    r = pydtrace("-q", "-n", "BEGIN { exit(3); } END { exit(4); }")
    assert r.status == 4
    r = pydtrace("-q", "-n", "BEGIN { exit(3); }")
    assert r.status == 3


def test_exit_skips_later_clauses_of_same_firing():
    r = pydtrace(
        "-q",
        "-n",
        'BEGIN { exit(0); } BEGIN { printf("not reached\\n"); } END { printf("end\\n"); }',
    )
    assert r.out == "end\n\n"


def test_tick_probe_fires_repeatedly():
    r = pydtrace("-q", "-n", 'tick-10ms /++n == 5/ { printf("%d\\n", n); exit(0); }')
    assert (r.status, r.out) == (0, "5\n\n")


def test_runtime_fault_fires_error_and_goes_on():
    prog = 'ERROR { printf("error %d %d\\n", arg4, arg2); } BEGIN { x = 0; y = 1 / x; printf("unreached\\n"); } BEGIN { printf("next clause\\n"); exit(0); }'
    r = pydtrace("-q", "-n", prog)
    assert r.status == 0
    assert r.out == "error 4 1\nnext clause\n\n"
    assert r.err.startswith(
        "pydtrace: error in dt_clause_1 for probe ID 1 (dtrace:::BEGIN): divide-by-zero"
    )


def test_syntax_error_in_script_names_line(tmp_path):
    f = tmp_path / "bad.d"
    f.write_text("/* a comment */\nBEGIN\n{\n\tx = ;\n}\n")
    r = pydtrace("-s", str(f))
    assert r.status == 1
    assert r.err == f'pydtrace: failed to compile script {f}: line 4: syntax error near ";"\n'
    r = pydtrace("-xerrtags", "-s", str(f))
    assert (
        r.err
        == f'pydtrace: failed to compile script {f}: [D_SYNTAX] line 4: syntax error near ";"\n'
    )


def test_undefined_variable_and_specifier_errors():
    r = pydtrace("-n", "BEGIN { trace(nosuch); }")
    assert r.status == 1
    assert (
        r.err
        == "pydtrace: invalid probe specifier BEGIN { trace(nosuch); }: failed to resolve nosuch: Unknown variable name\n"
    )
    r = pydtrace("-n", "nosuch:::probe")
    assert (
        r.err
        == "pydtrace: invalid probe specifier nosuch:::probe: probe description nosuch:::probe does not match any probes\n"
    )
    r = pydtrace("-Z", "-q", "-n", "nosuch:::probe", "-n", "BEGIN { exit(0); }")
    assert r.status == 0


def test_printf_type_mismatch_message():
    r = pydtrace("-n", 'BEGIN { printf("%d\\n", "str"); }')
    assert r.status == 1
    assert "printf( ) argument #2 is incompatible with conversion #1 prototype:" in r.err


def test_usage_errors_exit_2():
    r = pydtrace()
    assert r.status == 2 and r.err.startswith("Usage: pydtrace ")
    r = pydtrace("-k")
    assert (r.status, r.err) == (
        2,
        "pydtrace: invalid option -- 'k'\nTry 'pydtrace --help' for more information.\n",
    )


def test_bad_x_option():
    r = pydtrace("-x", "nosuchopt", "-n", "BEGIN")
    assert r.status == 1
    assert r.err == "pydtrace: failed to set -x nosuchopt: Invalid option name\n"


def test_version():
    r = pydtrace("-V")
    assert (r.status, r.out) == (0, "pydtrace: Oracle D 2.0\n")


def test_operands_and_unused_operand(tmp_path):
    f = tmp_path / "args.d"
    f.write_text(
        '#!/usr/bin/env -S pydtrace -s\nBEGIN { printf("%d %s %s\\n", $1 + 1, $$2, $$0); exit(0); }\n'
    )
    r = pydtrace("-q", "-s", str(f), "41", "word")
    assert r.out == f"42 word {f}\n\n"
    r = pydtrace("-q", "-n", "BEGIN { exit(0); }", "extra")
    assert r.status == 1
    assert (
        r.err
        == "pydtrace: invalid probe specifier BEGIN { exit(0); }: extraneous argument 'extra' ($1 is not referenced)\n"
    )


def test_missing_script_file():
    r = pydtrace("-s", "/nonexistent/x.d")
    assert (r.status, r.err) == (
        1,
        "pydtrace: failed to open /nonexistent/x.d: No such file or directory\n",
    )


def test_cpp_defines(tmp_path):
    f = tmp_path / "cpp.d"
    f.write_text('#define GREETING "hi"\nBEGIN { printf("%s %d\\n", GREETING, VALUE); exit(0); }\n')
    r = pydtrace("-q", "-C", "-DVALUE=7", "-s", str(f))
    assert (r.status, r.out) == (0, "hi 7\n\n")


def test_output_file_appends(tmp_path):
    f = tmp_path / "out.txt"
    f.write_text("before\n")
    r = pydtrace("-q", "-o", str(f), "-n", 'BEGIN { printf("x\\n"); exit(0); }')
    assert r.status == 0 and r.out == ""
    assert f.read_text() == "before\nx\n\n"


def test_json_lines():
    import json

    r = pydtrace(
        "-x", "json", "-q", "-n", 'BEGIN { @c["k"] = count(); printf("p%d", 1); exit(0); }'
    )
    objs = [json.loads(x) for x in r.out.splitlines()]
    assert objs[0]["type"] == "record" and objs[0]["probe"] == "dtrace:::BEGIN"
    assert objs[0]["data"] == [{"action": "printf", "text": "p1"}, {"action": "exit", "status": 0}]
    assert objs[1] == {
        "type": "aggregation",
        "name": "@c",
        "function": "count",
        "data": [{"key": ["k"], "value": 1}],
    }


def start_quiet(program: str) -> subprocess.Popen[str]:
    """pydtrace -q -n PROGRAM running in the background, for signal tests."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), _DTRACE_TESTING="t")
    return subprocess.Popen(
        [sys.executable, "-m", "pydtrace", "-q", "-n", program],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def wait_ready(p: subprocess.Popen[str]) -> None:
    """Wait for the "ready" line the program's BEGIN prints: tracing has begun
    (a signal sent sooner, as a fixed sleep could under load, interrupts the start)."""
    assert p.stdout is not None and p.stdout.readline() == "ready\n"


def test_sigint_runs_end_and_prints_aggregations():
    p = start_quiet(
        'BEGIN { printf("ready\\n"); } tick-1ms { @t = count(); } END { printf("end\\n"); }'
    )
    wait_ready(p)
    time.sleep(0.5)  # some ticks
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    assert out.startswith("end\n\n ")
    assert int(out.split()[-1]) > 10
    assert err == ""


def test_list_probes():
    r = pydtrace("-l", "-n", "dtrace:::")
    assert r.status == 0
    assert r.out == (
        "   ID   PROVIDER            MODULE                          FUNCTION NAME\n"
        "    1     dtrace                                                     BEGIN\n"
        "    2     dtrace                                                     END\n"
        "    3     dtrace                                                     ERROR\n"
    )


def test_speculation_commit_and_discard():
    prog = (
        "BEGIN { s1 = speculation(); } "
        'BEGIN { speculate(s1); printf("kept\\n"); } '
        "BEGIN { commit(s1); } "
        "BEGIN { s2 = speculation(); } "
        'BEGIN { speculate(s2); printf("dropped\\n"); } '
        "BEGIN { discard(s2); exit(0); }"
    )
    r = pydtrace("-q", "-n", prog)
    assert (r.status, r.out) == (0, "kept\n\n")


def test_string_functions():
    prog = (
        'BEGIN { printf("%d|%s|%s|%d|%d|%s|%s|%s|%s|%s\\n", strlen("hello"), strjoin("a", "b"), '
        'substr("hello", 1, 3), index("hello", "l"), rindex("hello", "l"), strstr("hello", "ll"), '
        'basename("/a/b/c"), dirname("/a/b/c"), toupper("aB"), lltostr(-42)); exit(0); }'
    )
    r = pydtrace("-q", "-n", prog)
    assert r.out == "5|ab|ell|2|3|llo|c|/a/b|AB|-42\n\n"


def test_python_api():
    from pydtrace import trace

    r = trace('BEGIN { @n[probename] = count(); printf("hi\\n"); exit(0); }', quiet=True)
    assert r.status == 0
    assert r.aggregations == {"@n": {("BEGIN",): 1}}
    assert r.output == "hi\n\n  %-50s %16d\n" % ("BEGIN", 1)
    assert (r.records[0].text, r.records[0].values) == ("hi\n", ())
    with pytest.raises(CompileError) as e:  # the API raises what the CLI reports
        trace("BEGIN { x = ; }")
    assert e.value.message == 'failed to compile script <program>: line 1: syntax error near ";"'


def test_interpreter_script_runs_directly(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "pydtrace"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m pydtrace "$@"\n')
    shim.chmod(0o755)
    script = tmp_path / "hello.d"
    script.write_text(
        '#!/usr/bin/env -S pydtrace -q -s\nBEGIN { printf("%s\\n", $$1); exit(0); }\n'
    )
    script.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", PYTHONPATH=str(ROOT / "src"))
    p = subprocess.run([str(script), "world"], capture_output=True, text=True, env=env, timeout=30)
    assert (p.returncode, p.stdout, p.stderr) == (0, "world\n\n", "")


def test_sigterm_ends_like_sigint():
    p = start_quiet('BEGIN { @b = count(); printf("ready\\n"); } END { printf("end\\n"); }')
    wait_ready(p)
    p.terminate()
    out, err = p.communicate(timeout=10)
    assert (p.returncode, out, err) == (0, "end\n\n" + " %16d\n" % 1, "")


def test_compile_only_enables_nothing():
    r = pydtrace("-e", "-n", 'BEGIN { printf("never\\n"); }')
    assert (r.status, r.out, r.err) == (0, "", "")


def test_no_probes_specified():
    r = pydtrace("-q")
    assert (r.status, r.err) == (1, "pydtrace: no probes specified\n")


def test_probe_by_id():
    r = pydtrace("-l", "-i", "2")
    assert (
        r.out.splitlines()[1]
        == "    2     dtrace                                                     END"
    )
    r = pydtrace("-q", "-i", '1 { printf("%s\\n", probename); exit(0); }')
    assert r.out == "BEGIN\n\n"


def test_translator_builds_the_output_struct(tmp_path):
    f = tmp_path / "xl.d"
    f.write_text(
        "struct in { int a; int b; };\n"
        "struct out { int sum; string tag; };\n"
        'translator struct out < struct in *p > { sum = p->a + p->b; tag = "t"; };\n'
        "BEGIN { v = (struct in *)alloca(sizeof (struct in)); v->a = 2; v->b = 40; "
        "x = xlate<struct out *>(v); "
        'printf("%d %s %d\\n", x->sum, x->tag, xlate<struct out>(v).sum); exit(0); }\n'
    )
    r = pydtrace("-q", "-s", str(f))
    assert (r.status, r.out, r.err) == (0, "42 t 42\n\n", "")


def test_intermediates_are_64_bit_and_remainder_sign():
    prog = (
        "BEGIN { i = 25920; i = i - (i + (i * 3) + i) * i / i * i; "
        'printf("%d|%d %d %d %d\\n", i, 19 % 5, 19 % -5, -19 % 5, -19 % -5); exit(0); }'
    )
    r = pydtrace("-q", "-n", prog)
    assert r.out == "935761216|4 -4 -4 4\n\n"
