"""The fault that abandons a clause in the user-space engine.

Raised by the interpreter and by the subroutines it calls (division by zero,
a bad address, ...); the engine catches it, discards the clause's record and
fires ERROR, as dtrace does.
"""

from __future__ import annotations


class ProbeFault(Exception):
    """A fault: dtrace's fault code (consume.records), its value (the bad
    address, say) and the pc of the D expression that faulted."""

    def __init__(self, code: int, value: int, pc: int) -> None:
        super().__init__(code)
        self.code = code
        self.value = value
        self.pc = pc
