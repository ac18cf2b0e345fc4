"""dtrace:::BEGIN, END, ERROR: the user-space engine fires them itself, at its
start and end and after a fault (engines/user/engine.py)."""

from __future__ import annotations

from pydtrace.engines.user.providers.base import UserProvider


class DtraceProvider(UserProvider):
    name = "dtrace"
