"""Probe-description globbing.

dtrace-utils matches probe fields with glibc's fnmatch(pattern, s, 0): `*`,
`?`, bracket expressions (`[a-z]`, `[!x]` / `[^x]`, `[[:digit:]]`) and
backslash escapes; `/` and leading dots are not special.  On top of that an
empty pattern matches everything.  Python's fnmatch differs (no escapes, `[^`
is literal), hence this small translator to `re`.
"""

from __future__ import annotations

import re
from functools import lru_cache

GLOB_CHARS = frozenset("[?*\\")

_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "\\x21-\\x7e",
    "lower": "a-z",
    "print": "\\x20-\\x7e",
    "punct": "!-/:-@\\[-`{-~",
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}

_NEVER = "(?!)"


def is_glob(s: str) -> bool:
    """True when s uses glob syntax (dtrace's strisglob: any of `[?*\\`)."""
    return any(c in GLOB_CHARS for c in s)


def _class_char(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c


def _bracket(pat: str, i: int) -> tuple[str, int] | None:
    """Translate the bracket expression starting after `[` at index i.

    Returns (regex, index after `]`) or None when there is no closing `]`,
    in which case the `[` is an ordinary character.
    """
    n = len(pat)
    negate = False
    if i < n and pat[i] in "!^":
        negate = True
        i += 1
    items: list[str] = []
    first = True
    while i < n:
        c = pat[i]
        if c == "]" and not first:
            body = "".join(items)
            if not body:
                return (_NEVER if not negate else "[\\s\\S]"), i + 1
            return ("[^" if negate else "[") + body + "]", i + 1
        first = False
        if c == "[" and i + 1 < n and pat[i + 1] == ":":
            end = pat.find(":]", i + 2)
            if end != -1 and pat[i + 2 : end] in _CLASSES:
                items.append(_CLASSES[pat[i + 2 : end]])
                i = end + 2
                continue
        if c == "\\" and i + 1 < n:
            i += 1
            c = pat[i]
        lo = c
        i += 1
        # a range lo-hi (a `-` just before `]` is literal)
        if i + 1 < n and pat[i] == "-" and pat[i + 1] != "]":
            hi = pat[i + 1]
            j = i + 2
            if hi == "\\" and j < n:
                hi = pat[j]
                j += 1
            if ord(hi) >= ord(lo):
                items.append(_class_char(lo) + "-" + _class_char(hi))
            i = j
            continue
        items.append(_class_char(lo))
    return None


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str] | None:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append("[\\s\\S]*")
        elif c == "?":
            out.append("[\\s\\S]")
        elif c == "\\":
            if i >= n:
                return None  # a trailing backslash never matches (glibc)
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "[":
            br = _bracket(pattern, i)
            if br is None:
                out.append("\\[")
            else:
                out.append(br[0])
                i = br[1]
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.DOTALL)


def gmatch(pattern: str, s: str) -> bool:
    """Does s match the glob pattern?  An empty pattern matches anything."""
    if not pattern:
        return True
    rx = _compile(pattern)
    return rx is not None and rx.fullmatch(s) is not None
