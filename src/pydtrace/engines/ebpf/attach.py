"""Opening a program's attachment (ProgSpec.attach, which the provider's
attach() gives: engines/ebpf/providers): one opener per kind, each giving
the attachments to close at the end. A "run" program (BEGIN, END) has none:
the engine runs it itself."""

from __future__ import annotations

from collections.abc import Callable

from pydtrace.engines.ebpf import perf

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _tracepoint(fd: int, attach: tuple[Any, ...]) -> list[Any]:
    """("tracepoint", group, event or events: a shared program); tracefs.NoSuchEvent
    when the kernel lacks it (a shared program: lacks them all)."""
    if isinstance(attach[2], str):
        return [perf.attach_tracepoint(fd, attach[1], attach[2])]
    from pydtrace.probes import tracefs

    out: list[Any] = []
    missing: tracefs.NoSuchEvent | None = None
    try:
        for event in attach[2]:
            try:
                out.append(perf.attach_tracepoint(fd, attach[1], event))
            except tracefs.NoSuchEvent as e:
                missing = missing or e  # a call this kernel does not trace never fires
    except BaseException:
        perf.close_without_waiting(out)
        raise
    if not out and missing is not None:
        raise missing
    return out


def _raw_tracepoint(fd: int, attach: tuple[Any, ...]) -> list[Any]:
    return [perf.attach_raw_tracepoint(fd, attach[1])]  # ("raw_tp", name)


def _uprobe(fd: int, attach: tuple[Any, ...]) -> list[Any]:
    """pid/usdt: ("uprobe", path, offset, ret, pid, refctr)."""
    multi = expected_attach_type(attach) != 0
    return [perf.attach_uprobe(fd, *attach[1:], multi=multi)]


def _uprobe_multi(fd: int, attach: tuple[Any, ...]) -> list[Any]:
    """A pid group: ("uprobe_multi", path, offsets, ret, pid, cookies)."""
    return [perf.attach_uprobe_multi(fd, *attach[1:])]


def _timer(fd: int, attach: tuple[Any, ...]) -> list[Any]:
    """("timer", period in ns, on every CPU?)."""
    period, every = attach[1], attach[2]
    if every:
        return perf.open_clocks(fd, period)
    from pydtrace.engines.ebpf.maps import online_cpus

    return [perf.open_clock(fd, period, online_cpus()[0])]


# the kinds the uprobe agent opens (uprobe_agent.py), not this process
UPROBE_KINDS = frozenset({"uprobe", "uprobe_multi"})

OPENERS: dict[str, Callable[[int, tuple[Any, ...]], list[Any]]] = {
    "tracepoint": _tracepoint,
    "raw_tp": _raw_tracepoint,
    "uprobe": _uprobe,
    "uprobe_multi": _uprobe_multi,
    "timer": _timer,
}


def expected_attach_type(attach: tuple[Any, ...]) -> int:
    """uprobes attach as uprobe_multi links where the kernel has them (their
    programs must say so when loaded), else as perf events (0)."""
    from pydtrace.engines.ebpf.bpf import AttachType
    from pydtrace.engines.ebpf.features import has_uprobe_multi

    if attach[0] in UPROBE_KINDS and has_uprobe_multi():
        return AttachType.TRACE_UPROBE_MULTI
    return 0
