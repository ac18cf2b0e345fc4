"""TracefsProvider: how the tracefs engine fires one provider's probes."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class TracefsProvider:
    name = ""

    def enable(self, plan: Any, probes: list[Any]) -> None:
        """Ask plan for the events the probes fire from (Plan.want), each
        with a handler that fires them and the kernel filter they allow."""
