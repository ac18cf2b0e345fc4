"""The files the tools write, and what a failed write does.

Every writer (dtrace's -o and freopen(), ktrace's trace file, the recorder
registry) opens its file with open_output(), which walks the path one name at
a time so that a tracer running as root never writes through a name another
user controls:

- a symbolic link is followed only when it belongs to root or to the caller
  (read through the descriptor that was checked, so it cannot be swapped in
  between); links inside /proc (/dev/stdout's /proc/self/fd/1) are the
  kernel's to follow: they name files some process has open;
- to replace a file (ktrace without -a), the name is removed and created
  afresh with O_CREAT|O_EXCL, as OpenBSD's ktrace does: another user's link
  or file there is replaced, never followed or truncated;
- to append (dtrace -o, freopen(), ktrace -a), a regular file must be the
  caller's own (checked again on the opened descriptor), anything else
  (a FIFO, a device) root's or the caller's; another user's name is refused.

A write that fails (ENOSPC, EPIPE, EIO) is caught by the stream's
GuardedOutput: the tool reports it in one line (write_failure) and ends
the run as after Ctrl-C.
"""

from __future__ import annotations

import errno
import io
import os
import select
import stat
from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_LINKS = 40  # symbolic links followed in one path before ELOOP, as the kernel
STDOUT = "<stdout>"  # how dtrace names its standard output in messages
NOT_OWNED = "not owned by you"

_WRITE = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_LINK = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class RefusedPath(OSError):
    """A name another user controls: `refuse to append to PATH: not owned by you`."""

    def __init__(self, path: str, replace: bool, reason: str = NOT_OWNED) -> None:
        super().__init__(errno.EPERM, reason, path)
        self.path, self.verb = path, "write to" if replace else "append to"

    def __str__(self) -> str:
        return f"refuse to {self.verb} {self.path}: {self.strerror}"


def open_output(path: str, *, replace: bool, mode: int = 0o666) -> int:
    """An O_WRONLY|O_APPEND|O_CLOEXEC descriptor for path (see the module's
    rules). replace: start the file afresh (remove and create it) rather
    than append to it. A file created gets mode & ~umask. Raises
    RefusedPath, or OSError (ENOENT, EACCES, EISDIR, ELOOP...) naming path."""
    if not path:
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    walk = _Walk(path, replace)
    try:
        fd, name = walk.parent(path, None)
        try:
            return walk.last(fd, name, mode)
        finally:
            os.close(fd)
    except RefusedPath:
        raise
    except OSError as e:  # about a name on the way: the caller names the path given
        raise OSError(e.errno, e.strerror, path) from None


def opener(*, replace: bool, mode: int = 0o666) -> Callable[[str, int], int]:
    """open_output as an opener for open(), which then names the stream by its path."""
    return lambda path, flags: open_output(path, replace=replace, mode=mode)


