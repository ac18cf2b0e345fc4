"""A second line for `probe description ... does not match any probes` where the
reason is not the user's spelling alone: probes this kernel cannot offer (fbt
without kprobes) and bpftrace's probe names, which D spells differently."""

from __future__ import annotations

import os
import re

KPROBE_PMU = "/sys/bus/event_source/devices/kprobe"
KPROBE_EVENTS = ("/sys/kernel/tracing/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events")


def has_kprobes() -> bool:
    """Does the kernel offer kprobes (the perf PMU or tracefs' kprobe_events)?"""
    return os.path.exists(KPROBE_PMU) or any(os.path.exists(p) for p in KPROBE_EVENTS)


def _no_kprobes() -> str:
    return (
        "this kernel has no kprobes (no kprobe PMU, no kprobe_events in tracefs), which"
        " kernel function probes need; its tracepoints are sdt probes (pydtrace -l -P sdt)"
    )


# bpftrace's probe types (long and short names) -> how D names the same probe
_BPFTRACE = {
    "tracepoint": "sdt:{1}::{2}",
    "t": "sdt:{1}::{2}",
    "kprobe": "fbt::{1}:entry",
    "k": "fbt::{1}:entry",
    "kretprobe": "fbt::{1}:return",
    "kr": "fbt::{1}:return",
    "fentry": "fbt::{1}:entry",
    "f": "fbt::{1}:entry",
    "fexit": "fbt::{1}:return",
    "fr": "fbt::{1}:return",
    "uprobe": "pid$target:{1}:{2}:entry",
    "u": "pid$target:{1}:{2}:entry",
    "uretprobe": "pid$target:{1}:{2}:return",
    "ur": "pid$target:{1}:{2}:return",
    "usdt": "usdt$target:{1}::{2}",
    "U": "usdt$target:{1}::{2}",
}
_INTERVAL = re.compile(r"^(?:interval|i):(s|ms|us|hz):(\d+)$")
_PROFILE = re.compile(r"^(?:profile|p):(s|ms|us|hz):(\d+)$")


def no_match_hint(text: str) -> str | None:
    """The hint for a probe description that matched nothing, if there is one."""
    text = text.strip()
    parts = text.split(":")
    if parts[0] == "fbt":
        if not has_kprobes():
            return _no_kprobes()
        return "pydtrace has no fbt provider yet; kernel tracepoints are sdt probes (pydtrace -l -P sdt)"
    m = _INTERVAL.match(text) or _PROFILE.match(text)
    if m:
        unit, n = m.groups()
        d = f"{'tick' if text[0] == 'i' else 'profile'}-{n}{'' if unit == 'hz' else unit}"
        return f"bpftrace's {text} is {d} in D"
    shape = _BPFTRACE.get(parts[0])
    if shape is None or len(parts) < 2:
        return None
    fields = [*parts, "", ""]
    if parts[0] in ("uprobe", "u", "uretprobe", "ur", "usdt", "U") and len(parts) > 3:
        fields = [parts[0], ":".join(parts[1:-1]), parts[-1]]  # a path with a colon
    hint = f"bpftrace's {text} is {shape.format(*fields)} in D"
    if shape.startswith("fbt") and not has_kprobes():
        hint += "; " + _no_kprobes()
    return hint
