"""The compile pipeline: pragmas, statement numbering, matched counts, options."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from conftest import bpf_maps_ok, compile_c, need, ptrace_works, pydtrace
from pydtrace.lang.errors import CompileError
from pydtrace.session import Program, Session


def compile_script(tmp_path, text: str, **kw) -> Session:
    f = tmp_path / "t.d"
    f.write_text(text)
    s = Session([Program("s", str(f))], out=io.StringIO(), err=io.StringIO(), **kw)
    s.compile()
    return s


def compile_error(tmp_path, text: str) -> str:
    try:
        compile_script(tmp_path, text, settings=[("errtags", None)])
    except CompileError as e:
        return e.message.split(": ", 1)[1]
    raise AssertionError("compiled")


def test_pragma_option_applies_while_reading(tmp_path):
    s = compile_script(
        tmp_path, "#pragma D option quiet\n#pragma D option strsize=32\nBEGIN { exit(0); }\n"
    )
    assert s.options["quiet"] is True
    assert s.options["strsize"] == 32


def test_pragma_errors(tmp_path):
    assert (
        compile_error(tmp_path, '#pragma D error "stop here"\nBEGIN {}\n')
        == "[D_PRAGERR] line 1: #error: stop here "
    )
    assert compile_error(tmp_path, "#pragma D option quiet verbose\n") == (
        "[D_PRAGMA_MALFORM] line 1: superfluous arguments specified for #pragma option"
    )
    assert compile_error(tmp_path, "#pragma D option strsize=lots\nBEGIN {}\n") == (
        "[D_PRAGMA_OPTSET] line 1: failed to set option 'strsize' to 'lots': Invalid value for specified option"
    )
    assert compile_error(tmp_path, "#pragma D option ldpath=/x\nBEGIN {}\n") == (
        "[D_PRAGMA_OPTSET] line 1: failed to set option 'ldpath' to '/x': Option cannot be used from within a D program"
    )
    assert compile_error(tmp_path, "#pragma D attributes Bogus/Stable/Common x\n") == (
        "[D_PRAGMA_INVAL] line 1: invalid attributes specified by #pragma attributes"
    )
    assert compile_error(tmp_path, "#pragma D attributes Stable/Stable/Common\n") == (
        "[D_PRAGMA_MALFORM] line 1: malformed #pragma attributes <attributes> <ident>"
    )
    assert compile_error(tmp_path, "#pragma D depends_on library net.d\n") == (
        "[D_PRAGMA_DEPEND] line 1: main program may not explicitly depend on a library"
    )
    assert (
        compile_error(tmp_path, "#pragma D frobnicate\n")
        == "[D_PRAGMA_INVAL] line 1: invalid D pragma: frobnicate"
    )


def test_empty_program_reports_end_of_input(tmp_path):
    assert (
        compile_error(tmp_path, "/* nothing */\n\n")
        == "[D_EMPTY] line 3: empty D program translation unit"
    )


def test_each_probe_description_is_a_statement(tmp_path):
    s = compile_script(tmp_path, "BEGIN, END { }\ntick-1s { }\nBEGIN { }\n")
    assert [c.index for c in s.checked.clauses] == [0, 2, 3]
    assert s.matches == [("script", str(tmp_path / "t.d"), 4)]


def test_fault_names_the_statement(tmp_path):
    f = tmp_path / "f.d"
    f.write_text("BEGIN, END { }\nBEGIN { x = 0; y = 1 / x; }\nBEGIN { exit(0); }\n")
    r = pydtrace("-q", "-s", str(f))
    assert r.err.startswith(
        "pydtrace: error in dt_clause_2 for probe ID 1 (dtrace:::BEGIN): divide-by-zero"
    )


def test_destructive_actions_need_w():
    r = pydtrace("-n", "BEGIN { chill(1); exit(0); }")
    assert (r.status, r.err.splitlines()[-1]) == (
        1,
        "pydtrace: could not enable tracing: Destructive actions not allowed",
    )
    # chill() runs on the user engine only (dtrace-utils has no BPF chill either)
    r = pydtrace("-w", "-q", "-x", "engine=ptrace", "-n", "BEGIN { chill(1); exit(0); }")
    assert r.status == 0


def test_execname_in_begin_is_the_tracer():
    r = pydtrace("-q", "-n", 'BEGIN { printf("%s\\n", execname); exit(0); }')
    assert r.out == "pydtrace\n\n"


def test_xempty_allows_an_empty_program(tmp_path):
    f = tmp_path / "e.d"
    f.write_text("\n")
    r = pydtrace("-xempty", "-s", str(f))
    assert r.status == 1
    assert r.err == f"pydtrace: script '{f}' matched 0 probes\npydtrace: no probes matched\n"


def test_zero_bufsize_cannot_enable():
    r = pydtrace("-xbufsize=0", "-n", "BEGIN { exit(0); }")
    assert (r.status, r.err.splitlines()[-1]) == (
        1,
        "pydtrace: could not enable tracing: Enabling exceeds size of buffer",
    )


def test_verbose_stability_report():
    block = (
        "\n\t{}\n\t\tIdentifier Names: {}\n\t\tData Semantics:   {}\n\t\tDependency Class: Common\n"
    )
    r = pydtrace("-v", "-q", "-n", "BEGIN { exit(0); }")
    assert r.out == (
        "\nStability attributes for description BEGIN :\n"
        + block.format("Minimum Probe Description Attributes", "Unstable", "Unstable")
        + block.format("Minimum Statement Attributes", "Stable", "Stable")
        + "\n\n"
    )
    r = pydtrace("-v", "-q", "-n", "dtrace:::BEGIN { exit(0); }")
    assert "Identifier Names: Stable\n\t\tData Semantics:   Stable" in r.out.split("Statement")[0]


def test_syscall_probes_without_a_target_are_refused():
    r = pydtrace("-x", "engine=ptrace", "-n", "syscall::read:entry { @ = count(); }")
    assert r.status == 1
    assert r.err.splitlines()[-1] == (
        "pydtrace: could not enable tracing: syscall probes need a target process (-c or -p) on the "
        "ptrace engine; system-wide tracing needs the eBPF engine"
    )


def test_kernel_only_probes_are_refused_on_the_user_engine(tmp_path):
    """sdt/io probes have no user-space source: with -c on the ptrace engine
    the run is refused, not left to trace nothing, and the command is not
    left behind."""
    mark = tmp_path / "ran"
    r = pydtrace("-x", "engine=ptrace", "-c", f"touch {mark}", "-n",
                 "sdt:sched::sched_switch { @ = count(); }")  # fmt: skip
    assert r.status == 1
    assert r.err.splitlines()[-1] == (
        "pydtrace: could not enable tracing: sdt probes need the eBPF engine; the user-space "
        "engine fires only dtrace, proc, profile, syscall probes"
    )
    assert not mark.exists()


def test_kernel_stacks_are_refused_on_the_user_engine(tmp_path):
    """The user-space engine sees no kernel frames: stack() is refused by name,
    not printed as an empty stack, and the command never runs."""
    mark = tmp_path / "ran"
    r = pydtrace("-x", "engine=ptrace", "-c", f"touch {mark}", "-n",
                 "syscall::getppid:entry { stack(); }")  # fmt: skip
    assert r.status == 1
    assert r.err.splitlines()[-1] == (
        "pydtrace: could not enable tracing: the user-space engine cannot record stack() "
        "(line 1); the eBPF engine records kernel stacks"
    )
    assert not mark.exists()


def test_api_options_are_parsed_once_by_the_option_table():
    """Text values given to the Python API are validated as -x values are:
    sizes in bytes, on/off words as flags; a bad one is an OptionError (a
    CompileError) that says what the option takes."""
    from pydtrace import OptionError

    s = Session([Program("n", "BEGIN {}")], settings=[("bufsize", "4k"), ("quiet", "no")])
    assert s.options["bufsize"] == 4096
    assert s.options["quiet"] is False
    assert s.options["strsize"] == 256  # the defaults stay
    with pytest.raises(OptionError) as e:
        Session([Program("n", "BEGIN {}")], settings=[("dynvarsize", "lots")])
    assert isinstance(e.value, CompileError)
    assert e.value.message == (
        "failed to set option 'dynvarsize' to 'lots': Invalid value for specified option"
        " (a size in bytes: an int, or a str with a k, m, g or t suffix such as '4m')"
    )


# A -c target of its own for each session: it hands write(2) the address of
# its own function, which a bare %A resolves in $target.
MARKER = """
    #include <unistd.h>
    void NAME_mark(void) {}
    int main(void) {
        for (int i = 0; i < 3; i++) {
            write(-1, (const void *)NAME_mark, 0);
            usleep(100000);  /* the two sessions trace at the same time */
        }
        return 0;
    }
