"""dtrace:::BEGIN and END on the eBPF engine: programs the engine runs itself
(BPF_PROG_TEST_RUN) before the probes are attached and after they are
detached. ERROR has no program: its clauses are compiled into every fault
block (cg_program.emit_fault)."""

from __future__ import annotations

from pydtrace.engines.ebpf.cg_context import PROG_RAW_TRACEPOINT
from pydtrace.engines.ebpf.providers.base import EbpfProvider

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class DtraceProvider(EbpfProvider):
    name = "dtrace"

    def attach(self, probe: Any) -> tuple[int, tuple[Any, ...]]:
        if probe.name not in ("BEGIN", "END"):
            return super().attach(probe)
        return PROG_RAW_TRACEPOINT, ("run", probe.name)
