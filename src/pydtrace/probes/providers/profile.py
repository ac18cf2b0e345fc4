"""The profile provider: `profile:::profile-N` (every CPU) and `tick-N` (one CPU).

N is a count with an optional unit; without a unit it is a rate in Hz.  A few
probes are listed up front, any other valid one is created when a description
names it (module and function must be empty).  Periods under 200us are
refused: such a probe simply does not exist, so the description matches
nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydtrace.probes.catalogue import PROVIDER_ATTRIBUTES, ProbeTuple, Provider

NANOSEC = 1_000_000_000
MIN_PERIOD_NS = 200_000
_U64 = (1 << 64) - 1

PROFILE_RATES = (97, 199, 499, 997, 1999, 4001, 4999)
TICK_RATES = (1, 10, 100, 500, 1000, 5000)

_UNITS = {
    "ns": 1,
    "nsec": 1,
    "us": 1000,
    "usec": 1000,
    "ms": 1000_000,
    "msec": 1000_000,
    "s": NANOSEC,
    "sec": NANOSEC,
    "m": 60 * NANOSEC,
    "min": 60 * NANOSEC,
    "h": 3600 * NANOSEC,
    "hour": 3600 * NANOSEC,
    "d": 86400 * NANOSEC,
    "day": 86400 * NANOSEC,
}

# Mirrors sscanf("%lu%4s"): optional blanks and '+', digits, then a unit of at
# most four non-blank characters (anything after those four is ignored).
_NUM_UNIT = r"\s*\+?(\d+)\s*(\S{0,4})"  # re.match compiles it when first used


def _kind(name: str) -> str | None:
    if name.startswith("profile-"):
        return "profile"
    if name.startswith("tick-"):
        return "tick"
    return None


def parse_period(spec: str) -> int:
    """Period in ns for the text after 'profile-'/'tick-', 0 when invalid."""
    m = re.match(_NUM_UNIT, spec)
    if m is None:
        return 0
    val = min(int(m.group(1)), _U64)
    unit = m.group(2) or "hz"
    if val == 0:
        return 0
    if unit.lower() == "hz":
        val = NANOSEC // val
    else:
        mult = _UNITS.get(unit.lower())
        if mult is None:
            return 0
        val = (val * mult) & _U64
    return val if val >= MIN_PERIOD_NS else 0


def profile_period_ns(name: str) -> tuple[str, int] | None:
    """('profile'|'tick', period in ns) for a profile probe name, else None."""
    kind = _kind(name)
    if kind is None:
        return None
    n = name[len(kind) + 1 :]
    # the pre-listed rates are exempt from the 200us floor (tick-5000 is 200us)
    if n.isdigit() and int(n) in (PROFILE_RATES if kind == "profile" else TICK_RATES):
        return kind, NANOSEC // int(n)
    period = parse_period(n)
    return (kind, period) if period else None


class ProfileProvider(Provider):
    name = "profile"
    attributes = PROVIDER_ATTRIBUTES["profile"]

    def probes(self) -> Iterable[ProbeTuple]:
        for r in PROFILE_RATES:
            yield ("", "", f"profile-{r}", (), ("profile", NANOSEC // r))
        for r in TICK_RATES:
            yield ("", "", f"tick-{r}", (), ("tick", NANOSEC // r))

    def create(self, module: str, function: str, name: str) -> ProbeTuple | None:
        if module or function:
            return None
        info = profile_period_ns(name)
        if info is None:
            return None
        return ("", "", name, (), info)
