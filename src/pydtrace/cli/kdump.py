"""kdump(1): print a ktrace file.

kdump [-dHlnRTXx] [-f file] [-m maxdata] [-p pid] [-t trstr] [--json | --timeline FILE]
"""

from __future__ import annotations

import getopt
import sys

from pydtrace.cli.manual import KDUMP, help_text, usage_lines, version_text
from pydtrace.ktrace.format import VERSION
from pydtrace.ktrace.kdump import (
    DecoderBug,
    KdumpError,
    Options,
    dump,
    screen_width,
    trace_types,
)
from pydtrace.outfiles import STDOUT, GuardedOutput, LaterFile, OpenFailed, OutputFailed

USAGE = usage_lines(KDUMP)  # OpenBSD's line, printed after a usage error
EX_SOFTWARE = 70  # sysexits.h: an internal software error


class _Info(Exception):
    """--help or --version: print the text and exit 0."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _number(opt: str, arg: str, low: int) -> int:
    """OpenBSD's strtonum checks: `kdump: -p abc: invalid`."""
    t = arg.lstrip(" \t\n\r\f\v")
    digits = t[1:] if t[:1] in ("+", "-") else t
    if not (digits.isdigit() and digits.isascii()):
        raise KdumpError(f"{opt} {arg}: invalid")
    if len(digits.lstrip("0")) > 12:  # beyond any bound here (and int() takes <= 4300 digits)
        raise KdumpError(f"{opt} {arg}: too {'small' if t[0] == '-' else 'large'}")
    n = int(t, 10)
    if n < low:
        raise KdumpError(f"{opt} {arg}: too small")
    if n > 0x7FFFFFFF:
        raise KdumpError(f"{opt} {arg}: too large")
    return n


def parse(argv: list[str]) -> tuple[str, Options]:
    """The trace file and the options; --help and --version raise _Info."""
    opts, args = getopt.getopt(argv, "dHlnRTXxf:m:p:t:", ["json", "timeline=", "help", "version"])
    for k, _ in opts:
        if k == "--help":
            raise _Info(help_text(KDUMP))
        if k == "--version":
            raise _Info(version_text("kdump", f"ktrace file format {VERSION}"))
    if args:
        raise getopt.GetoptError(f"unexpected argument {args[0]}")
    o = Options(width=screen_width())
    path = "ktrace.out"
    for k, v in opts:
        if k == "-d":
            o.decimal = True
        elif k == "-H":
            o.tids = True
        elif k == "-l":
            o.follow = True
        elif k == "-n":
            o.fancy = False
        elif k == "-R":
            o.relative = True
        elif k == "-T":
            o.absolute = True
        elif k == "-x":
            o.hexmode = 1
        elif k == "-X":
            o.hexmode = 2
        elif k == "-f":
            path = v
        elif k == "-m":
            o.maxdata = _number("-m", v, 0)
        elif k == "-p":
            o.pid = _number("-p", v, 1)
        elif k == "-t":
            o.types = trace_types(v)
        elif k == "--json":
            o.json = True
        elif k == "--timeline":
            if not v:
                raise KdumpError("--timeline: no file name")
            o.timeline = v
    if o.timeline is not None and (o.json or o.follow):
        raise KdumpError(f"--timeline cannot be used with {'--json' if o.json else '-l'}")
    return path, o


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        path, opts = parse(argv)
    except getopt.GetoptError as e:
        sys.stderr.write(f"kdump: {e}\n{USAGE}")
        return 1
    except KdumpError as e:
        sys.stderr.write(f"kdump: {e}\n")
        return 1
    except _Info as i:
        path, opts, info = "", Options(), i.text.encode()
    else:
        info = None
    out = GuardedOutput(sys.stdout.buffer, STDOUT)  # a failed write raises OutputFailed
    try:
        if info is not None:
            out.write(info)
            out.flush()
            return 0
        return _dump(path, opts, out)
    except OutputFailed as e:
        # one line, none when the reader went away (kdump | head: the C tool
        # dies of SIGPIPE); stdout now leads to /dev/null (GuardedOutput)
        line = e.line()
        if line is not None:
            sys.stderr.write(f"kdump: {line}\n")
        return 1


def _dump(path: str, opts: Options, out: GuardedOutput) -> int:
    printer = None
    if opts.timeline is not None and opts.timeline != "-":
        # written as ktrace writes its file: never through another user's name, mode 0600
        # (it holds what the traced processes did); opened at the first write
        later = LaterFile(opts.timeline, replace=True, mode=0o600)
        out = GuardedOutput(later, opts.timeline)
    if opts.timeline is not None:
        from pydtrace.ktrace.timeline import TimelinePrinter

        printer = TimelinePrinter(opts, out)
    try:
        return _run(path, opts, out, printer)
    except OpenFailed as e:  # the timeline file cannot be made
        sys.stderr.write(f"kdump: {e.line(opts.timeline or '')}\n")
        return 1
    finally:
        if out is not None and opts.timeline not in (None, "-"):
            out.close()


def _run(path: str, opts: Options, out: GuardedOutput, printer) -> int:
    try:
        status = dump(path, opts, out, printer=printer)
    except KdumpError as e:
        out.flush()
        sys.stderr.write(f"kdump: {e}\n")
        return 1
    except DecoderBug as e:
        out.flush()
        sys.stderr.write(f"kdump: internal error: {str(e).replace(chr(10), ' ')}\n")
        return EX_SOFTWARE
    except KeyboardInterrupt:
        return 130
    out.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