class _Walk:
    """One resolution of a path, counting the symbolic links it follows."""

    def __init__(self, path: str, replace: bool) -> None:
        self.path, self.replace = path, replace
        self.euid = os.geteuid()
        self.trusted = {0, self.euid}
        self.links = 0
        try:
            self.proc_dev = os.stat("/proc").st_dev
        except OSError:
            self.proc_dev = -1

    def refuse(self, reason: str = NOT_OWNED) -> RefusedPath:
        return RefusedPath(self.path, self.replace, reason)

    def error(self, code: int) -> OSError:
        return OSError(code, os.strerror(code), self.path)

    def count_link(self) -> None:
        self.links += 1
        if self.links > MAX_LINKS:
            raise self.error(errno.ELOOP)

    def in_proc(self, dir_fd: int) -> bool:
        return os.fstat(dir_fd).st_dev == self.proc_dev

    # --- directories -------------------------------------------------------------------
    def parent(self, path: str, base: int | None) -> tuple[int, str]:
        """(a descriptor of the directory holding path's last name, that name);
        a relative path starts at base (the current directory if None)."""
        if path.startswith("/"):
            fd = os.open("/", _DIR)
        else:
            fd = os.open(".", _DIR, dir_fd=base) if base is not None else os.open(".", _DIR)
        parts = path.split("/")
        for name in parts[:-1]:
            if name not in ("", "."):
                fd = self.step(fd, name)  # closes fd, also when it raises
        return fd, parts[-1] or "."

    def step(self, fd: int, name: str) -> int:
        """Into the directory `name` of fd (fd is closed); a link is followed
        only if it is root's or the caller's."""
        try:
            return self._step(fd, name)
        finally:
            os.close(fd)

    def _step(self, fd: int, name: str) -> int:
        nfd = os.open(name, _LINK, dir_fd=fd)
        try:
            st = os.fstat(nfd)
            if stat.S_ISDIR(st.st_mode):
                found, nfd = nfd, -1
                return found
            if not stat.S_ISLNK(st.st_mode):
                raise self.error(errno.ENOTDIR)
            if st.st_uid not in self.trusted:
                raise self.refuse(f"symbolic link '{name}' is {NOT_OWNED}")
            self.count_link()
            if self.in_proc(fd):
                return os.open(name, _DIR, dir_fd=fd)  # a /proc link: the kernel's to follow
            target = os.readlink("", dir_fd=nfd)  # the very link checked above
            pfd, last = self.parent(target, fd)
            return pfd if last == "." else self.step(pfd, last)
        finally:
            if nfd >= 0:
                os.close(nfd)

    # --- the last name -----------------------------------------------------------------
    def last(self, fd: int, name: str, mode: int) -> int:
        """Open (or create) `name` in directory fd by the module's rules."""
        held: list[int] = []  # directory descriptors opened while following links
        try:
            for _ in range(MAX_LINKS + 8):
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    st = None
                if st is None:
                    try:
                        new = os.open(name, _WRITE | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                                      mode, dir_fd=fd)  # fmt: skip
                    except FileExistsError:
                        continue  # someone made it meanwhile: look again
                    return new
                kind = st.st_mode
                owned = st.st_uid in self.trusted
                if stat.S_ISLNK(kind):
                    if not owned:
                        if not self.replace:
                            raise self.refuse()
                        self.remove(fd, name)
                        continue
                    self.count_link()
                    if self.in_proc(fd):  # /dev/stdout's /proc/self/fd/1: an open file
                        return os.open(name, _WRITE, dir_fd=fd)
                    lfd = os.open(name, _LINK, dir_fd=fd)
                    try:
                        lst = os.fstat(lfd)
                        if not stat.S_ISLNK(lst.st_mode) or lst.st_uid not in self.trusted:
                            continue  # swapped since the lstat: look again
                        target = os.readlink("", dir_fd=lfd)
                    finally:
                        os.close(lfd)
                    fd, name = self.parent(target, fd)
                    held.append(fd)
                    continue
                if stat.S_ISDIR(kind):
                    raise self.error(errno.EISDIR)
                if stat.S_ISREG(kind):
                    if self.replace:
                        self.remove(fd, name)
                        continue
                    if st.st_uid != self.euid:
                        raise self.refuse()
                    if st.st_nlink > 1 and self.shared(fd):
                        raise self.refuse("it has other hard links")
                elif not owned:
                    if not self.replace:
                        raise self.refuse()
                    self.remove(fd, name)
                    continue
                # a regular file is opened without waiting: were it swapped for
                # a FIFO meanwhile, the open must not hang for want of a reader
                nowait = os.O_NONBLOCK if stat.S_ISREG(kind) else 0
                try:
                    new = os.open(name, _WRITE | os.O_NOFOLLOW | nowait, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ENXIO, errno.ELOOP) and stat.S_ISREG(kind):
                        continue  # swapped for a FIFO or a link: look again
                    raise
                got = os.fstat(new)
                if (got.st_dev, got.st_ino) == (st.st_dev, st.st_ino):
                    os.set_blocking(new, True)
                    return new
                os.close(new)  # replaced between the lstat and the open: look again
            raise self.error(errno.ELOOP)
        finally:
            for h in held:
                os.close(h)

    def remove(self, fd: int, name: str) -> None:
        try:
            os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            pass

    def shared(self, fd: int) -> bool:
        """May another user add names to directory fd (a hard link to root's file)?"""
        st = os.fstat(fd)
        return st.st_uid not in self.trusted or bool(st.st_mode & 0o022)


# --- write errors ----------------------------------------------------------------------
def silence(stream: Any) -> None:
    """Point a stream's descriptor at /dev/null after a failed write, so that
    what it still holds (and Python's flush at exit) goes nowhere quietly."""
    try:
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    except (OSError, ValueError, AttributeError):
        return  # no descriptor (a StringIO): nothing is pending on one
    try:
        os.dup2(null, fd, inheritable=fd <= 2)
    finally:
        os.close(null)


