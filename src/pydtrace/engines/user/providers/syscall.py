"""syscall::NAME:entry|return on the user-space engine: the ptrace stops of
a target's system calls (engines/user/ptrace)."""

from __future__ import annotations

from pydtrace.engines.user.providers.base import UserProvider

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class SyscallProvider(UserProvider):
    name = "syscall"
    traced = True

    def enable(self, sink: Any, probe: Any, table: Any) -> None:
        sys = table.by_name.get(probe.function) if table is not None else None
        if sys is None:
            return
        (sink.entry_probes if probe.name == "entry" else sink.return_probes)[sys.nr] = probe
