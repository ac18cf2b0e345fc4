"""profile:::profile-N (every CPU) and tick-N (one CPU) on the eBPF engine:
a PERF_EVENT program on a software clock of that period."""

from __future__ import annotations

from pydtrace.engines.ebpf.cg_context import PROG_PERF_EVENT
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.providers import timer
from pydtrace.engines.ebpf.providers.base import EbpfProvider
from pydtrace.probes.providers.profile import profile_period_ns

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class ProfileProvider(EbpfProvider):
    name = "profile"

    def attach(self, probe: Any) -> tuple[int, tuple[Any, ...]]:
        kp = profile_period_ns(probe.name)
        if kp is None:
            raise LoweringError(f"the eBPF engine cannot attach {probe.fqn}")
        return PROG_PERF_EVENT, ("timer", kp[1], kp[0] == "profile")

    def args(self, cg: Any, probe: Any) -> None:
        timer.pc_args(cg)
