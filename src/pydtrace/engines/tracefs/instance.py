"""A tracefs instance of our own, `instances/pydtrace-<pid>`: its own ring
buffer, its own enabled events and filters, so the global buffer and other
tracers are never disturbed. Created at the start, removed at every end
(removing an instance disables its events and drops its filters and
buffers in the kernel); one whose pid is dead (a run killed with SIGKILL)
is removed by the next run's start."""

from __future__ import annotations

import errno
import os
import re

from pydtrace.lang.dataclass import dataclass, field
from pydtrace.probes import tracefs

PREFIX = "pydtrace-"
_NAME = re.compile(r"^pydtrace-(\d+)$")


class InstanceError(OSError):
    """A step of setting the instance up failed; str() is a full sentence."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def instances_dir() -> str:
    return os.path.join(tracefs.root(), "instances")


def writable() -> bool:
    """May this process make a tracefs instance (root, tracefs mounted)?"""
    try:
        return os.access(instances_dir(), os.W_OK)
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Remove every pydtrace-<pid> instance whose process is gone; their names."""
    removed = []
    try:
        names = os.listdir(instances_dir())
    except OSError:
        return removed
    for name in names:
        m = _NAME.match(name)
        if m is None or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        if _remove(os.path.join(instances_dir(), name)):
            removed.append(name)
    return removed


def _remove(path: str) -> bool:
    """Disable the instance's events, then remove it (rmdir frees everything else)."""
    try:
        _write(os.path.join(path, "tracing_on"), "0")
        _write(os.path.join(path, "events", "enable"), "0")
    except OSError:
        pass
    for _ in range(50):  # EBUSY while a reader still holds a file of it
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY:
                return False
            import time

            time.sleep(0.02)
    return False


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@dataclass
class Instance:
    """Our instance: enabling and filtering events, reading its buffers."""

    path: str = ""
    enabled: list[tuple[str, str]] = field(default_factory=list)
    filters: dict[tuple[str, str], str] = field(default_factory=dict)
    pid_filter: list[int] = field(default_factory=list)

    def create(self) -> None:
        remove_stale()
        path = os.path.join(instances_dir(), f"{PREFIX}{os.getpid()}")
        if os.path.isdir(path):  # ours from an earlier Session of this process
            _remove(path)
        try:
            os.mkdir(path)
        except OSError as e:
            raise InstanceError(f"cannot create tracefs instance {path}: {e.strerror}") from None
        self.path = path
        self.set("tracing_on", "0")
        # one clock for every CPU, so that their events merge in order; and the
        # clock of dtrace's timestamp (CLOCK_MONOTONIC)
        self.set("trace_clock", "mono")
        # a full buffer drops new events (dtrace's drops), never overwrites old ones
        self.set("options/overwrite", "0")

    def set(self, rel: str, value: str) -> None:
        try:
            _write(os.path.join(self.path, rel), value)
        except OSError as e:
            raise InstanceError(
                f"cannot write '{value}' to {os.path.join(self.path, rel)}: {e.strerror}"
            ) from None

    def get(self, rel: str) -> str:
        with open(os.path.join(self.path, rel)) as f:
            return f.read()

    def buffer_kb(self, kb: int) -> None:
        self.set("buffer_size_kb", str(max(kb, 1)))

    def set_filter(self, group: str, event: str, text: str) -> bool:
        """Write an event's filter; False when the kernel refuses it (the whole
        predicate is then evaluated in Python: never a narrower filter)."""
        try:
            _write(os.path.join(self.path, "events", group, event, "filter"), text)
        except OSError:
            return False
        self.filters[(group, event)] = text
        return True

    def trace_pids(self, pids: list[int]) -> None:
        """Record only these tasks and, with event-fork, the tasks they create."""
        self.set("options/event-fork", "1")
        self.set("set_event_pid", " ".join(str(p) for p in pids))
        self.pid_filter = list(pids)

    def enable(self, group: str, event: str) -> None:
        self.set(f"events/{group}/{event}/enable", "1")
        self.enabled.append((group, event))

    def cpu_file(self, cpu: int, name: str) -> str:
        return os.path.join(self.path, "per_cpu", f"cpu{cpu}", name)

    def remove(self) -> None:
        """Stop recording, disable every event and remove the instance (idempotent)."""
        if not self.path:
            return
        path, self.path = self.path, ""
        _remove(path)
