"""The summary tools' histograms (biolatency, runqlat): BCC's log2 layout
from a D quantize(), the clauses that print one every interval, and the
front end those tools share (Summary).

A D quantize() has a bucket for 0, for 1, then [2^(k-1), 2^k - 1]; BCC's
log2 histograms (bpf_log2l) join 0 and 1 into the first slot, `0 -> 1`,
and keep the others. The text is BCC's print_log2_hist: the header, one
line per slot up to the last one used, 40 stars for the largest count
(20 when values pass 2^32), nothing at all for an empty histogram.
"""

from __future__ import annotations

import time as _time

from pydtrace.consume.aggregation import QUANTIZE_ZEROBUCKET as ZERO
from pydtrace.tools import options as O
from pydtrace.tools.tool import Tool, every

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STARS = 40
MILLI = O.Opt("m", "milliseconds", "milliseconds", "histograms in milliseconds (default: microseconds)")  # fmt: skip
TIMESTAMP = O.Opt("T", "timestamp", "timestamp", "print the time (HH:MM:SS) above each histogram")


def slots(bins: list[int]) -> list[int]:
    """BCC's log2 slots (index k: [2^(k-1), 2^k - 1], slot 1 also 0) from a
    quantize()'s bins; negative values (none in a latency) are left out."""
    out = [0] * (len(bins) - ZERO)
    out[1] = bins[ZERO] + bins[ZERO + 1]
    for k in range(2, len(out)):
        out[k] = bins[ZERO + k]
    return out


def ranges(counts: list[int]) -> list[tuple[int, int, int]]:
    """(low, high, count) of every slot up to the last one used, as printed."""
    last = max((i for i, v in enumerate(counts) if v), default=0)
    out = []
    for i in range(1, last + 1):
        low, high = (1 << i) >> 1, (1 << i) - 1
        out.append((0 if low == high else low, high, counts[i]))
    return out


def _stars(val: int, val_max: int, width: int) -> str:
    n = min(width, -(-width * val // val_max)) if val_max else 0  # BCC: ceil, at most width
    return "*" * n


def log2_hist(counts: list[int], unit: str) -> str:
    """BCC's print_log2_hist text of the slots (unit: usecs, msecs)."""
    used = [i for i, v in enumerate(counts) if v]
    if not used or used[-1] == 0:
        return ""
    val_max = max(counts)
    if used[-1] <= 32:
        header, body, width = "     %-19s : count     distribution", "%10d -> %-10d : %-8d |%-*s|", STARS  # fmt: skip
    else:
        header, body, width = "               %-29s : count     distribution", "%20d -> %-20d : %-8d |%-*s|", STARS // 2  # fmt: skip
    lines = [header % unit]
    for low, high, n in ranges(counts):
        lines.append(body % (low, high, n, width, _stars(n, val_max, width)))
    return "\n".join(lines) + "\n"


def interval_clauses(interval: float | None, count: int | None, aggs: list[str]) -> str:
    """D clauses printing aggs (and clearing them) every interval seconds, and
    ending the run after count intervals."""
    if interval is None:
        return ""
    body = f"\tprinta({', '.join(aggs)});\n" + "".join(f"\ttrunc({a});\n" for a in aggs)
    return every(interval, count, "the histogram since the last", body)


def json_histogram(counts: list[int], unit: str) -> dict[str, Any]:
    """A histogram as a JSON object's fields: its unit, slots and total."""
    return {
        "unit": unit,
        "buckets": [{"low": lo, "high": hi, "count": n} for lo, hi, n in ranges(counts)],
        "total": sum(counts),
    }


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
        return interval_clauses(self.o.interval, self.o.count, [self.shown()])

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

    def key_fields(self, key: tuple[Any, ...]) -> dict[str, Any]:
        """A histogram's key as JSON fields."""
        return {self.key_name: key[0]} if key else {}

    def histograms(self, agg: Any, interval: bool) -> None:
        now = _time.strftime("%H:%M:%S")
        unit = self.unit()
        keys = sorted(agg.data)
        if self.rows.json:
            for k in keys:
                obj: dict[str, Any] = self.key_fields(k)
                obj.update(json_histogram(slots(agg.data[k]), unit))
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
                w(f"\n{self.key_name} = {' '.join(str(x) for x in k)}\n")
            w(log2_hist(slots(agg.data[k]), unit))
