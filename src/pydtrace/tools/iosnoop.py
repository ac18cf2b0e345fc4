"""iosnoop: one line per block I/O, BCC's biosnoop columns (iosnoop.d)."""

from __future__ import annotations

from pydtrace.tools import options as O
from pydtrace.tools.output import Column
from pydtrace.tools.tool import Tool, d_string, stop_after

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def disk_name(text: str) -> str:
    """-d DISK: a block device's name as /sys/class/block has it (sda, loop0)."""
    name = text[len("/dev/") :] if text.startswith("/dev/") else text
    if not name or "/" in name or len(name) > 63:
        raise ValueError("not a disk name (as in /sys/class/block: sda, nvme0n1, loop0)")
    return name


DISK = O.Opt("d", "disk", "disk", "trace this disk only (sda, loop0; as in /sys/class/block)", "DISK", disk_name)  # fmt: skip
QUEUED = O.Opt("Q", "queue", "queued", "print the time queued in the kernel (QUE) and count it in the latency")  # fmt: skip
DURATION = O.Opt(None, "duration", "duration", "trace for SECONDS, then stop", "SECONDS", O.seconds)  # fmt: skip


class Iosnoop(Tool):
    name = "iosnoop"
    script_file = "iosnoop.d"
    summary = (
        "Trace block device I/O: one line per request as it completes, with the process "
        "that issued it, the disk, R/W, the sector, the bytes and the latency (BCC's biosnoop)."
    )
    options = (O.PID, O.COMMAND, O.NAME, DISK, QUEUED, DURATION, O.JSON, *O.TAIL)
    kernel_only = True
    examples = (
        ("iosnoop", "Every block I/O request of every process, as it completes, until Ctrl-C."),
        ("iosnoop -Q -d sda", "The requests to sda, with the time each was queued in the kernel."),
        (
            "iosnoop -- dd if=/dev/sda of=/dev/null bs=1M count=10 iflag=direct",
            "The requests dd makes.",
        ),
    )

    def __init__(self, o: O.Parsed) -> None:
        super().__init__(o)
        self.first: int | None = None

    def inline_values(self) -> dict[str, str]:
        return {**super().inline_values(), "DISK": d_string(self.o.disk or "")}

    def extra_clauses(self) -> str:
        return stop_after(self.o.duration, "--duration")

    def columns(self) -> list[Column]:
        cols = [Column("secs", "TIME(s)", 11), Column("comm", "COMM", 14), Column("pid", "PID", 7),
                Column("disk", "DISK", 9), Column("rw", "T", 1), Column("sector", "SECTOR", 10),
                Column("bytes", "BYTES", 7)]  # fmt: skip
        if self.o.queued:
            cols.append(Column("que_ms", "QUE(ms)", 7, right=True))
        return [*cols, Column("lat_ms", "LAT(ms)", 7, right=True)]

    def event(self, probe: Any, values: list[Any]) -> dict[str, Any] | None:
        ts, comm, pid, disk, rw, sector, nbytes, que, lat = values
        if self.first is None:
            self.first = ts
        if self.o.queued:
            lat += que
        ev = {"secs": "%.6f" % ((ts - self.first) / 1e9), "comm": comm[:14], "pid": pid,
              "disk": disk, "rw": rw, "sector": sector, "bytes": nbytes,
              "lat_ms": "%.2f" % (lat / 1e6)}  # fmt: skip
        if self.rows.json:
            ev = {"timestamp": ts, "comm": comm, "pid": pid, "disk": disk, "rw": rw,
                  "sector": sector, "bytes": nbytes, "lat_ns": lat}  # fmt: skip
            if self.o.queued:
                ev["que_ns"] = que
        elif self.o.queued:
            ev["que_ms"] = "%.2f" % (que / 1e6)
        return ev


TOOL = Iosnoop
