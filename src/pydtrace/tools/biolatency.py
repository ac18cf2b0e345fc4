"""biolatency: block I/O latency histograms in BCC's layout (biolatency.d)."""

from __future__ import annotations

import time as _time
from typing import Any

from pydtrace.tools import histogram as H
from pydtrace.tools import options as O
from pydtrace.tools.iosnoop import DISK, QUEUED
from pydtrace.tools.tool import Tool, d_string

MILLI = O.Opt("m", "milliseconds", "milliseconds", "histograms in milliseconds (default: microseconds)")  # fmt: skip
PER_DISK = O.Opt("D", "disks", "per_disk", "one histogram per disk")
TIMESTAMP = O.Opt("T", "timestamp", "timestamp", "print the time (HH:MM:SS) above each histogram")
Q_LATENCY = O.Opt(QUEUED.short, QUEUED.long, QUEUED.dest, "count the time queued in the kernel too")


class Summary(Tool):
    """A tool that prints log2 histograms: at the end, or every interval
    seconds, count times (`[interval [count]]`, a command after --)."""

    positional = "interval"
    heading = ""  # the line printed when tracing begins
    key_name = ""  # what a histogram's key is (-D: "disk"), for its section line

    def __init__(self, o: O.Parsed) -> None:
        super().__init__(o)
        self.printed = 0

    @classmethod
    def parse(cls, argv: list[str]) -> O.Parsed:
        o = super().parse(argv)
        o.values.setdefault("pid", None)  # no -p: the system's (or a command's) whole run
        return o

    def unit(self) -> str:
        return "msecs" if self.o.milliseconds else "usecs"

    def shown(self) -> str:
        """The aggregation the options chose (the .d file has one per layout)."""
        raise NotImplementedError

    def extra_clauses(self) -> str:
        return H.interval_clauses(self.o.interval, self.o.count, [self.shown()])

    def begin(self, out: Any) -> None:
        self.rows.out = out
        if not self.rows.json and not self.rows.header_done:
            self.rows.header_done = True
            out.write(self.heading + "\n")
            out.flush()

    def hook(self, consumer: Any, rec: Any, item: Any) -> bool:
        self.rows.out = consumer.out
        kind = item.action.kind
        if kind == "printf":  # BEGIN's heading: ours
            if rec.probe.provider == "dtrace" and rec.probe.name == "BEGIN":
                self.begin(consumer.out)
            return True
        if kind != "printa":
            return False
        aggs = [consumer.aggs[n] for n in item.action.aggs]
        for a in aggs:
            a.printed = True
        agg = aggs[0]
        if agg.spec.name != self.shown():
            return True
        tick = rec.probe.name != "END"
        if not tick and self.o.interval is not None:
            # the end: what came in after the last interval, unless count were printed
            if not agg.data or (self.o.count is not None and self.printed >= self.o.count):
                return True
        self.printed += 1
        self.histograms(agg, tick)
        return True

    def histograms(self, agg: Any, interval: bool) -> None:
        now = _time.strftime("%H:%M:%S")
        unit = self.unit()
        keys = sorted(agg.data)
        if self.rows.json:
            for k in keys:
                obj: dict[str, Any] = {self.key_name: k[0]} if k else {}
                obj.update(H.json_histogram(H.slots(agg.data[k]), unit))
                if interval:
                    obj["interval_end"] = now
                self.rows.record(obj)
            return
        w = self.rows.out.write
        w("\n")
        if self.o.timestamp:
            w(f"{now}\n")
        for k in keys:
            if k:
                w(f"\n{self.key_name} = {k[0]}\n")
            w(H.log2_hist(H.slots(agg.data[k]), unit))


class Biolatency(Summary):
    name = "biolatency"
    script_file = "biolatency.d"
    summary = (
        "Summarize block device I/O latency as a histogram (BCC's biolatency): from issue "
        "to completion (-Q: from the block layer's queue); every interval seconds, count "
        "times, or at the end."
    )
    options = (TIMESTAMP, Q_LATENCY, MILLI, PER_DISK, DISK, O.JSON, *O.TAIL)
    kernel_only = True
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
