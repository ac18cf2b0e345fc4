"""ktrace(1) for Linux: record what processes do to a trace file (docs/ktrace.md).

    ktrace [-aBdi] [-f trfile] [-t trstr] [--engine ebpf|ptrace] command [args]
    ktrace [-aCcdi] [-f trfile] [-g pgid | -p pid] [-t trstr] [--engine ebpf|ptrace]

With a command, ktrace runs it traced in the foreground and exits with its
status. With -p/-g, it starts a recorder in the background and returns once
the targets are being traced; `ktrace -C` (or -c) stops it.
"""

from __future__ import annotations

import getopt
import importlib
import os
import sys

from pydtrace.cli.manual import KTRACE, help_text, usage_lines, version_text
from pydtrace.engines.signals import StopFlag
from pydtrace.ktrace import control
from pydtrace.ktrace import format as F
from pydtrace.ktrace.recording import RecordError, RecordOptions
from pydtrace.outfiles import STDOUT, GuardedOutput, OutputFailed, RefusedPath, write_failure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

USAGE = usage_lines(KTRACE)  # OpenBSD's two lines, printed after a usage error
ENGINES = ("ebpf", "ptrace")
EX_SOFTWARE = 70  # sysexits.h: an internal software error


class _Usage(Exception):
    pass


def fail(msg: str) -> NoReturn:
    sys.stderr.write(f"ktrace: {msg}\n")
    sys.exit(1)


def points(trstr: str) -> str | None:
    """The letters of -t in format.POINTS order ('+' = the default set); None if one is unknown."""
    want = set()
    for ch in trstr:
        if ch == "+":
            want |= set(F.DEFAULT_POINTS)
        elif ch in F.POINTS:
            want.add(ch)
        else:
            return None
    return "".join(ch for ch in F.POINTS if ch in want) if want else None


def default_engine() -> str:
    """eBPF when this process may use it and its recorder is installed, else
    ptrace.  Only those answers choose ptrace: any other exception is a bug,
    raised for the caller to report, never a silent change of engine."""
    try:
        importlib.import_module("pydtrace.ktrace.record_ebpf")
        from pydtrace.engines.ebpf.features import can_use_bpf
    except ModuleNotFoundError as e:
        if e.name != "pydtrace.ktrace.record_ebpf":
            raise
        return "ptrace"  # this installation has no eBPF recorder
    try:
        ok, _ = can_use_bpf()
    except OSError:
        return "ptrace"  # the kernel refused the check itself: no eBPF here
    return "ebpf" if ok else "ptrace"


def internal_error(e: BaseException) -> int:
    """A bug: one line on stderr (no traceback) and EX_SOFTWARE."""
    text = f"{type(e).__name__}: {e}".replace("\n", " ")
    sys.stderr.write(f"ktrace: internal error: {text}\n")
    return EX_SOFTWARE


def recorder(engine: str):  # noqa: ANN201 - a module
    try:
        return importlib.import_module(f"pydtrace.ktrace.record_{engine}")
    except ModuleNotFoundError as e:
        if e.name == f"pydtrace.ktrace.record_{engine}":
            fail(f"the {engine} engine is not available in this version of pydtrace")
        raise


def _number(opt: str, text: str) -> int:
    try:
        n = int(text, 10)
    except ValueError:
        n = 0
    if n <= 0:
        fail(f"{opt} {text}: invalid")
    return n


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        return _main(args)
    except _Usage:
        sys.stderr.write(USAGE)
        return 1
    except KeyboardInterrupt:
        return 130


