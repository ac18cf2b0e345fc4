"""Ctrl-C and SIGTERM during a run, the same for every engine.

A module of its own so that the eBPF and tracefs engines install the handlers
without importing the user engine (its interpreter is a good part of a
one-liner's start-up).
"""

from __future__ import annotations

import _signal as signal  # (signal.py imports enum: 4 ms of a kept one-liner's start)
import os
import select
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


class StopFlag:
    """A one-way threading.Event that a signal handler may set.

    threading.Event.set() takes the lock that Event.wait() holds while it
    takes its condition back after waiting; a handler that runs in the main
    thread at that moment waits for itself forever (Ctrl-C during a run
    whose loop waits on the event hung pydtrace: a handler runs between two
    of the main thread's bytecodes, wherever they are). set() here takes no
    lock: it sets a flag and writes a byte to a pipe that wait() selects on,
    so a wait in any thread ends at once. There is no clear()."""

    def __init__(self) -> None:
        self._set = False
        self._r, self._w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        w = self._w
        if w >= 0:
            try:
                os.write(w, b"!")  # never read: the pipe stays readable
            except OSError:
                pass

    def wait(self, timeout: float | None = None, also: Sequence[int] = ()) -> bool:
        """Until set, or one of the descriptors `also` is readable, or timeout
        seconds have passed; whether it is set."""
        if self._set:
            return True
        r = self._r
        if r >= 0:
            select.select([r, *also], [], [], timeout)
            return self._set
        # closed (the run is over): the flag alone, looked at every 10 ms
        end = None if timeout is None else time.monotonic() + timeout
        while not self._set and (end is None or time.monotonic() < end):
            time.sleep(0.01 if end is None else max(min(0.01, end - time.monotonic()), 0))
        return self._set

    def fileno(self) -> int:
        """Readable once set: a poll() may wait for it beside other files
        (-1 once closed)."""
        return self._r

    def close(self) -> None:
        """Close the pipe (the engine's close: a run leaves no descriptor
        open); the flag still works. Its numbers are forgotten before they
        are closed, so a handler never writes to a number reused meanwhile."""
        r, w = self._r, self._w
        self._r = self._w = -1
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass


class WakeUp(Exception):
    """Raised by the signal handler to end a blocking wait for tracee events."""


def saved_handlers() -> dict[int, Any] | None:
    """The SIGINT and SIGTERM handlers as they are (None off the main thread,
    where none is installed), for restore_handlers() once the run is over."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}


def restore_handlers(saved: dict[int, Any] | None) -> None:
    """Put back what saved_handlers() saw: a run's handlers are for that run
    (a Python caller's Ctrl-C raises KeyboardInterrupt again afterwards)."""
    for sig, h in (saved or {}).items():
        if h is not None:  # None: set outside Python, nothing to put back
            signal.signal(sig, h)


def install_signal_handlers(engine: Any) -> None:
    """First SIGINT/SIGTERM: orderly stop (END, aggregations); a second: abort.

    engine: any engine (.stop(), and .tracer: the ptrace Tracer or the held
    -c/-p targets, or None)."""
    count = {"n": 0}

    def handler(signum: int, frame: Any) -> None:
        count["n"] += 1
        if count["n"] > 1:
            if engine.tracer is not None:
                engine.tracer.finish()  # never leave a tracee stopped
            os._exit(1)
        engine.stop()
        if engine.tracer is not None and engine.tracer.in_wait:
            raise WakeUp  # break out of a blocking waitpid

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