def write_failure(name: str, error: OSError) -> str | None:
    """The line reporting a failed write, in dtrace's words. A reader that went
    away (EPIPE, `| head`) is reported too: the run ends early, and says why."""
    reason = error.strerror or os.strerror(error.errno or errno.EIO)
    return f"failed to write to {name}: {reason}"


class OutputFailed(Exception):
    """A write to `name` failed (raised by a GuardedOutput without a handler)."""

    def __init__(self, name: str, error: OSError) -> None:
        super().__init__(f"{name}: {error}")
        self.name, self.error = name, error

    def line(self) -> str | None:
        return write_failure(self.name, self.error)


class GuardedOutput:
    """A text or binary stream whose first failed write or flush is caught:
    its descriptor is pointed at /dev/null (what the stream still holds, and
    Python's flush at exit, go nowhere without another error), later writes
    are dropped, and on_error(OutputFailed) is called (without a handler,
    OutputFailed is raised). Other attributes are the stream's.

    A text stream straight over its file (sys.stdout under PYTHONUNBUFFERED,
    `python -u`, which many container images set) is written here, to the
    end: a write that a signal interrupts part-way (Ctrl-C while a pipe's
    reader is behind) comes back short, and the text layer dropped the rest
    without a word (two thirds of a Ctrl-C'd run's output)."""

    def __init__(
        self,
        stream: Any,
        name: str | None = None,
        on_error: Callable[[OutputFailed], None] | None = None,
    ) -> None:
        self.stream = stream
        if name is None:
            n = getattr(stream, "name", None)
            name = n if isinstance(n, str) else "<output>"
        self.name = name
        self.on_error = on_error
        self.failed: OutputFailed | None = None
        raw = getattr(stream, "buffer", None)
        self._raw = (
            raw if isinstance(stream, io.TextIOWrapper) and isinstance(raw, io.RawIOBase) else None
        )

    def write(self, data: Any) -> int:
        if self.failed is None:
            try:
                if self._raw is not None and isinstance(data, str):
                    return self._write_whole(data)
                return self.stream.write(data)
            except OSError as e:
                self._fail(e)
        return len(data)

    def _write_whole(self, text: str) -> int:
        """text, encoded as the stream encodes, written to the end (a short
        write is continued; a non-blocking file that is full waits)."""
        self.stream.flush()  # what its own writes may hold (none under -u's write_through)
        data = memoryview(text.encode(self.stream.encoding, self.stream.errors or "strict"))
        while data:
            n = self._raw.write(data)  # type: ignore[union-attr]
            if n is None:  # O_NONBLOCK, full: wait until it takes more
                select.select([], [self._raw], [])
                continue
            data = data[n:]
        return len(text)

    def flush(self) -> None:
        if self.failed is None:
            try:
                self.stream.flush()
            except OSError as e:
                self._fail(e)

    def close(self) -> None:
        try:
            self.stream.close()
        except OSError as e:
            if self.failed is None:
                self._fail(e)

    def _fail(self, error: OSError) -> None:
        self.failed = failed = OutputFailed(self.name, error)
        silence(self.stream)
        if self.on_error is None:
            raise failed from None
        self.on_error(failed)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.stream, attr)


class OpenFailed(Exception):
    """A LaterFile could not be opened: error is open_output's (RefusedPath or
    OSError). Not an OSError itself: a GuardedOutput reports write failures,
    and this is none."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error

    def line(self, path: str) -> str:
        if isinstance(self.error, RefusedPath):
            return str(self.error)
        return f"failed to open {path}: {self.error.strerror or self.error}"


class LaterFile:
    """A binary file opened by open_output at its first write: a run that fails
    before it writes anything (kdump --timeline of a file that is no trace)
    leaves no file behind. Writes are buffered; close() flushes and closes.
    A failed open raises OpenFailed."""

    def __init__(self, path: str, *, replace: bool, mode: int = 0o666) -> None:
        self.name, self.replace, self.mode = path, replace, mode
        self.file: Any = None

    def open(self) -> Any:
        if self.file is None:
            try:
                fd = open_output(self.name, replace=self.replace, mode=self.mode)
            except OSError as e:
                raise OpenFailed(e) from None
            self.file = open(fd, "wb")
        return self.file

    def write(self, data: bytes) -> int:
        return self.open().write(data)

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def fileno(self) -> int:
        return self.open().fileno()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
