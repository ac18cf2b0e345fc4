"""The toolkit's commands (opensnoop, execsnoop, ...): commands (scripts/,
cli/launchers.py) that run a tool's D program through a pydtrace Session (never the pydtrace CLI).

The engine: as root, the eBPF engine, system-wide; without the privileges
for it, a tool traces a process (-p PID) or a command on the ptrace engine,
with the same output; --engine chooses. A tool that needs the kernel says
so in one line. Exit status: 0 (a run that ended, Ctrl-C included), 1 (a
run that could not start: no such process, a command that cannot be run,
no privileges), 2 (a mistake on the command line).
"""

from __future__ import annotations

import sys

from pydtrace.cli.startup import StartUp
from pydtrace.outfiles import STDOUT, GuardedOutput, OutputFailed, silence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def main(name: str, argv: list[str] | None = None) -> int:
    """Run tool `name` with argv (default: sys.argv[1:]); return the exit status."""
    from pydtrace.tools import load

    startup = StartUp()  # no garbage collection until the engine starts; Ctrl-C
    args = sys.argv[1:] if argv is None else argv
    try:
        startup.look_ahead(name, args)
        tool_class = load(name)
        _set_comm(name)
        status = _main(name, tool_class, args, startup)
    except KeyboardInterrupt:  # once tracing runs, Ctrl-C ends it cleanly instead
        sys.stderr.write(f"{name}: interrupted before tracing began\n")
        status = 1
    except OutputFailed as e:  # -h, --print-script or a header into a closed pipe, a full disk
        line = e.line()
        if line is not None:
            sys.stderr.write(f"{name}: {line}\n")
        status = 1
    finally:
        startup.end()
    try:
        sys.stdout.flush()
    except OSError as e:
        silence(sys.stdout)
        line = OutputFailed(STDOUT, e).line()
        if line is not None:
            sys.stderr.write(f"{name}: {line}\n")
        status = 1
    return status


def _main(name: str, tool_class: Any, argv: list[str], startup: StartUp) -> int:
    from pydtrace.tools.options import UsageError

    err = sys.stderr
    try:
        o = tool_class.parse(argv)
    except UsageError as e:
        err.write(f"{name}: {e.message}\n")
        return 2
    out = GuardedOutput(sys.stdout, STDOUT)
    if o.help:
        out.write(tool_class.usage())
        return 0
    if o.version:
        from pydtrace import __version__

        out.write(f"{name} (pydtrace {__version__})\n")
        return 0
    tool = tool_class(o)
    script = tool.script()
    if o.print_script:
        out.write(script)
        return 0
    engine, refusal = _engine(name, tool_class, o)
    if refusal:
        err.write(f"{name}: {refusal}\n")
        return 1
    return _run(name, tool, script, engine, startup)


def _engine(name: str, tool_class: Any, o: Any) -> tuple[str, str]:
    """(the engine, "") or ("", why the tool cannot run here)."""
    from pydtrace.engines.ebpf.features import can_use_bpf

    targeted = o.pid is not None or bool(o.command)
    engine = o.engine
    if engine is None or engine == "ebpf":
        ok, why = can_use_bpf()
        if ok:
            return "ebpf", ""
        if engine == "ebpf" or tool_class.kernel_only:
            if tool_class.kernel_only_why:
                return "", f"{tool_class.kernel_only_why}; this process cannot use it: {why}"
            return "", f"needs the eBPF engine, which this process cannot use: {why}"
        if not targeted:
            return "", (
                f"tracing every process needs the eBPF engine, which this process cannot use "
                f"({why}); trace one process without it: {name} -p PID, or {name} -- COMMAND"
            )
        return "ptrace", ""
    if tool_class.kernel_only:
        return "", tool_class.kernel_only_why or (
            "needs the eBPF engine: its probes are in the kernel, not in a process"
        )
    if not targeted:
        return "", f"the ptrace engine traces a process: give -p PID or a command ({name} -h)"
    return "ptrace", ""


def _run(name: str, tool: Any, script: str, engine: str, startup: StartUp) -> int:
    from pydtrace.lang.errors import CompileError
    from pydtrace.session import Program, Session

    o = tool.o
    session = Session(
        [Program("s", f"{tool.script_file}", source=script)],
        settings=[("quiet", None), ("engine", engine), *tool.settings()],
        zdefs=True,  # open/creat and the like exist on x86_64, not on every machine
        out=sys.stdout,
        err=sys.stderr,
        pname=name,
        testing=False,
        commands=[o.command] if o.command else None,
        pids=[o.pid] if o.pid is not None else None,
        item_hook=tool.hook,
    )
    session.on_start = startup.started
    session.give_back_handlers = False  # the process ends with the run
    startup.keep(session)  # the next run of this command line starts from this compile
    try:
        session.compile()
        tool.started(session)
        if o.command:  # the header before anything the command prints
            tool.begin(GuardedOutput(sys.stdout, STDOUT))
        return session.run()
    except CompileError as e:
        session.close()
        sys.stderr.write(f"{name}: {e.message}\n")
        return 1
    except (KeyboardInterrupt, OutputFailed):  # before tracing: no held command left behind
        session.close()
        raise


def _set_comm(name: str) -> None:
    """Name our process after the tool (what `execname` shows for it)."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name[:15])
    except OSError:
        pass


def _entry(name: str) -> Any:
    def run() -> int:
        return main(name)

    run.__name__ = run.__qualname__ = name
    run.__doc__ = f"The {name} command."
    return run


# the commands (scripts/, written by cli/launchers.py) and `python -m pydtrace.cli.tools NAME`
opensnoop = _entry("opensnoop")
execsnoop = _entry("execsnoop")
syscount = _entry("syscount")
errinfo = _entry("errinfo")
exitsnoop = _entry("exitsnoop")
killsnoop = _entry("killsnoop")
statsnoop = _entry("statsnoop")
dtruss = _entry("dtruss")
iosnoop = _entry("iosnoop")
biolatency = _entry("biolatency")
runqlat = _entry("runqlat")
offcputime = _entry("offcputime")
profile = _entry("profile")
rwsnoop = _entry("rwsnoop")
rwtop = _entry("rwtop")
tcpconnect = _entry("tcpconnect")
tcpaccept = _entry("tcpaccept")
tcplife = _entry("tcplife")

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.stderr.write("usage: python -m pydtrace.cli.tools TOOL [options]\n")
        raise SystemExit(2)
    tool_name = sys.argv.pop(1)
    sys.argv[0] = tool_name
    from pydtrace.tools import TOOLS

    if tool_name not in TOOLS:
        sys.stderr.write(f"no tool named '{tool_name}' (tools: {', '.join(TOOLS)})\n")
        raise SystemExit(2)
    raise SystemExit(main(tool_name, sys.argv[1:]))
