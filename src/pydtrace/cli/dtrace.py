"""`pydtrace`: a drop-in dtrace(1).

Messages start with the program's name as invoked (dtrace does the same with
its argv[0]), so the `dtrace` command installed beside pydtrace (or a link
named dtrace) speaks as dtrace.

Usage errors keep dtrace's exit status, 2, and say one line and a hint to
--help where dtrace prints its usage of every option; with no arguments, the
usage is printed as dtrace prints it, then the hint.
"""

from __future__ import annotations

import os
import sys

from pydtrace.cli.startup import StartUp
from pydtrace.outfiles import STDOUT, GuardedOutput, OutputFailed, RefusedPath, opener, silence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def program_name(argv0: str) -> str:
    base = os.path.basename(argv0)
    if base in ("__main__.py", "", "-c") or base.startswith("python"):
        return "pydtrace"
    return base


def main(argv: list[str] | None = None) -> int:
    args = sys.argv if argv is None else argv
    pname = program_name(args[0] if args else "pydtrace")
    startup = StartUp()  # no garbage collection until the engine starts; Ctrl-C
    _set_comm(pname)
    try:
        startup.look_ahead(pname, args[1:])
        status = _main(pname, args[1:], startup)
    except KeyboardInterrupt:
        # Ctrl-C before tracing began (once it has, a handler ends tracing
        # cleanly instead): nothing is attached, the program did not run
        print(f"{pname}: interrupted before tracing began", file=sys.stderr)
        status = 1
    except OutputFailed as e:  # stdout failed outside a run (-l, -V)
        _report(pname, e)
        status = 1
    finally:
        startup.end()
    try:
        sys.stdout.flush()
    except OSError as e:
        silence(sys.stdout)  # Python's own flush at exit then has nothing to say
        _report(pname, OutputFailed(STDOUT, e))
        status = 1
    return status


def _report(pname: str, failed: OutputFailed) -> None:
    """One line for a failed write; none when a pipe's reader went away."""
    line = failed.line()
    if line is not None:
        sys.stderr.write(f"{pname}: {line}\n")


def _set_comm(name: str) -> None:
    """Name our process after the command, as a dtrace binary would be named:
    BEGIN and END run in the tracer's own context, so `execname` shows it."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name[:15])
    except OSError:
        pass


def _main(pname: str, argv: list[str], startup: StartUp) -> int:
    from pydtrace.cli.options import OptionError, UsageError, parse_args, usage_text

    err = sys.stderr
    try:
        o = parse_args(argv)
    except UsageError as e:
        from pydtrace.cli.manual import hint

        if e.message:
            err.write(f"{pname}: {e.message}\n")
        elif e.show_usage:  # no arguments: dtrace's usage of every option
            err.write(usage_text(pname))
        if e.show_usage:
            err.write(hint(pname))
        return 2
    except OptionError as e:
        err.write(f"{pname}: {e.message}\n")
        return 1
    if o.info or o.version:  # --help, --version, -V
        GuardedOutput(sys.stdout, STDOUT).write(_info(pname, o.info))
        return 0
    if not o.programs and not o.list_probes:
        err.write(f"{pname}: no probes specified\n")
        return 1
    out = sys.stdout
    if o.output is not None:
        try:  # appended to, as dtrace does; never through another user's name
            out = open(o.output, "a", encoding="utf-8", errors="surrogateescape",  # noqa: SIM115
                       opener=opener(replace=False))  # fmt: skip
        except RefusedPath as e:
            err.write(f"{pname}: {e}\n")
            return 1
        except OSError as e:
            err.write(f"{pname}: failed to open output file '{o.output}': {e.strerror}\n")
            return 1
    status = _run(pname, o, out, err, startup)
    if out is not sys.stdout:
        try:
            out.close()
        except OSError as e:  # its last write (after a failure, nothing is left to fail)
            _report(pname, OutputFailed(o.output, e))
            status = 1
    return status


def _info(pname: str, which: str) -> str:
    """--help, --version, or -V (`dtrace: Oracle D 2.0`, as dtrace says it)."""
    from pydtrace.cli.manual import D_VERSION, PYDTRACE, help_text, version_text

    if which == "help":
        return help_text(PYDTRACE, pname)
    if which == "version":
        return version_text(pname, D_VERSION)
    return f"{pname}: {D_VERSION}\n"


def _run(pname: str, o: Any, out: Any, err: Any, startup: StartUp) -> int:
    """Compile, then list or run. A run's consumer catches its own failed
    writes (consume/consumer.py); here, outside a run, they raise OutputFailed."""
    from pydtrace.lang.errors import CompileError
    from pydtrace.session import Program, Session

    session = Session(
        [Program(p.kind, p.text) for p in o.programs],
        settings=o.settings,
        operands=o.operands,
        cpp=o.cpp,
        defines=o.defines,
        undefs=o.undefs,
        incdirs=o.incdirs,
        zdefs=o.zdefs,
        out=out,
        err=err,
        pname=pname,
        verbose=bool(o.verbose),
        commands=o.commands,
        pids=[int(p) for p in o.pids],
        disasm=o.disasm,
    )
    session.on_start = startup.started
    session.give_back_handlers = False  # the process ends with the run
    # a run (not -l, -e or -S) starts from the last run's compile of the same command line
    if not (o.list_probes or o.compile_only or o.disasm):
        startup.keep(session)
    try:
        session.compile()
        if o.list_probes or o.compile_only:
            session.close()
            if o.disasm and o.compile_only:  # -S -e: the listing only
                err.write(session.disassembly() or "")
            return _list(session, o, GuardedOutput(out, o.output or STDOUT)) if o.list_probes else 0
        return session.run()
    except KeyboardInterrupt:  # Ctrl-C before tracing began: let go of -c/-p targets
        session.close()
        raise
    except CompileError as e:
        session.close()
        try:
            GuardedOutput(out, o.output or STDOUT).flush()
        except OutputFailed as f:
            _report(pname, f)
        err.write(f"{pname}: {e.message}\n")
        if e.hint:
            err.write(f"{pname}: hint: {e.hint}\n")
        return 1


def _list(session: object, o: object, out: object) -> int:
    from pydtrace.probes.listing import format_listing

    cat = session.catalogue  # type: ignore[attr-defined]
    if o.programs:  # type: ignore[attr-defined]
        seen: dict[int, object] = {}
        for c in session.checked.clauses:  # type: ignore[attr-defined]
            for p in c.probes:
                seen.setdefault(p.id, p)
        probes = sorted(seen.values(), key=lambda p: p.id)  # type: ignore[attr-defined]
    else:
        probes = cat.all()
    out.write(format_listing(probes, verbose=bool(o.verbose), catalogue=cat))  # type: ignore[attr-defined]
    out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
