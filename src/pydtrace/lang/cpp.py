"""Running the C preprocessor over D source (`dtrace -C`).

Like libdtrace's dt_preproc, the program goes to cpp on stdin (so cpp calls it
`/dev/stdin` in messages and line markers) and cpp writes to a file given as
`/dev/fd/N`.  The argument list is dtrace's: fixed predefinitions, then the
user's -D/-U/-I/-H/cppargs in command-line order, then the D version, the
-X mode and the two file names.  cpp's stderr is passed through (that is where
`-H` and cpp's own error messages go); a failure becomes a CppError whose
message is libdtrace's (`Preprocessor failed to process input program`).

Line markers (`# N "file" flags`) are kept for the lexer; markers naming
MAIN_FILE refer to the script itself (dtrace then reports just `line N`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable

from pydtrace.lang.errors import DError
from pydtrace.lang.limits import SCRIPT_BYTES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

MAIN_FILE = "/dev/stdin"
DEFAULT_CPP = "cpp"
D_VERSION_LATEST = 0x02000001  # 2.0.1 packed as major<<24 | minor<<12 | micro

# Always passed, in this order, before any user argument.
FIXED_ARGS = (
    "-D__linux",
    "-D__unix",
    "-D__SVR4",
    "-D__SUNW_D=1",
    "-U__GNUC__",
    "-D__SUNW_D_64",  # dtrace's own pointer width, not the -32/-64 data model
)

MSG_CPPENT = "Preprocessor not found"
MSG_CPPEXEC = "Failed to exec preprocessor"
MSG_CPPFORK = "Failed to fork preprocessor"
MSG_CPPERR = "Preprocessor failed to process input program"
MSG_CPPBIG = f"Preprocessor output too large (more than {SCRIPT_BYTES} bytes)"


class CppError(DError):
    """The preprocessor could not run or failed.  The message carries no tag
    or line: dtrace prints `failed to compile script X: <message>`."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__("", message)
        self.status = status

    def located(self, errtags: bool = False) -> str:
        return self.message


def cpp_args(
    defines: Iterable[str] = (),
    undefs: Iterable[str] = (),
    incdirs: Iterable[str] = (),
    extra_args: Iterable[str] = (),
    *,
    stdc: str | None = None,
    version: int = D_VERSION_LATEST,
    sysname: str | None = None,
) -> list[str]:
    """The arguments after argv[0] and before the two file names."""
    uts = sysname if sysname is not None else os.uname().sysname
    args = [*FIXED_ARGS, f"-D__{uts}"]
    args += [f"-D{d}" for d in defines]
    args += [f"-U{u}" for u in undefs]
    args += [f"-I{i}" for i in incdirs]
    args += list(extra_args)
    args.append(f"-D__SUNW_D_VERSION=0x{version:08x}")
    # -Xa/-Xc/-Xt (and the default) ask for ISO C; -Xs for K&R
    args.append("-traditional-cpp" if stdc == "s" else "-std=c99")
    return args


def user_args(settings: Iterable[tuple[str, object]]) -> list[str]:
    """The cpp arguments that validated options add, in their order:
    define/undef/incdir (-D/-U/-I), cpphdrs (-H) and cppargs."""
    out: list[str] = []
    for name, value in settings:
        if name == "define":
            out.append(f"-D{value}")
        elif name == "undef":
            out.append(f"-U{value}")
        elif name == "incdir":
            out.append(f"-I{value}")
        elif name == "cpphdrs":
            out.append("-H")
        elif name == "cppargs":
            out += str(value).split()
    return out


def _find_cpp(cpppath: str) -> str:
    if cpppath == DEFAULT_CPP and shutil.which(cpppath) is None and os.path.exists("/usr/bin/cpp"):
        return "/usr/bin/cpp"
    return cpppath


def strip_interpreter_line(source: str) -> str:
    """Blank a `#!` first line but keep its newline, so line numbers hold."""
    if source.startswith("#!"):
        nl = source.find("\n")
        return "" if nl < 0 else source[nl:]
    return source


def preprocess(
    source: str,
    filename: str,
    defines: list[str],
    undefs: list[str],
    incdirs: list[str],
    extra_args: list[str] | None = None,
    *,
    cpppath: str = DEFAULT_CPP,
    stdc: str | None = None,
    version: int = D_VERSION_LATEST,
    stderr: IO[Any] | int | None = None,
) -> str:
    """Run cpp over source the way dtrace does and return its output.

    filename is the script's name (cpp itself only sees /dev/stdin).
    extra_args come after -D/-U/-I (use `user_args` to keep command-line
    order across all of them).  stderr: where cpp's messages go; None
    inherits ours, as dtrace does.
    """
    prog = _find_cpp(cpppath)
    args = cpp_args(defines, undefs, incdirs, extra_args or (), stdc=stdc, version=version)
    text = strip_interpreter_line(source)
    with tempfile.TemporaryFile() as out:
        fd = out.fileno()
        argv = [os.path.basename(prog), *args, MAIN_FILE, f"/dev/fd/{fd}"]
        try:
            proc = subprocess.run(
                argv,
                executable=prog,
                input=text.encode("utf-8", "surrogateescape"),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                pass_fds=(fd,),
                check=False,
            )
        except FileNotFoundError:
            raise CppError(MSG_CPPENT, 127) from None
        except PermissionError:
            raise CppError(MSG_CPPEXEC, 126) from None
        except OSError:
            raise CppError(MSG_CPPFORK) from None
        if proc.returncode != 0:
            status = proc.returncode
            msg = {126: MSG_CPPEXEC, 127: MSG_CPPENT}.get(status, MSG_CPPERR)
            raise CppError(msg, status)
        if os.fstat(fd).st_size > SCRIPT_BYTES:  # a macro bomb: refused before it is read
            raise CppError(MSG_CPPBIG)
        out.seek(0)
        return out.read().decode("utf-8", "surrogateescape")


def parse_line_marker(line: str) -> tuple[int, str | None] | None:
    """`# 12 "file" 1 3` or `#line 12 "file"` -> (12, 'file'); else None.

    The number is the line number of the *next* source line.
    """
    s = line.strip()
    if not s.startswith("#"):
        return None
    s = s[1:].lstrip()
    if s.startswith("line"):
        s = s[4:].lstrip()
    num, _, rest = s.partition(" ")
    if not num.isdigit():
        return None
    rest = rest.strip()
    name = None
    if rest.startswith('"'):
        end = rest.find('"', 1)
        while end > 0 and rest[end - 1] == "\\":
            end = rest.find('"', end + 1)
        if end > 0:
            name = rest[1:end]
    return int(num), name


def source_lines(output: str) -> list[tuple[str | None, int, str]]:
    """cpp output as (file, line number, text) for every non-marker line;
    file is None for the script itself (MAIN_FILE)."""
    out: list[tuple[str | None, int, str]] = []
    file: str | None = None
    line = 1
    for text in output.split("\n"):
        mark = parse_line_marker(text) if text.startswith("#") else None
        if mark is not None:
            line = mark[0]
            if mark[1] is not None:
                file = None if mark[1] == MAIN_FILE else mark[1]
            continue
        out.append((file, line, text))
        line += 1
    return out
