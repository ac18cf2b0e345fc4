"""A command's start-up: the garbage collector paused, Ctrl-C, and the
compile its command line last kept, loading as soon as the command starts.

Start-up (imports, parsing, checking, code generation) makes tens of
thousands of long-lived objects and next to no cyclic garbage; the
collector's two dozen passes over them were 3 ms of the time to a
one-liner's first output. A command pauses it for start-up and lets it run
again when the engine starts, over what the run makes only: what start-up
made is frozen (a first pass over all of it would cost what was saved).

A Ctrl-C before the engine installs its own handler ends the command with
"interrupted before tracing began", status 1. Python's own handler cannot
promise that, in two ways:
- CPython marks the process to kill itself with SIGINT at exit when a
  KeyboardInterrupt, that exact type, ends an exec() or eval() of a string,
  even one the caller then catches. Start-up makes dataclasses and named
  tuples, which are exec()'d strings, so a Ctrl-C landing there made the
  command exit -SIGINT instead of 1. Ours raises a subclass, which CPython
  does not mark.
- A KeyboardInterrupt raised inside a weakref callback or a __del__ (the
  import system has one) is printed as "Exception ignored" and lost: the
  command went on to trace. Ours remembers the Ctrl-C, keeps it out of the
  "Exception ignored" report, and stops the run as soon as it starts.

The entry a command line's last run kept (engines/ebpf/program_cache.py)
is read first of all, and its programs start loading on a thread while
the command imports the rest and reads its options: the kernel's verifier
then works while Python starts, instead of after. The session uses the
entry if its key is the program's (else the load was in vain).
"""

from __future__ import annotations

import _signal  # (signal's enums cost 2 ms, before the kept program starts loading)
import gc
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a command's start-up (see the module's docstring)."""


class StartUp:
    """Made at the command's start (the collector pauses, Ctrl-C raises
    Interrupted); started() is the Session's on_start; end() when the command
    returns (a caller of main() in its own process gets the collector, the
    SIGINT handler and sys.unraisablehook back as they were)."""

    def __init__(self) -> None:
        self.was_on = gc.isenabled()
        gc.disable()
        self.interrupted = False
        self.keep_as: str | None = None  # the command line's slot (program_cache.slot_of)
        self.early: Any = None  # its entry, loading (program_cache.Early), until a session takes it
        self._unraisable: Any = None
        # only where Python's own handler is in place: a caller's is the caller's
        if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
            try:
                _signal.signal(_signal.SIGINT, self._interrupt)
            except ValueError:  # not the main thread: no handler of ours
                return
            self._unraisable = sys.unraisablehook
            sys.unraisablehook = self._unraisable_hook

    def look_ahead(self, command: str, argv: list[str]) -> None:
        """Read the entry this command line's last run kept, and start
        loading its programs."""
        from pydtrace.engines.ebpf import program_cache

        self.keep_as = program_cache.slot_of(command, argv)
        self.early = program_cache.look_ahead(self.keep_as)

    def keep(self, session: Any) -> None:
        """Have the session keep its compile in this command line's slot,
        starting from the entry looked up (see the module's docstring)."""
        session.keep_as, session.early, self.early = self.keep_as, self.early, None

    def _interrupt(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        raise Interrupted

    def _unraisable_hook(self, unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, Interrupted):
            self._unraisable(unraisable)
        # else: lost where it was raised; started() stops the run instead

    def started(self, engine: Any = None) -> None:
        """The engine is about to run, its own handler installed."""
        if self.interrupted and engine is not None:
            engine.stop()  # a Ctrl-C that start-up lost: the run ends at once
        if self.was_on and not gc.isenabled():
            gc.freeze()
            gc.enable()

    def end(self) -> None:
        if self.early is not None:  # no session took it
            self.early.close()
            self.early = None
        if self._unraisable is not None:
            if _signal.getsignal(_signal.SIGINT) == self._interrupt:
                _signal.signal(_signal.SIGINT, _signal.default_int_handler)
            if sys.unraisablehook == self._unraisable_hook:
                sys.unraisablehook = self._unraisable
            self._unraisable = None
        if self.was_on:
            gc.unfreeze()
            gc.enable()
