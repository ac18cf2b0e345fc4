"""UserProvider: how the user-space engine fires one provider's probes."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class UserProvider:
    name = ""
    # fired from the events of ptrace targets (-c/-p), which the Sink
    # (engines/user/ptrace/source.py) turns into firings; else by the engine itself
    traced = False

    def enable(self, sink: Any, probe: Any, table: Any) -> None:
        """A traced provider: have the Sink fire probe (table: the syscall table)."""

    def timer(self, probe: Any) -> tuple[int, bool] | None:
        """(period in ns, fire on every CPU?) for a probe the engine's clock fires."""
        return None
