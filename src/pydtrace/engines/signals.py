"""Ctrl-C and SIGTERM during a run, the same for every engine.

A module of its own so that the eBPF and tracefs engines install the handlers
without importing the user engine (its interpreter is a good part of a
one-liner's start-up).
"""

from __future__ import annotations

import os
import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class WakeUp(Exception):
    """Raised by the signal handler to end a blocking wait for tracee events."""


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
