"""Groups: probes one program serves (raw syscalls, a file's uprobes), the
firing probe found in a dispatch map (cg_program.group_entry); each probe
runs the group's clauses its mask names."""

from __future__ import annotations

from pydtrace.engines.ebpf.cg_context import RAW_MAX_CLAUSES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def merged_clauses(
    probes: list[Any], by_probe: dict[int, list[Any]]
) -> tuple[list[Any], dict[int, int]] | None:
    """The clauses of a group's probes in program order, and each probe's mask
    of those it runs; None when they are more than a mask's 64 bits."""
    merged = sorted({c.index: c for p in probes for c in by_probe[p.id]}.values(),
                    key=lambda c: c.index)  # fmt: skip
    if len(merged) > RAW_MAX_CLAUSES:
        return None
    pos = {c.index: k for k, c in enumerate(merged)}
    return merged, {p.id: sum(1 << pos[c.index] for c in by_probe[p.id]) for p in probes}
