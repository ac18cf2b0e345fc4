"""Digit strings as D reads them (the lexer's, and the options' sizes and
times, which must not pay for the lexer's import)."""

from __future__ import annotations


def digits_value(digits: str, base: int = 10) -> int:
    """The value of a run of digits, at most 2**64 (2**64 standing for any larger
    value): int() refuses strings of more than 4300 decimal digits, and only
    whether a number passes 64 bits matters to D."""
    digits = digits.lstrip("0")
    if len(digits) > 22:  # more than 64 bits in any base of 8 or more
        return 1 << 64
    return min(int(digits or "0", base), 1 << 64)
