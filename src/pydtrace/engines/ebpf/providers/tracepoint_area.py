"""The argument area of the kernel-tracepoint providers (sdt, io): TRACEPOINT
programs whose context (r6) is the tracepoint's raw record, fields at their
`format` offsets, and whose arguments are built in one frame area registered
as a memory region (cg_memory), so D reads them as ordinary memory: `args` /
args[N] are D addresses inside it, and member loads, strings and stringof()
work unchanged. The area is filled only by programs whose clauses read the
arguments (engines/ebpf/providers/sdt.py, io.py).
"""

from __future__ import annotations

from pydtrace.engines.ebpf.cg_context import PROG_TRACEPOINT
from pydtrace.engines.ebpf.cg_memory import Region
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.probes import tracefs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REGION = ("tracepoint", "args")


def attach(probe: Any, group: str, event: str) -> tuple[int, tuple[str, str, str]]:
    """(program type, attachment) of a probe on tracepoint group:event."""
    try:
        tracefs.event_id(group, event)
    except tracefs.TracefsError as e:
        raise LoweringError(f"cannot attach {probe.fqn}: {e}") from None
    return PROG_TRACEPOINT, ("tracepoint", group, event)


def region(cg: Any) -> Region:
    """The frame area of this program's arguments (one, sized for every sdt
    and io probe of the program; each firing fills it anew)."""
    regs = cg.mem_regions()
    r = regs.get(REGION)
    if r is None:
        size = max(
            [cg.provider(p).args_area(p) for c in cg.prog.clauses for p in c.probes] + [8]
        )  # fmt: skip
        size = (size + 7) // 8 * 8
        r = regs[REGION] = Region(cg.next_vaddr(), size, "frame", cg.frame.take(size))
    return r