"""
MARKED = 'syscall::write:entry /pid == $target && (int)arg0 == -1/ { printf("%s %A\\n", execname, arg1); }'


@pytest.mark.parametrize("engine", ["ebpf", "ptrace"])
def test_two_sessions_run_side_by_side(tmp_path: Path, engine: str) -> None:
    """Two Sessions in two threads of one process, each with its own -c
    target and options, print what each would print alone: $target (the
    process %A resolves in), quiet and bufsize are each session's own.
    (Not flowindent: its indent is per CPU, as dtrace's, and a loaded
    machine moves the target between CPUs.)"""
    need(bpf_maps_ok() if engine == "ebpf" else ptrace_works(), f"the {engine} engine")
    sessions = []
    for name, settings in (("alpha", [("quiet", None)]), ("beta", [("bufsize", "64k")])):
        exe = compile_c(tmp_path, f"{name}_session", MARKER.replace("NAME", name))
        sessions.append(
            Session(
                [Program("n", MARKED)],
                settings=[("engine", engine), *settings],
                commands=[exe],
                out=io.StringIO(),
                err=io.StringIO(),
                testing=True,
            )  # fmt: skip
        )
    both_compiled = threading.Barrier(2, timeout=30)
    statuses: dict[int, int | BaseException] = {}

    def run(i: int, s: Session) -> None:
        try:
            s.compile()  # starts the held -c child: $target is known from here
            both_compiled.wait()
            statuses[i] = s.run()
        except BaseException as e:  # reported below, with the other's output
            statuses[i] = e
            both_compiled.abort()

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    alpha, beta = sessions
    assert statuses == {0: 0, 1: 0}, (statuses, beta.err.getvalue())
    assert alpha.out.getvalue() == "alpha_session alpha_session`alpha_mark\n" * 3 + "\n"
    assert alpha.err.getvalue() == ""
    assert beta.out.getvalue() == (
        "                   FUNCTION:NAME\n"
        + "                     write:entry beta_session beta_session`beta_mark\n\n" * 3
        + "\n"
    )
    assert beta.err.getvalue() == "pydtrace: description 'syscall::write:entry ' matched 1 probe\n"
    assert (alpha.options["bufsize"], beta.options["bufsize"]) == (4 << 20, 64 << 10)


@pytest.mark.parametrize("engine", ["ebpf", "ptrace"])
def test_a_symbol_snapshot_taken_before_exec_is_not_kept(tmp_path: Path, engine: str) -> None:
    """A snapshot of $target's mappings taken while it is still held before
    exec (the forked pydtrace's image), as one left by an earlier process that
    had the same pid would be, does not outlive the exec: %A resolves in the
    new image (ptrace sees the exec; on eBPF the kernel's mmap events say it)."""
    from pydtrace.symbols.process import process_symbols

    need(bpf_maps_ok() if engine == "ebpf" else ptrace_works(), f"the {engine} engine")
    exe = compile_c(tmp_path, "gamma_session", MARKER.replace("NAME", "gamma"))
    s = Session([Program("n", MARKED)], settings=[("engine", engine), ("quiet", None)],
                commands=[exe], out=io.StringIO(), err=io.StringIO(), testing=True)  # fmt: skip
    s.compile()
    process_symbols(s.macro_values["target"])  # the held child: not yet the program
    assert s.run() == 0, s.err.getvalue()
    assert s.out.getvalue() == "gamma_session gamma_session`gamma_mark\n" * 3 + "\n"