def _main(args: list[str]) -> int:
    try:
        opts, cmd = getopt.getopt(args, "aBCcdif:g:p:t:", ["engine=", "help", "version"])
    except getopt.GetoptError as e:
        sys.stderr.write(f"ktrace: {e.msg}\n")
        raise _Usage from None
    for k, _ in opts:
        if k == "--help":
            return _say(help_text(KTRACE))
        if k == "--version":
            return _say(version_text("ktrace", f"ktrace file format {F.VERSION}"))
    o = RecordOptions()
    append = clear_all = clear = False
    inherit = False
    trfile = "ktrace.out"
    engine = None
    for k, v in opts:
        if k == "-a":
            append = True
        elif k == "-B":
            o.bind_now = True
        elif k == "-C":
            clear_all = True
        elif k == "-c":
            clear = True
        elif k == "-d":
            o.descend = True
        elif k == "-i":
            inherit = True
        elif k == "-f":
            trfile = v
        elif k == "-g":
            o.pgid = _number("-g", v)
        elif k == "-p":
            o.pids = [_number("-p", v)]
        elif k == "-t":
            p = points(v)
            if p is None:
                sys.stderr.write(f"ktrace: unknown facility in {v}\n")
                raise _Usage
            o.points = p
        elif k == "--engine":
            if v not in ENGINES:
                sys.stderr.write(f"ktrace: unknown engine {v} (ebpf or ptrace)\n")
                raise _Usage
            engine = v
    targets = bool(o.pids) + (o.pgid is not None) + bool(cmd)
    if targets > 1 or (clear_all and (targets or clear)) or (clear and cmd):
        raise _Usage
    if clear_all or clear:
        return _stop(clear_all, o, trfile)
    if not targets:
        raise _Usage
    o.command = cmd or None
    o.inherit = inherit or bool(cmd)
    try:
        o.engine = engine or default_engine()
    except Exception as e:
        return internal_error(e)
    module = recorder(o.engine)
    try:
        writer = F.Writer(trfile, append=append)
    except RefusedPath as e:
        fail(str(e))
    except OSError as e:
        fail(f"{trfile}: {e.strerror}")
    if cmd:
        return _foreground(module, o, writer, trfile)
    return _background(module, o, writer, trfile)


def _say(text: str) -> int:
    """--help, --version: the text on stdout; a failed write is one line and status 1."""
    try:
        out = GuardedOutput(sys.stdout, STDOUT)
        out.write(text)
        out.flush()
    except OutputFailed as e:
        sys.stderr.write(f"ktrace: {e.line()}\n")
        return 1
    return 0


def _stop(everything: bool, o: RecordOptions, trfile: str) -> int:
    """-C: every recording of this user (all users' for root); -c: those of
    -p/-g, or those writing to trfile."""
    found = control.entries(all_users=everything and os.geteuid() == 0)
    if not everything:
        if o.pids or o.pgid is not None:
            found = [e for e in found if set(o.pids) & set(e.pids) or (o.pgid and e.pgid == o.pgid)]
        else:
            path = os.path.abspath(trfile)
            found = [e for e in found if e.file == path]
    control.stop(found)
    return 0


def _foreground(module, o: RecordOptions, writer: F.Writer, trfile: str) -> int:  # noqa: ANN001
    entry = control.register(trfile, [], None)
    try:
        status = module.record(o, writer, StopFlag())
    except RecordError as e:
        fail(str(e))
    finally:
        writer.close()
        control.unregister(entry)
    return _written(writer, status)


def _written(writer: F.Writer, status: int) -> int:
    """A recording whose file could not be written (it stopped at the
    error, as on SIGTERM): one line, none when a pipe's reader went away,
    and status 1."""
    if writer.error is None:
        return status
    line = write_failure(writer.path, writer.error)
    if line is not None:
        sys.stderr.write(f"ktrace: {line}\n")
    return 1


def _background(module, o: RecordOptions, writer: F.Writer, trfile: str) -> int:  # noqa: ANN001
    """Fork a recorder that outlives us; return once it traces the targets."""
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(w)
        writer.fd = -1  # the child owns the file now
        msg = b""
        while chunk := os.read(r, 4096):
            msg += chunk
        os.close(r)
        if msg == b"ok":
            return 0
        fail(msg.decode(errors="replace")[1:] if msg.startswith(b"E") else "the recorder died")
    os.close(r)
    code = 1
    try:
        os.setsid()  # no terminal signals; ktrace -C/-c stop it
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        entry = control.register(trfile, o.pids, o.pgid)

        def ready() -> None:
            os.write(w, b"ok")
            os.close(w)

        try:
            code = module.record(o, writer, StopFlag(), ready)
        except RecordError as e:
            os.write(w, b"E" + str(e).encode())
        finally:
            writer.close()
            control.unregister(entry)
        code = _written(writer, code)
    finally:
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
