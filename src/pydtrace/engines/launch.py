"""Target processes for kernel engines (-c and -p without ptrace).

`-c cmd` forks a child that waits, blocked reading a pipe, before it execs:
nothing of the command runs until every probe is attached and release() is
called (dtrace's "created" process). `-p pid` only checks that the process
exists. Every target is watched with a pidfd (pidfd_open, Linux 5.3), which
polls readable once the process has ended, so an engine's poll loop can wait
on the ring buffer and the targets at once. finish() kills -c children still
running (as dtrace does, see engines/user/ptrace/tracer.Tracer.finish), reaps
them, leaves -p processes alone, and closes every fd.

The engine-facing contract (EbpfEngine's `targets=`): release(), fds(),
gone(fd), live.
"""

from __future__ import annotations

import _signal as signal  # (signal.py imports enum: 4 ms of a start-up)
import errno
import os

from pydtrace.lang.dataclass import dataclass, field

_GO = b"g"  # the byte that lets a held child exec; EOF without it: give up


class LaunchError(Exception):
    """A target could not be created or grabbed; str() is dtrace's message."""


def close_private_fds(*keep: int) -> None:
    """In a held child before exec: close the descriptors exec would close
    (close-on-exec: the tracer's own) but those in keep. Another session of
    this process may be holding a child of its own, whose gate and error pipe
    it waits on for EOF: this child must not keep copies of them open."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                if not os.get_inheritable(fd):
                    os.close(fd)
            except OSError:
                pass  # the listing's own descriptor, closed meanwhile


@dataclass
class Target:
    pid: int
    created: bool  # -c (ours to reap and to kill at the end) or -p
    argv: list[str] = field(default_factory=list)
    pidfd: int = -1
    gate: int = -1  # write end of the pipe the -c child waits on
    errpipe: int = -1  # read end: the child's exec errno, EOF once exec succeeded
    ended: bool = False
    status: int | None = None  # wait status of a reaped -c child


class Targets:
    """The -c and -p processes of one session."""

    def __init__(self) -> None:
        self.targets: list[Target] = []
        self.released = False
        self.in_wait = False  # read by the signal handler (the ptrace Tracer's attribute)

    # --- starting ------------------------------------------------------------------
    def spawn(self, argv: list[str]) -> int:
        """Fork a child for argv, held before exec until release()."""
        err = _exec_check(argv[0])
        if err:
            raise LaunchError(f"failed to execute {argv[0]}: {os.strerror(err)}")
        gate_r, gate_w = os.pipe()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # the child: plain system calls only, never back into the caller
            code = errno.ENOEXEC
            try:
                # Ctrl-C at the terminal reaches the held child too: it dies of it, as
                # the command would, rather than raise KeyboardInterrupt in our code
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                close_private_fds(gate_r, err_w)
                go = os.read(gate_r, 1)
                if go != _GO:
                    os._exit(127)  # the session ended before releasing us
                os.close(gate_r)
                # Python ignores SIGPIPE and SIGXFSZ; exec keeps ignored signals
                for sig in (signal.SIGPIPE, signal.SIGXFSZ):
                    signal.signal(sig, signal.SIG_DFL)
                os.execvp(argv[0], argv)
            except OSError as e:
                code = e.errno or errno.ENOEXEC
            except BaseException:
                pass
            try:
                os.write(err_w, str(code).encode())
            finally:
                os._exit(127)
        os.close(gate_r)
        os.close(err_w)
        t = Target(pid, True, list(argv), gate=gate_w, errpipe=err_r)
        self.targets.append(t)
        try:
            t.pidfd = os.pidfd_open(pid)
        except OSError as e:
            self.finish()
            raise LaunchError(f"failed to watch pid {pid}: {e.strerror}") from None
        return pid

    def grab(self, pid: int) -> None:
        """Watch an existing process (-p): no ptrace, it is not stopped."""
        try:
            fd = os.pidfd_open(pid)
        except OSError as e:
            raise LaunchError(f"failed to grab pid {pid}: {e.strerror}") from None
        except OverflowError:  # beyond pid_t: no process has it
            raise LaunchError(f"failed to grab pid {pid}: {os.strerror(errno.ESRCH)}") from None
        _forget(pid)  # a symbol snapshot of a process that had the pid before
        self.targets.append(Target(pid, False, pidfd=fd))

    @property
    def pids(self) -> list[int]:
        return [t.pid for t in self.targets]

    # --- the engine's side ---------------------------------------------------------------
    def release(self) -> None:
        """Let every held -c child exec (once). Raise LaunchError when an exec fails."""
        if self.released:
            return
        self.released = True
        failure = ""
        for t in self.targets:
            if t.gate < 0:
                continue
            try:
                os.write(t.gate, _GO)
            except OSError:
                pass  # it died already: its pidfd tells
            os.close(t.gate)
            t.gate = -1
            data = _read_all(t.errpipe)  # EOF as soon as exec succeeded
            os.close(t.errpipe)
            t.errpipe = -1
            # a symbol snapshot of the pid taken before (of the held child, or
            # of another process that had the pid) is not of the new image
            _forget(t.pid)
            if data and not failure:
                try:
                    e = int(data)
                except ValueError:
                    e = errno.ENOEXEC
                failure = f"failed to execute {t.argv[0]}: {os.strerror(e)}"
        if failure:
            raise LaunchError(failure)

    def fds(self) -> list[int]:
        """The pidfds of targets still running (POLLIN once one ends)."""
        return [t.pidfd for t in self.targets if not t.ended and t.pidfd >= 0]

    def gone(self, fd: int) -> bool:
        """fd polled readable: has its target ended? Reaps a -c child."""
        for t in self.targets:
            if t.pidfd == fd and not t.ended:
                if t.created:
                    pid, status = _wait(t.pid, os.WNOHANG)
                    if pid == 0:
                        return False
                    t.status = status
                t.ended = True
                return True
        return False

    @property
    def live(self) -> int:
        """How many targets have not ended."""
        return sum(1 for t in self.targets if not t.ended)

    # --- ending ----------------------------------------------------------------------------
    def finish(self) -> None:
        """Kill -c children still running, reap them, close every fd. Idempotent."""
        for t in self.targets:
            if t.created and not t.ended:
                if t.gate >= 0:  # never released: it exits by itself on EOF
                    os.close(t.gate)
                    t.gate = -1
                try:
                    os.kill(t.pid, signal.SIGKILL)
                except OSError:
                    pass
                _, t.status = _wait(t.pid, 0)
            t.ended = True
            for name in ("gate", "errpipe", "pidfd"):
                fd = getattr(t, name)
                if fd >= 0:
                    os.close(fd)
                    setattr(t, name, -1)

    def __enter__(self) -> Targets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()


def _exec_check(path: str) -> int:
    """The errno execvp would fail with for a missing or non-executable
    command (0 when it may run): reported before compiling, as dtrace does."""
    if not path:
        return errno.ENOENT
    if "/" in path:
        candidates = [path]
    else:
        dirs = os.environ.get("PATH", os.defpath).split(os.pathsep)
        candidates = [os.path.join(d or ".", path) for d in dirs]
    found = errno.ENOENT
    for c in candidates:
        if os.path.isdir(c):
            found = errno.EACCES
        elif os.path.exists(c):
            if os.access(c, os.X_OK):
                return 0
            found = errno.EACCES
    return found


def _read_all(fd: int) -> bytes:
    out = b""
    while True:
        try:
            part = os.read(fd, 64)
        except InterruptedError:
            continue
        if not part:
            return out
        out += part


def _wait(pid: int, flags: int) -> tuple[int, int]:
    while True:
        try:
            return os.waitpid(pid, flags)
        except InterruptedError:
            continue
        except ChildProcessError:
            return pid, 0


def _forget(pid: int) -> None:
    """symbols.process.forget (imported here: a run without -c/-p never needs it)."""
    from pydtrace.symbols.process import forget

    forget(pid)
