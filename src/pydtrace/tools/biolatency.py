"""biolatency: block I/O latency histograms in BCC's layout (biolatency.d)."""

from __future__ import annotations

from pydtrace.tools import histogram as H
from pydtrace.tools import options as O
from pydtrace.tools.iosnoop import DISK, QUEUED
from pydtrace.tools.tool import d_string

PER_DISK = O.Opt("D", "disks", "per_disk", "one histogram per disk")
Q_LATENCY = O.Opt(QUEUED.short, QUEUED.long, QUEUED.dest, "count the time queued in the kernel too")


class Biolatency(H.Summary):
    name = "biolatency"
    script_file = "biolatency.d"
    summary = (
        "Summarize block device I/O latency as a histogram (BCC's biolatency): from issue "
        "to completion (-Q: from the block layer's queue); every interval seconds, count "
        "times, or at the end."
    )
    options = (H.TIMESTAMP, Q_LATENCY, H.MILLI, PER_DISK, DISK, O.JSON, *O.TAIL)
    kernel_only = True
    examples = (
        ("biolatency", "A histogram of block I/O latency in microseconds at Ctrl-C."),
        (
            "biolatency -mT 1 10",
            "Ten histograms in milliseconds, one a second, each under its time.",
        ),
        ("biolatency -D -Q", "One histogram per disk, counting the time queued in the kernel."),
    )
    heading = "Tracing block device I/O... Hit Ctrl-C to end."
    key_name = "disk"

    def inline_values(self) -> dict[str, str]:
        o = self.o
        return {"DISK": d_string(o.disk or ""), "QUEUED": "1" if o.queued else "0",
                "PER_DISK": "1" if o.per_disk else "0",
                "UNIT": "1000000" if o.milliseconds else "1000"}  # fmt: skip

    def shown(self) -> str:
        return "@disk_lat" if self.o.per_disk else "@lat"


TOOL = Biolatency
