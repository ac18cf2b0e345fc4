"""Probe-description globbing.

dtrace-utils matches probe fields with glibc's fnmatch(pattern, s, 0): `*`,
`?`, bracket expressions (`[a-z]`, `[!x]` / `[^x]`, `[[:digit:]]`) and
backslash escapes; `/` and leading dots are not special.  On top of that an
empty pattern matches everything.  Python's fnmatch differs (no escapes, `[^`
is literal), hence this small translator to `re`.
"""

from __future__ import annotations

from functools import lru_cache

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

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


STAR = None  # a `*` among a pattern's parts; every other part matches one character


@lru_cache(maxsize=1024)
def _parts(pattern: str) -> tuple[re.Pattern[str] | None, ...] | None:
    """The pattern as parts: STAR, or a regex matching one character. None when
    nothing matches (a trailing backslash, as in glibc). Runs of `*` are one."""
    import re  # here: a kept program's run unpickles probes and matches none (re is 2-5 ms)

    out: list[re.Pattern[str] | None] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if not out or out[-1] is not STAR:
                out.append(STAR)
            continue
        if c == "?":
            rx = "[\\s\\S]"
        elif c == "\\":
            if i >= n:
                return None
            rx = re.escape(pattern[i])
            i += 1
        elif c == "[":
            br = _bracket(pattern, i)
            if br is None:
                rx = "\\["
            else:
                rx, i = br
        else:
            rx = re.escape(c)
        out.append(re.compile(rx, re.DOTALL))
    return tuple(out)


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str] | None:
    """A regex for a pattern of at most one `*` (no backtracking to speak of)."""
    import re

    parts = _parts(pattern)
    if parts is None:
        return None
    return re.compile("".join("[\\s\\S]*" if p is STAR else p.pattern for p in parts), re.DOTALL)


def _match_parts(parts: tuple[re.Pattern[str] | None, ...], s: str) -> bool:
    """Wildcard matching in O(len(parts) * len(s)): on a mismatch, the last `*`
    takes one more character (a regex of several `*` backtracks exponentially:
    400 stars before a probe name hung dtrace -n)."""
    p = i = 0
    star, mark = -1, 0
    n = len(parts)
    while i < len(s):
        if p < n and parts[p] is not STAR and parts[p].match(s[i]):  # type: ignore[union-attr]
            p += 1
            i += 1
        elif p < n and parts[p] is STAR:
            star, mark = p, i
            p += 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            i = mark
        else:
            return False
    while p < n and parts[p] is STAR:
        p += 1
    return p == n


def gmatch(pattern: str, s: str) -> bool:
    """Does s match the glob pattern?  An empty pattern matches anything."""
    if not pattern:
        return True
    parts = _parts(pattern)
    if parts is None:
        return False
    if sum(p is STAR for p in parts) <= 1:
        rx = _compile(pattern)
        return rx is not None and rx.fullmatch(s) is not None
    return _match_parts(parts, s)
