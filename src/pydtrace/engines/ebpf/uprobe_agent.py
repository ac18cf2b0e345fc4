"""The process that registers and removes the engine's uprobes (pid and usdt
probes), so that no way of ending pydtrace leaves one in the kernel.

Linux gives up removing a uprobe when the task removing it has a fatal
signal pending: uprobe_unregister() writes the original instruction back
into each process that has the breakpoint through get_user_pages(), which
fails with EINTR under a pending SIGKILL, and on that failure keeps the
uprobe for good ("uprobe: COMM:PID failed to unregister, leaking uprobe" in
the kernel log). The removal runs in the task that registers (the error path
of a LINK_CREATE or perf_event_open that a SIGKILL cut short) or that drops
the last reference to the link or perf event (a close() that a SIGKILL, or
another thread's exit_group(), overtakes). A kept uprobe has no consumer, no
fd and no uprobe_events line, yet stays in the kernel's tree until reboot,
and every mmap of its file walks the ones in its range (uprobe_mmap): on a
machine where `pid$target:libc.so.6::` runs had been killed while attaching,
every exec of a dynamically linked program cost 0.2 s after.
A SIGKILL at any other moment (the last close then runs in do_exit, where
nothing is pending) leaves nothing. docs/internals/pid-provider.md has the details.

So the engine never registers or removes a uprobe itself. UprobeAgent forks
an agent (a grandchild, reparented at once, in a session of its own, with
every signal blocked: a Ctrl-C at the terminal, a kill of pydtrace's process
group or a test's timeout do not reach it) that opens the attachments,
holds them, and closes them when pydtrace says so or is gone (EOF on its
pipe), then exits. The engine waits for that exit (EOF on the other pipe),
so a run that ends normally has removed its breakpoints before it returns.
Only a SIGKILL aimed at the agent itself (named uprobe-holder, comm and
command line, so that a pkill of pydtrace misses it) while it registers or
removes could still leave uprobes behind.
"""

from __future__ import annotations

import os
import select

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from pydtrace.engines.signals import StopFlag

NAME = "uprobe-holder"  # the agent's comm and command line (ps, the kernel log)
_OK, _ERR = b"K", b"E"  # its answer once attached: every job, or the first refusal


class AgentError(Exception):
    """The agent refused or failed; str() is the sentence to report."""


class UprobeAgent:
    """The agent of one engine run: jobs are (program fd, ProgSpec.attach)
    pairs of the kinds in attach.UPROBE_KINDS, attached in order."""

    def __init__(self, jobs: list[tuple[int, tuple[Any, ...]]]) -> None:
        ctl_r, self.ctl = os.pipe()  # ours -> agent: EOF = detach everything and exit
        self.res, res_w = os.pipe()  # agent -> ours: its answer, then EOF when it has exited
        try:
            pid = os.fork()
        except OSError as e:
            for fd in (ctl_r, self.ctl, self.res, res_w):
                os.close(fd)
            why = e.strerror
            raise AgentError(f"cannot start the process that attaches uprobes: {why}") from None
        if pid == 0:
            _agent(jobs, ctl_r, res_w)
        os.close(ctl_r)
        os.close(res_w)
        self.middle = pid  # the intermediate child: it exits at once, reaped in close()

    def wait_attached(self, stopping: StopFlag) -> None:
        """Return once every job is attached, or as soon as stopping is set
        (Ctrl-C: the agent stops at the next job once detach() is called);
        AgentError with the kernel's refusal of the first job that failed."""
        while not stopping.is_set():
            ready, _, _ = select.select([self.res], [], [], 0.1)
            if not ready:
                continue
            answer = os.read(self.res, 1 << 16)  # one write, under PIPE_BUF: read whole
            if answer == _OK:
                return
            if answer.startswith(_ERR):
                raise AgentError(answer[1:].decode(errors="replace"))
            raise AgentError("the process attaching uprobes ended before it was done")

    def detach(self) -> None:
        """Tell the agent to close every attachment (it stops attaching first)."""
        if self.ctl >= 0:
            os.close(self.ctl)
            self.ctl = -1

    def close(self) -> None:
        """detach(), then wait until the agent has exited: its uprobes are
        gone from the kernel. Idempotent."""
        self.detach()
        if self.res >= 0:
            try:
                while os.read(self.res, 1 << 16):
                    pass
            finally:
                os.close(self.res)
                self.res = -1
        if self.middle > 0:
            try:
                os.waitpid(self.middle, 0)
            except ChildProcessError:
                pass  # reaped by someone else's waitpid(-1)
            self.middle = 0


def _agent(jobs: list[tuple[int, tuple[Any, ...]]], ctl: int, res: int) -> NoReturn:
    """The forked child: never returns into the caller's code."""
    try:
        import gc
        import signal

        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        os.setsid()  # out of pydtrace's process group and terminal
        if os.fork():
            os._exit(0)  # the agent is no child of pydtrace's: it outlives it
        gc.disable()  # a collection would touch (copy) all of pydtrace's memory
        progs = {fd for fd, _ in jobs}
        _keep_only({ctl, res} | progs)
        _rename()
        _serve(jobs, progs, ctl, res)
    finally:
        os._exit(0)


def _rename() -> None:
    """Name the agent NAME, as its comm and its command line (written over
    the original argv strings, as setproctitle does; Python keeps copies):
    a `pkill pydtrace` or `pkill -f pydtrace` aimed at pydtrace while the
    agent registers or removes would leave uprobes behind."""
    import ctypes

    try:
        with open("/proc/self/comm", "w") as f:
            f.write(NAME)
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48, 49)
    except (OSError, ValueError, IndexError):
        return
    name = NAME.encode()
    if start and end - start > len(name):
        ctypes.memset(start, 0, end - start)
        ctypes.memmove(start, name, len(name))


def _keep_only(keep: set[int]) -> None:
    """Close every inherited descriptor but keep (another session's pipes, the
    ring buffer, pydtrace's stdout: a reader waiting for its EOF must not
    wait for us); 0-2 become /dev/null."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        if fd != null:
            os.dup2(null, fd)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own descriptor, closed meanwhile


def _serve(jobs: list[tuple[int, tuple[Any, ...]]], progs: set[int], ctl: int, res: int) -> None:
    from pydtrace.engines.ebpf import perf
    from pydtrace.engines.ebpf.attach import OPENERS

    held: list[Any] = []
    try:
        answer = _OK
        for fd, attach in jobs:
            if _readable(ctl):  # detach() or pydtrace gone: attach no more
                answer = b""
                break
            try:
                held.extend(OPENERS[attach[0]](fd, attach))
            except Exception as e:  # PerfError and BPFError: the kernel's refusal, as a sentence
                answer = _ERR + str(e).encode(errors="replace")[: select.PIPE_BUF - 1]
                break
        for fd in progs:  # the links and perf events hold their programs
            os.close(fd)
        if answer:
            try:
                os.write(res, answer)
            except OSError:
                pass  # EPIPE: pydtrace died during the last job; ctl reads EOF too
        while not _readable(ctl, None):
            pass
    finally:
        # Whatever happens, the attachments close here and not in our exit:
        # exit_mm comes before exit_files, so a process that exited holding
        # them would still be removing uprobes after /proc stopped showing
        # its command line and environment (what pydtrace's tests wait on).
        # Each removal waits for grace periods: from many threads they overlap.
        perf.close_in_parallel(held, 256)


def _readable(fd: int, timeout: float | None = 0) -> bool:
    """Is there a byte or EOF on fd? (ours never writes: EOF, once it closed or exited)"""
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    except InterruptedError:
        return False
