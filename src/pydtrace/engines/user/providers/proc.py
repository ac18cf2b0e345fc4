"""proc:::* on the user-space engine: from a target's ptrace events and the
system calls that make them (exec, signals sent), engines/user/ptrace."""

from __future__ import annotations

from pydtrace.engines.user.providers.base import UserProvider

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class ProcProvider(UserProvider):
    name = "proc"
    traced = True

    def enable(self, sink: Any, probe: Any, table: Any) -> None:
        sink.proc_probes[probe.name] = probe
        if probe.name == "exec":  # the path, read at the call's entry
            sink.proc_entries |= sink.exec_numbers
        elif probe.name == "exec-failure":
            sink.proc_exits |= sink.exec_numbers
        elif probe.name == "signal-send":  # a call that sends one, once it succeeded
            sink.proc_exits |= set(sink.senders)
