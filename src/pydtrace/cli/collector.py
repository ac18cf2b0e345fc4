"""The garbage collector around a command's start-up.

Start-up (imports, parsing, checking, code generation) makes tens of
thousands of long-lived objects and next to no cyclic garbage; the
collector's two dozen passes over them were 3 ms of the time to a
one-liner's first output. A command pauses it for start-up and lets it run
again when the engine starts, over what the run makes only: what start-up
made is frozen (a first pass over all of it would cost what was saved).
"""

from __future__ import annotations

import gc


class StartUp:
    """Made at the command's start (the collector pauses); started() is the
    Session's on_start; end() when the command returns (a caller of main()
    in its own process gets the collector back as it was)."""

    def __init__(self) -> None:
        self.was_on = gc.isenabled()
        gc.disable()

    def started(self, engine: object = None) -> None:
        if self.was_on and not gc.isenabled():
            gc.freeze()
            gc.enable()

    def end(self) -> None:
        if self.was_on:
            gc.unfreeze()
            gc.enable()
