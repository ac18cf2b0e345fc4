"""How the tracefs engine fires each provider, found through PROVIDERS by a
probe's kind. A provider's enable() asks the Plan (engines/tracefs/plan.py)
for the tracefs events its probes fire from, with a handler per event that
fires them through the engine (TracefsEngine.fire_event) and the filter
its clauses' predicates allow. dtrace and profile probes are fired by the
user-space engine's own clock, as on that engine.

How to add a provider: its catalogue side (probes/providers), then
engines/tracefs/providers/<name>.py with a TracefsProvider subclass, and an
instance in PROVIDERS below."""

from __future__ import annotations

from pydtrace.engines.tracefs.providers.base import TracefsProvider
from pydtrace.engines.tracefs.providers.proc import ProcProvider
from pydtrace.engines.tracefs.providers.sched import SchedProvider
from pydtrace.engines.tracefs.providers.sdt import SdtProvider
from pydtrace.engines.tracefs.providers.syscall import SyscallProvider

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Clock(TracefsProvider):
    """dtrace (BEGIN, END, ERROR) and profile: fired by the engine itself."""

    def __init__(self, name: str) -> None:
        self.name = name


PROVIDERS: dict[str, TracefsProvider] = {
    p.name: p
    for p in (
        _Clock("dtrace"),
        _Clock("profile"),
        SyscallProvider(),
        SdtProvider(),
        ProcProvider(),
        SchedProvider(),
    )
}
SUPPORTED = frozenset(PROVIDERS)  # the probe kinds the tracefs engine can fire
_NONE = TracefsProvider()


def provider_of(probe: Any) -> TracefsProvider:
    return PROVIDERS.get(probe.kind, _NONE)
